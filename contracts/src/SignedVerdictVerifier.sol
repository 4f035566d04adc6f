// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IAttestationVerifier} from "./IAttestationVerifier.sol";
import {ECDSA} from "./lib/ECDSA.sol";
import {EIP712} from "./lib/EIP712.sol";

/// @title SignedVerdictVerifier
/// @notice Accepts attestation verdicts signed (EIP-712) by a trusted attestation service.
/// @dev The service verifies the DCAP quote, replays the event log and applies its policy off
///      chain; it must sign only verdicts its policy accepted. `tcbStatus` is part of the signed
///      data (so it is on record) but is not judged here. Trust in this contract is trust in the
///      owner-managed signer set.
contract SignedVerdictVerifier is IAttestationVerifier {
    /// @notice EIP-712 type hash of a verdict.
    bytes32 public constant VERDICT_TYPEHASH = keccak256(
        "Verdict(address worker,bytes32 measurement,uint8 tcbStatus,bytes32 quoteHash,uint64 expiresAt)"
    );
    bytes32 private constant NAME_HASH = keccak256("Enclava SignedVerdictVerifier");
    bytes32 private constant VERSION_HASH = keccak256("1");

    /// @notice The account that manages the signer set.
    address public owner;
    /// @notice Whether an address is a trusted attestation-service signer.
    mapping(address signer => bool) public isSigner;

    /// @notice `signer` is now trusted.
    event SignerAdded(address indexed signer);
    /// @notice `signer` is no longer trusted.
    event SignerRemoved(address indexed signer);
    /// @notice Ownership moved from `previousOwner` to `newOwner`.
    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);

    /// @notice The caller is not the owner.
    error NotOwner();
    /// @notice The zero address was given where an account is required.
    error ZeroAddress();
    /// @notice `signer` is already trusted.
    error AlreadySigner(address signer);
    /// @notice `signer` is not a trusted signer.
    error UnknownSigner(address signer);
    /// @notice The verdict's expiresAt is not in the future.
    error VerdictExpired();
    /// @notice The signature is malformed or non-canonical (length, high s, v).
    error BadSignature();

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner();
        _;
    }

    /// @param initialOwner the account that manages signers
    /// @param initialSigners signers trusted from the start
    constructor(address initialOwner, address[] memory initialSigners) {
        if (initialOwner == address(0)) revert ZeroAddress();
        owner = initialOwner;
        emit OwnershipTransferred(address(0), initialOwner);
        for (uint256 i = 0; i < initialSigners.length; ++i) {
            _addSigner(initialSigners[i]);
        }
    }

    /// @notice Trusts `signer`'s verdicts from now on. Owner only.
    function addSigner(address signer) external onlyOwner {
        _addSigner(signer);
    }

    /// @notice Stops trusting `signer`. Registrations made with its verdicts stay until they expire.
    function removeSigner(address signer) external onlyOwner {
        if (!isSigner[signer]) revert UnknownSigner(signer);
        isSigner[signer] = false;
        emit SignerRemoved(signer);
    }

    /// @notice Hands the signer set to `newOwner`. Owner only.
    function transferOwnership(address newOwner) external onlyOwner {
        if (newOwner == address(0)) revert ZeroAddress();
        emit OwnershipTransferred(owner, newOwner);
        owner = newOwner;
    }

    /// @notice Verifies a signed verdict.
    /// @param evidence abi.encode(address worker, bytes32 measurement, uint8 tcbStatus,
    ///        bytes32 quoteHash, uint64 expiresAt, bytes signature), the signature a 65-byte
    ///        r ‖ s ‖ v over the EIP-712 `Verdict` digest (see `verdictDigest`)
    /// @return worker the attested worker
    /// @return measurement the attested agent measurement
    /// @return expiresAt when the verdict stops being valid
    /// @return quoteHash hash of the verified quote
    function verify(bytes calldata evidence)
        external
        view
        returns (address worker, bytes32 measurement, uint64 expiresAt, bytes32 quoteHash)
    {
        uint8 tcbStatus;
        bytes memory signature;
        (worker, measurement, tcbStatus, quoteHash, expiresAt, signature) =
            abi.decode(evidence, (address, bytes32, uint8, bytes32, uint64, bytes));
        if (expiresAt <= block.timestamp) revert VerdictExpired();
        address signer = ECDSA.recoverMemory(
            verdictDigest(worker, measurement, tcbStatus, quoteHash, expiresAt), signature
        );
        if (signer == address(0)) revert BadSignature();
        if (!isSigner[signer]) revert UnknownSigner(signer);
    }

    /// @notice The EIP-712 digest a signer signs for a verdict.
    function verdictDigest(
        address worker,
        bytes32 measurement,
        uint8 tcbStatus,
        bytes32 quoteHash,
        uint64 expiresAt
    ) public view returns (bytes32) {
        bytes32 structHash =
            keccak256(abi.encode(VERDICT_TYPEHASH, worker, measurement, tcbStatus, quoteHash, expiresAt));
        return EIP712.digest(domainSeparator(), structHash);
    }

    /// @notice EIP-712 domain {name "Enclava SignedVerdictVerifier", version "1", chainId, this}.
    function domainSeparator() public view returns (bytes32) {
        return EIP712.domainSeparator(NAME_HASH, VERSION_HASH, address(this));
    }

    function _addSigner(address signer) private {
        if (signer == address(0)) revert ZeroAddress();
        if (isSigner[signer]) revert AlreadySigner(signer);
        isSigner[signer] = true;
        emit SignerAdded(signer);
    }
}
