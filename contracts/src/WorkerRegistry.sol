// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IAttestationVerifier} from "./IAttestationVerifier.sol";
import {IWorkerRegistry} from "./IWorkerRegistry.sol";

/// @title WorkerRegistry
/// @notice Records which TEE workers are attested to run which agent measurement, until when.
/// @dev Registrations are keyed by (worker, measurement): a worker serving several agents holds
///      one registration per measurement, each valid until its own expiry. The expiry of a pair
///      lives alone in one slot, so `isRegistered` is a single cold SLOAD. Anyone may submit
///      evidence (a relayer may pay the gas); a pair's expiry only moves forward, so replaying an
///      older verdict cannot shorten or roll back a registration.
contract WorkerRegistry is IWorkerRegistry {
    /// @notice The verifier evidence goes through.
    IAttestationVerifier public verifier;
    /// @notice The account that may replace the verifier.
    address public owner;

    mapping(bytes32 pair => uint64) private _expiresAt;
    mapping(bytes32 pair => bytes32) private _quoteHash;
    mapping(address worker => bytes32) private _latestMeasurement;

    /// @notice `worker` is attested to run `measurement` until `expiresAt`.
    event WorkerRegistered(address indexed worker, bytes32 indexed measurement, uint64 expiresAt, bytes32 quoteHash);
    /// @notice The verifier changed.
    event VerifierChanged(address indexed previousVerifier, address indexed newVerifier);
    /// @notice Ownership moved from `previousOwner` to `newOwner`.
    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);

    /// @notice The caller is not the owner.
    error NotOwner();
    /// @notice The zero address was given where an account or contract is required.
    error ZeroAddress();
    /// @notice The verifier returned the zero address as the worker.
    error ZeroWorker();
    /// @notice The verifier returned a zero measurement.
    error ZeroMeasurement();
    /// @notice The attestation's expiresAt is not in the future.
    error AlreadyExpired(uint64 expiresAt);
    /// @notice The pair is already registered until `current`, at or after the new expiry.
    error StaleRegistration(uint64 current);

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner();
        _;
    }

    /// @param initialVerifier the verifier evidence goes through
    /// @param initialOwner the account that may replace the verifier
    constructor(IAttestationVerifier initialVerifier, address initialOwner) {
        if (address(initialVerifier) == address(0) || initialOwner == address(0)) revert ZeroAddress();
        verifier = initialVerifier;
        owner = initialOwner;
        emit VerifierChanged(address(0), address(initialVerifier));
        emit OwnershipTransferred(address(0), initialOwner);
    }

    /// @notice Replaces the verifier; existing registrations stay valid until they expire.
    function setVerifier(IAttestationVerifier newVerifier) external onlyOwner {
        if (address(newVerifier) == address(0)) revert ZeroAddress();
        emit VerifierChanged(address(verifier), address(newVerifier));
        verifier = newVerifier;
    }

    /// @notice Hands the registry to `newOwner`. Owner only.
    function transferOwnership(address newOwner) external onlyOwner {
        if (newOwner == address(0)) revert ZeroAddress();
        emit OwnershipTransferred(owner, newOwner);
        owner = newOwner;
    }

    /// @notice Registers the worker that `evidence` attests, for the measurement it attests.
    /// @param evidence passed unchanged to `verifier.verify`
    function register(bytes calldata evidence) external {
        (address worker, bytes32 measurement, uint64 expiresAt, bytes32 quoteHash) = verifier.verify(evidence);
        if (worker == address(0)) revert ZeroWorker();
        if (measurement == bytes32(0)) revert ZeroMeasurement();
        if (expiresAt <= block.timestamp) revert AlreadyExpired(expiresAt);
        bytes32 pair = _pair(worker, measurement);
        uint64 current = _expiresAt[pair];
        if (expiresAt <= current) revert StaleRegistration(current);
        _expiresAt[pair] = expiresAt;
        _quoteHash[pair] = quoteHash;
        _latestMeasurement[worker] = measurement;
        emit WorkerRegistered(worker, measurement, expiresAt, quoteHash);
    }

    /// @inheritdoc IWorkerRegistry
    function isRegistered(address worker, bytes32 measurement) external view returns (bool) {
        return _expiresAt[_pair(worker, measurement)] > block.timestamp;
    }

    /// @inheritdoc IWorkerRegistry
    function registration(address worker) external view returns (Registration memory) {
        return registrationFor(worker, _latestMeasurement[worker]);
    }

    /// @inheritdoc IWorkerRegistry
    function registrationFor(address worker, bytes32 measurement) public view returns (Registration memory reg) {
        bytes32 pair = _pair(worker, measurement);
        uint64 expiresAt = _expiresAt[pair];
        if (expiresAt != 0) reg = Registration(measurement, expiresAt, _quoteHash[pair]);
    }

    function _pair(address worker, bytes32 measurement) private pure returns (bytes32 pair) {
        assembly ("memory-safe") {
            mstore(0x00, worker)
            mstore(0x20, measurement)
            pair := keccak256(0x00, 0x40)
        }
    }
}
