"""The TEE worker runtime: TEE backends (`enclave.tee`), the enclave's identity keys
(`enclave.keys`), and the encryption envelope callers use to reach it (`enclave.envelope`).
The chain worker loop and the HTTP gateway come with the end-to-end issue."""
