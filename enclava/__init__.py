"""Enclava: confidential-compute execution layer for AI agents.

This distribution installs the top-level packages `attestation` (quotes, verification,
policy), `enclave` (TEE worker runtime), `agents` (JAX agents), `contracts` (Solidity and
web3.py bindings) and `enclava` (this CLI). See README.md.
"""

__version__ = "0.1.0"
