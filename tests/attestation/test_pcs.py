"""PcsClient, CollateralCache and CachedCollateralSource against a real local HTTP server that
serves the sample collateral in the PCS v4 layout (bodies, headers, URL-encoded chains)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from dataclasses import fields
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import given
from hypothesis import strategies as st

from attestation import (
    Collateral,
    CollateralFormatError,
    CollateralSourceError,
    TrustAnchor,
    verify_quote,
)
from attestation.collateral import parse_qe_identity, parse_tcb_info
from attestation.pcs import (
    CachedCollateralSource,
    CollateralCache,
    CollateralKey,
    PcsClient,
    _json_members,
    earliest_next_update,
)
from tests.fake_pcs import V4, FakePcs
from tests.samples import GOTDX_V5, SGX_V3, TDX_V4, Sample

FETCHED = [  # sample, TEE, FMSPC and PCK CA its quote's PCK certificate names
    pytest.param(SGX_V3, "sgx", "00A067110000", "processor", id="sgx-v3"),
    pytest.param(TDX_V4, "tdx", "B0C06F000000", "platform", id="tdx-v4"),
    pytest.param(GOTDX_V5, "tdx", "90C06F000000", "platform", id="tdx-v5"),
]


@pytest.fixture
def client(pcs: FakePcs) -> Iterator[PcsClient]:
    with PcsClient(pcs.base_url, timeout=5.0) as c:
        yield c


def served_sgx(pcs: FakePcs) -> None:
    pcs.serve(SGX_V3, "sgx", "00A067110000", "processor")


# --- fetching -------------------------------------------------------------------------------


@pytest.mark.parametrize(("sample", "tee", "fmspc", "ca"), FETCHED)
def test_fetched_collateral_equals_sample_and_verifies(
    pcs: FakePcs, client: PcsClient, sample: Sample, tee: str, fmspc: str, ca: str
) -> None:
    pcs.serve(sample, tee, fmspc, ca)
    fetched = client.fetch(sample.quote)
    expected = sample.collateral
    for f in fields(Collateral):
        assert getattr(fetched, f.name) == getattr(expected, f.name), f.name
    assert fetched == expected
    verified = verify_quote(sample.quote, fetched, now=sample.now, trust_anchor=TrustAnchor.intel())
    assert verified.tcb_status == sample.status


@pytest.mark.parametrize(("sample", "tee", "fmspc", "ca"), FETCHED)
def test_requests_name_tee_fmspc_and_pck_ca_of_the_quote(
    pcs: FakePcs, client: PcsClient, sample: Sample, tee: str, fmspc: str, ca: str
) -> None:
    pcs.serve(sample, tee, fmspc, ca)
    client.fetch(sample.quote)
    assert pcs.seen == pcs.expected_paths(tee, fmspc, ca)


def test_signed_bodies_are_kept_byte_exact_whatever_the_envelope(
    pcs: FakePcs, client: PcsClient
) -> None:
    served_sgx(pcs)
    c = SGX_V3.collateral
    tricky = '{"tcbInfo": "}\\"{", "nested": {"tcbInfo": [1, {"x": "\\u007d"}]}}'
    status, headers, _ = pcs.routes[f"/sgx/{V4}/tcb?fmspc=00A067110000"]
    body = f' {{\n  "signature" : "{c.tcb_info_signature.hex()}",\n  "decoy": {tricky},\n'
    body += f'  "tcbInfo" :\t{c.tcb_info}\n}}\n'
    pcs.routes[f"/sgx/{V4}/tcb?fmspc=00A067110000"] = (status, headers, body.encode())
    fetched = client.fetch(SGX_V3.quote)
    assert fetched.tcb_info == c.tcb_info
    verify_quote(SGX_V3.quote, fetched, now=SGX_V3.now, trust_anchor=TrustAnchor.intel())


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)


@given(
    doc=st.dictionaries(st.text(), JSON_VALUES, max_size=4),
    indent=st.none() | st.integers(0, 3),
    ensure_ascii=st.booleans(),
)
def test_member_extraction_returns_each_value_exactly_as_written(
    doc: dict[str, object], indent: int | None, ensure_ascii: bool
) -> None:
    text = json.dumps(doc, indent=indent, ensure_ascii=ensure_ascii)
    members = _json_members(text, "test")
    assert list(members) == list(doc)
    for key, raw in members.items():
        assert raw in text
        assert json.loads(raw) == doc[key]
        if indent is None:
            assert raw == json.dumps(doc[key], ensure_ascii=ensure_ascii)


def test_accepts_pccs_hex_root_crl_pem_pck_crl_and_older_tcb_header(
    pcs: FakePcs, client: PcsClient
) -> None:
    served_sgx(pcs)
    c = SGX_V3.collateral
    pcs.routes[f"/sgx/{V4}/rootcacrl"] = (200, {}, c.root_ca_crl.hex().encode())
    pck_path = f"/sgx/{V4}/pckcrl?ca=processor&encoding=der"
    status, headers, _ = pcs.routes[pck_path]
    pem = x509.load_der_x509_crl(c.pck_crl).public_bytes(Encoding.PEM)
    pcs.routes[pck_path] = (status, headers, pem)
    tcb_path = f"/sgx/{V4}/tcb?fmspc=00A067110000"
    status, headers, body = pcs.routes[tcb_path]
    pcs.routes[tcb_path] = (
        status,
        {"SGX-TCB-Info-Issuer-Chain": headers["TCB-Info-Issuer-Chain"]},
        body,
    )
    assert client.fetch(SGX_V3.quote) == c


def test_root_crl_comes_from_the_configured_url(pcs: FakePcs) -> None:
    served_sgx(pcs)
    pcs.routes["/IntelSGXRootCA.der"] = pcs.routes.pop(f"/sgx/{V4}/rootcacrl")
    with PcsClient(pcs.base_url, root_ca_crl_url=f"{pcs.base_url}/IntelSGXRootCA.der") as client:
        assert client.fetch(SGX_V3.quote) == SGX_V3.collateral
    assert pcs.seen[-1] == "/IntelSGXRootCA.der"


def test_intel_pcs_defaults_to_intel_root_crl_url() -> None:
    with PcsClient("https://api.trustedservices.intel.com/") as client:
        assert client.base_url == "https://api.trustedservices.intel.com"
        assert client.root_ca_crl_url == (
            "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der"
        )


# --- cache ----------------------------------------------------------------------------------


def earliest(collateral: Collateral) -> datetime:
    """Computed independently of `earliest_next_update`."""
    crls = [x509.load_der_x509_crl(der) for der in (collateral.pck_crl, collateral.root_ca_crl)]
    return min(
        parse_tcb_info(collateral.tcb_info).next_update,
        parse_qe_identity(collateral.qe_identity).next_update,
        *(crl.next_update_utc for crl in crls if crl.next_update_utc is not None),
    )


@pytest.mark.parametrize(("sample", "tee", "fmspc", "ca"), FETCHED)
def test_cache_serves_until_earliest_next_update_then_refetches(
    pcs: FakePcs, client: PcsClient, tmp_path: Path, sample: Sample, tee: str, fmspc: str, ca: str
) -> None:
    pcs.serve(sample, tee, fmspc, ca)
    source = CachedCollateralSource(client, CollateralCache(tmp_path))
    assert source.collateral_for(sample.quote, now=sample.now) == sample.collateral
    assert len(pcs.seen) == 4
    last_fresh = earliest(sample.collateral) - timedelta(seconds=1)
    assert earliest_next_update(sample.collateral) == earliest(sample.collateral)
    assert source.collateral_for(sample.quote, now=last_fresh) == sample.collateral
    assert len(pcs.seen) == 4
    assert source.collateral_for(sample.quote, now=earliest(sample.collateral)) == sample.collateral
    assert len(pcs.seen) == 8


@pytest.mark.parametrize("content", [b"", b"{not json", b'{"tcb_info": 1}', b"\xff\xfe"])
def test_corrupt_cache_file_is_a_miss_and_is_overwritten(
    pcs: FakePcs, client: PcsClient, tmp_path: Path, content: bytes
) -> None:
    served_sgx(pcs)
    cache = CollateralCache(tmp_path)
    key = client.key_for(SGX_V3.quote)
    cache.path_for(key).write_bytes(content)
    assert cache.get(key, now=SGX_V3.now) is None
    source = CachedCollateralSource(client, cache)
    assert source.collateral_for(SGX_V3.quote, now=SGX_V3.now) == SGX_V3.collateral
    assert len(pcs.seen) == 4
    assert cache.get(key, now=SGX_V3.now) == SGX_V3.collateral


def test_cache_entries_are_per_server_tee_fmspc_and_ca(tmp_path: Path) -> None:
    cache = CollateralCache(tmp_path)
    cache.put(CollateralKey("https://a", "sgx", "00A067110000", "processor"), SGX_V3.collateral)
    for key in (
        CollateralKey("https://b", "sgx", "00A067110000", "processor"),
        CollateralKey("https://a", "tdx", "00A067110000", "processor"),
        CollateralKey("https://a", "sgx", "00A067110001", "processor"),
        CollateralKey("https://a", "sgx", "00A067110000", "platform"),
    ):
        assert cache.get(key, now=SGX_V3.now) is None
    hit = cache.get(CollateralKey("https://a", "sgx", "00A067110000", "processor"), now=SGX_V3.now)
    assert hit == SGX_V3.collateral
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


# --- errors ---------------------------------------------------------------------------------


def test_not_found_is_a_source_error_naming_url_and_status(pcs: FakePcs, client: PcsClient) -> None:
    with pytest.raises(CollateralSourceError, match="404") as info:
        client.fetch(SGX_V3.quote)
    assert f"{pcs.base_url}/sgx/{V4}/pckcrl?ca=processor&encoding=der" in info.value.message
    assert info.value.code == "collateral_unavailable"


def test_server_error_is_a_source_error_naming_url_and_status(
    pcs: FakePcs, client: PcsClient
) -> None:
    served_sgx(pcs)
    pcs.routes[f"/sgx/{V4}/tcb?fmspc=00A067110000"] = (500, {}, b"oops")
    with pytest.raises(CollateralSourceError, match="HTTP 500") as info:
        client.fetch(SGX_V3.quote)
    assert f"{pcs.base_url}/sgx/{V4}/tcb?fmspc=00A067110000" in info.value.message


@pytest.mark.parametrize(
    "body",
    [
        b"<html>not json</html>",
        b'{"tcbInfo": {"id": "SGX"}, "signature": "00"',
        b'{"tcbInfo": {}, "signature": "00"} trailing',
        b'{"tcbInfo": "text", "signature": "00"}',
        b'{"tcbInfo": {}, "tcbInfo": {}, "signature": "00"}',
        b'{"tcbInfo": {}, "signature": "00",}',
        b'{"tcbInfo": {} "signature": "00"}',
        b'{"tcbInfo" {}, "signature": "00"}',
        b'["tcbInfo", {}]',
        b"\xff\xfe",
        b'{"signature": "00"}',
        b'{"tcbInfo": {"version": 3}, "signature": "00"}',
    ],
)
def test_malformed_json_body_is_a_format_error_naming_url(
    pcs: FakePcs, client: PcsClient, body: bytes
) -> None:
    served_sgx(pcs)
    path = f"/sgx/{V4}/tcb?fmspc=00A067110000"
    pcs.routes[path] = (200, pcs.routes[path][1], body)
    with pytest.raises(CollateralFormatError) as info:
        client.fetch(SGX_V3.quote)
    assert f"{pcs.base_url}{path}" in info.value.message


def test_bad_signature_hex_is_a_format_error(pcs: FakePcs, client: PcsClient) -> None:
    served_sgx(pcs)
    c = SGX_V3.collateral
    path = f"/sgx/{V4}/qe/identity"
    body = f'{{"enclaveIdentity":{c.qe_identity},"signature":"zz"}}'.encode()
    pcs.routes[path] = (200, pcs.routes[path][1], body)
    with pytest.raises(CollateralFormatError, match="signature"):
        client.fetch(SGX_V3.quote)


def test_garbage_crl_is_a_format_error(pcs: FakePcs, client: PcsClient) -> None:
    served_sgx(pcs)
    pcs.routes[f"/sgx/{V4}/rootcacrl"] = (200, {}, b"\x30\x03garbage")
    with pytest.raises(CollateralFormatError, match="rootcacrl"):
        client.fetch(SGX_V3.quote)


def test_missing_issuer_chain_header_is_a_source_error(pcs: FakePcs, client: PcsClient) -> None:
    served_sgx(pcs)
    path = f"/sgx/{V4}/qe/identity"
    pcs.routes[path] = (200, {}, pcs.routes[path][2])
    with pytest.raises(CollateralSourceError, match="SGX-Enclave-Identity-Issuer-Chain") as info:
        client.fetch(SGX_V3.quote)
    assert f"{pcs.base_url}{path}" in info.value.message


def test_unparsable_issuer_chain_is_a_format_error(pcs: FakePcs, client: PcsClient) -> None:
    served_sgx(pcs)
    path = f"/sgx/{V4}/pckcrl?ca=processor&encoding=der"
    pcs.routes[path] = (200, {"SGX-PCK-CRL-Issuer-Chain": "not%20a%20chain"}, pcs.routes[path][2])
    with pytest.raises(CollateralFormatError, match="SGX-PCK-CRL-Issuer-Chain") as info:
        client.fetch(SGX_V3.quote)
    assert f"{pcs.base_url}{path}" in info.value.message


def test_connection_refused_is_a_source_error_naming_url() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    with PcsClient(base) as client, pytest.raises(CollateralSourceError) as info:
        client.fetch(SGX_V3.quote)
    assert f"{base}/sgx/{V4}/pckcrl" in info.value.message
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


def test_silent_server_times_out_as_a_source_error() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        base = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with (
            PcsClient(base, timeout=0.2) as client,
            pytest.raises(CollateralSourceError, match=r"no response within 0\.2 s"),
        ):
            client.fetch(SGX_V3.quote)


def test_quote_without_pck_chain_is_a_source_error(client: PcsClient) -> None:
    raw = bytearray(SGX_V3.quote)
    auth_len_at = 48 + 384 + 4 + 64 + 64 + 384 + 64
    type_at = auth_len_at + 2 + int.from_bytes(raw[auth_len_at : auth_len_at + 2], "little")
    assert int.from_bytes(raw[type_at : type_at + 2], "little") == 5
    raw[type_at : type_at + 2] = (1).to_bytes(2, "little")
    with pytest.raises(CollateralSourceError, match="no PCK certificate chain"):
        client.fetch(bytes(raw))
