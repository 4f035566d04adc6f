"""Getting and keeping a worker registered: quote → attestation service → signed verdict →
`WorkerRegistry.register`, once per served agent measurement, and again before it expires.

The attestation service (`attestation.service`, `POST /v1/verify`) checks the quote, the event
log (which must name the agent in RTMR3) and the key binding in REPORTDATA, and signs an EIP-712
verdict for the registry's verifier; the worker only relays it. A registration's expiry is read
back from the registry and compared with the chain's clock (the latest block's timestamp: what
the contract compares with), so renewals happen `renew_margin_s` before the contract would stop
accepting this worker's fulfilments.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from eth_account.signers.local import LocalAccount

from attestation.eventlog import events_to_json
from attestation.gpu import gpu_nonce
from contracts.client import Registration, Transactor, register
from contracts.errors import ContractError
from enclave.errors import RegistrationError
from enclave.keys import EnclaveKeys
from enclave.tee.base import TeeBackend
from enclave.tee.gpu import GpuSource, bundle_gpu

__all__ = ["AttestationServiceClient", "Registrar"]

DEFAULT_RENEW_MARGIN_S = 3_600


class AttestationServiceClient:
    """The attestation service's `POST /v1/verify`, as a worker uses it to get a signed verdict.
    `transport` is injectable (httpx), like every HTTP client here."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(base_url=base_url, timeout=timeout_s, transport=transport)

    def close(self) -> None:
        self._http.close()

    def signed_verdict(self, request: Mapping[str, Any]) -> bytes:
        """The verdict evidence `WorkerRegistry.register` takes, or `RegistrationError` with the
        service's reasons."""
        try:
            response = self._http.post("/v1/verify", json=dict(request))
        except httpx.HTTPError as exc:
            raise RegistrationError(f"the attestation service is unreachable: {exc}") from None
        if response.status_code != 200:
            raise RegistrationError(
                f"the attestation service answered {response.status_code}: {response.text[:300]}"
            )
        try:
            answer = response.json()
            signed = answer.get("signed_verdict") if answer.get("accepted") else None
            if not isinstance(signed, dict):
                why = answer.get("reasons") or answer.get("signed_verdict_omitted") or answer
                raise RegistrationError(f"the attestation service did not sign a verdict: {why}")
            return bytes.fromhex(str(signed["evidence"]).removeprefix("0x"))
        except (ValueError, AttributeError, KeyError) as exc:
            raise RegistrationError(
                f"the attestation service answered out of protocol: {exc}"
            ) from None


@dataclass
class Registrar:
    """Registers `keys` in `registry` for each served agent, through `service`.

    `policy`: the service policy to verify under (e.g. `default`, or `dev` for the simulator).
    `sender` pays the registration's gas. `gpus`: this machine's GPUs; their reports over
    `gpu_nonce(nonce)` go with the quote, so a policy such as `gpu-h100-cc` can require them and
    the verdict's `quoteHash` covers them (the bundle digest)."""

    tee: TeeBackend
    keys: EnclaveKeys
    tx: Transactor
    sender: LocalAccount
    registry: str
    service: AttestationServiceClient
    policy: str = "default"
    renew_margin_s: int = DEFAULT_RENEW_MARGIN_S
    gpus: GpuSource | None = None

    def register(self, agent: str, measurement: bytes) -> Registration:
        """Register for `agent` now; its verdict must carry `measurement`."""
        nonce = secrets.token_bytes(32)
        quote = self.tee.quote(self.keys.report_data(nonce))
        contract = self.tx.contract("WorkerRegistry", self.registry)
        verifier = str(self.tx.call(contract.functions.verifier()))
        gpus = self.gpus.collect(gpu_nonce(nonce)) if self.gpus is not None else ()
        evidence = self.service.signed_verdict(
            {
                **({"gpu_evidence": [bundle_gpu(g).to_json() for g in gpus]} if gpus else {}),
                "quote": base64.b64encode(quote).decode(),
                "event_log": events_to_json(self.tee.event_log()),
                "binding": {
                    "address": self.keys.address,
                    "x25519_public": self.keys.x25519_public.hex(),
                    "nonce": nonce.hex(),
                },
                "policy": self.policy,
                "agent": agent,
                "verdict_domain": {
                    "chain_id": self.tx.chain.chain_id,
                    "verifying_contract": verifier,
                },
            }
        )
        # `abi.encode(worker, measurement, ...)`: check it is ours before paying for a revert
        if evidence[12:32] != self.keys.address_bytes or evidence[32:64] != measurement:
            raise RegistrationError(
                f"the verdict for {agent!r} is for another worker or measurement"
            )
        try:
            registration = register(self.tx, self.sender, self.registry, evidence)
        except ContractError as exc:
            raise RegistrationError(
                f"the registry refused the verdict for {agent!r}: {exc}"
            ) from None
        return registration

    def expires_at(self, measurement: bytes) -> int:
        """When this worker's registration for `measurement` expires (0: never registered)."""
        contract = self.tx.contract("WorkerRegistry", self.registry)
        call = contract.functions.registrationFor(self.keys.address, measurement)
        return int(self.tx.call(call)[1])

    def renew(self, agents: Mapping[str, bytes]) -> list[str]:
        """Register again every agent (name → measurement) whose registration is missing or
        expires within `renew_margin_s` of the chain's time; returns the names registered."""
        now = int(self.tx.chain.w3.eth.get_block("latest")["timestamp"])
        due = [
            name
            for name, measurement in agents.items()
            if self.expires_at(measurement) - now <= self.renew_margin_s
        ]
        for name in due:
            self.register(name, agents[name])
        return due
