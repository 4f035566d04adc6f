"""The OpenAPI schema: FastAPI's, plus POST /v1/verify.

The verify endpoint reads and parses its body itself (size cap first, then `safejson`), so
FastAPI cannot infer its request and response; they are documented here from the pydantic
models that validate them.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from attestation.service.models import VerifyRequest, VerifyResponse

__all__ = ["service_openapi"]

_ERRORS = {
    "400": "malformed request",
    "404": "unknown policy",
    "413": "body, quote or event log too large",
    "422": "the request does not fit the schema",
    "503": "collateral unavailable or expired",
}


def _schema_ref(name: str, description: str) -> dict[str, Any]:
    content = {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}
    return {"description": description, "content": content}


def service_openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema, plus POST /v1/verify (a plain Starlette endpoint, so not inferred)."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        template = "#/components/schemas/{model}"
        for name, doc in (
            ("VerifyRequest", VerifyRequest.model_json_schema(ref_template=template)),
            ("VerifyResponse", VerifyResponse.model_json_schema(ref_template=template)),
        ):
            components.update(doc.pop("$defs", {}))
            components[name] = doc
        responses = {"200": _schema_ref("VerifyResponse", "the explained verdict")}
        responses |= {code: _schema_ref("ErrorResponse", text) for code, text in _ERRORS.items()}
        schema["paths"]["/v1/verify"] = {
            "post": {
                "summary": "Verify a quote (and event log) under a policy",
                "operationId": "verify",
                "requestBody": {"required": True, **_schema_ref("VerifyRequest", "evidence")},
                "responses": responses,
            }
        }
        app.openapi_schema = schema
    return app.openapi_schema
