"""Quote collateral: CRLs, TCB info and QE identity with their issuer chains and signatures.

`Collateral` keeps every item exactly as received (the signed JSON bodies as text, so their
signatures can be checked over the received bytes). It loads from and dumps to the JSON layout
of dcap-qvl's `QuoteCollateralV3` (the samples' format). `TcbInfo` and `QeIdentity` are the typed
views of the signed JSON bodies; parsing them does not verify anything.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from attestation import safejson
from attestation.errors import CollateralFormatError
from attestation.tcb import TcbStatus

__all__ = [
    "Collateral",
    "ModuleTcbLevel",
    "QeIdentity",
    "QeTcbLevel",
    "TcbInfo",
    "TcbLevel",
    "TdxModuleIdentity",
    "parse_qe_identity",
    "parse_tcb_info",
]

_TEXT_FIELDS = (
    "pck_crl_issuer_chain",
    "tcb_info_issuer_chain",
    "tcb_info",
    "qe_identity_issuer_chain",
    "qe_identity",
)
_BINARY_FIELDS = ("root_ca_crl", "pck_crl", "tcb_info_signature", "qe_identity_signature")


@dataclass(frozen=True)
class Collateral:
    """Everything besides the quote that verification needs. Binary items are raw bytes (CRLs in
    DER, signatures as raw r||s); text items are PEM chains and the signed JSON bodies."""

    pck_crl_issuer_chain: str
    root_ca_crl: bytes
    pck_crl: bytes
    tcb_info_issuer_chain: str
    tcb_info: str
    tcb_info_signature: bytes
    qe_identity_issuer_chain: str
    qe_identity: str
    qe_identity_signature: bytes
    pck_certificate_chain: str | None = field(default=None)

    @classmethod
    def from_json(cls, text: str | bytes) -> Collateral:
        """Load dcap-qvl / PCCS `QuoteCollateralV3` JSON (CRLs and signatures in hex; CRLs may
        also be PEM text)."""
        try:
            doc = safejson.loads(text)
        except ValueError as exc:
            raise CollateralFormatError(f"collateral is not JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise CollateralFormatError("collateral JSON must be an object")
        return cls.from_dict(doc)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Collateral:
        values: dict[str, Any] = {}
        for name in _TEXT_FIELDS:
            values[name] = _text(doc, name)
        for name in ("tcb_info_signature", "qe_identity_signature"):
            values[name] = _hex(_text(doc, name), name)
        for name in ("root_ca_crl", "pck_crl"):
            values[name] = _crl_bytes(_text(doc, name), name)
        chain = doc.get("pck_certificate_chain")
        if chain is not None and not isinstance(chain, str):
            raise CollateralFormatError("pck_certificate_chain must be a PEM string")
        return cls(**values, pck_certificate_chain=chain)

    def to_json(self) -> str:
        doc: dict[str, Any] = {name: getattr(self, name) for name in _TEXT_FIELDS}
        for name in _BINARY_FIELDS:
            doc[name] = getattr(self, name).hex()
        if self.pck_certificate_chain is not None:
            doc["pck_certificate_chain"] = self.pck_certificate_chain
        return json.dumps(doc, sort_keys=True)

    @cached_property
    def digest(self) -> bytes:
        """SHA-256 over every item, each length-prefixed: the key verification work is cached
        under. Two collaterals with the same digest are byte-for-byte the same collateral."""
        h = hashlib.sha256()
        for name in (*_TEXT_FIELDS, *_BINARY_FIELDS, "pck_certificate_chain"):
            value = getattr(self, name)
            raw = b"" if value is None else value.encode() if isinstance(value, str) else value
            h.update(len(raw).to_bytes(8, "big") + raw)
        return h.digest()


@dataclass(frozen=True, slots=True)
class TcbLevel:
    sgx_components: tuple[int, ...]
    tdx_components: tuple[int, ...] | None
    pce_svn: int
    tcb_date: str
    status: TcbStatus
    advisory_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ModuleTcbLevel:
    isv_svn: int
    tcb_date: str
    status: TcbStatus
    advisory_ids: tuple[str, ...]


QeTcbLevel = ModuleTcbLevel


@dataclass(frozen=True, slots=True)
class TdxModuleIdentity:
    """Expected TDX module signer/attributes; `tcb_levels` is empty for the base `tdxModule`."""

    id: str
    mrsigner: bytes
    attributes: bytes
    attributes_mask: bytes
    tcb_levels: tuple[ModuleTcbLevel, ...]


@dataclass(frozen=True, slots=True)
class TcbInfo:
    id: str
    version: int
    issue_date: datetime
    next_update: datetime
    fmspc: bytes
    pce_id: bytes
    tcb_type: int
    tcb_evaluation_data_number: int
    tdx_module: TdxModuleIdentity | None
    tdx_module_identities: tuple[TdxModuleIdentity, ...]
    tcb_levels: tuple[TcbLevel, ...]


@dataclass(frozen=True, slots=True)
class QeIdentity:
    id: str
    version: int
    issue_date: datetime
    next_update: datetime
    tcb_evaluation_data_number: int
    miscselect: int
    miscselect_mask: int
    attributes: bytes
    attributes_mask: bytes
    mrsigner: bytes
    isvprodid: int
    tcb_levels: tuple[QeTcbLevel, ...]


def parse_tcb_info(text: str) -> TcbInfo:
    """The typed view of a signed TCB info body (v2 SGX layout or v3 SGX/TDX layout)."""
    doc = _json_object(text, "tcb_info")
    version = _int(doc, "version", "tcb_info")
    module = doc.get("tdxModule")
    return TcbInfo(
        id=str(doc.get("id", "SGX")),
        version=version,
        issue_date=_date(doc, "issueDate", "tcb_info"),
        next_update=_date(doc, "nextUpdate", "tcb_info"),
        fmspc=_hexfield(doc, "fmspc", "tcb_info", 6),
        pce_id=_hexfield(doc, "pceId", "tcb_info", 2),
        tcb_type=_int(doc, "tcbType", "tcb_info"),
        tcb_evaluation_data_number=_int(doc, "tcbEvaluationDataNumber", "tcb_info"),
        tdx_module=None if module is None else _module_identity(module, "tdxModule"),
        tdx_module_identities=tuple(
            _module_identity(m, "tdxModuleIdentities") for m in _list(doc, "tdxModuleIdentities")
        ),
        tcb_levels=tuple(_tcb_level(level) for level in _list(doc, "tcbLevels", required=True)),
    )


def parse_qe_identity(text: str) -> QeIdentity:
    doc = _json_object(text, "qe_identity")
    where = "qe_identity"
    return QeIdentity(
        id=str(doc.get("id", "QE")),
        version=_int(doc, "version", where),
        issue_date=_date(doc, "issueDate", where),
        next_update=_date(doc, "nextUpdate", where),
        tcb_evaluation_data_number=_int(doc, "tcbEvaluationDataNumber", where),
        miscselect=int.from_bytes(_hexfield(doc, "miscselect", where, 4), "little"),
        miscselect_mask=int.from_bytes(_hexfield(doc, "miscselectMask", where, 4), "little"),
        attributes=_hexfield(doc, "attributes", where, 16),
        attributes_mask=_hexfield(doc, "attributesMask", where, 16),
        mrsigner=_hexfield(doc, "mrsigner", where, 32),
        isvprodid=_int(doc, "isvprodid", where),
        tcb_levels=tuple(
            _isvsvn_level(level, where) for level in _list(doc, "tcbLevels", required=True)
        ),
    )


def _text(doc: dict[str, Any], name: str) -> str:
    value = doc.get(name)
    if not isinstance(value, str) or not value:
        raise CollateralFormatError(f"collateral field {name!r} is missing or not a string")
    return value


def _hex(value: str, name: str) -> bytes:
    try:
        return bytes.fromhex(value.strip().removeprefix("0x"))
    except ValueError:
        raise CollateralFormatError(f"collateral field {name!r} is not hex") from None


def _crl_bytes(value: str, name: str) -> bytes:
    """A CRL as DER: accepts hex of DER, PEM text, or hex of PEM text (all seen in the wild)."""
    raw = value.encode() if "-----BEGIN" in value else _hex(value, name)
    if raw.startswith(b"-----BEGIN"):
        try:
            return x509.load_pem_x509_crl(raw).public_bytes(serialization.Encoding.DER)
        except ValueError:
            raise CollateralFormatError(f"collateral field {name!r} is not a PEM CRL") from None
    return raw


def _json_object(text: str, where: str) -> dict[str, Any]:
    try:
        doc = safejson.loads(text)
    except ValueError as exc:
        raise CollateralFormatError(f"{where} is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise CollateralFormatError(f"{where} must be a JSON object")
    return doc


def _int(doc: dict[str, Any], key: str, where: str) -> int:
    value = doc.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise CollateralFormatError(f"{where}.{key} must be a non-negative integer")
    return value


def _list(doc: dict[str, Any], key: str, *, required: bool = False) -> list[Any]:
    value = doc.get(key)
    if value is None and not required:
        return []
    if not isinstance(value, list):
        raise CollateralFormatError(f"{key} must be a list")
    return value


def _date(doc: dict[str, Any], key: str, where: str) -> datetime:
    value = doc.get(key)
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        raise CollateralFormatError(f"{where}.{key} is not an ISO 8601 date: {value!r}") from None
    if parsed.tzinfo is None:
        raise CollateralFormatError(f"{where}.{key} has no time zone: {value!r}")
    return parsed


def _hexfield(doc: dict[str, Any], key: str, where: str, size: int) -> bytes:
    value = doc.get(key)
    try:
        raw = bytes.fromhex(str(value))
    except ValueError:
        raise CollateralFormatError(f"{where}.{key} is not hex") from None
    if len(raw) != size:
        raise CollateralFormatError(f"{where}.{key} must be {size} bytes, got {len(raw)}")
    return raw


def _status(doc: dict[str, Any], where: str) -> TcbStatus:
    value = doc.get("tcbStatus")
    try:
        return TcbStatus(str(value))
    except ValueError:
        raise CollateralFormatError(f"{where}: unknown tcbStatus {value!r}") from None


def _advisories(doc: dict[str, Any]) -> tuple[str, ...]:
    value = doc.get("advisoryIDs", [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise CollateralFormatError("advisoryIDs must be a list of strings")
    return tuple(value)


def _svns(components: Any, where: str) -> tuple[int, ...]:
    try:
        svns = tuple(comp["svn"] for comp in components)
    except (TypeError, KeyError):
        raise CollateralFormatError(f"{where} must be a list of {{'svn': int}} objects") from None
    if not all(type(svn) is int and 0 <= svn <= 255 for svn in svns):
        raise CollateralFormatError(f"{where}: svn must be an integer 0..255")
    return svns


def _tcb_level(level: Any) -> TcbLevel:
    if not isinstance(level, dict) or not isinstance(level.get("tcb"), dict):
        raise CollateralFormatError("tcbLevels entries must be objects with a 'tcb' object")
    tcb = level["tcb"]
    if "sgxtcbcomponents" in tcb:
        sgx = _svns(tcb["sgxtcbcomponents"], "sgxtcbcomponents")
    else:  # TCB info v2: sgxtcbcomp01svn .. sgxtcbcomp16svn
        sgx = _svns([{"svn": tcb.get(f"sgxtcbcomp{i:02d}svn")} for i in range(1, 17)], "tcb")
    tdx = _svns(tcb["tdxtcbcomponents"], "tdxtcbcomponents") if "tdxtcbcomponents" in tcb else None
    return TcbLevel(
        sgx_components=sgx,
        tdx_components=tdx,
        pce_svn=_int(tcb, "pcesvn", "tcb"),
        tcb_date=str(level.get("tcbDate", "")),
        status=_status(level, "tcbLevels"),
        advisory_ids=_advisories(level),
    )


def _isvsvn_level(level: Any, where: str) -> ModuleTcbLevel:
    if not isinstance(level, dict) or not isinstance(level.get("tcb"), dict):
        raise CollateralFormatError(f"{where}.tcbLevels entries must be objects with 'tcb'")
    return ModuleTcbLevel(
        isv_svn=_int(level["tcb"], "isvsvn", where),
        tcb_date=str(level.get("tcbDate", "")),
        status=_status(level, where),
        advisory_ids=_advisories(level),
    )


def _module_identity(doc: Any, where: str) -> TdxModuleIdentity:
    if not isinstance(doc, dict):
        raise CollateralFormatError(f"{where} entries must be objects")
    return TdxModuleIdentity(
        id=str(doc.get("id", "")),
        mrsigner=_hexfield(doc, "mrsigner", where, 48),
        attributes=_hexfield(doc, "attributes", where, 8),
        attributes_mask=_hexfield(doc, "attributesMask", where, 8),
        tcb_levels=tuple(_isvsvn_level(lv, where) for lv in _list(doc, "tcbLevels")),
    )
