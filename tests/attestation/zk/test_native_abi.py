"""ABI tests of the ctypes binding `attestation.zk.native` — marshalling, not RISC Zero.

The library under test is `abi_stub.c`, a fake implementation of `native/enclava_r0.h` compiled
here with the system C compiler. It proves nothing: its "seal" is a deterministic function of
the image ID and journal, so these tests check that bytes, lengths, out-pointers, status codes,
error buffers and ownership cross the ABI as the header says — and that loading refuses what it
must. The real library (`native/`, over risc0-zkvm) cannot be built on this machine.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from attestation.zk.errors import (
    ImageIdMismatchError,
    ProofInvalidError,
    ReceiptFormatError,
    SelectorMismatchError,
    ZkError,
)
from attestation.zk.native import (
    LIBRARY_ENV,
    NativeAbiMismatchError,
    NativeLibrary,
    NativeLibraryError,
    NativeLibraryUnavailableError,
    NativeParametersError,
    NativeProveError,
    NativeVerifier,
    PurePythonVerifier,
    choose_verifier,
    load_native_library,
)
from attestation.zk.params import RISC0_274ECCAF, RISC0_V5
from attestation.zk.receipt import SEAL_SIZE, Receipt
from tests.attestation.zk.conftest import DCAP_IMAGE_ID

_HERE = Path(__file__).parent
_HEADER_DIR = _HERE.parents[2] / "native"
_COMPILER = shutil.which("cc") or shutil.which("gcc")
_ELF = b"\x7fELF" + bytes(range(60))

pytestmark = pytest.mark.skipif(
    _COMPILER is None, reason="no C compiler (cc/gcc) to build the ABI stub library"
)

Build = Callable[..., Path]


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Build:
    """Compile `abi_stub.c` with the given -D switches into a fresh shared library."""
    out_dir = tmp_path_factory.mktemp("abi_stub")
    built: dict[tuple[str, ...], Path] = {}

    def _build(*defines: str) -> Path:
        if defines not in built:
            target = out_dir / f"libstub{len(built)}.so"
            command = [str(_COMPILER), "-std=c11", "-Wall", "-Wextra", "-shared"]
            command += ["-fPIC", f"-I{_HEADER_DIR}", *defines, "-o", str(target)]
            subprocess.run([*command, str(_HERE / "abi_stub.c")], check=True)
            built[defines] = target
        return built[defines]

    return _build


@pytest.fixture(scope="module")
def library(build: Build) -> NativeLibrary:
    return load_native_library(build())


@pytest.fixture(scope="module")
def v5_library(build: Build) -> NativeLibrary:
    """The stub, claiming RISC0_V5's verifier parameters (so its seals carry selector c27d1bc0)."""
    digest = "".join(f"\\x{b:02x}" for b in RISC0_V5.digest)
    return load_native_library(build(f'-DSTUB_PARAMETERS="{digest}"'))


def stub_image_id(elf: bytes) -> bytes:
    return bytes(elf[i % len(elf)] ^ ((37 * i) & 0xFF) for i in range(32))


def stub_seal(image_id: bytes, journal: bytes, selector: bytes = b"STUB") -> bytes:
    """The seal abi_stub.c makes: selector, image ID, journal length, xor-fold of the journal."""
    padded = np.frombuffer(journal + bytes(-len(journal) % 32), dtype=np.uint8)
    fold = np.bitwise_xor.reduce(padded.reshape(-1, 32), axis=0) if padded.size else bytes(32)
    head = selector + image_id + len(journal).to_bytes(8, "little") + bytes(fold)
    return head + bytes(SEAL_SIZE - len(head))


def allocation_counters(path: Path) -> tuple[int, int]:
    """(receipts handed out and not yet freed, frees whose length did not match)."""
    stub = ctypes.CDLL(str(path))
    stub.stub_live_allocations.restype = ctypes.c_long
    stub.stub_bad_frees.restype = ctypes.c_long
    return stub.stub_live_allocations(), stub.stub_bad_frees()


# --- prove: bytes in, owned receipt out, freed with its length -----------------------------


def test_prove_returns_the_receipt_and_image_id_the_library_wrote(
    library: NativeLibrary, build: Build
) -> None:
    proved = library.prove(_ELF, b"hello, zkVM")
    assert proved.image_id == stub_image_id(_ELF)
    assert proved.journal == b"hello, zkVM"
    assert proved.seal == stub_seal(stub_image_id(_ELF), b"hello, zkVM")
    assert allocation_counters(build()) == (0, 0)


def test_prove_with_empty_stdin_returns_a_bare_seal(library: NativeLibrary) -> None:
    proved = library.prove(_ELF)
    assert proved.journal == b""
    assert proved.seal == stub_seal(stub_image_id(_ELF), b"")


def test_prove_and_verify_round_trip_a_16_mib_journal(library: NativeLibrary, build: Build) -> None:
    journal = bytes(range(256)) * (64 * 1024) + b"tail"
    proved = library.prove(_ELF, journal)
    assert proved.journal == journal
    assert proved.seal == stub_seal(proved.image_id, journal)
    library.verify(proved.seal + proved.journal, proved.image_id)
    assert allocation_counters(build()) == (0, 0)


def test_prove_with_an_empty_elf_is_a_prove_error(library: NativeLibrary) -> None:
    with pytest.raises(NativeProveError, match="ELF is empty") as caught:
        library.prove(b"", b"input")
    assert caught.value.code == "native_prove_failed"


def test_prove_failure_carries_the_librarys_message(library: NativeLibrary, build: Build) -> None:
    with pytest.raises(NativeProveError, match="exited with code 1 after 3 input bytes"):
        library.prove(b"FAIL" + _ELF, b"abc")
    assert allocation_counters(build()) == (0, 0)


# --- verify: status codes and error buffers --------------------------------------------------


def test_verify_accepts_the_receipt_prove_made(library: NativeLibrary) -> None:
    proved = library.prove(_ELF, b"journal")
    library.verify(proved.seal + proved.journal, proved.image_id)


def test_verify_rejects_one_changed_journal_byte(library: NativeLibrary) -> None:
    proved = library.prove(_ELF, b"journal")
    with pytest.raises(ProofInvalidError, match="does not match") as caught:
        library.verify(proved.seal + b"Journal", proved.image_id)
    assert caught.value.code == "groth16_invalid"


def test_verify_rejects_another_image_id(library: NativeLibrary) -> None:
    proved = library.prove(_ELF, b"journal")
    with pytest.raises(ProofInvalidError):
        library.verify(proved.seal + proved.journal, stub_image_id(b"other program"))


def test_verify_maps_a_foreign_selector_to_selector_mismatch(library: NativeLibrary) -> None:
    receipt = stub_seal(bytes(32), b"", selector=b"\xc2\x7d\x1b\xc0")
    with pytest.raises(SelectorMismatchError, match="selector c27d1bc0 is not the stub's"):
        library.verify(receipt, bytes(32))


@pytest.mark.parametrize("length", [0, 1, SEAL_SIZE - 1])
def test_verify_rejects_a_receipt_shorter_than_a_seal(library: NativeLibrary, length: int) -> None:
    with pytest.raises(ReceiptFormatError, match=f"receipt is {length} bytes"):
        library.verify(b"S" * length, bytes(32))


def test_verify_checks_the_image_id_length_before_calling(library: NativeLibrary) -> None:
    with pytest.raises(ReceiptFormatError, match="image ID must be 32 bytes, got 31"):
        library.verify(stub_seal(bytes(32), b""), bytes(31))


def test_a_message_longer_than_the_error_buffer_is_truncated_not_overflowed(
    library: NativeLibrary,
) -> None:
    with pytest.raises(ProofInvalidError) as caught:
        library.verify(b"LONG" + bytes(SEAL_SIZE), bytes(32))
    assert caught.value.reason == "x" * 1023


def test_an_internal_failure_is_a_native_library_error(library: NativeLibrary) -> None:
    with pytest.raises(NativeLibraryError, match="failed internally: stub: simulated panic"):
        library.verify(b"OOPS" + bytes(SEAL_SIZE), bytes(32))


def test_an_unknown_status_is_a_native_library_error(library: NativeLibrary) -> None:
    with pytest.raises(NativeLibraryError, match="unknown status 99"):
        library.verify(b"WHAT" + bytes(SEAL_SIZE), bytes(32))


def test_concurrent_calls_each_get_their_own_answer(library: NativeLibrary) -> None:
    proved = [library.prove(_ELF, bytes([i]) * 1000) for i in range(16)]

    def outcome(i: int) -> str:
        journal = proved[i].journal if i % 2 else proved[i].journal[:-1] + b"!"
        try:
            library.verify(proved[i].seal + journal, proved[i].image_id)
        except ProofInvalidError as exc:
            return exc.reason
        return "ok"

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(outcome, range(16)))
    for i, result in enumerate(results):
        assert result == ("ok" if i % 2 else "stub: seal does not match image id and journal")


# --- loading: absent, foreign, other ABI ------------------------------------------------------


def test_an_absent_library_is_unavailable_with_an_explanation(tmp_path: Path) -> None:
    missing = tmp_path / "libenclava_r0.so"
    with pytest.raises(NativeLibraryUnavailableError) as caught:
        load_native_library(missing)
    assert caught.value.code == "native_library_unavailable"
    assert str(missing) in caught.value.message
    assert LIBRARY_ENV in caught.value.message
    assert "native/README.md" in caught.value.message


@pytest.mark.parametrize("path", [None, ""])
def test_no_configured_path_is_unavailable_and_names_the_variable(path: str | None) -> None:
    with pytest.raises(NativeLibraryUnavailableError, match=f"set {LIBRARY_ENV}"):
        load_native_library(path)


def test_a_file_that_is_not_a_shared_library_is_unavailable(tmp_path: Path) -> None:
    text = tmp_path / "libenclava_r0.so"
    text.write_text("not an ELF")
    with pytest.raises(NativeLibraryUnavailableError, match=r"cannot load .* as a shared library"):
        load_native_library(text)


def test_a_library_of_another_abi_version_is_refused(build: Build) -> None:
    with pytest.raises(NativeAbiMismatchError, match="implements ABI version 2") as caught:
        load_native_library(build("-DSTUB_ABI_VERSION=2"))
    assert caught.value.code == "native_abi_mismatch"


def test_a_library_missing_a_function_is_refused(build: Build) -> None:
    with pytest.raises(NativeAbiMismatchError, match="has no function r0_prove"):
        load_native_library(build("-DSTUB_WITHOUT_PROVE"))


def test_loading_reads_the_librarys_verifier_parameters(
    library: NativeLibrary, v5_library: NativeLibrary
) -> None:
    assert library.parameters_digest == b"STUB parameters, 32 bytes long.."
    assert v5_library.parameters_digest == RISC0_V5.digest


def test_native_library_errors_are_zk_errors() -> None:
    with pytest.raises(ZkError):
        load_native_library(None)


# --- choosing a verifier -----------------------------------------------------------------------


def test_choose_falls_back_to_pure_python_with_the_typed_reason(tmp_path: Path) -> None:
    choice = choose_verifier(tmp_path / "absent.so", parameter_sets=(RISC0_274ECCAF,))
    assert not choice.native
    assert choice.verifier == PurePythonVerifier((RISC0_274ECCAF,))
    assert isinstance(choice.native_unavailable, NativeLibraryUnavailableError)


def test_choose_falls_back_on_a_library_of_another_abi(build: Build) -> None:
    choice = choose_verifier(build("-DSTUB_ABI_VERSION=2"))
    assert isinstance(choice.verifier, PurePythonVerifier)
    assert isinstance(choice.native_unavailable, NativeAbiMismatchError)


def test_choose_falls_back_when_the_librarys_parameters_are_not_accepted(build: Build) -> None:
    choice = choose_verifier(build())
    assert isinstance(choice.verifier, PurePythonVerifier)
    assert isinstance(choice.native_unavailable, NativeParametersError)
    assert choice.native_unavailable.code == "native_parameters_unaccepted"
    message = choice.native_unavailable.message
    assert f"parameters {b'STUB parameters, 32 bytes long..'.hex()}, none of" in message
    assert "(selectors c27d1bc0, 73c457ba)" in message


def test_choose_takes_the_native_verifier_when_the_library_loads(
    v5_library: NativeLibrary,
) -> None:
    choice = choose_verifier(v5_library.path)
    assert choice.native
    assert isinstance(choice.verifier, NativeVerifier)
    assert choice.verifier.library.parameters_digest == RISC0_V5.digest


def test_native_verifier_passes_seal_and_journal_and_names_the_parameters(
    v5_library: NativeLibrary,
) -> None:
    # The stub's seal is no Groth16 proof: only the native path can accept it.
    receipt = v5_library.prove(_ELF, b"verified output").to_receipt()
    assert receipt.selector == RISC0_V5.selector
    verified = NativeVerifier(v5_library).verify(receipt, image_id=receipt.image_id)
    assert verified.parameters == RISC0_V5
    assert verified.journal == b"verified output"
    assert verified.claim_digest == receipt.claim.digest()
    tampered = Receipt(receipt.seal, receipt.image_id, b"verified outpuT")
    with pytest.raises(ProofInvalidError, match=r"^receipt\.native: stub: seal does not match"):
        NativeVerifier(v5_library).verify(tampered, image_id=receipt.image_id)


def test_native_verifier_sends_other_accepted_parameters_to_pure_python(
    v5_library: NativeLibrary, dcap_receipt: Receipt
) -> None:
    verified = NativeVerifier(v5_library).verify(dcap_receipt, image_id=DCAP_IMAGE_ID)
    assert verified.parameters == RISC0_274ECCAF
    assert verified.journal == dcap_receipt.journal


def test_native_verifier_checks_the_pinned_image_id_first(v5_library: NativeLibrary) -> None:
    receipt = v5_library.prove(_ELF, b"x").to_receipt()
    with pytest.raises(ImageIdMismatchError):
        NativeVerifier(v5_library).verify(receipt, image_id=bytes(32))


def test_native_verifier_refuses_a_selector_outside_its_parameter_sets(
    library: NativeLibrary,
) -> None:
    receipt = library.prove(_ELF, b"x").to_receipt()
    with pytest.raises(SelectorMismatchError, match="selector 53545542 is not one of"):
        NativeVerifier(library).verify(receipt, image_id=receipt.image_id)
