"""The simulated TDX: a faithful TEE backend for machines without one (tests, demo, `dev`).

It is a whole simulated "machine": its own Intel stand-in (`SimAuthority`: root CA, PCK Platform
CA, TCB signing), a PCK certificate carrying real Intel SGX extensions (FMSPC, PCE-ID, TCB
components, PCESVN, CPUSVN), a quoting enclave with an attestation key, measurement registers
(MRTD, RTMR0-3) and a sealing secret. Quotes are byte-exact DCAP v4 TDX quotes (QE report signed
by the PCK key, QE report data binding the attestation key, certification data type 6 -> 5) and
go through the same `attestation.verify_quote` as real ones: only the trust anchor differs.

With a state directory the machine persists (keys, certificates, secret), so a restarted
simulator is the same machine. RTMRs and the event log do not persist: like a real TD, a
restart is a reboot. The clock is passed in wherever time matters.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from attestation import Collateral, TrustAnchor
from attestation.ecdsa import sign_raw_ecdsa
from attestation.eventlog import RuntimeEvent, extend
from attestation.pck import PckExtensions, PlatformConfiguration
from attestation.quote import (
    INTEL_QE_VENDOR_ID,
    AttestationKeyType,
    CertificationDataType,
    QuoteHeader,
    TeeType,
)
from attestation.quote_encode import (
    encode_certification_data,
    encode_header,
    encode_qe_report_certification,
    encode_quote,
    encode_report,
)
from attestation.report import SgxAttributes, SgxReportBody, TdAttributes, TdReport10
from enclave.tee.base import check_report_data, check_runtime_event
from enclave.tee.sim_authority import CollateralTerms, Issued, SimAuthority, TdxPlatformTcb
from enclave.tee.state_file import load_or_create_state, read_state

__all__ = ["SimulatedTdx", "load_trust_anchor"]

STATE_FILE = "sim-machine.json"
DEFAULT_IMAGE = "enclava-sim-image-v1"
_FMSPC = bytes.fromhex("90C06F000000")
_SGX_COMPONENTS = (4, 4, 2, 2, 4, 1, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0)
_TEE_TCB_SVN = bytes([5, 1, 3]) + bytes(13)  # module ISVSVN 5, module version 1, microcode 3
_PCE_SVN = 13
_QE_ISVPRODID, _QE_ISVSVN = 2, 4
_TD_ATTRIBUTES = bytes.fromhex("0000001000000000")  # SEPT_VE_DISABLE, production (no DEBUG)
_XFAM = bytes.fromhex("e702060000000000")
_QE_ATTRIBUTES = bytes.fromhex("1500000000000000e700000000000000")


@dataclass(frozen=True)
class _Machine:
    """The persistent part of a simulated machine: its hardware identity and secrets."""

    authority: SimAuthority
    pck: Issued
    attestation_key: ec.EllipticCurvePrivateKey
    ppid: bytes
    qe_mrsigner: bytes
    qe_mrenclave: bytes
    mr_seam: bytes
    sealing_secret: bytes

    @classmethod
    def create(cls, now: datetime) -> _Machine:
        authority = SimAuthority.create(now)
        ppid = secrets.token_bytes(16)
        pck = authority.issue_pck(ec.generate_private_key(ec.SECP256R1()), _pck_extensions(ppid))
        return cls(
            authority=authority,
            pck=pck,
            attestation_key=ec.generate_private_key(ec.SECP256R1()),
            ppid=ppid,
            qe_mrsigner=secrets.token_bytes(32),
            qe_mrenclave=secrets.token_bytes(32),
            mr_seam=secrets.token_bytes(48),
            sealing_secret=secrets.token_bytes(32),
        )

    def to_state(self) -> dict[str, Any]:
        key = self.attestation_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return {
            "version": 1,
            "authority": self.authority.to_state(),
            "pck": self.pck.to_state(),
            "attestation_key": key.decode(),
            **{
                name: getattr(self, name).hex()
                for name in ("ppid", "qe_mrsigner", "qe_mrenclave", "mr_seam", "sealing_secret")
            },
        }

    @classmethod
    def from_state(cls, doc: dict[str, Any]) -> _Machine:
        key = serialization.load_pem_private_key(doc["attestation_key"].encode(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey) or doc.get("version") != 1:
            raise ValueError("unsupported simulator state")
        return cls(
            authority=SimAuthority.from_state(doc["authority"]),
            pck=Issued.from_state(doc["pck"]),
            attestation_key=key,
            **{
                name: bytes.fromhex(doc[name])
                for name in ("ppid", "qe_mrsigner", "qe_mrenclave", "mr_seam", "sealing_secret")
            },
        )


def _pck_extensions(ppid: bytes) -> PckExtensions:
    return PckExtensions(
        ppid=ppid,
        cpu_svn=bytes(_SGX_COMPONENTS),
        pce_svn=_PCE_SVN,
        tcb_components=_SGX_COMPONENTS,
        pce_id=bytes(2),
        fmspc=_FMSPC,
        sgx_type=1,  # Scalable
        platform_instance_id=hashlib.sha256(b"platform" + ppid).digest()[:16],
        configuration=PlatformConfiguration(True, True, True),
    )


class SimulatedTdx:
    """A `TeeBackend` that is a simulated TDX machine (see the module docstring).

    `state_dir`: where the machine persists (None: an ephemeral machine). `image`: names the TD
    image; MRTD and RTMR0-2 are derived from it, so two simulators booting the same image
    measure the same, and sealed data follows the image."""

    kind = "simulated"

    def __init__(
        self, state_dir: Path | None = None, *, image: str = DEFAULT_IMAGE, now: datetime
    ) -> None:
        self._machine = _load_or_create(state_dir, now)
        self.image = image
        boot = [hashlib.sha384(f"{image}/{name}".encode()).digest() for name in _BOOT_REGISTERS]
        self.mr_td = boot[0]
        self._rtmrs = [*boot[1:], bytes(48)]
        self._events: list[RuntimeEvent] = []

    @property
    def trust_anchor(self) -> TrustAnchor:
        """The simulator's root: pass it to `verify_quote` (and allow simulated TEEs)."""
        return self._machine.authority.trust_anchor

    @property
    def rtmrs(self) -> tuple[bytes, bytes, bytes, bytes]:
        return (self._rtmrs[0], self._rtmrs[1], self._rtmrs[2], self._rtmrs[3])

    def quote(self, report_data: bytes) -> bytes:
        m = self._machine
        signed = encode_header(_HEADER) + encode_report(
            self._td_report(check_report_data(report_data))
        )
        key = m.attestation_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )[1:]
        auth_data = bytes(32)
        qe_report = encode_report(self._qe_report(hashlib.sha256(key + auth_data).digest()))
        chain = m.authority.pck_chain_pem(m.pck).encode() + b"\x00"
        qe_block = encode_qe_report_certification(
            qe_report,
            sign_raw_ecdsa(m.pck.key, qe_report),
            auth_data,
            encode_certification_data(CertificationDataType.PCK_CERT_CHAIN, chain),
        )
        return encode_quote(signed, sign_raw_ecdsa(m.attestation_key, signed), key, qe_block, 4)

    def extend_rtmr(self, event: RuntimeEvent) -> None:
        """Like the real backends: RTMR3 only, runtime events whose digest fits their content."""
        check_runtime_event(event)
        self._rtmrs[event.imr] = extend(self._rtmrs[event.imr], event.digest)
        self._events.append(event)

    def event_log(self) -> tuple[RuntimeEvent, ...]:
        return tuple(self._events)

    def sealing_key(self, label: str) -> bytes:
        """HKDF-SHA256 of the machine's sealing secret, salted with the boot measurement
        (MRTD, RTMR0-2): another image, or another machine, derives another key."""
        salt = hashlib.sha384(self.mr_td + b"".join(self._rtmrs[:3])).digest()
        return HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=salt,
            info=b"enclava/sim/seal/v1/" + label.encode(),
        ).derive(self._machine.sealing_secret)

    def collateral(self, *, now: datetime) -> Collateral:
        """Signed collateral for this machine's platform, issued at `now`, valid 30 days."""
        m = self._machine
        platform = TdxPlatformTcb(
            fmspc=_FMSPC,
            pce_id=bytes(2),
            pce_svn=_PCE_SVN,
            sgx_components=_SGX_COMPONENTS,
            tdx_components=tuple(_TEE_TCB_SVN),
            module_version=_TEE_TCB_SVN[1],
            module_isvsvn=_TEE_TCB_SVN[0],
            qe_mrsigner=m.qe_mrsigner,
            qe_isvprodid=_QE_ISVPRODID,
            qe_isvsvn=_QE_ISVSVN,
        )
        return m.authority.collateral(platform, CollateralTerms(issued=now))

    def _td_report(self, report_data: bytes) -> TdReport10:
        return TdReport10(
            tee_tcb_svn=_TEE_TCB_SVN,
            mr_seam=self._machine.mr_seam,
            mr_signer_seam=bytes(48),
            seam_attributes=bytes(8),
            td_attributes=TdAttributes(_TD_ATTRIBUTES),
            xfam=_XFAM,
            mr_td=self.mr_td,
            mr_config_id=bytes(48),
            mr_owner=bytes(48),
            mr_owner_config=bytes(48),
            rtmr0=self._rtmrs[0],
            rtmr1=self._rtmrs[1],
            rtmr2=self._rtmrs[2],
            rtmr3=self._rtmrs[3],
            report_data=report_data,
        )

    def _qe_report(self, binding: bytes) -> SgxReportBody:
        m = self._machine
        return SgxReportBody(
            cpu_svn=bytes(_SGX_COMPONENTS),
            misc_select=0,
            isv_ext_prod_id=bytes(16),
            attributes=SgxAttributes(_QE_ATTRIBUTES),
            mr_enclave=m.qe_mrenclave,
            mr_signer=m.qe_mrsigner,
            config_id=bytes(64),
            isv_prod_id=_QE_ISVPRODID,
            isv_svn=_QE_ISVSVN,
            config_svn=0,
            isv_family_id=bytes(16),
            report_data=binding + bytes(32),
        )


_BOOT_REGISTERS = ("mrtd", "rtmr0", "rtmr1", "rtmr2")
_HEADER = QuoteHeader(
    version=4,
    attestation_key_type=AttestationKeyType.ECDSA_P256,
    tee_type=TeeType.TDX,
    qe_svn=0,
    pce_svn=0,
    qe_vendor_id=INTEL_QE_VENDOR_ID,
    user_data=hashlib.sha256(b"enclava simulated QE").digest()[:16] + bytes(4),
)


def load_trust_anchor(state_dir: Path) -> TrustAnchor:
    """The root of the simulated machine persisted in `state_dir` (without creating one)."""
    machine = read_state(state_dir / STATE_FILE, _Machine.from_state, "simulated machine")
    return machine.authority.trust_anchor


def _load_or_create(state_dir: Path | None, now: datetime) -> _Machine:
    if state_dir is None:
        return _Machine.create(now)
    return load_or_create_state(
        state_dir / STATE_FILE,
        load=_Machine.from_state,
        create=lambda: _Machine.create(now),
        dump=_Machine.to_state,
        what="simulated machine",
    )
