// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IAttestationVerifier} from "../IAttestationVerifier.sol";
import {DcapJournal, VerifiedTd} from "./DcapJournal.sol";
import {IRiscZeroVerifier} from "./IRiscZeroVerifier.sol";
import {Sha512} from "./Sha512.sol";

/// @title ZkAttestationVerifier
/// @notice Registers TDX workers from a RISC Zero receipt of Automata's DCAP verification guest:
///         no attestation service is trusted, only the proof system, the guest (its image ID),
///         Intel's root CA and the worker image this verifier is configured to accept.
/// @dev Trust argument, in the order `verify` checks it:
///      1. Receipt: the seal proves guest `imageId` ran to completion and committed `journal`.
///      2. Root: the guest takes its root CA as an input and commits its hash; it must be Intel's
///         (`intelRootCaHash`), so the quote and every collateral item chain to Intel.
///      3. Time: the guest checked collateral validity at `collateralTime`, an input of the
///         prover's choosing; it may not lie in the future, and the registration expires
///         `maxAge` after it, which bounds how stale a CRL or TCB info may be.
///      4. Policy: the TCB status is one this verifier accepts, the TD is not a debug TD, and its
///         launch and boot measurements (`VerifiedTd.platform`) are those of an accepted worker
///         image. From here on, REPORTDATA and RTMR3 were written by that image's code only.
///      5. Worker: the image binds its keys as REPORTDATA = SHA-512("enclava/worker/v1" ‖
///         chain address ‖ X25519 key ‖ nonce) (`attestation.binding`); the evidence opens it and
///         the opened address is the worker.
///      6. Measurement: the image extends each agent bundle it serves into RTMR3 as the runtime
///         event `enclava.agent` (`attestation.eventlog`, dstack's encoding). The evidence gives
///         RTMR3 before that event, the event's payload and the digests extended after it; the
///         SHA-384 replay must reach the quoted RTMR3, so forging it needs a second preimage.
///         The payload is the image's canonical JSON, which starts `{"digest":"<96 hex>"`; the
///         measurement is SHA-256 of that 48-byte bundle digest (`agent_measurement_id`).
///      Advisory IDs and the FMSPC stay on record in the journal; they are not judged here.
///      `quoteHash` is the journal digest, which names the receipt for later re-verification.
///      Gas: steps 1-4 (`verifyReceipt`) take about 240k with Automata's receipt; the opening
///      adds about 44k per SHA-2 block (`Sha512`): one for REPORTDATA, two for an agent payload
///      of up to 220 bytes, one per RTMR3 extension replayed (the agent event and each later one).
contract ZkAttestationVerifier is IAttestationVerifier {
    /// @notice The `verify` evidence, ABI-encoded as one tuple.
    /// @param seal the Groth16 seal (selector ‖ proof)
    /// @param journal the guest's journal
    /// @param worker the worker's chain address (opens REPORTDATA)
    /// @param x25519Public the worker's X25519 public key (opens REPORTDATA)
    /// @param nonce the nonce the quote was made for (opens REPORTDATA)
    /// @param rtmr3Before RTMR3 (48 bytes) before the agent event was extended
    /// @param agentPayload the `enclava.agent` event payload
    /// @param laterDigests the 48-byte digests extended into RTMR3 after it, concatenated
    struct Evidence {
        bytes seal;
        bytes journal;
        address worker;
        bytes32 x25519Public;
        bytes32 nonce;
        bytes rtmr3Before;
        bytes agentPayload;
        bytes laterDigests;
    }

    /// @notice The journal's root CA is not Intel's.
    error UntrustedRootCa(bytes32 rootCaHash);
    /// @notice The quote's TCB status is not accepted.
    error TcbStatusRejected(uint8 tcbStatus);
    /// @notice The TD runs in debug mode, so its memory and measurements are not protected.
    error DebugTd();
    /// @notice The TD's launch and boot measurements are not those of an accepted worker image.
    error UnknownPlatform(bytes32 platform);
    /// @notice The collateral time lies after the current block.
    error CollateralFromFuture(uint64 collateralTime);
    /// @notice The attestation expired (`maxAge` after its collateral time).
    error AttestationExpired(uint64 expiresAt);
    /// @notice REPORTDATA does not bind this worker address, X25519 key and nonce.
    error ReportDataNotBound();
    /// @notice The agent payload does not start with `{"digest":"<96 lowercase hex digits>"`.
    error AgentPayloadMalformed();
    /// @notice RTMR3-before is not 48 bytes, or the later digests are not a multiple of 48.
    error EventChainMalformed();
    /// @notice Replaying the agent event and the later digests does not give the quoted RTMR3.
    error Rtmr3Mismatch();
    /// @notice A configuration value is out of range.
    error InvalidConfig();

    /// @notice The receipt verifier (e.g. `RiscZeroGroth16Verifier`).
    IRiscZeroVerifier public immutable receiptVerifier;
    /// @notice Image ID of Automata's DCAP verification guest.
    bytes32 public immutable imageId;
    /// @notice keccak256 of the TBS part of Intel's SGX root CA certificate.
    bytes32 public immutable intelRootCaHash;
    /// @notice Seconds a registration stays valid after its collateral time.
    uint64 public immutable maxAge;
    /// @notice Bit s is set iff TCB status s is accepted.
    uint256 public immutable acceptedTcbStatuses;
    /// @notice Whether a `VerifiedTd.platform` value is an accepted worker image.
    mapping(bytes32 platform => bool) public isAcceptedPlatform;

    bytes11 private constant DIGEST_KEY = '{"digest":"';
    /// @dev u32 little-endian 0x08000001 ‖ ":enclava.agent:", the head of the event's hash input.
    bytes private constant AGENT_EVENT_HEAD = hex"010000083a656e636c6176612e6167656e743a";
    bytes private constant BINDING_LABEL = "enclava/worker/v1";
    uint256 private constant RTMR_SIZE = 48;
    uint256 private constant PAYLOAD_DIGEST_END = 11 + 96;

    /// @param verifier_ the receipt verifier
    /// @param imageId_ the DCAP guest's image ID
    /// @param intelRootCaHash_ keccak256 of Intel's root CA TBS certificate
    /// @param maxAge_ seconds a registration stays valid after its collateral time (> 0)
    /// @param tcbStatuses the accepted TCB statuses (each < 8)
    /// @param platforms the accepted `VerifiedTd.platform` values
    constructor(
        IRiscZeroVerifier verifier_,
        bytes32 imageId_,
        bytes32 intelRootCaHash_,
        uint64 maxAge_,
        uint8[] memory tcbStatuses,
        bytes32[] memory platforms
    ) {
        if (address(verifier_) == address(0) || maxAge_ == 0) revert InvalidConfig();
        receiptVerifier = verifier_;
        imageId = imageId_;
        intelRootCaHash = intelRootCaHash_;
        maxAge = maxAge_;
        uint256 statuses;
        for (uint256 i = 0; i < tcbStatuses.length; ++i) {
            if (tcbStatuses[i] > 7) revert InvalidConfig();
            statuses |= 1 << tcbStatuses[i];
        }
        acceptedTcbStatuses = statuses;
        for (uint256 i = 0; i < platforms.length; ++i) {
            isAcceptedPlatform[platforms[i]] = true;
        }
    }

    /// @notice Verifies a receipt and opens its REPORTDATA and RTMR3 (steps 1-6 above).
    /// @param evidence abi.encode(Evidence)
    /// @return worker the address REPORTDATA binds
    /// @return measurement SHA-256 of the agent bundle digest found in RTMR3
    /// @return expiresAt collateral time + `maxAge`
    /// @return quoteHash the journal digest
    function verify(bytes calldata evidence)
        external
        view
        returns (address worker, bytes32 measurement, uint64 expiresAt, bytes32 quoteHash)
    {
        Evidence memory ev = abi.decode(evidence, (Evidence));
        VerifiedTd memory td;
        (td, expiresAt) = verifyReceipt(ev.seal, ev.journal);
        _checkBinding(td, ev);
        measurement = _agentMeasurement(td, ev);
        return (ev.worker, measurement, expiresAt, td.journalDigest);
    }

    /// @notice Steps 1-4: the receipt, Intel's root, time and the image policy.
    /// @return td the verified fields of the journal
    /// @return expiresAt collateral time + `maxAge`
    function verifyReceipt(bytes memory seal, bytes memory journal)
        public
        view
        returns (VerifiedTd memory td, uint64 expiresAt)
    {
        td = DcapJournal.parse(journal);
        receiptVerifier.verify(seal, imageId, td.journalDigest);
        if (td.rootCaHash != intelRootCaHash) revert UntrustedRootCa(td.rootCaHash);
        if (td.collateralTime > block.timestamp) revert CollateralFromFuture(td.collateralTime);
        expiresAt = td.collateralTime + maxAge;
        if (expiresAt <= block.timestamp) revert AttestationExpired(expiresAt);
        if (acceptedTcbStatuses & (1 << td.tcbStatus) == 0) revert TcbStatusRejected(td.tcbStatus);
        if (uint8(td.tdAttributes[0]) & 1 != 0) revert DebugTd();
        if (!isAcceptedPlatform[td.platform]) revert UnknownPlatform(td.platform);
    }

    function _checkBinding(VerifiedTd memory td, Evidence memory ev) private pure {
        (bytes32 high, bytes32 low) =
            Sha512.sha512(abi.encodePacked(BINDING_LABEL, ev.worker, ev.x25519Public, ev.nonce));
        if (high != td.reportDataHigh || low != td.reportDataLow) revert ReportDataNotBound();
    }

    function _agentMeasurement(VerifiedTd memory td, Evidence memory ev) private pure returns (bytes32) {
        bytes memory before = ev.rtmr3Before;
        bytes memory later = ev.laterDigests;
        if (before.length != RTMR_SIZE || later.length % RTMR_SIZE != 0) revert EventChainMalformed();
        bytes memory bundleDigest = _bundleDigest(ev.agentPayload);
        (bytes32 high, bytes32 low) = Sha512.sha384(abi.encodePacked(AGENT_EVENT_HEAD, ev.agentPayload));
        (bytes32 rtmrHigh, bytes32 rtmrLow) = _word48(before, 0);
        (rtmrHigh, rtmrLow) = _extend(rtmrHigh, rtmrLow, high, low);
        for (uint256 offset = 0; offset < later.length; offset += RTMR_SIZE) {
            (high, low) = _word48(later, offset);
            (rtmrHigh, rtmrLow) = _extend(rtmrHigh, rtmrLow, high, low);
        }
        if (rtmrHigh != td.rtmr3High || rtmrLow != td.rtmr3Low) revert Rtmr3Mismatch();
        return sha256(bundleDigest);
    }

    /// @dev RTMR := SHA-384(RTMR ‖ digest), both 48 bytes held as (32 bytes, 16 bytes ‖ zeros).
    function _extend(bytes32 rtmrHigh, bytes32 rtmrLow, bytes32 high, bytes32 low)
        private
        pure
        returns (bytes32, bytes32)
    {
        return Sha512.sha384(abi.encodePacked(rtmrHigh, bytes16(rtmrLow), high, bytes16(low)));
    }

    function _word48(bytes memory data, uint256 offset) private pure returns (bytes32 high, bytes32 low) {
        assembly ("memory-safe") {
            let p := add(add(data, 0x20), offset)
            high := mload(p)
            low := and(mload(add(p, 0x20)), shl(128, not(0)))
        }
    }

    /// @dev The 48 bytes named by the payload's leading `{"digest":"<96 lowercase hex>"`.
    function _bundleDigest(bytes memory payload) private pure returns (bytes memory digest) {
        if (payload.length <= PAYLOAD_DIGEST_END || bytes11(payload) != DIGEST_KEY) {
            revert AgentPayloadMalformed();
        }
        if (payload[PAYLOAD_DIGEST_END] != '"') revert AgentPayloadMalformed();
        digest = new bytes(RTMR_SIZE);
        bool valid = true;
        assembly ("memory-safe") {
            function nibble(c) -> v, ok {
                v := sub(c, 0x30)
                ok := lt(v, 10)
                if iszero(ok) {
                    v := sub(c, 0x57)
                    ok := and(gt(c, 0x60), lt(c, 0x67))
                }
            }
            let src := add(payload, 0x2b)
            let dst := add(digest, 0x20)
            for { let i := 0 } lt(i, 48) { i := add(i, 1) } {
                let pair := mload(add(src, shl(1, i)))
                let high, okHigh := nibble(byte(0, pair))
                let low, okLow := nibble(byte(1, pair))
                valid := and(valid, and(okHigh, okLow))
                mstore8(add(dst, i), or(shl(4, high), low))
            }
        }
        if (!valid) revert AgentPayloadMalformed();
    }
}
