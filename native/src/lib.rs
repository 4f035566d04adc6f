//! libenclava_r0: the C ABI of `native/enclava_r0.h`, implemented over RISC Zero's `risc0-zkvm`.
//!
//! The contract (receipt bytes, status codes, error buffers, memory ownership) is stated in the
//! header; this file keeps it and adds nothing. There is no global state: every call stands
//! alone, so the library may be called from many threads at once (ctypes releases the GIL).
//! No panic crosses the boundary: each entry point catches it and returns `R0_ERR_INTERNAL`.
#![deny(unsafe_op_in_unsafe_fn)]

use std::any::Any;
use std::ffi::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::{ptr, slice};

use risc0_zkvm::sha::{Digest, Digestible};
use risc0_zkvm::{
    compute_image_id, default_prover, ExecutorEnv, Groth16Receipt,
    Groth16ReceiptVerifierParameters, InnerReceipt, MaybePruned, ProverOpts, Receipt, ReceiptClaim,
};

const ABI_VERSION: u32 = 1;
const DIGEST_LEN: usize = 32;
const SELECTOR_LEN: usize = 4;
const SEAL_LEN: usize = 260;

const R0_OK: i32 = 0;
const R0_ERR_ARGUMENT: i32 = 1;
const R0_ERR_RECEIPT_FORMAT: i32 = 2;
const R0_ERR_SELECTOR: i32 = 3;
const R0_ERR_PROOF: i32 = 4;
const R0_ERR_PROVE: i32 = 5;
const R0_ERR_INTERNAL: i32 = 6;

/// Why a call failed: the status it returns and the message for the caller's error buffer.
struct Failure {
    status: i32,
    message: String,
}

impl Failure {
    fn new(status: i32, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

type Outcome<T> = Result<T, Failure>;

/// `ENCLAVA_R0_ABI_VERSION` of the header this library implements.
#[no_mangle]
pub extern "C" fn r0_abi_version() -> u32 {
    ABI_VERSION
}

/// See `r0_verifier_parameters` in `enclava_r0.h`.
///
/// # Safety
/// `digest_out` is NULL or points to 32 writable bytes.
#[no_mangle]
pub unsafe extern "C" fn r0_verifier_parameters(digest_out: *mut u8) -> i32 {
    if digest_out.is_null() {
        return R0_ERR_ARGUMENT;
    }
    match catch_unwind(|| Groth16ReceiptVerifierParameters::default().digest()) {
        Ok(digest) => {
            // SAFETY: the caller's promise; a digest is 32 bytes.
            unsafe { ptr::copy_nonoverlapping(digest.as_bytes().as_ptr(), digest_out, DIGEST_LEN) };
            R0_OK
        }
        Err(_) => R0_ERR_INTERNAL,
    }
}

/// See `r0_verify` in `enclava_r0.h`.
///
/// # Safety
/// `receipt` points to `receipt_len` readable bytes (or `receipt_len` is 0), `image_id` to 32
/// readable bytes, and `err` (unless NULL) to `err_cap` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn r0_verify(
    receipt: *const u8,
    receipt_len: usize,
    image_id: *const u8,
    err: *mut c_char,
    err_cap: usize,
) -> i32 {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the caller's promises above.
        let receipt = unsafe { borrow(receipt, receipt_len, "receipt") }?;
        let image_id = unsafe { read_image_id(image_id) }?;
        verify(receipt, image_id)
    }));
    // SAFETY: the caller's promise about `err`.
    unsafe { finish(outcome, err, err_cap) }
}

/// See `r0_prove` in `enclava_r0.h`.
///
/// # Safety
/// `elf` / `input` point to `elf_len` / `input_len` readable bytes (or the length is 0);
/// `receipt_out`, `receipt_len_out` and `image_id_out` (32 bytes) are writable; `err` as in
/// `r0_verify`.
#[no_mangle]
pub unsafe extern "C" fn r0_prove(
    elf: *const u8,
    elf_len: usize,
    input: *const u8,
    input_len: usize,
    receipt_out: *mut *mut u8,
    receipt_len_out: *mut usize,
    image_id_out: *mut u8,
    err: *mut c_char,
    err_cap: usize,
) -> i32 {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        if receipt_out.is_null() || receipt_len_out.is_null() || image_id_out.is_null() {
            return Err(Failure::new(
                R0_ERR_ARGUMENT,
                "receipt_out, receipt_len_out and image_id_out must not be NULL",
            ));
        }
        // SAFETY: both outs are non-NULL and writable (the caller's promise).
        unsafe {
            receipt_out.write(ptr::null_mut());
            receipt_len_out.write(0);
        }
        let elf = unsafe { borrow(elf, elf_len, "elf") }?;
        let input = unsafe { borrow(input, input_len, "input") }?;
        let (receipt, image_id) = prove(elf, input)?;
        let len = receipt.len();
        let owned = Box::into_raw(receipt.into_boxed_slice()).cast::<u8>();
        // SAFETY: as above; `image_id_out` has room for 32 bytes. Ownership of `owned` passes
        // to the caller, who returns it through `r0_free(owned, len)`.
        unsafe {
            ptr::copy_nonoverlapping(image_id.as_bytes().as_ptr(), image_id_out, DIGEST_LEN);
            receipt_out.write(owned);
            receipt_len_out.write(len);
        }
        Ok(())
    }));
    // SAFETY: the caller's promise about `err`.
    unsafe { finish(outcome, err, err_cap) }
}

/// See `r0_free` in `enclava_r0.h`.
///
/// # Safety
/// `ptr` / `len` are exactly a pair returned by one successful `r0_prove`, not yet freed; or
/// `ptr` is NULL.
#[no_mangle]
pub unsafe extern "C" fn r0_free(ptr: *mut u8, len: usize) {
    if ptr.is_null() {
        return;
    }
    // SAFETY: `ptr` came from `Box::<[u8]>::into_raw` of a slice of `len` bytes in `r0_prove`.
    drop(unsafe { Box::from_raw(ptr::slice_from_raw_parts_mut(ptr, len)) });
}

/// The receipt is `seal (260) || journal`; it verifies when the seal's selector names this
/// crate's Groth16 verifier parameters and the proof holds for `ReceiptClaim::ok(image_id,
/// journal)`, the same claim RISC Zero's on-chain verifier checks.
fn verify(receipt: &[u8], image_id: Digest) -> Outcome<()> {
    if receipt.len() < SEAL_LEN {
        return Err(Failure::new(
            R0_ERR_RECEIPT_FORMAT,
            format!(
                "receipt is {} bytes, shorter than the {SEAL_LEN}-byte seal",
                receipt.len()
            ),
        ));
    }
    let (seal, journal) = receipt.split_at(SEAL_LEN);
    let (selector, proof) = seal.split_at(SELECTOR_LEN);
    let parameters = Groth16ReceiptVerifierParameters::default().digest();
    let expected = &parameters.as_bytes()[..SELECTOR_LEN];
    if selector != expected {
        return Err(Failure::new(
            R0_ERR_SELECTOR,
            format!(
                "seal selector {} is not {} (the Groth16 verifier parameters of risc0-zkvm {})",
                hex(selector),
                hex(expected),
                risc0_zkvm::VERSION,
            ),
        ));
    }
    let claim = ReceiptClaim::ok(image_id, MaybePruned::Value(journal.to_vec()));
    let inner = Groth16Receipt::new(proof.to_vec(), MaybePruned::Value(claim), parameters);
    Receipt::new(InnerReceipt::Groth16(inner), journal.to_vec())
        .verify(image_id)
        .map_err(|e| {
            Failure::new(
                R0_ERR_PROOF,
                format!("receipt does not verify for this image id: {e}"),
            )
        })
}

/// Run `elf` on `input` (its stdin, as raw bytes) and prove the run with a Groth16 receipt in
/// the ABI's `seal || journal` form, next to the program's image id.
fn prove(elf: &[u8], input: &[u8]) -> Outcome<(Vec<u8>, Digest)> {
    if elf.is_empty() {
        return Err(Failure::new(R0_ERR_ARGUMENT, "the ELF is empty"));
    }
    let failed =
        |what: &str, e: &dyn std::fmt::Display| Failure::new(R0_ERR_PROVE, format!("{what}: {e}"));
    let image_id = compute_image_id(elf).map_err(|e| failed("the ELF does not load", &e))?;
    let env = ExecutorEnv::builder()
        .write_slice(input)
        .build()
        .map_err(|e| failed("cannot set up the guest environment", &e))?;
    let info = default_prover()
        .prove_with_opts(env, elf, &ProverOpts::groth16())
        .map_err(|e| failed("proving failed", &e))?;
    let groth16 = info.receipt.inner.groth16().map_err(|_| {
        Failure::new(
            R0_ERR_PROVE,
            "the prover returned no Groth16 receipt (RISC0_DEV_MODE set?)",
        )
    })?;
    let journal = &info.receipt.journal.bytes;
    let mut receipt = Vec::with_capacity(SEAL_LEN + journal.len());
    receipt.extend_from_slice(&groth16.verifier_parameters.as_bytes()[..SELECTOR_LEN]);
    receipt.extend_from_slice(&groth16.seal);
    if receipt.len() != SEAL_LEN {
        return Err(Failure::new(
            R0_ERR_INTERNAL,
            format!(
                "the Groth16 seal is {} bytes, not 256",
                receipt.len() - SELECTOR_LEN
            ),
        ));
    }
    receipt.extend_from_slice(journal);
    Ok((receipt, image_id))
}

/// Borrow `len` bytes at `ptr`. A zero length needs no pointer, so NULL is allowed then.
///
/// # Safety
/// If `len > 0` and `ptr` is not NULL, `ptr` points to `len` readable bytes for `'a`.
unsafe fn borrow<'a>(ptr: *const u8, len: usize, what: &str) -> Outcome<&'a [u8]> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(Failure::new(
            R0_ERR_ARGUMENT,
            format!("{what} is NULL, length {len}"),
        ));
    }
    // SAFETY: the function's contract.
    Ok(unsafe { slice::from_raw_parts(ptr, len) })
}

/// # Safety
/// `ptr` is NULL or points to 32 readable bytes.
unsafe fn read_image_id(ptr: *const u8) -> Outcome<Digest> {
    if ptr.is_null() {
        return Err(Failure::new(R0_ERR_ARGUMENT, "image_id is NULL"));
    }
    // SAFETY: the function's contract; the read makes no alignment assumption.
    let bytes = unsafe { ptr.cast::<[u8; DIGEST_LEN]>().read_unaligned() };
    Ok(Digest::from(bytes))
}

/// Turn a call's outcome into its status, writing the message (or an empty one) to `err`.
///
/// # Safety
/// `err` is NULL or points to `err_cap` writable bytes.
unsafe fn finish(
    outcome: Result<Outcome<()>, Box<dyn Any + Send>>,
    err: *mut c_char,
    err_cap: usize,
) -> i32 {
    let (status, message) = match outcome {
        Ok(Ok(())) => (R0_OK, String::new()),
        Ok(Err(failure)) => (failure.status, failure.message),
        Err(panic) => (
            R0_ERR_INTERNAL,
            format!("panic in libenclava_r0: {}", panic_text(&*panic)),
        ),
    };
    if !err.is_null() && err_cap > 0 {
        let n = message.len().min(err_cap - 1);
        // SAFETY: `n + 1 <= err_cap` bytes are written, inside the caller's buffer.
        unsafe {
            ptr::copy_nonoverlapping(message.as_ptr(), err.cast::<u8>(), n);
            err.add(n).write(0);
        }
    }
    status
}

fn panic_text(panic: &(dyn Any + Send)) -> &str {
    if let Some(text) = panic.downcast_ref::<&str>() {
        text
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text
    } else {
        "(no message)"
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
