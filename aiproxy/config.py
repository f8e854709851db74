"""Settings, read once at start from the environment and `.env`, validated with pydantic.

Every later module receives a `Settings`; nothing else reads the environment, so a bad value is
reported once, at start, as one clear line instead of a traceback mid-request.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, Mapping

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

GOOGLE_BASE_URL = "https://generativelanguage.googleapis.com"
DATA_DIR = Path(__file__).parent / "data"


class ConfigError(Exception):
    """A setting is missing or invalid; the message is one line meant for the operator."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    gemini_api_key: SecretStr | None = None
    gemini_base_url: str = GOOGLE_BASE_URL
    host: str = "127.0.0.1"
    port: int = Field(8002, ge=0, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    cors_allowed_origins: str = "http://localhost:3000,http://localhost:8080"

    # Upstream timeouts in seconds: connecting, waiting for the first byte, and the longest
    # silence allowed between two streamed chunks.
    upstream_connect_timeout: float = Field(10.0, gt=0)
    upstream_timeout: float = Field(120.0, gt=0)
    upstream_idle_timeout: float = Field(60.0, gt=0)

    models_file: Path | None = None
    pricing_file: Path | None = None

    # Demo mode: the bundled emulator is the upstream and no key is needed.
    demo: bool = False

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("gemini_base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("models_file", "pricing_file")
    @classmethod
    def _file_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"file not found: {value}")
        return value

    @property
    def cors_origins(self) -> list[str]:
        return [o.strip() for o in self.cors_allowed_origins.split(",") if o.strip()]

    @property
    def gemini_key(self) -> str:
        return self.gemini_api_key.get_secret_value() if self.gemini_api_key else ""

    # --- reliability & operations (issue 7) ---
    # Retries before the first byte reaches the client: attempts per model beyond the first,
    # full-jitter exponential backoff (base, cap) and the deadline after which no retry starts.
    # A Retry-After longer than the cap is not waited out: the 429 goes to the client at once.
    upstream_retries: int = Field(2, ge=0, le=10)
    upstream_retry_base_delay: float = Field(0.5, ge=0)
    upstream_retry_max_delay: float = Field(5.0, ge=0)
    upstream_retry_deadline: float = Field(30.0, ge=0)
    # Fallback chains on 429/503/first-byte timeout: "gemini-2.5-pro=gemini-3.5-flash,gemini-2.5-flash;..."
    # (a [fallbacks] table in MODELS_FILE works too; this setting wins per model).
    model_fallbacks: str = ""
    # Seconds in-flight requests may take to finish after SIGTERM/SIGINT before they are cut.
    drain_timeout: float = Field(30.0, ge=0)
    # Processes serving one port (SO_REUSEPORT); 1 = this process serves.
    workers: int = Field(1, ge=1, le=256)
    reuse_port: bool = False  # set by the workers supervisor for its children

    @field_validator("model_fallbacks")
    @classmethod
    def _check_fallbacks(cls, value: str) -> str:
        from aiproxy.retry import parse_fallbacks

        parse_fallbacks(value)
        return value


def load_settings(env: Mapping[str, str] | None = None, *, require_key: bool = True, **overrides: object) -> Settings:
    """Build validated settings; raise ConfigError with one operator-facing line on any problem.

    `env` replaces os.environ (tests pass their own); `.env` in the working directory is read
    only when `env` is None, so tests are never affected by a developer's local file.
    """
    try:
        if env is None:
            settings = Settings(**overrides)  # type: ignore[arg-type]
        else:
            values = {k.lower(): v for k, v in env.items() if k.lower() in Settings.model_fields}
            values.update(overrides)
            settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
    except ValidationError as exc:
        err = exc.errors()[0]
        name = str(err["loc"][0]).upper() if err["loc"] else "settings"
        raise ConfigError(f"invalid setting {name}: {err['msg']}") from None
    if require_key and not settings.demo and not settings.gemini_key:
        raise ConfigError(
            "GEMINI_API_KEY environment variable is required "
            "(set it in .env, or run `make demo` to try the proxy against the bundled emulator)"
        )
    return settings


def environ() -> Mapping[str, str]:
    return os.environ
