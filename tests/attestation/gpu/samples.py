"""The real H100 samples (copied byte for byte from ../shared/gpu-samples) and what their README
says about them, at a pinned time inside every certificate's validity (2022-03-01 .. 9999)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SAMPLES = Path(__file__).parents[2] / "data" / "gpu-samples"
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)

REPORT_NONCE = bytes.fromhex("931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb")
REPORT_FWID = bytes.fromhex(
    "f5c384aebb579217a2c66b17ed0f28e6a9b8d639041acd7b"
    "4721cec004f7275494ba94bb5cdfdb3055ee051762b1f75d"
)
# What trustee's test passes as expected report data for the CoCo report (48 bytes).
COCO_REPORT_DATA = bytes.fromhex(
    "87d8e24ab336adafe228d49e83d745f6dba4ae505372b6a5704820856b343fec"
    "e279b616efefc2aae21da80cf5581250"
)


def report(name: str = "trustee_hopperAttestationReport.txt") -> bytes:
    return bytes.fromhex((SAMPLES / name).read_text().strip())


def coco_report() -> bytes:
    return report("trustee_hopper_coco_report1.txt")


def chain(case: int) -> bytes:
    return (SAMPLES / f"trustee_hopper_cert_chain_case{case}.txt").read_bytes()


def coco_chain() -> bytes:
    return (SAMPLES / "trustee_hopper_coco_certs1.txt").read_bytes()


def claims() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(
        (SAMPLES / "trustee_hopperAttestationReport-claims.txt").read_text()
    )
    return doc
