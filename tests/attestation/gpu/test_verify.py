"""Verifying NVIDIA H100 attestation: every row of the gpu-samples README, and each check's
failure."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attestation.errors import AttestationError
from attestation.gpu import (
    GPU_CHECKS,
    NVIDIA_DEVICE_ROOT_SHA256,
    GpuCertificateError,
    GpuFwidError,
    GpuNonceError,
    GpuReportFormatError,
    GpuSignatureError,
    GpuUnsupportedError,
    gpu_nonce,
    nvidia_device_root,
    verify_gpu_report,
)
from attestation.gpu.verify import leaf_fwid
from tests.attestation.gpu.forge import forge_pki
from tests.attestation.gpu.samples import (
    COCO_REPORT_DATA,
    NOW,
    REPORT_FWID,
    REPORT_NONCE,
    SAMPLES,
    chain,
    coco_chain,
    coco_report,
    report,
)

NVIDIA = nvidia_device_root()


def test_case1_report_and_chain_verify_with_the_readme_fwid() -> None:
    verified = verify_gpu_report(
        report(), chain(1), nonce=REPORT_NONCE, now=NOW, trust_anchor=NVIDIA
    )
    assert verified.fwid == REPORT_FWID
    assert (verified.model, verified.arch) == ("GH100", "Hopper")
    assert (verified.driver_version, verified.vbios_version) == ("550.90.07", "96.00.9f.00.01")
    assert verified.nonce == REPORT_NONCE
    assert len(verified.measurements) == 64
    assert verified.leaf_subject.startswith("CN=GH100 A01 GSP FMC LF")
    assert not verified.simulated and verified.rim is None
    assert verified.checks == tuple(name for name, _ in GPU_CHECKS if name != "rim.measurements")


def test_case2_only_the_root_is_rejected_as_too_short() -> None:
    with pytest.raises(GpuCertificateError) as err:
        verify_gpu_report(report(), chain(2), nonce=REPORT_NONCE, now=NOW, trust_anchor=NVIDIA)
    assert err.value.check == "chain.length"
    assert "at least the signing certificate" in err.value.reason


def test_case3_missing_intermediate_does_not_verify() -> None:
    with pytest.raises(GpuCertificateError) as err:
        verify_gpu_report(report(), chain(3), nonce=REPORT_NONCE, now=NOW, trust_anchor=NVIDIA)
    assert err.value.check == "chain.path"
    assert err.value.code == "gpu_certificate_invalid"


def test_case4_missing_signing_certificate_has_no_fwid_in_the_leaf() -> None:
    with pytest.raises(GpuFwidError) as err:
        verify_gpu_report(report(), chain(4), nonce=REPORT_NONCE, now=NOW, trust_anchor=NVIDIA)
    assert err.value.check == "chain.fwid"
    assert "GSP BROM" in err.value.reason and "2.23.133.5.4.1" in err.value.reason


def test_coco_report_verifies_with_the_first_32_bytes_of_its_report_data() -> None:
    verified = verify_gpu_report(
        coco_report(), coco_chain(), nonce=COCO_REPORT_DATA[:32], now=NOW, trust_anchor=NVIDIA
    )
    assert verified.driver_version == "580.95.05"
    assert verified.vbios_version == "96.00.74.00.1a"
    assert verified.cc_feature == "SPT"


def test_signing_certificate_alone_carries_the_readme_fwid() -> None:
    cert = x509.load_pem_x509_certificate(
        (SAMPLES / "trustee_hopper_signing_cert.pem").read_bytes()
    )
    assert leaf_fwid(cert) == REPORT_FWID


def test_wrong_nonce_is_rejected() -> None:
    with pytest.raises(GpuNonceError) as err:
        verify_gpu_report(report(), chain(1), nonce=bytes(32), now=NOW, trust_anchor=NVIDIA)
    assert err.value.check == "report.nonce"


def test_report_bound_to_another_bundle_nonce_is_rejected() -> None:
    request_nonce = bytes(range(32))
    with pytest.raises(GpuNonceError):
        verify_gpu_report(
            report(), chain(1), nonce=gpu_nonce(request_nonce), now=NOW, trust_anchor=NVIDIA
        )


def test_expected_nonce_must_be_32_bytes() -> None:
    with pytest.raises(GpuNonceError, match="32 bytes"):
        verify_gpu_report(
            coco_report(), coco_chain(), nonce=COCO_REPORT_DATA, now=NOW, trust_anchor=NVIDIA
        )


@pytest.mark.parametrize("where", ["signature", "nonce", "measurement", "driver_version"])
def test_flipped_byte_breaks_the_signature(where: str) -> None:
    raw = bytearray(report())
    offset = {
        "signature": len(raw) - 50,
        "nonce": 10,
        "measurement": 37 + 8 + 55 + 10,
        "driver_version": raw.index(b"550.90.07"),
    }[where]
    raw[offset] ^= 0x01
    with pytest.raises(GpuSignatureError) as err:
        verify_gpu_report(bytes(raw), chain(1), nonce=REPORT_NONCE, now=NOW, trust_anchor=NVIDIA)
    assert err.value.check == "report.signature"


def test_report_from_another_gpu_does_not_verify_with_this_chain() -> None:
    with pytest.raises(GpuSignatureError):
        verify_gpu_report(
            coco_report(), chain(1), nonce=COCO_REPORT_DATA[:32], now=NOW, trust_anchor=NVIDIA
        )


def test_truncated_report_is_a_typed_format_error() -> None:
    with pytest.raises(GpuReportFormatError):
        verify_gpu_report(
            report()[:1000], chain(1), nonce=REPORT_NONCE, now=NOW, trust_anchor=NVIDIA
        )


def test_chain_is_checked_at_the_given_time() -> None:
    before_ica = datetime(2022, 2, 1, tzinfo=UTC)  # the provisioner ICA starts on 2022-03-01
    with pytest.raises(GpuCertificateError, match="not valid at validation time"):
        verify_gpu_report(
            report(), chain(1), nonce=REPORT_NONCE, now=before_ica, trust_anchor=NVIDIA
        )


def test_chain_to_another_root_is_rejected() -> None:
    pki = forge_pki(REPORT_FWID)
    with pytest.raises(GpuCertificateError) as err:
        verify_gpu_report(report(), chain(1), nonce=REPORT_NONCE, now=NOW, trust_anchor=pki.anchor)
    assert err.value.check == "chain.path"


def test_report_fwid_must_be_the_leafs() -> None:
    pki = forge_pki(bytes(48))
    with pytest.raises(GpuFwidError) as err:
        verify_gpu_report(
            pki.sign(report()), pki.chain, nonce=REPORT_NONCE, now=NOW, trust_anchor=pki.anchor
        )
    assert err.value.check == "report.fwid"


def test_forged_report_with_matching_fwid_verifies_but_is_marked_simulated() -> None:
    pki = forge_pki(REPORT_FWID)
    verified = verify_gpu_report(
        pki.sign(report()), pki.chain, nonce=REPORT_NONCE, now=NOW, trust_anchor=pki.anchor
    )
    assert verified.simulated and verified.trust_anchor == "test GPU root"


def test_unknown_gpu_model_is_unsupported() -> None:
    pki = forge_pki(REPORT_FWID, common_name="GB100 A01 GSP FMC LF")
    with pytest.raises(GpuUnsupportedError) as err:
        verify_gpu_report(
            pki.sign(report()), pki.chain, nonce=REPORT_NONCE, now=NOW, trust_anchor=pki.anchor
        )
    assert err.value.check == "chain.model"


def test_leaf_key_must_be_p384() -> None:
    pki = forge_pki(REPORT_FWID, curve=ec.SECP256R1())
    with pytest.raises(GpuSignatureError, match="P-384"):
        verify_gpu_report(report(), pki.chain, nonce=REPORT_NONCE, now=NOW, trust_anchor=pki.anchor)


def test_fwid_extension_must_end_with_a_48_byte_octet_string() -> None:
    pki = forge_pki(bytes(47))
    with pytest.raises(GpuFwidError, match="48-byte digest"):
        verify_gpu_report(report(), pki.chain, nonce=REPORT_NONCE, now=NOW, trust_anchor=pki.anchor)


def test_chain_that_is_not_pem_is_a_certificate_error() -> None:
    with pytest.raises(GpuCertificateError):
        verify_gpu_report(report(), b"garbage", nonce=REPORT_NONCE, now=NOW, trust_anchor=NVIDIA)


def test_packaged_root_is_the_pinned_root_of_the_samples() -> None:
    (case2_root,) = x509.load_pem_x509_certificates(chain(2))
    assert NVIDIA.certificate == case2_root
    assert NVIDIA.fingerprint == NVIDIA_DEVICE_ROOT_SHA256


def test_gpu_nonce_is_domain_separated_sha256_of_the_request_nonce() -> None:
    request_nonce = bytes(range(32))
    assert gpu_nonce(request_nonce) == hashlib.sha256(b"enclava/gpu/v1" + request_nonce).digest()
    assert gpu_nonce(request_nonce) != gpu_nonce(bytes(32))
    with pytest.raises(ValueError, match="32 bytes"):
        gpu_nonce(b"short")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 4116), st.integers(0, 255)), min_size=1, max_size=3))
def test_mutated_reports_verify_or_raise_attestation_errors(edits: list[tuple[int, int]]) -> None:
    raw = bytearray(report())
    for offset, value in edits:
        raw[offset] = value
    try:
        verified = verify_gpu_report(
            bytes(raw), chain(1), nonce=REPORT_NONCE, now=NOW, trust_anchor=NVIDIA
        )
    except AttestationError:
        return
    assert bytes(raw) == report() and verified.fwid == REPORT_FWID
