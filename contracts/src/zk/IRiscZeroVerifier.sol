// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title IRiscZeroVerifier
/// @notice Verifies a RISC Zero receipt of a successful run (exit code Halted(0), no assumptions).
/// @dev Same function as RISC Zero's `IRiscZeroVerifier.verify`, so a RISC Zero verifier router
///      can stand behind `ZkAttestationVerifier` in place of our `RiscZeroGroth16Verifier`.
interface IRiscZeroVerifier {
    /// @notice Returns if `seal` proves that the guest `imageId` ran to completion and committed a
    ///         journal whose SHA-256 is `journalDigest`; reverts otherwise.
    function verify(bytes calldata seal, bytes32 imageId, bytes32 journalDigest) external view;
}
