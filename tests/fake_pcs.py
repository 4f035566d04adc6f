"""A fake Intel PCS / PCCS (API v4): a real HTTP server on 127.0.0.1 serving the sample
collateral with the real response layout and headers (bodies, URL-encoded issuer chains)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote as urlquote

import pytest

from tests.samples import Sample

V4 = "certification/v4"
Response = tuple[int, dict[str, str], bytes]


@dataclass
class FakePcs:
    """Routes (path with query, exactly) to canned responses; records every request path."""

    base_url: str = ""
    routes: dict[str, Response] = field(default_factory=dict)
    seen: list[str] = field(default_factory=list)

    def handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake.seen.append(self.path)
                status, headers, body = fake.routes.get(self.path, (404, {}, b"not found"))
                self.send_response(status)
                for name, value in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler

    def serve(self, sample: Sample, tee: str, fmspc: str, ca: str) -> None:
        """Serve `sample`'s collateral as Intel PCS v4 / a PCCS would for this platform."""
        c = sample.collateral
        self.routes.update(
            {
                f"/sgx/{V4}/pckcrl?ca={ca}&encoding=der": (
                    200,
                    {"SGX-PCK-CRL-Issuer-Chain": urlquote(c.pck_crl_issuer_chain)},
                    c.pck_crl,
                ),
                f"/{tee}/{V4}/tcb?fmspc={fmspc}": (
                    200,
                    {"TCB-Info-Issuer-Chain": urlquote(c.tcb_info_issuer_chain)},
                    signed_body("tcbInfo", c.tcb_info, c.tcb_info_signature),
                ),
                f"/{tee}/{V4}/qe/identity": (
                    200,
                    {"SGX-Enclave-Identity-Issuer-Chain": urlquote(c.qe_identity_issuer_chain)},
                    signed_body("enclaveIdentity", c.qe_identity, c.qe_identity_signature),
                ),
                f"/sgx/{V4}/rootcacrl": (200, {}, c.root_ca_crl),
            }
        )

    def expected_paths(self, tee: str, fmspc: str, ca: str) -> list[str]:
        return [
            f"/sgx/{V4}/pckcrl?ca={ca}&encoding=der",
            f"/{tee}/{V4}/tcb?fmspc={fmspc}",
            f"/{tee}/{V4}/qe/identity",
            f"/sgx/{V4}/rootcacrl",
        ]


def signed_body(name: str, text: str, signature: bytes) -> bytes:
    return f'{{"{name}":{text},"signature":"{signature.hex()}"}}'.encode()


@pytest.fixture
def pcs() -> Iterator[FakePcs]:
    fake = FakePcs()
    server = ThreadingHTTPServer(("127.0.0.1", 0), fake.handler())
    fake.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()
    thread.join()
