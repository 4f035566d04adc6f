// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title IAttestationVerifier
/// @notice Turns attestation evidence into the facts `WorkerRegistry` records. Implementations:
///         `SignedVerdictVerifier` (an attestation service's EIP-712 verdict) now, a zk verifier
///         (RISC Zero receipt of the DCAP verification; its journal carries the same fields) later.
interface IAttestationVerifier {
    /// @notice Verifies `evidence` and returns what it attests; reverts if it does not verify.
    /// @param evidence implementation-defined encoding of the attestation
    /// @return worker the worker's chain address, bound to the quote's REPORTDATA
    /// @return measurement the agent measurement the worker runs
    /// @return expiresAt unix time (seconds) after which the attestation no longer holds
    /// @return quoteHash hash of the attested quote, so anyone can fetch and re-verify it later
    function verify(bytes calldata evidence)
        external
        returns (address worker, bytes32 measurement, uint64 expiresAt, bytes32 quoteHash);
}
