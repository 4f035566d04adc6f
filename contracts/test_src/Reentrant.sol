// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title Reentrant
/// @notice Test double base: when paid, calls back into a target with calldata the test armed,
///         once, and records the outcome instead of reverting, so a test can assert both that
///         the payment went through and how the re-entry was refused.
abstract contract Reentrant {
    /// @notice The contract re-entered on the next payment.
    address public reentryTarget;
    /// @notice The calldata of the re-entry.
    bytes public reentryData;
    /// @notice The value sent with the re-entry.
    uint256 public reentryValue;
    /// @notice Whether the next payment triggers the re-entry.
    bool public armed;
    /// @notice Whether a re-entry was attempted.
    bool public reentered;
    /// @notice Whether the re-entry succeeded.
    bool public reentryOk;
    /// @notice The re-entry's return or revert data.
    bytes public reentryResult;
    /// @notice Refuse every payment (to test failing withdrawals).
    bool public rejectPayments;

    /// @notice A payment arrived while `rejectPayments` is set.
    error PaymentRejected();

    /// @notice On the next payment, call `target` with `data` and `value` once.
    function arm(address target, bytes calldata data, uint256 value) external {
        reentryTarget = target;
        reentryData = data;
        reentryValue = value;
        armed = true;
    }

    /// @notice Makes every payment revert (`true`) or be accepted.
    function setRejectPayments(bool reject) external {
        rejectPayments = reject;
    }

    receive() external payable {
        if (rejectPayments) revert PaymentRejected();
        if (!armed) return;
        armed = false;
        reentered = true;
        (reentryOk, reentryResult) = reentryTarget.call{value: reentryValue}(reentryData);
    }
}
