// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IAttestationVerifier} from "../src/IAttestationVerifier.sol";

/// @title StubVerifier
/// @notice Test double: returns whatever verdict the evidence spells out, so registry tests
///         control every field (zero worker, past expiry, …) without signing anything.
contract StubVerifier is IAttestationVerifier {
    /// @notice Empty evidence: the stub's way to fail verification.
    error StubRejected();

    /// @notice Decodes evidence = abi.encode(address worker, bytes32 measurement, uint64 expiresAt,
    ///         bytes32 quoteHash) and returns it; reverts `StubRejected` on empty evidence.
    function verify(bytes calldata evidence)
        external
        pure
        returns (address worker, bytes32 measurement, uint64 expiresAt, bytes32 quoteHash)
    {
        if (evidence.length == 0) revert StubRejected();
        return abi.decode(evidence, (address, bytes32, uint64, bytes32));
    }
}
