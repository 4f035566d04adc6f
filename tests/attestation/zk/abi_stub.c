/*
 * abi_stub.c: a fake libenclava_r0 for testing the ctypes binding's marshalling. NOT RISC Zero:
 * no proof system, no zkVM; it implements native/enclava_r0.h with deterministic behaviour that
 * depends on every byte crossing the ABI, so a marshalling slip shows up as a wrong answer.
 *
 *   image id of an ELF:  id[i] = elf[i % elf_len] ^ (uint8_t)(37 * i)
 *   r0_prove:            the "guest" echoes its stdin: journal = input; the receipt is
 *                        seal || journal, seal = selector ("STUB") || id (32) || u64 LE
 *                        journal length || xor-fold of the journal into 32 bytes || zeros
 *   r0_verify:           recomputes the seal from (image id, journal) and compares; a few
 *                        selectors trigger the error paths: "OOPS" -> R0_ERR_INTERNAL,
 *                        "WHAT" -> an unknown status (99), "LONG" -> a 5000-byte message
 *   ELF "FAIL..."        -> R0_ERR_PROVE
 *
 * Build switches: -DSTUB_ABI_VERSION=n reports another ABI version; -DSTUB_WITHOUT_PROVE
 * leaves r0_prove out; -DSTUB_PARAMETERS='"\xc2\x7d..."' (32 bytes) reports other verifier
 * parameters, whose first 4 bytes become the selector of its seals.
 * stub_live_allocations() / stub_bad_frees() let a test check that every receipt handed out
 * came back through r0_free with its length.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "enclava_r0.h"

#ifndef STUB_ABI_VERSION
#define STUB_ABI_VERSION ENCLAVA_R0_ABI_VERSION
#endif

#ifndef STUB_PARAMETERS
#define STUB_PARAMETERS "STUB parameters, 32 bytes long.."
#endif

#define HEADER 16u

static atomic_long live_allocations;
static atomic_long bad_frees;

long stub_live_allocations(void) { return atomic_load(&live_allocations); }
long stub_bad_frees(void) { return atomic_load(&bad_frees); }

static int32_t fail(int32_t status, char *err, size_t err_cap, const char *message) {
    if (err != NULL && err_cap > 0) {
        snprintf(err, err_cap, "%s", message);
    }
    return status;
}

static void stub_seal(const uint8_t *image_id, const uint8_t *journal, size_t journal_len,
                      uint8_t seal[ENCLAVA_R0_SEAL_LEN]) {
    memset(seal, 0, ENCLAVA_R0_SEAL_LEN);
    memcpy(seal, STUB_PARAMETERS, 4);
    memcpy(seal + 4, image_id, ENCLAVA_R0_IMAGE_ID_LEN);
    for (int i = 0; i < 8; i++) {
        seal[36 + i] = (uint8_t)((uint64_t)journal_len >> (8 * i));
    }
    for (size_t i = 0; i < journal_len; i++) {
        seal[44 + i % 32] ^= journal[i];
    }
}

uint32_t r0_abi_version(void) { return STUB_ABI_VERSION; }

int32_t r0_verifier_parameters(uint8_t digest_out[ENCLAVA_R0_DIGEST_LEN]) {
    if (digest_out == NULL) {
        return R0_ERR_ARGUMENT;
    }
    memcpy(digest_out, STUB_PARAMETERS, ENCLAVA_R0_DIGEST_LEN);
    return R0_OK;
}

int32_t r0_verify(const uint8_t *receipt, size_t receipt_len,
                  const uint8_t image_id[ENCLAVA_R0_IMAGE_ID_LEN],
                  char *err, size_t err_cap) {
    char message[5001];
    uint8_t expected[ENCLAVA_R0_SEAL_LEN];
    if (err != NULL && err_cap > 0) {
        err[0] = '\0';
    }
    if (receipt_len > 0 && receipt == NULL) {
        return fail(R0_ERR_ARGUMENT, err, err_cap, "receipt is NULL");
    }
    if (receipt_len < ENCLAVA_R0_SEAL_LEN) {
        snprintf(message, sizeof message, "stub: receipt is %zu bytes, shorter than a seal",
                 receipt_len);
        return fail(R0_ERR_RECEIPT_FORMAT, err, err_cap, message);
    }
    if (memcmp(receipt, "OOPS", 4) == 0) {
        return fail(R0_ERR_INTERNAL, err, err_cap, "stub: simulated panic");
    }
    if (memcmp(receipt, "WHAT", 4) == 0) {
        return fail(99, err, err_cap, "stub: a status from the future");
    }
    if (memcmp(receipt, "LONG", 4) == 0) {
        memset(message, 'x', 5000);
        message[5000] = '\0';
        return fail(R0_ERR_PROOF, err, err_cap, message);
    }
    if (memcmp(receipt, STUB_PARAMETERS, 4) != 0) {
        snprintf(message, sizeof message, "stub: selector %02x%02x%02x%02x is not the stub's",
                 receipt[0], receipt[1], receipt[2], receipt[3]);
        return fail(R0_ERR_SELECTOR, err, err_cap, message);
    }
    stub_seal(image_id, receipt + ENCLAVA_R0_SEAL_LEN, receipt_len - ENCLAVA_R0_SEAL_LEN,
              expected);
    if (memcmp(receipt, expected, ENCLAVA_R0_SEAL_LEN) != 0) {
        return fail(R0_ERR_PROOF, err, err_cap, "stub: seal does not match image id and journal");
    }
    return R0_OK;
}

#ifndef STUB_WITHOUT_PROVE
int32_t r0_prove(const uint8_t *elf, size_t elf_len, const uint8_t *input, size_t input_len,
                 uint8_t **receipt_out, size_t *receipt_len_out,
                 uint8_t image_id_out[ENCLAVA_R0_IMAGE_ID_LEN],
                 char *err, size_t err_cap) {
    char message[128];
    if (receipt_out == NULL || receipt_len_out == NULL || image_id_out == NULL) {
        return fail(R0_ERR_ARGUMENT, err, err_cap, "stub: NULL out pointer");
    }
    *receipt_out = NULL;
    *receipt_len_out = 0;
    if (err != NULL && err_cap > 0) {
        err[0] = '\0';
    }
    if (elf_len == 0 || elf == NULL) {
        return fail(R0_ERR_ARGUMENT, err, err_cap, "stub: the ELF is empty");
    }
    if (input_len > 0 && input == NULL) {
        return fail(R0_ERR_ARGUMENT, err, err_cap, "stub: input is NULL");
    }
    if (elf_len >= 4 && memcmp(elf, "FAIL", 4) == 0) {
        snprintf(message, sizeof message, "stub: guest exited with code 1 after %zu input bytes",
                 input_len);
        return fail(R0_ERR_PROVE, err, err_cap, message);
    }
    for (size_t i = 0; i < ENCLAVA_R0_IMAGE_ID_LEN; i++) {
        image_id_out[i] = elf[i % elf_len] ^ (uint8_t)(37u * i);
    }
    size_t total = ENCLAVA_R0_SEAL_LEN + input_len;
    uint8_t *block = malloc(HEADER + total);
    if (block == NULL) {
        return fail(R0_ERR_INTERNAL, err, err_cap, "stub: out of memory");
    }
    memcpy(block, &total, sizeof total);
    uint8_t *receipt = block + HEADER;
    stub_seal(image_id_out, input, input_len, receipt);
    if (input_len > 0) {
        memcpy(receipt + ENCLAVA_R0_SEAL_LEN, input, input_len);
    }
    atomic_fetch_add(&live_allocations, 1);
    *receipt_out = receipt;
    *receipt_len_out = total;
    return R0_OK;
}
#endif

void r0_free(uint8_t *ptr, size_t len) {
    if (ptr == NULL) {
        return;
    }
    uint8_t *block = ptr - HEADER;
    size_t stored;
    memcpy(&stored, block, sizeof stored);
    if (stored != len) {
        atomic_fetch_add(&bad_frees, 1);
    }
    atomic_fetch_sub(&live_allocations, 1);
    free(block);
}
