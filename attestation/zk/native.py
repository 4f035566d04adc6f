"""The ctypes binding to the optional native RISC Zero library (`libenclava_r0.so`).

The library implements the C ABI of `native/enclava_r0.h` (read it for the contract): RISC
Zero's own Groth16 verifier and prover, built from `native/` where Rust crates can be fetched.
Nothing here is required: when no library is configured, or it cannot be loaded, or it speaks
another ABI version, `choose_verifier` returns the pure-Python verifier (`verify_receipt`) and
says why in a typed error. Nothing is loaded at import time and no handle is kept globally: the
caller passes the library's path (the CLI reads it from `ENCLAVA_R0_LIBRARY`) and holds the
loaded `NativeLibrary` for as long as it wants it.

Receipt bytes across the ABI are `seal (260 bytes) || journal`, the seal exactly as in
`Receipt.seal` (selector + Groth16 proof) — so a `Receipt` crosses with no re-encoding.

    NativeLibraryError (a ZkError)        the native library cannot be used or failed
    ├── NativeLibraryUnavailableError     no path configured, no file there, or dlopen failed
    ├── NativeAbiMismatchError            another ABI version, or a symbol of the ABI missing
    ├── NativeParametersError             the library verifies under parameters we do not accept
    └── NativeProveError                  the library could not prove (bad ELF, guest failed)

A receipt the library rejects raises the same errors as the pure-Python verifier:
`ReceiptFormatError`, `SelectorMismatchError`, `ProofInvalidError`.
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Protocol

from attestation.zk.errors import (
    ImageIdMismatchError,
    ProofInvalidError,
    ReceiptFormatError,
    SelectorMismatchError,
    ZkError,
)
from attestation.zk.groth16 import VerifiedReceipt, verify_receipt
from attestation.zk.params import PARAMETER_SETS, VerifierParameters, parameters_for
from attestation.zk.receipt import DIGEST_SIZE, SEAL_SIZE, Receipt

__all__ = [
    "ABI_VERSION",
    "LIBRARY_ENV",
    "NativeAbiMismatchError",
    "NativeLibrary",
    "NativeLibraryError",
    "NativeLibraryUnavailableError",
    "NativeParametersError",
    "NativeProveError",
    "NativeVerifier",
    "ProvedReceipt",
    "PurePythonVerifier",
    "ReceiptVerifier",
    "VerifierChoice",
    "choose_verifier",
    "load_native_library",
]

#: `ENCLAVA_R0_ABI_VERSION` of `native/enclava_r0.h`; a library reporting another is refused.
ABI_VERSION = 1
#: The environment variable the CLI and settings read the library's path from (read there,
#: never here).
LIBRARY_ENV = "ENCLAVA_R0_LIBRARY"
_ERROR_CAPACITY = 1024
_CHECK = "receipt.native"
_BUILD_HINT = "build it from native/ (native/README.md)"


class NativeLibraryError(ZkError):
    """The native RISC Zero library cannot be used, or failed inside (a bug there)."""

    code = "native_library_error"


class NativeLibraryUnavailableError(NativeLibraryError):
    """No library is configured, none is at the path, or the dynamic loader refused it."""

    code = "native_library_unavailable"


class NativeAbiMismatchError(NativeLibraryError):
    """The file is a shared library but not one of this ABI version."""

    code = "native_abi_mismatch"


class NativeParametersError(NativeLibraryError):
    """The library's Groth16 verifier parameters are none of the accepted parameter sets."""

    code = "native_parameters_unaccepted"


class NativeProveError(NativeLibraryError, ValueError):
    """The library could not prove: the ELF does not load, the guest failed, or proving failed."""

    code = "native_prove_failed"


class _Status(IntEnum):
    """`enum r0_status` of the header."""

    OK = 0
    ARGUMENT = 1
    RECEIPT_FORMAT = 2
    SELECTOR = 3
    PROOF = 4
    PROVE = 5
    INTERNAL = 6


_U8_POINTER = ctypes.POINTER(ctypes.c_uint8)
_SIGNATURES: dict[str, tuple[type[ctypes.c_uint32 | ctypes.c_int32] | None, list[type]]] = {
    "r0_abi_version": (ctypes.c_uint32, []),
    "r0_verifier_parameters": (ctypes.c_int32, [ctypes.c_char_p]),
    "r0_verify": (
        ctypes.c_int32,
        [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t],
    ),
    "r0_prove": (
        ctypes.c_int32,
        [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.POINTER(_U8_POINTER),
            ctypes.POINTER(ctypes.c_size_t),
            ctypes.c_char_p,
            ctypes.c_char_p,
            ctypes.c_size_t,
        ],
    ),
    "r0_free": (None, [_U8_POINTER, ctypes.c_size_t]),
}


@dataclass(frozen=True, slots=True)
class ProvedReceipt:
    """What `r0_prove` returns: a Groth16 receipt of the run and the program's image ID."""

    seal: bytes
    journal: bytes
    image_id: bytes

    def to_receipt(self) -> Receipt:
        return Receipt(seal=self.seal, image_id=self.image_id, journal=self.journal)


@dataclass(frozen=True)
class NativeLibrary:
    """A loaded `libenclava_r0`, its functions typed per the header. Build with
    `load_native_library`. Calls release the GIL; the library keeps no state between calls.
    `parameters_digest` names the Groth16 verifier parameters it verifies and proves under."""

    path: Path
    parameters_digest: bytes
    _cdll: ctypes.CDLL

    def verify(self, receipt: bytes, image_id: bytes) -> None:
        """Verify ABI receipt bytes (`seal || journal`) for `image_id`; raise on any failure."""
        if len(image_id) != DIGEST_SIZE:
            raise ReceiptFormatError(f"image ID must be {DIGEST_SIZE} bytes, got {len(image_id)}")
        err = ctypes.create_string_buffer(_ERROR_CAPACITY)
        status = self._cdll.r0_verify(receipt, len(receipt), image_id, err, _ERROR_CAPACITY)
        _raise_for_status(int(status), _message(err), proving=False)

    def prove(self, elf: bytes, stdin: bytes = b"") -> ProvedReceipt:
        """Run the guest `elf` (as risc0-build emits it) on `stdin` and prove it with Groth16.
        Takes minutes and a lot of memory on a real prover."""
        receipt = _U8_POINTER()
        length = ctypes.c_size_t(0)
        image_id = ctypes.create_string_buffer(DIGEST_SIZE)
        err = ctypes.create_string_buffer(_ERROR_CAPACITY)
        status = self._cdll.r0_prove(
            elf,
            len(elf),
            stdin,
            len(stdin),
            ctypes.byref(receipt),
            ctypes.byref(length),
            image_id,
            err,
            _ERROR_CAPACITY,
        )
        try:
            _raise_for_status(int(status), _message(err), proving=True)
            raw = ctypes.string_at(receipt, length.value) if receipt else b""
        finally:
            if receipt:
                self._cdll.r0_free(receipt, length)
        if len(raw) < SEAL_SIZE:
            raise NativeLibraryError(
                f"{self.path} returned a {len(raw)}-byte receipt, shorter than a "
                f"{SEAL_SIZE}-byte seal: it does not keep the ABI"
            )
        return ProvedReceipt(raw[:SEAL_SIZE], raw[SEAL_SIZE:], image_id.raw)


def load_native_library(path: str | os.PathLike[str] | None) -> NativeLibrary:
    """Load the library at `path` and check it speaks ABI version `ABI_VERSION`.

    The path must name an existing file; it is made absolute, so the dynamic loader never
    searches its own paths for a bare name."""
    if path is None or not os.fspath(path):
        raise NativeLibraryUnavailableError(
            f"no native RISC Zero library configured: set {LIBRARY_ENV} to libenclava_r0.so "
            f"({_BUILD_HINT})"
        )
    resolved = Path(path).resolve()
    if not resolved.is_file():
        raise NativeLibraryUnavailableError(
            f"no native RISC Zero library at {resolved} ({LIBRARY_ENV}): {_BUILD_HINT}"
        )
    try:
        cdll = ctypes.CDLL(os.fspath(resolved))
    except OSError as exc:
        raise NativeLibraryUnavailableError(
            f"cannot load {resolved} as a shared library: {exc}"
        ) from None
    for name, (restype, argtypes) in _SIGNATURES.items():
        try:
            function = getattr(cdll, name)
        except AttributeError:
            raise NativeAbiMismatchError(
                f"{resolved} has no function {name}: it is not a libenclava_r0 of ABI "
                f"version {ABI_VERSION}"
            ) from None
        function.restype = restype
        function.argtypes = argtypes
    version = int(cdll.r0_abi_version())
    if version != ABI_VERSION:
        raise NativeAbiMismatchError(
            f"{resolved} implements ABI version {version}, this binding speaks {ABI_VERSION}: "
            f"rebuild the library from this release's native/"
        )
    digest = ctypes.create_string_buffer(DIGEST_SIZE)
    if int(cdll.r0_verifier_parameters(digest)) != _Status.OK:
        raise NativeLibraryError(f"{resolved} cannot report its verifier parameters")
    return NativeLibrary(resolved, digest.raw, cdll)


class ReceiptVerifier(Protocol):
    """Verifies a receipt as a normal halt of program `image_id`, or raises a `ZkError`."""

    def verify(self, receipt: Receipt, *, image_id: bytes) -> VerifiedReceipt: ...


@dataclass(frozen=True)
class PurePythonVerifier:
    """`verify_receipt` (py_ecc pairing, about half a second) behind `ReceiptVerifier`."""

    parameter_sets: tuple[VerifierParameters, ...] = PARAMETER_SETS

    def verify(self, receipt: Receipt, *, image_id: bytes) -> VerifiedReceipt:
        return verify_receipt(receipt, image_id=image_id, parameter_sets=self.parameter_sets)


@dataclass(frozen=True)
class NativeVerifier:
    """RISC Zero's own verifier, through the native library, for the one parameter set the
    library holds; receipts under the other accepted sets go to `verify_receipt`.

    The same checks in the same order as `verify_receipt`: the image ID pinned by the caller,
    then a selector among `parameter_sets` (so a verdict names its parameters), then the proof.
    Either way the result is the same `VerifiedReceipt`; only the cost differs."""

    library: NativeLibrary
    parameter_sets: tuple[VerifierParameters, ...] = PARAMETER_SETS

    def verify(self, receipt: Receipt, *, image_id: bytes) -> VerifiedReceipt:
        if receipt.image_id != image_id:
            raise ImageIdMismatchError(
                "receipt.image_id",
                f"receipt is for image {receipt.image_id.hex()}, expected {image_id.hex()}",
            )
        params = parameters_for(receipt.selector, self.parameter_sets)
        if params.digest != self.library.parameters_digest:
            return verify_receipt(receipt, image_id=image_id, parameter_sets=(params,))
        self.library.verify(receipt.seal + receipt.journal, image_id)
        return VerifiedReceipt(receipt, params, receipt.claim.digest())


@dataclass(frozen=True)
class VerifierChoice:
    """The verifier to use, and — when it is the pure-Python one — why the native is not."""

    verifier: ReceiptVerifier
    native_unavailable: NativeLibraryError | None

    @property
    def native(self) -> bool:
        return self.native_unavailable is None


def choose_verifier(
    library_path: str | os.PathLike[str] | None,
    *,
    parameter_sets: tuple[VerifierParameters, ...] = PARAMETER_SETS,
) -> VerifierChoice:
    """The native verifier when the library at `library_path` loads and its parameters are
    among `parameter_sets`, else the pure-Python one with the typed reason (absent, unloadable,
    other ABI, unaccepted parameters) for the caller to show."""
    try:
        library = load_native_library(library_path)
    except NativeLibraryError as exc:
        return VerifierChoice(PurePythonVerifier(parameter_sets), exc)
    if all(p.digest != library.parameters_digest for p in parameter_sets):
        known = ", ".join(p.selector.hex() for p in parameter_sets) or "none"
        unaccepted = NativeParametersError(
            f"{library.path} verifies under Groth16 parameters {library.parameters_digest.hex()}, "
            f"none of the accepted sets (selectors {known}): "
            "build it with the risc0-zkvm of an accepted set (native/README.md)"
        )
        return VerifierChoice(PurePythonVerifier(parameter_sets), unaccepted)
    return VerifierChoice(NativeVerifier(library, parameter_sets), None)


def _message(err: ctypes.Array[ctypes.c_char]) -> str:
    return err.value.decode("utf-8", errors="replace")


def _raise_for_status(status: int, message: str, *, proving: bool) -> None:
    """Map a status of the header to the error a caller of the pure-Python verifier expects."""
    if status == _Status.OK:
        return
    text = message or f"status {status}, no message"
    if status == _Status.RECEIPT_FORMAT:
        raise ReceiptFormatError(text)
    if status == _Status.SELECTOR:
        raise SelectorMismatchError("seal.selector", text)
    if status == _Status.PROOF:
        raise ProofInvalidError(_CHECK, text)
    if proving and status in (_Status.ARGUMENT, _Status.PROVE):
        raise NativeProveError(text)
    if status == _Status.ARGUMENT:
        raise ReceiptFormatError(text)
    if status == _Status.INTERNAL:
        raise NativeLibraryError(f"native library failed internally: {text}")
    raise NativeLibraryError(f"native library returned unknown status {status}: {text}")
