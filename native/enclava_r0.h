/*
 * enclava_r0.h: the C ABI between Enclava (Python, through ctypes) and a native RISC Zero
 * prover/verifier library (libenclava_r0.so, built from native/src/lib.rs).
 *
 * ABI version 1. A library implements exactly these five functions; the caller checks
 * r0_abi_version() before calling anything else and refuses any other version.
 *
 * Receipt bytes (what r0_prove returns and r0_verify takes):
 *
 *     seal (ENCLAVA_R0_SEAL_LEN = 260 bytes) || journal (any length, possibly empty)
 *
 * where seal = 4-byte verifier selector || 256-byte Groth16 proof (a: 2 words, b: 2x2 words,
 * c: 2 words, each a big-endian 32-byte word, G2 coordinates imaginary part first). This is the
 * seal RISC Zero's on-chain verifier (IRiscZeroVerifier.verify(seal, imageId, sha256(journal)))
 * takes, unchanged, and the `seal` / `journal` hex members of the zk sample JSON files decoded
 * and concatenated. The receipt carries no image id and no verifier parameters: the image id is
 * the caller's expectation and the verifier parameters are the library's own (those of the
 * risc0-zkvm version it was built with, see r0_verifier_parameters); a seal whose selector
 * names other parameters fails with R0_ERR_SELECTOR.
 *
 * Threads: the library keeps no global state. Every function may be called from any thread, and
 * concurrently. Errors are reported per call: a status code as the return value and, when the
 * caller passes a buffer, a human-readable message.
 *
 * Error buffers: `err` / `err_cap` name a caller-owned buffer. On a non-zero status the library
 * writes a NUL-terminated UTF-8 message into it, truncated to err_cap - 1 bytes (a truncation
 * may cut a multi-byte character). On R0_OK, err[0] is set to NUL. err may be NULL (then
 * err_cap is ignored and no message is written); err_cap == 0 also writes nothing.
 *
 * Memory: input pointers are borrowed for the duration of the call and never written. A pointer
 * whose length is 0 may be NULL. The only memory the library hands out is *receipt_out of a
 * successful r0_prove; the caller owns it and must release it exactly once with
 * r0_free(ptr, len), passing the length r0_prove returned. Never free it with free(3).
 */
#ifndef ENCLAVA_R0_H
#define ENCLAVA_R0_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ENCLAVA_R0_ABI_VERSION 1u
#define ENCLAVA_R0_IMAGE_ID_LEN 32u
#define ENCLAVA_R0_DIGEST_LEN 32u
#define ENCLAVA_R0_SELECTOR_LEN 4u
#define ENCLAVA_R0_SEAL_LEN 260u

/* Return values of r0_verify and r0_prove (as int32_t, so the ABI does not depend on the
 * compiler's choice of enum size). New codes get new numbers; numbers are never reused. */
enum r0_status {
    R0_OK = 0,
    R0_ERR_ARGUMENT = 1,       /* a NULL pointer with a non-zero length, an empty ELF, a NULL out */
    R0_ERR_RECEIPT_FORMAT = 2, /* receipt shorter than a seal, or a proof that does not decode */
    R0_ERR_SELECTOR = 3,       /* the seal is for verifier parameters this library does not hold */
    R0_ERR_PROOF = 4,          /* the proof does not verify for (image id, journal) */
    R0_ERR_PROVE = 5,          /* the ELF does not load, the guest failed, or proving failed */
    R0_ERR_INTERNAL = 6        /* a bug in the library (a caught panic) */
};

/* ENCLAVA_R0_ABI_VERSION of the header the library was built against. */
uint32_t r0_abi_version(void);

/* The digest of the Groth16 verifier parameters this library verifies and proves under
 * (risc0's Groth16ReceiptVerifierParameters digest: control root, BN254 control id, verifying
 * key). Its first 4 bytes are the selector of every seal it accepts or makes. R0_OK, or
 * R0_ERR_ARGUMENT when digest_out is NULL, or R0_ERR_INTERNAL. */
int32_t r0_verifier_parameters(uint8_t digest_out[ENCLAVA_R0_DIGEST_LEN]);

/* Verify a receipt (format above) against the expected image id (32 bytes, the digest as RISC
 * Zero prints it). R0_OK only if the Groth16 proof verifies for the claim "the program with this
 * image id ran to Halted(0) and committed exactly this journal, with no assumptions". */
int32_t r0_verify(const uint8_t *receipt, size_t receipt_len,
                  const uint8_t image_id[ENCLAVA_R0_IMAGE_ID_LEN],
                  char *err, size_t err_cap);

/* Run the guest program `elf` (as risc0-build emits it) with `input` as its stdin, and prove
 * the run with a Groth16 receipt. On R0_OK: *receipt_out / *receipt_len_out hold the receipt
 * (caller frees with r0_free) and image_id_out the program's image id. On any other status:
 * *receipt_out is NULL, *receipt_len_out is 0, image_id_out is unspecified. */
int32_t r0_prove(const uint8_t *elf, size_t elf_len,
                 const uint8_t *input, size_t input_len,
                 uint8_t **receipt_out, size_t *receipt_len_out,
                 uint8_t image_id_out[ENCLAVA_R0_IMAGE_ID_LEN],
                 char *err, size_t err_cap);

/* Release a receipt returned by r0_prove. r0_free(NULL, 0) does nothing. */
void r0_free(uint8_t *ptr, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* ENCLAVA_R0_H */
