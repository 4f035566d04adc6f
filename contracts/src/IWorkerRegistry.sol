// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title IWorkerRegistry
/// @notice What an `Agent` asks of a registry: is this worker attested to run this measurement now?
interface IWorkerRegistry {
    /// @notice One attested (worker, measurement) pair.
    /// @param measurement the agent measurement the worker was attested to run
    /// @param expiresAt unix time (seconds) the attestation stops being valid; 0 = never registered
    /// @param quoteHash hash of the attested quote
    struct Registration {
        bytes32 measurement;
        uint64 expiresAt;
        bytes32 quoteHash;
    }

    /// @notice True iff `worker` holds an unexpired registration for `measurement`.
    /// @dev One cold storage read. Expiry needs no transaction: it is compared with block.timestamp.
    function isRegistered(address worker, bytes32 measurement) external view returns (bool);

    /// @notice The worker's most recent registration (all fields zero if it never registered).
    function registration(address worker) external view returns (Registration memory);

    /// @notice The worker's registration for `measurement` (expiresAt 0 if it never registered it).
    function registrationFor(address worker, bytes32 measurement) external view returns (Registration memory);
}
