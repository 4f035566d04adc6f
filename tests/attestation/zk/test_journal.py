"""Automata's DCAP journal decoded into typed facts; every malformed journal a typed error."""

from __future__ import annotations

import pytest
from eth_hash.auto import keccak

from attestation import TrustAnchor
from attestation.report import BodyType, TdReport10, TdReport15
from attestation.tcb import TcbStatus
from attestation.zk import JournalFormatError, Receipt, decode_dcap_journal
from tests.attestation.zk.conftest import DCAP_VERIFIED_AT

OUTPUT_LEN = 947  # the sample's: 11-byte header + 584-byte TD report + 352-byte string[]


@pytest.fixture(scope="module")
def journal(dcap_receipt: Receipt) -> bytes:
    return dcap_receipt.journal


def patched(journal: bytes, offset: int, value: bytes) -> bytes:
    return journal[:offset] + value + journal[offset + len(value) :]


def test_decodes_the_tdx_verification_automata_proved(journal: bytes) -> None:
    decoded = decode_dcap_journal(journal)
    assert (decoded.quote_version, decoded.tee, decoded.body_type) == (
        4,
        "tdx",
        BodyType.TD_REPORT10,
    )
    assert decoded.tcb_status is TcbStatus.OUT_OF_DATE
    assert decoded.advisory_ids == ("INTEL-SA-00960", "INTEL-SA-00982", "INTEL-SA-00986")
    assert decoded.fmspc == "00806F050000"
    assert decoded.verified_at == DCAP_VERIFIED_AT
    report = decoded.report
    assert isinstance(report, TdReport10) and not isinstance(report, TdReport15)
    assert report.mr_td.hex().startswith("935be7742dd89c6a")
    assert report.tee_tcb_svn.hex() == "04010700000000000000000000000000"
    assert report.td_attributes.sept_ve_disable and not report.td_attributes.debug
    assert decoded.measurements["mrtd"] == report.mr_td.hex()


def test_root_ca_hash_is_keccak_of_intel_roots_tbs(journal: bytes) -> None:
    hashes = decode_dcap_journal(journal).collateral
    intel = TrustAnchor.intel().certificate.tbs_certificate_bytes
    assert hashes.root_ca == keccak(intel)
    assert set(hashes.to_dict()) == {
        "tcb_info",
        "qe_identity",
        "root_ca",
        "tcb_signing_ca",
        "root_ca_crl",
        "pck_crl",
    }


def test_no_advisories_when_the_output_omits_the_string_array(journal: bytes) -> None:
    without = (11 + 584).to_bytes(2, "big") + journal[2 : 2 + 11 + 584] + journal[-200:]
    decoded = decode_dcap_journal(without)
    assert decoded.advisory_ids == () and decoded.tcb_status is TcbStatus.OUT_OF_DATE


@pytest.mark.parametrize(
    ("offset", "value", "field"),
    [
        (0, (OUTPUT_LEN + 1).to_bytes(2, "big"), "output_length"),
        (2, (6).to_bytes(2, "big"), "quote_version"),
        (2, (3).to_bytes(2, "big"), "body_type"),  # v3 quotes are SGX only
        (4, (4).to_bytes(2, "big"), "body_type"),
        (6, b"\x07", "tcb_status"),  # Automata's TCB_UNRECOGNIZED
        (2 + 11 + 584, (64).to_bytes(32, "big"), "advisory_ids"),
        (2 + 11 + 584 + 32, (1000).to_bytes(32, "big"), "advisory_ids.length"),
        (2 + 11 + 584 + 64, (4096).to_bytes(32, "big"), "advisory_ids[0].length"),
        (2 + 11 + 584 + 32, (2).to_bytes(32, "big"), "advisory_ids"),  # a string left over
        (2 + 11 + 584 + 64 + 96 + 32, b"\xff", "advisory_ids[0]"),
    ],
)
def test_malformed_journals_name_the_field(
    journal: bytes, offset: int, value: bytes, field: str
) -> None:
    with pytest.raises(JournalFormatError) as err:
        decode_dcap_journal(patched(journal, offset, value))
    assert err.value.field == field and err.value.code == "malformed_journal"
    assert isinstance(err.value, ValueError)


@pytest.mark.parametrize("size", [0, 1, 2, 13, 300, 1148])
def test_truncated_journals_are_rejected(journal: bytes, size: int) -> None:
    with pytest.raises(JournalFormatError):
        decode_dcap_journal(journal[:size])


def test_a_journal_that_is_not_a_dcap_output_is_rejected(v5_receipt: Receipt) -> None:
    with pytest.raises(JournalFormatError, match="output_length"):
        decode_dcap_journal(v5_receipt.journal)
