"""`enclava deploy-stack`, `enclava deploy` and `enclava call --chain` (`chain_call`; the older
`enclava call-chain` is a deprecated alias): put the shared contracts and an agent on a chain,
and call an agent through its contract, verifying who answered; with `--encrypt-to`, the input
and output travel sealed (`enclava.onchain_envelope`).

Signing keys come from ENCLAVA_PRIVATE_KEY or `--keystore` (password in
ENCLAVA_KEYSTORE_PASSWORD), never from the command line. Exit status: 0 success / verified,
1 reverted, not verified or timed out, 2 unusable input (no key, no chain, bad arguments).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from eth_account import Account
from eth_typing import ChecksumAddress
from eth_utils.address import is_address, to_checksum_address
from eth_utils.crypto import keccak
from rich.console import Console
from web3.logs import DISCARD

from agents.bundle import measure as measure_bundle
from agents.canonical import dump_canonical
from agents.errors import AgentError
from attestation.token import agent_measurement_id
from contracts.chain import Chain, connect, load_account
from contracts.client import AgentClient, Deployment, RequestInfo, Transactor
from contracts.client import deploy as deploy_contracts
from contracts.errors import ContractError, RevertError
from contracts.events import ChainEvent, EventReader
from contracts.typed_data import fulfillment_message
from enclava.gateway_trust import GatewayTrust
from enclava.onchain_envelope import CallRejectedError, output_fields, seal_to_gateway
from enclava.output import EXIT_ACCEPTED, EXIT_REJECTED, BadInputError, fail, progress
from enclave.errors import EnclaveError
from enclave.gateway_client import GatewayClientError, GatewayVerificationError

__all__ = ["call_chain", "chain_call", "deploy", "deploy_stack"]

_POLL_S = 0.25

RpcOption = Annotated[str, typer.Option(help="JSON-RPC URL of the chain, e.g. Anvil's.")]
KeystoreOption = Annotated[
    Path | None,
    typer.Option(help="Encrypted keystore (password in ENCLAVA_KEYSTORE_PASSWORD)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


def deploy_stack(
    rpc_url: RpcOption,
    signer: Annotated[
        list[str], typer.Option(help="Attestation signer the verifier trusts (repeatable).")
    ],
    out: Annotated[
        Path | None, typer.Option(help="Write the addresses here (the `--deployment` file).")
    ] = None,
    keystore: KeystoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Deploy the shared contracts: a signed-verdict verifier, a worker registry, a factory."""
    try:
        signers: list[str] = [_address(s, "--signer") for s in signer]
        account = load_account(keystore=keystore)
        tx = Transactor(connect(rpc_url))
        deployment = deploy_contracts(tx, account, signers)
        if out is not None:
            _write(out, json.dumps(deployment.to_dict(), indent=2, sort_keys=True) + "\n")
    except RevertError as exc:
        _reverted(as_json, exc)
    except (BadInputError, ContractError) as exc:
        fail(as_json, exc.code, exc.message)
    doc = {**deployment.to_dict(), "owner": account.address, "signers": signers}
    if out is not None:
        doc["out"] = str(out)
    if as_json:
        print(json.dumps(doc, sort_keys=True))
    else:
        for key in ("verifier", "registry", "factory", "owner"):
            print(f"{key:<9} {doc[key]}")
        if out is not None:
            print(f"written to {out}")


def deploy(
    bundle: Annotated[Path, typer.Argument(help="Agent bundle directory (with agent.toml).")],
    price: Annotated[int, typer.Option(help="Price of one request, in wei.", min=0)],
    rpc_url: RpcOption,
    factory: Annotated[str | None, typer.Option(help="AgentFactory address.")] = None,
    registry: Annotated[str | None, typer.Option(help="WorkerRegistry address.")] = None,
    deployment: Annotated[
        Path | None, typer.Option(help="Addresses file written by `enclava deploy-stack`.")
    ] = None,
    royalty_bps: Annotated[
        int, typer.Option(help="Owner's royalty, basis points.", min=0, max=10_000)
    ] = 1_000,
    timeout: Annotated[
        int, typer.Option(help="Seconds before an unanswered request may be cancelled.", min=1)
    ] = 3_600,
    keystore: KeystoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create an agent contract pinning BUNDLE's measurement, through the factory."""
    try:
        factory_addr, registry_addr = _stack_addresses(factory, registry, deployment)
        measured = measure_bundle(bundle)
        onchain = agent_measurement_id(measured.digest)
        account = load_account(keystore=keystore)
        tx = Transactor(connect(rpc_url))
        contract = tx.contract("AgentFactory", factory_addr)
        call = contract.functions.createAgent(onchain, price, royalty_bps, registry_addr, timeout)
        receipt = tx.send(account, call)
        (event,) = contract.events.AgentCreated().process_receipt(receipt, errors=DISCARD)
    except AgentError as exc:
        fail(as_json, exc.code, str(exc))
    except RevertError as exc:
        _reverted(as_json, exc)
    except (BadInputError, ContractError) as exc:
        fail(as_json, exc.code, exc.message)
    doc = {
        "agent": str(event["args"]["agent"]),
        "owner": account.address,
        "bundle_measurement": measured.hex,
        "onchain_measurement": "0x" + onchain.hex(),
        "price": price,
        "royalty_bps": royalty_bps,
        "timeout": timeout,
        "factory": factory_addr,
        "registry": registry_addr,
        "tx_hash": "0x" + bytes(receipt["transactionHash"]).hex(),
        "block_number": int(receipt["blockNumber"]),
        "gas_used": int(receipt["gasUsed"]),
    }
    _emit(as_json, doc)


def call_chain(
    agent: Annotated[str, typer.Argument(help="The agent contract's address.")],
    input: Annotated[str, typer.Option(help="The agent's input: JSON text, or @FILE.")],
    rpc_url: RpcOption,
    wait: Annotated[float, typer.Option(help="Seconds to wait for the fulfilment.", min=0)] = 120.0,
    keystore: KeystoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Deprecated: use `enclava call AGENT --chain --rpc-url URL`. Pay an agent's contract for one
    request, wait for its fulfilment and verify the worker."""
    chain_call(agent, input, rpc_url, wait=wait, keystore=keystore, as_json=as_json)


def chain_call(
    agent: str,
    input: str,
    rpc_url: str,
    *,
    wait: float,
    keystore: Path | None,
    as_json: bool,
    encrypt_to: str | None = None,
    trust: GatewayTrust | None = None,
) -> NoReturn:
    """Pay `agent`'s contract for one request, wait for its fulfilment and verify the worker;
    with `encrypt_to` (a gateway URL, verified as `trust` says), the input is sealed to that
    gateway's attested, registered worker and the sealed answer opened (`enclava.onchain_envelope`).

    Verified means: the fulfilling worker is registered for the agent's measurement in the
    agent's registry, and the fulfilment signature (over the on-chain output bytes) recovers to
    that worker. A verified error answer (`{"error":{"code":...}}`) is still a rejection."""
    try:
        address = _address(agent, "AGENT_ADDRESS")
        data = _read_input(input)
        account = load_account(keystore=keystore)
        chain = connect(rpc_url)
        tx = Transactor(chain)
        if not chain.w3.eth.get_code(address):
            raise BadInputError("not_an_agent", f"no contract at {address}")
        client = AgentClient(tx, address)
        sealed = None
        if encrypt_to is not None:
            sealed = seal_to_gateway(
                encrypt_to,
                trust or GatewayTrust(),
                client,
                data,
                caller=account.address,
                chain_id=chain.chain_id,
                now=datetime.now(UTC),
                reply_key=X25519PrivateKey.generate(),
            )
        with progress("sending the request", as_json) as step:
            request = client.request(account, data if sealed is None else sealed.envelope)
            step(f"waiting for request {request.id} to be fulfilled (up to {wait:g} s)")
            fulfilled = _wait_fulfilled(chain, client, request, wait)
        if fulfilled is None:
            _rejected(
                as_json,
                "timed_out",
                f"request {request.id} was not fulfilled within {wait:g} s",
                {"agent": address, "request_id": request.id, "verified": False},
            )
        doc = _verify(chain, tx, client, request, fulfilled)
        doc.update(output_fields(bytes(fulfilled.args["output"]), sealed, doc, chain.chain_id))
    except GatewayVerificationError as exc:
        _rejected(as_json, exc.code, str(exc), {"check": exc.check, "verified": False})
    except CallRejectedError as exc:
        _rejected(as_json, exc.code, exc.message, {**exc.fields, "verified": False})
    except RevertError as exc:
        _reverted(as_json, exc)
    except (BadInputError, ContractError, GatewayClientError, EnclaveError) as exc:
        fail(as_json, exc.code, exc.message, fields={"verified": False})
    _print_call(doc, as_json)
    raise typer.Exit(EXIT_ACCEPTED if doc["verified"] else EXIT_REJECTED)


def _print_call(doc: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(doc, sort_keys=True))
        return
    print(doc["output"])
    mark = "[bold green]verified[/]" if doc["verified"] else "[bold red]NOT verified[/]"
    sealed = f", encrypted to {doc['gateway_worker']}" if doc["encrypted"] else ""
    Console(highlight=False, soft_wrap=True).print(
        f"{mark}: request {doc['request_id']} fulfilled by {doc['worker']} "
        f"(registered: {doc['registered']}, signature valid: {doc['signature_valid']}{sealed})"
    )


def _wait_fulfilled(
    chain: Chain, client: AgentClient, request: RequestInfo, wait: float
) -> ChainEvent | None:
    reader = EventReader(chain, client.contract, ["Fulfilled"], start=request.block_number)
    deadline = time.monotonic() + wait
    while True:
        for event in reader.poll():
            if int(event.args["id"]) == request.id:
                return event
        if time.monotonic() >= deadline:
            return None
        time.sleep(_POLL_S)  # polling the chain for an event, with a deadline


def _verify(
    chain: Chain, tx: Transactor, client: AgentClient, request: RequestInfo, event: ChainEvent
) -> dict[str, Any]:
    worker = to_checksum_address(str(event.args["worker"]))
    output = bytes(event.args["output"])
    measurement = client.measurement()
    registry = str(tx.call(client.contract.functions.registry()))
    registry_contract = tx.contract("WorkerRegistry", registry)
    registered = bool(tx.call(registry_contract.functions.isRegistered(worker, measurement)))
    signature = _fulfil_signature(chain, client, event)
    recovered: str | None = None
    if signature is not None:
        message = fulfillment_message(
            chain_id=chain.chain_id,
            agent=client.address,
            request_id=request.id,
            input_hash=request.input_hash,
            output_hash=keccak(output),
        )
        try:
            recovered = str(Account.recover_message(message, signature=signature))
        except (ValueError, TypeError):
            recovered = None
    signature_valid = recovered is not None and recovered.lower() == worker.lower()
    return {
        "agent": client.address,
        "request_id": request.id,
        "fee": request.fee,
        "worker": worker,
        "registry": registry,
        "measurement": "0x" + measurement.hex(),
        "registered": registered,
        "signature_valid": signature_valid,
        "recovered": recovered,
        "fulfil_tx": "0x" + event.tx_hash.removeprefix("0x"),
        "verified": registered and signature_valid,
    }


def _fulfil_signature(chain: Chain, client: AgentClient, event: ChainEvent) -> bytes | None:
    """The worker's signature, from the calldata of the transaction that emitted `event`
    (`fulfill` or `fulfillBatch` sent straight to the agent); None when it cannot be read."""
    tx = chain.w3.eth.get_transaction(event.tx_hash)  # type: ignore[arg-type]
    try:
        fn, params = client.contract.decode_function_input(tx["input"])
    except ValueError:
        return None
    if fn.fn_name == "fulfill":
        return bytes(params["signature"])
    if fn.fn_name == "fulfillBatch":
        for item in params["items"]:
            values = list(item.values()) if isinstance(item, dict) else list(item)
            if int(values[0]) == int(event.args["id"]):
                return bytes(values[3])
    return None


def _stack_addresses(
    factory: str | None, registry: str | None, deployment: Path | None
) -> tuple[str, str]:
    if deployment is not None:
        if factory is not None or registry is not None:
            raise BadInputError("bad_usage", "pass --deployment or --factory/--registry, not both")
        try:
            doc = json.loads(deployment.read_text())
            loaded = Deployment(doc["verifier"], doc["registry"], doc["factory"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise BadInputError(
                "bad_input", f"cannot read deployment file {deployment}: {exc}"
            ) from None
        factory, registry = loaded.factory, loaded.registry
    if factory is None or registry is None:
        raise BadInputError("bad_usage", "pass --deployment FILE, or both --factory and --registry")
    return _address(factory, "factory"), _address(registry, "registry")


def _address(value: str, what: str) -> ChecksumAddress:
    if not is_address(value):
        raise BadInputError("bad_input", f"{what}: {value!r} is not an address")
    return to_checksum_address(value)


def _read_input(text: str) -> bytes:
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text()
        except OSError as exc:
            raise BadInputError("bad_input", f"cannot read {text[1:]}: {exc.strerror}") from None
    try:
        return dump_canonical(json.loads(text))
    except ValueError as exc:
        raise BadInputError("bad_input", f"--input is not JSON: {exc}") from None


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text)
    except OSError as exc:
        raise BadInputError("bad_input", f"cannot write {path}: {exc.strerror}") from None


def _emit(as_json: bool, doc: dict[str, Any]) -> None:
    if as_json:
        print(json.dumps(doc, sort_keys=True))
    else:
        width = max(map(len, doc))
        for key, value in doc.items():
            print(f"{key:<{width}}  {value}")


def _rejected(as_json: bool, code: str, message: str, fields: dict[str, Any]) -> NoReturn:
    if as_json:
        print(json.dumps({**fields, "error": {"code": code, "message": message}}, sort_keys=True))
    else:
        Console(stderr=True, highlight=False).print(f"[bold red]error[/] ({code}): {message}")
    raise typer.Exit(EXIT_REJECTED)


def _reverted(as_json: bool, exc: RevertError) -> NoReturn:
    """A revert is a rejection (exit 1), named by the contract's custom error."""
    name = exc.error_name or "reverted"
    _rejected(as_json, exc.code, exc.message, {"revert": name})
