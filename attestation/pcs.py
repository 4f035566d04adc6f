"""Quote collateral from Intel PCS or a PCCS (API v4), and an on-disk cache of it.

This is the I/O shell around the pure verifier: nothing fetched or cached here is trusted.
`verify_quote` checks every signature and chain in the collateral against the pinned root, so
a hostile server or a tampered cache can make verification fail, never pass.

    client = PcsClient(INTEL_PCS_URL)
    source = CachedCollateralSource(client, CollateralCache(Path("~/.cache/enclava").expanduser()))
    collateral = source.collateral_for(raw_quote, now=now)

The signed bodies (`tcbInfo`, `enclaveIdentity`) are kept as the exact text the server sent:
the signatures are over those bytes, so they are cut out of the response, never re-serialized.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from urllib.parse import unquote

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from attestation import safejson
from attestation.collateral import Collateral, parse_qe_identity, parse_tcb_info
from attestation.errors import AttestationError, CollateralFormatError, CollateralSourceError
from attestation.pck import parse_pck_extensions, pck_ca_type
from attestation.quote import CertificationDataType, Quote, parse_quote

__all__ = [
    "INTEL_PCS_URL",
    "INTEL_ROOT_CA_CRL_URL",
    "CachedCollateralSource",
    "CollateralCache",
    "CollateralKey",
    "PcsClient",
    "collateral_key",
    "earliest_next_update",
]

INTEL_PCS_URL = "https://api.trustedservices.intel.com"
INTEL_ROOT_CA_CRL_URL = "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der"

_TCB_CHAIN_HEADERS = ("TCB-Info-Issuer-Chain", "SGX-TCB-Info-Issuer-Chain")
_HEX = re.compile(rb"(?:[0-9a-fA-F]{2})+")


@dataclass(frozen=True, slots=True)
class CollateralKey:
    """What selects a quote's collateral: the server, the TEE ("sgx"/"tdx"), the platform's
    FMSPC (upper-case hex) and the PCK CA ("platform"/"processor") that issued its PCK."""

    base_url: str
    tee: str
    fmspc: str
    ca: str


def collateral_key(quote: bytes | Quote, base_url: str) -> CollateralKey:
    """Read TEE, FMSPC and PCK CA type from the PCK chain embedded in `quote` (certification
    data type 5, nested in type 6 for v4/v5 quotes). The chain is not validated here.

    Raises `QuoteFormatError` for malformed quote bytes, `CollateralSourceError` when the quote
    carries no readable PCK chain."""
    parsed = quote if isinstance(quote, Quote) else parse_quote(quote)
    block = parsed.signature_data.qe_report_certification
    cert_data = None if block is None else block.certification_data
    if cert_data is None or cert_data.type != CertificationDataType.PCK_CERT_CHAIN:
        found = "none" if cert_data is None else str(cert_data.type)
        raise CollateralSourceError(
            f"quote carries no PCK certificate chain (certification data type {found}, need 5): "
            "its FMSPC is unknown, so its collateral cannot be fetched"
        )
    try:
        leaf = x509.load_pem_x509_certificates(cert_data.data)[0]
        fmspc = parse_pck_extensions(leaf).fmspc
        ca = pck_ca_type(leaf)
    except (ValueError, TypeError, IndexError, x509.InvalidVersion, AttestationError) as exc:
        raise CollateralSourceError(f"quote's PCK certificate is unreadable: {exc}") from None
    return CollateralKey(base_url.rstrip("/"), parsed.tee, fmspc.hex().upper(), ca)


class PcsClient:
    """Fetches collateral over HTTP(S) from Intel PCS or a PCCS, API v4.

    `base_url` is the server root (`INTEL_PCS_URL`, or e.g. `https://pccs.local:8081`); paths
    `/{sgx,tdx}/certification/v4/...` are appended. The root CA CRL comes from
    `root_ca_crl_url`: by default `INTEL_ROOT_CA_CRL_URL` for Intel PCS and the PCCS's
    `/sgx/certification/v4/rootcacrl` otherwise. `transport` replaces httpx's network
    transport (tests); `timeout` is in seconds per request. Use as a context manager, or call
    `close()`, to release connections.

    Every failure raises `CollateralSourceError` (unreachable, timeout, non-2xx, missing issuer
    chain header), or `CollateralFormatError` when a response body is malformed; messages name
    the URL."""

    def __init__(
        self,
        base_url: str,
        *,
        root_ca_crl_url: str | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        if root_ca_crl_url is None:
            intel = self.base_url == INTEL_PCS_URL
            root_ca_crl_url = (
                INTEL_ROOT_CA_CRL_URL
                if intel
                else f"{self.base_url}/sgx/certification/v4/rootcacrl"
            )
        self.root_ca_crl_url = root_ca_crl_url
        self._timeout = timeout
        self._http = httpx.Client(transport=transport, timeout=timeout, follow_redirects=True)

    def __enter__(self) -> PcsClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def key_for(self, quote: bytes | Quote) -> CollateralKey:
        """The cache key of `quote`'s collateral on this server (see `collateral_key`)."""
        return collateral_key(quote, self.base_url)

    def fetch(self, quote: bytes | Quote) -> Collateral:
        """Fetch the collateral `quote` needs (PCK CRL, TCB info, QE identity, root CA CRL)."""
        return self.fetch_key(self.key_for(quote))

    def fetch_key(self, key: CollateralKey) -> Collateral:
        """Fetch the collateral for `key` (its `base_url` is ignored: this client's is used).
        Each item is checked to parse, so what is returned can be cached and verified."""
        v4 = f"{self.base_url}/{key.tee}/certification/v4"
        pck_url = f"{self.base_url}/sgx/certification/v4/pckcrl?ca={key.ca}&encoding=der"
        pck = self._get(pck_url)
        tcb_url = f"{v4}/tcb?fmspc={key.fmspc}"
        tcb = self._get(tcb_url)
        tcb_info, tcb_signature = _signed_body(tcb, tcb_url, "tcbInfo", parse_tcb_info)
        qe_url = f"{v4}/qe/identity"
        qe = self._get(qe_url)
        qe_identity, qe_signature = _signed_body(qe, qe_url, "enclaveIdentity", parse_qe_identity)
        root_crl = self._get(self.root_ca_crl_url)
        return Collateral(
            pck_crl_issuer_chain=_issuer_chain(pck, pck_url, ("SGX-PCK-CRL-Issuer-Chain",)),
            root_ca_crl=_crl_der(root_crl.content, self.root_ca_crl_url),
            pck_crl=_crl_der(pck.content, pck_url),
            tcb_info_issuer_chain=_issuer_chain(tcb, tcb_url, _TCB_CHAIN_HEADERS),
            tcb_info=tcb_info,
            tcb_info_signature=tcb_signature,
            qe_identity_issuer_chain=_issuer_chain(
                qe, qe_url, ("SGX-Enclave-Identity-Issuer-Chain",)
            ),
            qe_identity=qe_identity,
            qe_identity_signature=qe_signature,
        )

    def _get(self, url: str) -> httpx.Response:
        try:
            response = self._http.get(url)
        except httpx.TimeoutException:
            raise CollateralSourceError(
                f"GET {url}: no response within {self._timeout:g} s"
            ) from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise CollateralSourceError(f"GET {url}: {type(exc).__name__}: {exc}") from None
        if not response.is_success:
            raise CollateralSourceError(
                f"GET {url}: HTTP {response.status_code} {response.reason_phrase}".rstrip()
            )
        return response


def _issuer_chain(response: httpx.Response, url: str, names: tuple[str, ...]) -> str:
    """The URL-encoded PEM issuer chain of a response, decoded and checked to parse."""
    value = next((response.headers[n] for n in names if n in response.headers), None)
    if value is None:
        raise CollateralSourceError(f"GET {url}: response has no {' / '.join(names)} header")
    chain = unquote(value)
    try:
        x509.load_pem_x509_certificates(chain.encode())
    except ValueError:
        raise CollateralFormatError(f"GET {url}: {names[0]} is not a PEM chain") from None
    return chain


def _signed_body(
    response: httpx.Response, url: str, name: str, parse: Callable[[str], object]
) -> tuple[str, bytes]:
    """`name`'s JSON object exactly as served (checked to `parse`), and the hex-decoded
    `signature` beside it."""
    try:
        text = response.content.decode("utf-8")
    except UnicodeDecodeError:
        raise CollateralFormatError(f"GET {url}: body is not UTF-8") from None
    members = _json_members(text, url)
    body, signature = members.get(name), members.get("signature")
    if body is None or not body.startswith("{") or signature is None:
        raise CollateralFormatError(f"GET {url}: body needs a {name!r} object and a 'signature'")
    try:
        parse(body)
    except CollateralFormatError as exc:
        raise CollateralFormatError(f"GET {url}: {exc.message}") from None
    try:
        return body, bytes.fromhex(safejson.loads(signature))
    except (TypeError, ValueError):
        raise CollateralFormatError(f"GET {url}: 'signature' is not a hex string") from None


def _json_members(text: str, url: str) -> dict[str, str]:
    """The raw text of each member of the top-level JSON object `text`, byte for byte as it
    appears there. The whole text must be one object; duplicate keys are rejected."""
    decoder = json.JSONDecoder()
    members: dict[str, str] = {}
    try:
        i = _skip_space(text, 0)
        if not text.startswith("{", i):
            raise ValueError("not a JSON object")
        i = _skip_space(text, i + 1)
        while not text.startswith("}", i):
            key, i = decoder.raw_decode(text, i)
            i = _skip_space(text, i)
            if not isinstance(key, str) or not text.startswith(":", i):
                raise ValueError(f"expected a key and ':' at {i}")
            start = _skip_space(text, i + 1)
            _, end = decoder.raw_decode(text, start)
            if key in members:
                raise ValueError(f"duplicate key {key!r}")
            members[key] = text[start:end]
            i = _skip_space(text, end)
            if text.startswith(",", i):
                i = _skip_space(text, i + 1)
                if text.startswith("}", i):
                    raise ValueError(f"trailing ',' at {i}")
            elif not text.startswith("}", i):
                raise ValueError(f"expected ',' or '}}' at {i}")
        if _skip_space(text, i + 1) != len(text):
            raise ValueError(f"trailing data at {i + 1}")
    except ValueError as exc:
        raise CollateralFormatError(f"GET {url}: body is not a JSON object: {exc}") from None
    return members


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\n\r":
        i += 1
    return i


def _crl_der(body: bytes, url: str) -> bytes:
    """A CRL response as DER. Servers send DER, PEM, or (some PCCS) DER as hex text."""
    data = body.strip()
    try:
        if data.startswith(b"-----BEGIN"):
            crl = x509.load_pem_x509_crl(data)
        else:
            crl = x509.load_der_x509_crl(
                bytes.fromhex(data.decode()) if _HEX.fullmatch(data) else body
            )
    except ValueError:
        raise CollateralFormatError(f"GET {url}: body is not a CRL (DER, PEM or hex)") from None
    return crl.public_bytes(serialization.Encoding.DER)


def earliest_next_update(collateral: Collateral) -> datetime:
    """The first `nextUpdate` among TCB info, QE identity and both CRLs: after it, fresher
    collateral may exist. Raises `CollateralFormatError` if an item does not parse."""
    times = [
        parse_tcb_info(collateral.tcb_info).next_update,
        parse_qe_identity(collateral.qe_identity).next_update,
    ]
    for name, der in (("root_ca_crl", collateral.root_ca_crl), ("pck_crl", collateral.pck_crl)):
        try:
            next_update = x509.load_der_x509_crl(der).next_update_utc
        except ValueError:
            raise CollateralFormatError(f"{name} is not a DER CRL") from None
        if next_update is not None:
            times.append(next_update)
    return min(times)


class CollateralCache:
    """Collateral on disk, one JSON file (`Collateral.to_json()`) per `CollateralKey`.

    An entry is served only while `now` is before its `earliest_next_update`. Writes are
    atomic (temporary file, then `os.replace`), so concurrent readers see an old or a new
    entry, never half of one. An unreadable or corrupt file is a miss and is overwritten by the
    next `put`. Cached collateral is no more trusted than fetched collateral: verification
    checks it all the same."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path_for(self, key: CollateralKey) -> Path:
        server = hashlib.sha256(key.base_url.encode()).hexdigest()[:16]
        return self.directory / f"{key.tee}-{key.fmspc}-{key.ca}-{server}.json"

    def get(self, key: CollateralKey, *, now: datetime) -> Collateral | None:
        """The entry for `key` if present, well-formed and fresh at `now` (timezone-aware)."""
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        try:
            collateral = Collateral.from_json(self.path_for(key).read_bytes())
            fresh_until = earliest_next_update(collateral)
        except (OSError, CollateralFormatError):
            return None
        return collateral if now < fresh_until else None

    def put(self, key: CollateralKey, collateral: Collateral) -> None:
        """Store `collateral` for `key`, replacing any entry. Raises `CollateralSourceError`
        if the directory cannot be written."""
        path = self.path_for(key)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=f".{path.name}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as out:
                    out.write(collateral.to_json())
                os.replace(tmp, path)
            except BaseException:
                os.unlink(tmp)
                raise
        except OSError as exc:
            raise CollateralSourceError(f"cannot write collateral cache {path}: {exc}") from None


class CachedCollateralSource:
    """Serves collateral from `cache` until its earliest nextUpdate, and fetches it with
    `client` (then caches it) otherwise. The caller passes the clock."""

    def __init__(self, client: PcsClient, cache: CollateralCache) -> None:
        self.client = client
        self.cache = cache

    def collateral_for(self, quote: bytes | Quote, *, now: datetime) -> Collateral:
        key = self.client.key_for(quote)
        cached = self.cache.get(key, now=now)
        if cached is not None:
            return cached
        collateral = self.client.fetch_key(key)
        self.cache.put(key, collateral)
        return collateral
