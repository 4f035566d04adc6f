"""The service's named policies, and how a request picks one.

Built in: `default` (`Policy()`: Intel root only, UpToDate / SWHardeningNeeded, no debug) and
`gpu-h100-cc` (`GPU_H100_CC`: the default's CPU rules, and at least one GPU that verifies to
NVIDIA's root, is a GH100 (Hopper: H100 / H200 boards) and reports CC mode on, without developer
tools). In dev mode also `dev` (`Policy(allow_simulated=True, allow_simulated_gpu=True)`:
accepts the simulators' quotes and GPU reports, and says so in every verdict). More come from the
settings (`policies` tables) and from `policy_dir` (`NAME.toml` / `NAME.json`). A configured
name replaces a built-in one.

Why `gpu-h100-cc` exists: a `SignedVerdictVerifier` on chain trusts a service's signer, and a
service signs EIP-712 verdicts only under its named policies. The verdict does not name the
policy, so the guarantee comes from the service's configuration: a service whose every named
policy requires the GPU (configure `default` with `gpu-h100-cc`'s document; a configured name
replaces the built-in one; no `dev`) signs verdicts only for workers attested with an H100-class
GPU in CC mode, and a registry whose verifier trusts only such a signer gives callers "an
attested H100 in CC mode" on chain. With GPU evidence the verdict's `quoteHash` is the hash of
the whole bundle (`attestation.evidence.bundle_digest`), not of the quote alone, so the
registration names everything that was judged and anyone can fetch the bundle and verify it
again; without GPUs it is the quote's hash, as before.

A request names a policy, or (if allowed) carries one inline. Only named policies are trusted
for EIP-712 verdicts: the chain trusts this service's policy, not the caller's.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from datetime import timedelta
from typing import Any

from attestation.errors import PolicyFormatError
from attestation.policy import Policy
from attestation.service.errors import InvalidRequestError, UnknownPolicyError
from attestation.service.settings import ServiceSettings

__all__ = ["GPU_H100_CC", "ChosenPolicy", "PolicySet", "policy_to_dict"]

GPU_H100_CC = Policy(require_gpus=1, gpu_models=frozenset({"GH100"}), require_gpu_cc=True)


@dataclass(frozen=True, slots=True)
class ChosenPolicy:
    """The policy a request is judged by. `name` is None for an inline policy, which is then
    identified by the SHA-256 of its canonical JSON."""

    policy: Policy
    name: str | None
    sha256: str

    @property
    def label(self) -> str:
        return self.name if self.name is not None else f"inline:{self.sha256}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "inline": self.name is None, "sha256": self.sha256}


def policy_to_dict(policy: Policy) -> dict[str, Any]:
    """A policy in the file schema (`Policy.from_mapping(policy_to_dict(p)) == p`)."""
    out: dict[str, Any] = {}
    for f in fields(policy):
        value = getattr(policy, f.name)
        if f.name == "max_collateral_age":
            out["max_collateral_age_seconds"] = (
                None if value is None else int(value / timedelta(seconds=1))
            )
        elif isinstance(value, frozenset):
            out[f.name] = sorted(v.hex() if isinstance(v, bytes) else v for v in value)
        elif isinstance(value, bytes):
            out[f.name] = value.hex()
        else:
            out[f.name] = value
    return out


def _digest(doc: Any) -> str:
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class PolicySet(Mapping[str, ChosenPolicy]):
    """Named policies, resolved once at startup."""

    def __init__(self, policies: Mapping[str, Policy], *, default: str, allow_inline: bool):
        if default not in policies:
            raise PolicyFormatError(f"the default policy {default!r} is not defined")
        self._named = {
            name: ChosenPolicy(p, name, _digest(policy_to_dict(p))) for name, p in policies.items()
        }
        self.default = default
        self.allow_inline = allow_inline

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> PolicySet:
        policies: dict[str, Policy] = {"default": Policy(), "gpu-h100-cc": GPU_H100_CC}
        if settings.dev:
            policies["dev"] = Policy(allow_simulated=True, allow_simulated_gpu=True)
        if settings.policy_dir is not None:
            for path in sorted(settings.policy_dir.iterdir()):
                if path.suffix in (".toml", ".json") and path.is_file():
                    policies[path.stem] = Policy.from_file(path)
        for name, doc in settings.policies.items():
            policies[name] = Policy.from_mapping(doc)
        unsafe = [n for n, p in policies.items() if p.allow_simulated or p.allow_simulated_gpu]
        if unsafe and not settings.dev:
            raise PolicyFormatError(
                f"policies {unsafe} allow simulated TEEs or GPUs: only a dev configuration may "
                "have them"
            )
        return cls(
            policies, default=settings.default_policy, allow_inline=settings.allow_inline_policies
        )

    def __getitem__(self, name: str) -> ChosenPolicy:
        return self._named[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._named)

    def __len__(self) -> int:
        return len(self._named)

    def choose(self, requested: str | Mapping[str, Any] | None) -> ChosenPolicy:
        """The named policy (`UnknownPolicyError`), the default, or an inline one."""
        if requested is None:
            return self._named[self.default]
        if isinstance(requested, str):
            chosen = self._named.get(requested)
            if chosen is None:
                raise UnknownPolicyError(
                    f"no policy named {requested!r} (known: {', '.join(sorted(self._named))})"
                )
            return chosen
        if not self.allow_inline:
            raise InvalidRequestError(
                "inline policies are disabled on this service: name one of GET /v1/policies",
                code="inline_policy_disabled",
            )
        policy = Policy.from_mapping(requested)
        return ChosenPolicy(policy, None, _digest(policy_to_dict(policy)))
