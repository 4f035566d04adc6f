"""Chain + CRL validation, cross-checked against OpenSSL's own verifier (pyOpenSSL,
X509_V_FLAG_CRL_CHECK_ALL) on the real Intel chains and on small generated PKIs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import crypto

from attestation import AttestationError, CertificateError, RevokedError, TrustAnchor, parse_quote
from attestation.pki import ChainValidator, Crl, load_crl, load_pem_chain
from tests.samples import SGX_V3, TDX_V4, Sample

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def openssl_accepts(
    anchor: x509.Certificate,
    chain: list[x509.Certificate],
    crls: list[Crl],
    now: datetime,
) -> bool:
    store = crypto.X509Store()
    store.add_cert(crypto.X509.from_cryptography(anchor))
    for crl in crls:
        store.add_crl(crl.parsed)
    store.set_flags(crypto.X509StoreFlags.CRL_CHECK | crypto.X509StoreFlags.CRL_CHECK_ALL)
    store.set_time(now.replace(tzinfo=None))
    untrusted = [crypto.X509.from_cryptography(c) for c in chain[1:]]
    ctx = crypto.X509StoreContext(store, crypto.X509.from_cryptography(chain[0]), untrusted)
    try:
        ctx.verify_certificate()
    except crypto.X509StoreContextError:
        return False
    return True


def ours_accepts(
    anchor: x509.Certificate,
    chain: list[x509.Certificate],
    crls: list[Crl],
    now: datetime,
) -> bool:
    try:
        validator = ChainValidator(TrustAnchor(anchor, "test"), crls[0], crls[1], now)
        validator.validate(chain, "test", path_length=len(chain))
    except AttestationError:
        return False
    return True


def real_chains(sample: Sample) -> tuple[list[x509.Certificate], list[x509.Certificate], list]:
    collateral = sample.collateral
    qe = parse_quote(sample.quote).signature_data.qe_report_certification
    assert qe is not None
    pck = load_pem_chain(qe.certification_data.data, "pck")
    tcb = load_pem_chain(collateral.tcb_info_issuer_chain, "tcb")
    crls = [load_crl(collateral.root_ca_crl, "r"), load_crl(collateral.pck_crl, "p")]
    return pck, tcb, crls


@pytest.mark.parametrize("sample", (SGX_V3, TDX_V4), ids=lambda s: s.quote_file)
@pytest.mark.parametrize("shift", [timedelta(0), timedelta(days=-400), timedelta(days=700)])
def test_real_intel_chains_agree_with_openssl(sample: Sample, shift: timedelta) -> None:
    pck, tcb, crls = real_chains(sample)
    intel = TrustAnchor.intel().certificate
    now = sample.now + shift
    for chain in (pck, tcb):
        assert ours_accepts(intel, chain, crls, now) == openssl_accepts(intel, chain, crls, now)
    assert ours_accepts(intel, pck, crls, sample.now)  # sanity: the real chain validates


@dataclass
class Pki:
    root: x509.Certificate
    ca: x509.Certificate
    leaf: x509.Certificate
    root_key: ec.EllipticCurvePrivateKey
    ca_key: ec.EllipticCurvePrivateKey


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(
    subject: str,
    issuer: str,
    key: ec.EllipticCurvePrivateKey,
    signer: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    serial: int,
    not_after: datetime = T0 + timedelta(days=365),
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(T0 - timedelta(days=365))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
        builder = builder.add_extension(usage, critical=True)
    return builder.sign(signer, hashes.SHA256())


def make_pki(root_name: str = "Test Root", leaf_not_after: datetime | None = None) -> Pki:
    root_key, ca_key, leaf_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    root = _cert(root_name, root_name, root_key, root_key, ca=True, serial=1)
    ca = _cert("Test CA", root_name, ca_key, root_key, ca=True, serial=2)
    leaf = _cert(
        "Test Leaf",
        "Test CA",
        leaf_key,
        ca_key,
        ca=False,
        serial=3,
        not_after=leaf_not_after or T0 + timedelta(days=365),
    )
    return Pki(root, ca, leaf, root_key, ca_key)


def make_crl(
    issuer: str,
    key: ec.EllipticCurvePrivateKey,
    revoked: tuple[int, ...] = (),
    next_update: datetime = T0 + timedelta(days=30),
) -> x509.CertificateRevocationList:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(_name(issuer))
        .last_update(T0 - timedelta(days=1))
        .next_update(next_update)
    )
    for serial in revoked:
        entry = (
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(T0 - timedelta(days=2))
        )
        builder = builder.add_revoked_certificate(entry.build())
    signed = builder.sign(key, hashes.SHA256())
    return load_crl(signed.public_bytes(serialization.Encoding.DER), issuer)


def scenario(name: str) -> tuple[x509.Certificate, list[x509.Certificate], list, datetime]:
    pki = make_pki(leaf_not_after=T0 - timedelta(days=1) if name == "expired leaf" else None)
    root_crl = make_crl("Test Root", pki.root_key, revoked=(2,) if name == "ca revoked" else ())
    ca_crl = make_crl("Test CA", pki.ca_key, revoked=(3,) if name == "leaf revoked" else ())
    if name == "no crl for ca":
        ca_crl = make_crl("Other CA", ec.generate_private_key(ec.SECP256R1()))
    if name == "ca crl signed by stranger":
        ca_crl = make_crl("Test CA", ec.generate_private_key(ec.SECP256R1()))
    chain = [pki.leaf, pki.ca, pki.root]
    anchor = pki.root
    if name == "foreign root with same name":
        anchor = make_pki().root
    now = T0 + timedelta(days=60) if name == "crl expired" else T0
    return anchor, chain, [root_crl, ca_crl], now


SCENARIOS = [
    "valid",
    "leaf revoked",
    "ca revoked",
    "no crl for ca",
    "ca crl signed by stranger",
    "expired leaf",
    "foreign root with same name",
]


@pytest.mark.parametrize("name", SCENARIOS)
def test_generated_pki_scenarios_agree_with_openssl(name: str) -> None:
    anchor, chain, crls, now = scenario(name)
    expected = name == "valid"
    assert openssl_accepts(anchor, chain, crls, now) is expected
    assert ours_accepts(anchor, chain, crls, now) is expected


def test_revoked_leaf_is_a_revoked_error_naming_the_serial() -> None:
    anchor, chain, crls, now = scenario("leaf revoked")
    validator = ChainValidator(TrustAnchor(anchor, "test"), crls[0], crls[1], now)
    with pytest.raises(RevokedError, match="serial 3"):
        validator.validate(chain, "pck.chain", path_length=3)


def test_missing_crl_means_unknown_revocation_status() -> None:
    anchor, chain, crls, now = scenario("no crl for ca")
    validator = ChainValidator(TrustAnchor(anchor, "test"), crls[0], crls[1], now)
    with pytest.raises(CertificateError, match="revocation status unknown"):
        validator.validate(chain, "pck.chain", path_length=3)


def test_root_listed_in_its_own_crl_is_rejected() -> None:
    pki = make_pki()
    root_crl = make_crl("Test Root", pki.root_key, revoked=(1,))
    with pytest.raises(RevokedError):
        ChainValidator(TrustAnchor(pki.root, "test"), root_crl, make_crl("Test CA", pki.ca_key), T0)
