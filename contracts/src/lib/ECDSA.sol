// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title ECDSA
/// @notice secp256k1 signature recovery that accepts only canonical signatures.
/// @dev Every function returns address(0) for a malformed or non-canonical signature (length other
///      than 65 bytes, `s` in the upper half of the curve order, `v` not 27 or 28); callers turn
///      address(0) into their own error. Rejecting high `s` makes signatures non-malleable: each
///      (message, key) has exactly one accepted signature.
library ECDSA {
    /// @dev secp256k1n / 2: the largest `s` a canonical (EIP-2) signature may carry.
    uint256 internal constant HALF_ORDER =
        0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;

    /// @notice Recovers the signer of `digest` from a 65-byte `r ‖ s ‖ v` signature in calldata.
    function recover(bytes32 digest, bytes calldata signature) internal pure returns (address) {
        if (signature.length != 65) return address(0);
        bytes32 r;
        bytes32 s;
        uint8 v;
        assembly ("memory-safe") {
            r := calldataload(signature.offset)
            s := calldataload(add(signature.offset, 32))
            v := byte(0, calldataload(add(signature.offset, 64)))
        }
        return recover(digest, v, r, s);
    }

    /// @notice Recovers the signer of `digest` from a 65-byte `r ‖ s ‖ v` signature in memory.
    function recoverMemory(bytes32 digest, bytes memory signature) internal pure returns (address) {
        if (signature.length != 65) return address(0);
        bytes32 r;
        bytes32 s;
        uint8 v;
        assembly ("memory-safe") {
            r := mload(add(signature, 32))
            s := mload(add(signature, 64))
            v := byte(0, mload(add(signature, 96)))
        }
        return recover(digest, v, r, s);
    }

    /// @notice Recovers the signer of `digest` from its `(v, r, s)` parts.
    function recover(bytes32 digest, uint8 v, bytes32 r, bytes32 s) internal pure returns (address) {
        if (uint256(s) > HALF_ORDER || (v != 27 && v != 28)) return address(0);
        return ecrecover(digest, v, r, s);
    }
}
