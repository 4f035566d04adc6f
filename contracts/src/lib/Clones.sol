// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title Clones
/// @notice EIP-1167 minimal proxies whose runtime code carries immutable arguments after the
///         45-byte proxy, as OpenZeppelin's `Clones.cloneWithImmutableArgs` lays them out.
/// @dev The proxy never executes the appended bytes (it ends in RETURN/REVERT); the
///      implementation reads them with EXTCODECOPY on `address(this)` at offset `PROXY_LENGTH`.
///      Appended bytes cost 200 gas each to deploy and ~3 gas per word to read, against 22,100
///      gas per storage slot to write and 2,100 per cold slot to read.
library Clones {
    /// @dev Length of the EIP-1167 runtime code: the arguments start at this code offset.
    uint256 internal constant PROXY_LENGTH = 45;

    /// @notice Deploys a clone of `implementation` with `args` appended to its runtime code.
    /// @return instance the clone's address, or address(0) if CREATE failed.
    function cloneWithArgs(address implementation, bytes memory args) internal returns (address instance) {
        bytes memory initCode = abi.encodePacked(
            // PUSH2 runtimeLength, RETURNDATASIZE, DUP2, PUSH1 10, RETURNDATASIZE, CODECOPY, RETURN
            hex"61",
            uint16(PROXY_LENGTH + args.length),
            hex"3d81600a3d39f3",
            // EIP-1167 runtime: copy calldata, DELEGATECALL implementation, bubble the result
            hex"363d3d373d3d3d363d73",
            implementation,
            hex"5af43d82803e903d91602b57fd5bf3",
            args
        );
        assembly ("memory-safe") {
            instance := create(0, add(initCode, 0x20), mload(initCode))
        }
    }
}
