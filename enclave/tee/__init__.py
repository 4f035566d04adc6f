"""TEE backends behind one protocol (`enclave.tee.base.TeeBackend`)."""
