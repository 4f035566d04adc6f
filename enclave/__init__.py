"""The TEE worker runtime: TEE backends (`enclave.tee`), the enclave's identity keys
(`enclave.keys`), the encryption envelope callers use to reach it (`enclave.envelope`), the
HTTP gateway (`enclave.gateway`) and the caller's side of it (`enclave.gateway_client`). The
chain worker loop comes with the end-to-end issue."""
