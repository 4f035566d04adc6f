// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @notice What Automata's DCAP guest verified about a TDX quote, as read from its journal.
/// @param tcbStatus Automata's `TCBStatus`: 0 UpToDate, 1 SWHardeningNeeded,
///        2 ConfigurationAndSWHardeningNeeded, 3 ConfigurationNeeded, 4 OutOfDate,
///        5 OutOfDateConfigurationNeeded, 6 Revoked, 7 Unrecognized
/// @param fmspc the platform's FMSPC
/// @param tdAttributes TDATTRIBUTES as quoted (little-endian; bit 0 of byte 0 is DEBUG)
/// @param platform keccak256 of the TD report from TDATTRIBUTES through RTMR2: TDATTRIBUTES ‖
///        XFAM ‖ MRTD ‖ MRCONFIGID ‖ MROWNER ‖ MROWNERCONFIG ‖ RTMR0 ‖ RTMR1 ‖ RTMR2, i.e. every
///        launch and boot measurement (RTMR3 is left to the running image)
/// @param rtmr3High bytes 0..31 of RTMR3
/// @param rtmr3Low bytes 32..47 of RTMR3, then 16 zero bytes
/// @param reportDataHigh bytes 0..31 of REPORTDATA
/// @param reportDataLow bytes 32..63 of REPORTDATA
/// @param collateralTime the unix time (seconds) the guest verified the quote and collateral at
/// @param rootCaHash keccak256 of the TBS part of the root CA certificate the guest trusted
/// @param journalDigest sha256 of the whole journal
struct VerifiedTd {
    uint8 tcbStatus;
    bytes6 fmspc;
    bytes8 tdAttributes;
    bytes32 platform;
    bytes32 rtmr3High;
    bytes32 rtmr3Low;
    bytes32 reportDataHigh;
    bytes32 reportDataLow;
    uint64 collateralTime;
    bytes32 rootCaHash;
    bytes32 journalDigest;
}

/// @notice The journal's lengths do not add up, or it is too short for its quote body.
error JournalMalformed(uint256 length);
/// @notice The journal is not about a TD report (SGX enclave reports are not accepted).
error UnsupportedQuoteBody(uint16 bodyType);

/// @title DcapJournal
/// @notice Reads the journal of Automata's DCAP verification guest (automata-dcap-attestation,
///         `verifyAndAttestWithZKProof`) for TDX quotes.
/// @dev Layout, all integers big-endian:
///      u16 L ‖ VerifiedOutput (L bytes) ‖ u64 timestamp ‖ TCB-info content hash ‖ QE-identity
///      content hash ‖ root CA hash ‖ TCB signing CA hash ‖ root CA CRL hash ‖ PCK CRL hash
///      (32 bytes each), where VerifiedOutput = u16 quote version ‖ u16 body type (2 = TD 1.0
///      report, 584 bytes; 3 = TD 1.5 report, 648 bytes) ‖ u8 TCB status ‖ 6-byte FMSPC ‖ the
///      quote body ‖ abi.encode(string[] advisory IDs) when there are any. TD 1.5 reports extend
///      TD 1.0 reports at the end, so every field read here has the same offset in both.
library DcapJournal {
    /// @dev Journal offsets: the quote body starts at 13; in it TDATTRIBUTES at 120, RTMR3 at
    ///      472 (right after RTMR2), REPORTDATA at 520. The root CA hash is 72 bytes into the tail.
    uint256 private constant BODY = 13;
    uint256 private constant TAIL_LENGTH = 8 + 6 * 32;
    uint256 private constant TD_ATTRIBUTES = 133;
    uint256 private constant RTMR3 = 485;
    uint256 private constant REPORT_DATA = 533;
    uint256 private constant ROOT_CA_HASH = 72;

    /// @notice The verified fields of `journal`; reverts if it is not a TD journal.
    function parse(bytes memory journal) internal pure returns (VerifiedTd memory td) {
        uint256 length = journal.length;
        if (length < BODY) revert JournalMalformed(length);
        uint256 word;
        assembly ("memory-safe") {
            word := mload(add(journal, 0x20))
        }
        uint256 tail = 2 + (word >> 240);
        uint16 bodyType = uint16(word >> 208);
        uint256 bodyLength = bodyType == 2 ? 584 : bodyType == 3 ? 648 : 0;
        if (bodyLength == 0) revert UnsupportedQuoteBody(bodyType);
        if (tail + TAIL_LENGTH != length || BODY + bodyLength > tail) revert JournalMalformed(length);
        td.tcbStatus = uint8(word >> 200);
        td.fmspc = bytes6(bytes32(word << 56));
        assembly ("memory-safe") {
            let p := add(journal, 0x20)
            let t := add(p, tail)
            mstore(add(td, 0x40), and(mload(add(p, TD_ATTRIBUTES)), shl(192, 0xffffffffffffffff)))
            mstore(add(td, 0x60), keccak256(add(p, TD_ATTRIBUTES), sub(RTMR3, TD_ATTRIBUTES)))
            mstore(add(td, 0x80), mload(add(p, RTMR3)))
            mstore(add(td, 0xa0), and(mload(add(p, add(RTMR3, 0x20))), shl(128, not(0))))
            mstore(add(td, 0xc0), mload(add(p, REPORT_DATA)))
            mstore(add(td, 0xe0), mload(add(p, add(REPORT_DATA, 0x20))))
            mstore(add(td, 0x100), shr(192, mload(t)))
            mstore(add(td, 0x120), mload(add(t, ROOT_CA_HASH)))
        }
        td.journalDigest = sha256(journal);
    }
}
