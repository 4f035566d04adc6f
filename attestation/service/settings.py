"""Configuration of the attestation service: a TOML/JSON file, overridden by the environment.

Precedence, highest first: values passed to `ServiceSettings(...)` (the CLI's flags), then
environment variables `ENCLAVA_ATTEST_<FIELD>` (e.g. `ENCLAVA_ATTEST_PORT=8650`; mappings as
JSON), then the config file named by `config_file` / `ENCLAVA_ATTEST_CONFIG_FILE` (`.toml`, or
JSON otherwise; top-level keys are the field names), then the defaults below. Unknown keys in
the file are errors, so a typo does not silently fall back to a default.

Collateral: `collateral_mode = "pcs"` fetches from `pcs_url` (Intel PCS, or a PCCS speaking API
v4) through the disk cache in `cache_dir`; `"offline"` reads collateral bundles (dcap-qvl /
PCCS `QuoteCollateralV3` JSON files) from `offline_dir` and never touches the network.
Collateral is refreshed once it is `refresh_every_seconds` old or `refresh_before_seconds`
before its earliest `nextUpdate`, whichever comes first; a failed upstream is retried after
`retry_after_seconds`, and meanwhile collateral that is still valid is served (stale but
valid). Expired collateral is refused.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from attestation import safejson
from attestation.pcs import INTEL_PCS_URL

__all__ = ["ENV_PREFIX", "ServiceSettings"]

ENV_PREFIX = "ENCLAVA_ATTEST_"
_DAY = 86_400


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "enclava" / "collateral"


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    config_file: Path | None = Field(
        default=None, description="TOML or JSON file with these settings"
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8650, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=64, description="server processes (fork, one socket)")
    dev: bool = Field(
        default=False,
        description="development mode: the 'dev' policy and non-Intel (simulator) roots",
    )

    collateral_mode: Literal["pcs", "offline"] = "pcs"
    pcs_url: str = INTEL_PCS_URL
    root_ca_crl_url: str | None = None
    pcs_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    cache_dir: Path | None = Field(default_factory=_default_cache_dir)
    offline_dir: Path | None = None
    refresh_before_seconds: int = Field(default=7 * _DAY, ge=0)
    refresh_every_seconds: int | None = Field(default=_DAY, gt=0)
    retry_after_seconds: int = Field(default=300, ge=0)
    refresh_interval_seconds: float = Field(
        default=300.0, ge=0, description="background refresh period (0: refresh on requests only)"
    )

    key_file: Path | None = None
    issuer: str = "enclava-attestation-service"
    token_ttl_seconds: int = Field(default=3600, gt=0)
    verdict_ttl_seconds: int = Field(default=_DAY, gt=0)
    eip712_chain_id: int | None = Field(default=None, ge=0)
    eip712_verifier: str | None = Field(default=None, pattern=r"^0x[0-9a-fA-F]{40}$")

    default_policy: str = "default"
    policies: dict[str, dict[str, Any]] = Field(default_factory=dict)
    policy_dir: Path | None = None
    allow_inline_policies: bool = True

    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    max_quote_bytes: int = Field(default=64 * 1024, ge=1024)
    max_event_log_entries: int = Field(default=1024, ge=1)

    @model_validator(mode="after")
    def _consistent(self) -> ServiceSettings:
        if self.collateral_mode == "offline" and self.offline_dir is None:
            raise ValueError("collateral_mode 'offline' needs offline_dir")
        if (self.eip712_chain_id is None) != (self.eip712_verifier is None):
            raise ValueError("set eip712_chain_id and eip712_verifier together")
        if self.max_body_bytes < self.max_quote_bytes:
            raise ValueError("max_body_bytes must be at least max_quote_bytes")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _ConfigFile(settings_cls, init_settings, env_settings))


class _ConfigFile(PydanticBaseSettingsSource):
    """The file named by `config_file` (passed in, or from the environment)."""

    def __init__(
        self,
        settings_cls: type[BaseSettings],
        init: PydanticBaseSettingsSource,
        env: PydanticBaseSettingsSource,
    ) -> None:
        super().__init__(settings_cls)
        self._init = init
        self._env = env

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads the whole file

    def __call__(self) -> dict[str, Any]:
        path: Any = None
        if isinstance(self._init, InitSettingsSource):
            path = self._init.init_kwargs.get("config_file")
        if path is None and isinstance(self._env, EnvSettingsSource):
            path = self._env().get("config_file")
        if path is None:
            return {}
        file = Path(path)
        try:
            text = file.read_text()
            doc = tomllib.loads(text) if file.suffix == ".toml" else safejson.loads(text)
        except OSError as exc:
            raise ValueError(f"cannot read config file {file}: {exc.strerror}") from None
        except ValueError as exc:
            raise ValueError(f"config file {file} is not valid: {exc}") from None
        if not isinstance(doc, dict):
            raise ValueError(f"config file {file} must hold a table / object")
        return doc
