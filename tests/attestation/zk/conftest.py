"""The two real RISC Zero Groth16 receipts (tests/data/zk-samples, copied from shared/zk-samples)
and their verifications, done once per session: one pairing costs about half a second."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from attestation import TrustAnchor
from attestation.zk import Receipt, VerifiedDcapReceipt, VerifiedReceipt, verify_receipt
from attestation.zk.verdict import verify_dcap_receipt

ZK_SAMPLES = Path(__file__).parents[2] / "data" / "zk-samples"
DCAP_IMAGE_ID = bytes.fromhex("cc80dc6c1c1f8bc524101b72b3900301dc87887457c8fcaf552e45e2a02b9695")
V5_IMAGE_ID = bytes.fromhex("51350de41e575076bf180dbe2efb38edc25b32e47195a92b2c05850457e457a0")
#: Automata's test pins this time (June 5th 2025, 03:45 UTC); the journal says the same.
DCAP_VERIFIED_AT = datetime.fromtimestamp(1749095100, UTC)
NOW = datetime(2025, 6, 6, tzinfo=UTC)


def load_receipt(name: str) -> Receipt:
    return Receipt.from_json((ZK_SAMPLES / name).read_text())


@pytest.fixture(scope="session")
def dcap_receipt() -> Receipt:
    return load_receipt("automata_dcap_risc0_receipt.json")


@pytest.fixture(scope="session")
def v5_receipt() -> Receipt:
    return load_receipt("risc0_groth16_receipt_v5.json")


@pytest.fixture(scope="session")
def verified_v5(v5_receipt: Receipt) -> VerifiedReceipt:
    return verify_receipt(v5_receipt, image_id=V5_IMAGE_ID)


@pytest.fixture(scope="session")
def verified_dcap(dcap_receipt: Receipt) -> VerifiedDcapReceipt:
    return verify_dcap_receipt(
        dcap_receipt, image_id=DCAP_IMAGE_ID, now=NOW, trust_anchor=TrustAnchor.intel()
    )
