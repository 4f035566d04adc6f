"""CCEL boot event logs: the real TDX samples replay to the RTMR values their README gives, edits
to the log change the replayed value of the RTMR they touch, and malformed bytes raise only
`EventLogError`."""

from __future__ import annotations

import contextlib
import hashlib
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attestation.ccel import EV_NO_ACTION, SHA384, CcelEvent, CcelLog, parse_ccel
from attestation.errors import EventLogError
from attestation.eventlog import RuntimeEvent, check_rtmrs, replay

SAMPLES = Path(__file__).parents[1] / "data" / "eventlog-samples"
ZERO = "00" * 48
# RTMR0..3 per file, copied from tests/data/eventlog-samples/README.md.
EXPECTED = {
    "trustee_CCEL_data_ovmf.bin": (
        "8566f998798db09443b244c62de9a3041fb02e2e6936c4396d784bba2e90177329ec5aba3bb484404f2ab9cc90abe193",
        "775b9f6bfe99f8a31396f0d0218e67ffa796d3b96ccf961cbb0deba48c79c00f082cda1a5567c1c16305f1fc210c13c6",
        "94eaf7a7bf398ed8d888c91057ae0261802e4f3df084213a76ca7f0b5055ac9d2241de43cd58d9e8b49c503bbf25f34a",
        ZERO,
    ),
    "trustee_CCEL_data_grub.bin": (
        "cec0a104f691f60da2387fea3c2de00c4ac035e2bb479ff02edcce69039d9e9907f0b3e55031da3dc7038f423adebd79",
        "6c289e0c62182d41ebe97bdbc9872d10998a08eaa86adcdc684001a363207ee72942c7522cdf00a4bbc3d784bed7b670",
        "08919d017ba0e52cd6d966351c7de16fe76c1d3d3d3da4554239e4c7d16cb8b82a94e7eaea3a0e6e18eb690b999fd31e",
        ZERO,
    ),
    "trustee_CCEL_data_gcp.bin": (
        "3300980705adf09d28b707b79699d9874892164280832be2c386a715b6e204e0897fb564a064f810659207ba862b304f",
        "204d49f78d29918fe7b2f694e76653861a0c2a018987d2c3a54266eff737232524cf0af68c4d180e2f8c2c0937f21967",
        ZERO,
        ZERO,
    ),
    "trustee_CCEL_data_grub_gke.bin": (
        "bc9945139042cf2cc75caf920aa57f14884ecfd7e893bccc51250c8ce90eb53ce72741e6adaa18183eb1331a87d4544a",
        "c17cb288a4dee302bb9ed8d27257a168f3264ad68cab53757f37eeaa7039657fa887cad65cf910e0fdc435ff110f8a7b",
        "334aeba2c985f8886cea97d1ecffbd512769d528b9a94009583db667ad7d2faa7d37fa145d75b192ceee2d2f10b2eb6d",
        ZERO,
    ),
}
FILES = sorted(EXPECTED)
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def rtmrs(name: str) -> list[bytes]:
    return [bytes.fromhex(value) for value in EXPECTED[name]]


def events_of(data: bytes) -> tuple[RuntimeEvent, ...]:
    return parse_ccel(data).rtmr_events()


def span(log: CcelLog, event: CcelEvent) -> tuple[int, int]:
    """Where `event`'s record lies in the area (it ends where the next one starts)."""
    index = log.events.index(event)
    if index + 1 < len(log.events):
        return event.offset, log.events[index + 1].offset
    return event.offset, event.offset + 12 + len(event.digests) * 50 + 4 + len(event.data)


def extended(log: CcelLog) -> list[CcelEvent]:
    return [e for e in log.events if e.rtmr is not None]


# --- a small writer for synthetic logs --------------------------------------------------------


def spec_id_event(algorithms: list[tuple[int, int]], *, event_type: int = EV_NO_ACTION) -> bytes:
    body = b"Spec ID Event03\x00" + struct.pack("<IBBBBI", 0, 0, 2, 0, 2, len(algorithms))
    body += b"".join(struct.pack("<HH", alg, size) for alg, size in algorithms) + b"\x00"
    return struct.pack("<II", 1, event_type) + bytes(20) + struct.pack("<I", len(body)) + body


def pcr_event2(mr: int, event_type: int, digests: list[tuple[int, bytes]], data: bytes) -> bytes:
    out = struct.pack("<III", mr, event_type, len(digests))
    out += b"".join(struct.pack("<H", alg) + digest for alg, digest in digests)
    return out + struct.pack("<I", len(data)) + data


def sha384_event(mr: int, data: bytes, event_type: int = 0x0D) -> bytes:
    return pcr_event2(mr, event_type, [(SHA384, hashlib.sha384(data).digest())], data)


SHA384_ONLY = spec_id_event([(SHA384, 48)])


# --- the samples --------------------------------------------------------------------------------


def test_every_sample_file_has_expected_values() -> None:
    assert {p.name for p in SAMPLES.glob("*.bin")} == set(EXPECTED)


@pytest.mark.parametrize("name", FILES)
def test_sample_replays_to_readme_rtmrs(name: str) -> None:
    events = events_of(sample(name))
    assert [r.hex() for r in replay(events)] == list(EXPECTED[name])
    check_rtmrs(events, rtmrs(name))


@pytest.mark.parametrize("name", FILES)
def test_sample_header_declares_sha384(name: str) -> None:
    log = parse_ccel(sample(name))
    assert log.header.digest_sizes == ((SHA384, 48),)
    assert log.header.spec_version == (2, 0, 0)
    assert all(e.digests[0][0] == SHA384 for e in log.events)


def test_mrtd_and_no_action_events_are_kept_but_not_extended() -> None:
    log = parse_ccel(sample("trustee_CCEL_data_grub_gke.bin"))
    skipped = [e for e in log.events if e.rtmr is None]
    assert [(e.mr_index, e.event_type) for e in skipped] == [(0, EV_NO_ACTION)] * 2
    assert len(log.rtmr_events()) == len(log.events) - 2


@pytest.mark.parametrize("name", FILES)
def test_padding_and_unpadded_end_give_the_same_log(name: str) -> None:
    data = sample(name)
    log = parse_ccel(data)
    end = span(log, log.events[-1])[1]
    assert set(data[end:]) == {0xFF}
    assert parse_ccel(data[:end]) == log
    assert parse_ccel(data[:end] + bytes(4096)) == log
    assert parse_ccel(data[:end] + b"\xff\xff") == log


# --- edits change the replayed value of the RTMR they touch ----------------------------------


@pytest.mark.parametrize("name", FILES)
def test_edited_digest_byte_names_its_rtmr(name: str) -> None:
    log = parse_ccel(sample(name))
    for event in extended(log):
        data = bytearray(sample(name))
        data[event.offset + 12 + 2 + 47] ^= 0x01  # last byte of the SHA-384 digest
        with pytest.raises(EventLogError, match=rf"^RTMR{event.rtmr}: "):
            check_rtmrs(events_of(bytes(data)), rtmrs(name))


@pytest.mark.parametrize("name", FILES)
def test_dropped_event_names_its_rtmr(name: str) -> None:
    data = sample(name)
    log = parse_ccel(data)
    for event in extended(log):
        start, end = span(log, event)
        with pytest.raises(EventLogError, match=rf"^RTMR{event.rtmr}: "):
            check_rtmrs(events_of(data[:start] + data[end:]), rtmrs(name))


@pytest.mark.parametrize("name", FILES)
def test_reordered_events_name_their_rtmr(name: str) -> None:
    data = sample(name)
    log = parse_ccel(data)
    events = extended(log)
    pairs = [
        (a, b)
        for i, a in enumerate(events)
        for b in events[i + 1 :]
        if a.rtmr == b.rtmr and a.digest() != b.digest()
    ]
    assert pairs
    for a, b in pairs:
        (a0, a1), (b0, b1) = span(log, a), span(log, b)
        swapped = data[:a0] + data[b0:b1] + data[a1:b0] + data[a0:a1] + data[b1:]
        with pytest.raises(EventLogError, match=rf"^RTMR{a.rtmr}: "):
            check_rtmrs(events_of(swapped), rtmrs(name))


def test_edits_to_unextended_events_leave_rtmrs_alone() -> None:
    name = "trustee_CCEL_data_grub_gke.bin"
    log = parse_ccel(sample(name))
    data = bytearray(sample(name))
    for event in log.events:
        if event.rtmr is None:
            data[event.offset + 14] ^= 0xFF
    check_rtmrs(events_of(bytes(data)), rtmrs(name))


def test_runtime_events_continue_from_boot_values() -> None:
    name = "trustee_CCEL_data_grub.bin"
    boot = replay(events_of(sample(name)))
    runtime = [RuntimeEvent.create("app-id", b"\x01" * 20), RuntimeEvent.create("x", b"y")]
    rtmr3 = hashlib.sha384(bytes(48) + runtime[0].digest).digest()
    rtmr3 = hashlib.sha384(rtmr3 + runtime[1].digest).digest()
    check_rtmrs(runtime, [*boot[:3], rtmr3], initial=boot)
    with pytest.raises(EventLogError, match=r"^RTMR3: "):
        check_rtmrs(runtime[:1], [*boot[:3], rtmr3], initial=boot)


# --- malformed logs ---------------------------------------------------------------------------


def test_synthetic_log_replays() -> None:
    data = SHA384_ONLY + sha384_event(1, b"a") + sha384_event(4, b"b") + b"\xff" * 64
    digest_a, digest_b = hashlib.sha384(b"a").digest(), hashlib.sha384(b"b").digest()
    expected = [hashlib.sha384(bytes(48) + digest_a).digest(), bytes(48), bytes(48)]
    expected.append(hashlib.sha384(bytes(48) + digest_b).digest())
    check_rtmrs(events_of(data), expected)


@pytest.mark.parametrize("cut", [0, 3, 4, 8, 27, 28, 31, 32, 47, 60, 64])
def test_truncated_header_names_the_offset(cut: int) -> None:
    with pytest.raises(EventLogError, match=r"offset \d+"):
        parse_ccel(SHA384_ONLY[:cut])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (SHA384_ONLY + struct.pack("<IIII", 1, 0x0D, 0xFFFF_FFFF, 0), "digest count at offset 73"),
        (SHA384_ONLY + struct.pack("<III", 1, 0x0D, 2), "digest count at offset 73"),
        (
            SHA384_ONLY + pcr_event2(1, 0x0D, [(0x000B, bytes(48))], b""),
            "algorithm id at offset 77",
        ),
        (SHA384_ONLY + sha384_event(1, b"xy")[:-1], "event data at offset 131"),
        (SHA384_ONLY + sha384_event(1, b"")[:-4] + b"\xff\xff\xff\x7f", "event data at offset 131"),
        (SHA384_ONLY + sha384_event(1, b"")[:40], "digest 0x000c at offset 79"),
        (SHA384_ONLY + sha384_event(5, b""), "MR index at offset 65"),
        (SHA384_ONLY + sha384_event(0xFFFF_FFFE, b""), "MR index at offset 65"),
        (spec_id_event([(SHA384, 48)], event_type=0x0D), "header event type at offset 4"),
        (SHA384_ONLY.replace(b"Event03", b"Event02"), "Spec ID signature at offset 32"),
        (spec_id_event([(SHA384, 32)]), "digest size at offset 60"),
        (spec_id_event([(SHA384, 48), (SHA384, 48)]), "digest size table at offset 68"),
        (spec_id_event([]), "number of algorithms at offset 56"),
        (SHA384_ONLY[:28] + b"\x22" + SHA384_ONLY[29:] + b"\0", "Spec ID event at offset 65"),
    ],
)
def test_malformed_log_names_the_offset(data: bytes, message: str) -> None:
    with pytest.raises(EventLogError, match=message):
        parse_ccel(data)


def test_huge_algorithm_count_is_rejected() -> None:
    data = bytearray(SHA384_ONLY)
    data[56:60] = struct.pack("<I", 0x4000_0000)
    with pytest.raises(EventLogError, match=r"number of algorithms at offset 56"):
        parse_ccel(bytes(data))


def test_extended_event_without_sha384_cannot_be_replayed() -> None:
    header = spec_id_event([(SHA384, 48), (0x000B, 32)])
    data = header + pcr_event2(2, 0x0D, [(0x000B, bytes(32))], b"")
    log = parse_ccel(data)
    assert log.events[0].digests == ((0x000B, bytes(32)),)
    with pytest.raises(EventLogError, match=rf"event at offset {len(header)}: .* 0x000c"):
        log.rtmr_events()


# --- property: whatever the bytes, a log or an EventLogError ----------------------------------


def parse_and_replay(data: bytes) -> None:
    with contextlib.suppress(EventLogError):
        replay(parse_ccel(data).rtmr_events())


@FUZZ
@given(st.binary(max_size=512))
def test_garbage_raises_only_event_log_error(data: bytes) -> None:
    parse_and_replay(data)


@FUZZ
@given(st.binary(max_size=512))
def test_garbage_after_a_valid_header_raises_only_event_log_error(tail: bytes) -> None:
    parse_and_replay(SHA384_ONLY + tail)


@st.composite
def mutated_samples(draw: st.DrawFn) -> bytes:
    data = bytearray(sample(draw(st.sampled_from(FILES)))[:24_000])
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data) - 1))
        kind = draw(st.sampled_from(("flip", "u32", "truncate", "delete", "insert")))
        if kind == "flip":
            data[at] ^= draw(st.integers(1, 255))
        elif kind == "u32":
            value = draw(st.sampled_from((0, 1, 5, 0xFFFF, 0x7FFF_FFFF, 0xFFFF_FFFF)))
            data[at : at + 4] = struct.pack("<I", value)
        elif kind == "truncate":
            del data[at:]
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 64))]
        else:
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        if not data:
            break
    return bytes(data)


@FUZZ
@given(mutated_samples())
def test_mutated_samples_raise_only_event_log_error(data: bytes) -> None:
    parse_and_replay(data)
