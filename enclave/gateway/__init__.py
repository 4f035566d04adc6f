"""The worker's HTTP gateway (FastAPI): attestation, agent calls with signed (and optionally
encrypted) answers, and the OpenAI / NEAR AI shapes. Build it with
`create_app(tee=..., keys=..., agents=..., chain_id=...)` after `measure_agents_into(tee,
agents)`; the wire protocol is documented in `enclave.gateway.protocol`, the caller's side is
`enclave.gateway_client`."""

from enclave.gateway.app import create_app
from enclave.gateway.errors import GatewayError
from enclave.gateway.state import (
    GatewayLimits,
    GatewayState,
    ServedAgent,
    SignatureRecord,
    get_gateway,
    measure_agents_into,
)

__all__ = [
    "GatewayError",
    "GatewayLimits",
    "GatewayState",
    "ServedAgent",
    "SignatureRecord",
    "create_app",
    "get_gateway",
    "measure_agents_into",
]
