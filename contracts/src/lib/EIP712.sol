// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title EIP712
/// @notice EIP-712 domain separator and typed-data digest for domains of the form
///         {name, version, chainId, verifyingContract}.
/// @dev Computed on every use rather than cached, so a clone (whose address differs from the
///      implementation's) and a chain fork both get the right domain for about 100 gas.
library EIP712 {
    bytes32 internal constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");

    /// @notice The domain separator for `nameHash`/`versionHash` (keccak256 of the strings) at
    ///         `verifyingContract` on the current chain.
    function domainSeparator(bytes32 nameHash, bytes32 versionHash, address verifyingContract)
        internal
        view
        returns (bytes32)
    {
        return keccak256(abi.encode(DOMAIN_TYPEHASH, nameHash, versionHash, block.chainid, verifyingContract));
    }

    /// @notice keccak256("\x19\x01" ‖ domainSeparator ‖ structHash), the digest a signer signs.
    function digest(bytes32 separator, bytes32 structHash) internal pure returns (bytes32 result) {
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, hex"1901")
            mstore(add(ptr, 0x02), separator)
            mstore(add(ptr, 0x22), structHash)
            result := keccak256(ptr, 0x42)
        }
    }
}
