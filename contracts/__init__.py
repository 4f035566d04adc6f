"""Solidity contracts (`contracts/src`), their committed artifacts, and the web3.py bindings:
`chain` (embedded eth-tester or any JSON-RPC node), `anvil` (a local Anvil node), `client`
(typed calls), `events` (confirmed event reader), `errors` (typed reverts)."""
