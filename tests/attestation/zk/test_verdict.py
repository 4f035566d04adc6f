"""The proven DCAP verification judged by the same `Policy` as a direct quote verification."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from attestation import Policy, TrustAnchor
from attestation.errors import VerificationError
from attestation.tcb import TcbStatus
from attestation.zk import (
    ZK_CHECKS,
    Receipt,
    VerifiedDcapReceipt,
    explain_receipt,
    verify_dcap_receipt,
)
from tests.attestation.zk.conftest import DCAP_IMAGE_ID, DCAP_VERIFIED_AT, NOW

OUT_OF_DATE_OK = Policy(accepted_tcb_statuses=frozenset({TcbStatus.OUT_OF_DATE}))


def foreign_root() -> TrustAnchor:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Not Intel")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(datetime(2020, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2030, 1, 1, tzinfo=UTC))
        .sign(key, hashes.SHA256())
    )
    return TrustAnchor(cert, "test root")


def check_fails(receipt: Receipt, check: str, *, now: datetime = NOW) -> None:
    """`check` fails before the pairing (it would take half a second)."""
    with pytest.raises(VerificationError) as err:
        verify_dcap_receipt(
            receipt, image_id=DCAP_IMAGE_ID, now=now, trust_anchor=TrustAnchor.intel()
        )
    assert err.value.check == check


def test_default_policy_rejects_the_out_of_date_tcb_like_a_direct_verification(
    dcap_receipt: Receipt,
) -> None:
    verdict = explain_receipt(
        dcap_receipt,
        image_id=DCAP_IMAGE_ID,
        now=NOW,
        policy=Policy(),
        trust_anchor=TrustAnchor.intel(),
    )
    assert verdict.verified and not verdict.accepted and not verdict.malformed
    assert verdict.reasons == (
        "tcb_status: OutOfDate is not accepted (accepted: SWHardeningNeeded, UpToDate)",
    )
    assert [c.outcome for c in verdict.checks] == ["pass"] * len(ZK_CHECKS)
    doc = verdict.to_dict()
    assert doc["source"] == f"zk receipt (image id {DCAP_IMAGE_ID.hex()})"
    assert (doc["tee"], doc["tcb_status"], doc["quote_version"]) == ("tdx", "OutOfDate", 4)
    assert doc["receipt"]["selector"] == "73c457ba"
    assert doc["verified_at"] == DCAP_VERIFIED_AT.isoformat()
    assert doc["trust_anchor"] == {"label": "Intel SGX Root CA", "simulated": False}


def test_policy_rules_apply_to_the_proven_facts(verified_dcap: VerifiedDcapReceipt) -> None:
    subject = verified_dcap.policy_subject()
    assert OUT_OF_DATE_OK.evaluate_subject(subject, now=NOW).accepted
    cases = {
        "advisories: rejected advisory INTEL-SA-00982": dataclasses.replace(
            OUT_OF_DATE_OK, rejected_advisories=frozenset({"INTEL-SA-00982"})
        ),
        "mrtd: 935be774": dataclasses.replace(OUT_OF_DATE_OK, mrtd=frozenset({bytes(48)})),
        "collateral_age: the collateral's issue date is not known": dataclasses.replace(
            OUT_OF_DATE_OK, max_collateral_age=timedelta(days=30)
        ),
        "tcb_status: OutOfDate is not accepted (accepted: UpToDate)": Policy(
            accepted_tcb_statuses=frozenset({TcbStatus.UP_TO_DATE})
        ),
    }
    for reason, policy in cases.items():
        decision = policy.evaluate_subject(subject, now=NOW)
        assert not decision.accepted and decision.reasons[0].startswith(reason)
    pinned = dataclasses.replace(
        OUT_OF_DATE_OK, mrtd=frozenset({verified_dcap.journal.report.mr_td})
    )
    assert pinned.evaluate_subject(subject, now=NOW).accepted


def test_a_root_other_than_the_pinned_one_is_rejected(dcap_receipt: Receipt) -> None:
    with pytest.raises(VerificationError, match="not the pinned test root") as err:
        verify_dcap_receipt(
            dcap_receipt, image_id=DCAP_IMAGE_ID, now=NOW, trust_anchor=foreign_root()
        )
    assert err.value.check == "journal.root_ca" and err.value.code == "receipt_invalid"


def test_revoked_tcb_and_a_future_verification_are_rejected(dcap_receipt: Receipt) -> None:
    journal = dcap_receipt.journal
    revoked = journal[:6] + b"\x06" + journal[7:]
    check_fails(dataclasses.replace(dcap_receipt, journal=revoked), "journal.tcb_status")
    check_fails(dcap_receipt, "journal.time", now=DCAP_VERIFIED_AT - timedelta(seconds=1))


def test_explained_failures_name_the_check_and_never_raise(
    dcap_receipt: Receipt, v5_receipt: Receipt
) -> None:
    def explain(receipt: Receipt, image_id: bytes = DCAP_IMAGE_ID) -> dict[str, str]:
        verdict = explain_receipt(
            receipt,
            image_id=image_id,
            now=NOW,
            policy=OUT_OF_DATE_OK,
            trust_anchor=TrustAnchor.intel(),
        )
        assert not verdict.verified and not verdict.accepted and verdict.error is not None
        return {c.name: c.outcome for c in verdict.checks} | {
            "code": verdict.error.code,
            "malformed": str(verdict.malformed),
        }

    mismatch = explain(v5_receipt)
    assert mismatch["receipt.image_id"] == "fail" and mismatch["seal.selector"] == "not run"
    assert mismatch["malformed"] == "False"
    not_dcap = explain(v5_receipt, v5_receipt.image_id)
    assert not_dcap["seal.selector"] == "pass" and not_dcap["journal.format"] == "fail"
    assert (not_dcap["code"], not_dcap["malformed"]) == ("malformed_journal", "True")
    bad_selector = dataclasses.replace(dcap_receipt, seal=b"\x00" * 260)
    assert explain(bad_selector)["code"] == "selector_unknown"
