"""Settings, read once at start from the environment and `.env`, validated with pydantic.

Every later module receives a `Settings`; nothing else reads the environment, so a bad value is
reported once, at start, as one clear line instead of a traceback mid-request.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from aiproxy.storage.urls import parse_database_url

GOOGLE_BASE_URL = "https://generativelanguage.googleapis.com"
OPENAI_BASE_URL = "https://api.openai.com/v1"
DATA_DIR = Path(__file__).parent / "data"


class ConfigError(Exception):
    """A setting is missing or invalid; the message is one line meant for the operator."""


class Settings(BaseSettings):
    # No setting is infinite or NaN: `1e400` seconds would pass `gt=0` and reach a timer as inf.
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore",
                                      allow_inf_nan=False)

    gemini_api_key: SecretStr | None = None
    gemini_base_url: str = GOOGLE_BASE_URL
    # OpenAI (the official SDKs' names): the provider is enabled, as `openai/<id>`, when the key is set.
    openai_api_key: SecretStr | None = None
    openai_base_url: str = OPENAI_BASE_URL
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
    # A buffered Gemini request (generateContent) gets its status line with the whole answer.
    upstream_answer_timeout: float = Field(600.0, gt=0)

    # Anthropic (issue 13): enabled when the key is set; `anthropic/<id>` routes there.
    anthropic_api_key: SecretStr | None = None
    anthropic_base_url: str = "https://api.anthropic.com"
    anthropic_default_max_tokens: int = Field(4096, ge=1)  # max_tokens when the client sends none

    models_file: Path | None = None
    pricing_file: Path | None = None

    # Demo mode: the bundled emulator is the upstream and no key is needed.
    demo: bool = False

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("gemini_base_url", "openai_base_url", "anthropic_base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("models_file", "pricing_file", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `MODELS_FILE=` in .env or compose means "not set", not "the current directory".
        return None if value == "" else value

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

    @property
    def openai_key(self) -> str:
        return self.openai_api_key.get_secret_value() if self.openai_api_key else ""

    @property
    def anthropic_key(self) -> str:
        return self.anthropic_api_key.get_secret_value() if self.anthropic_api_key else ""

    # --- ledger & credits (issue 5) ---
    # Where usage rows go: sqlite:///relative/or////absolute/path (embedded, WAL), or
    # postgresql://user@host/db[?schema=name] so several instances share one ledger.
    usage_db_url: str = "sqlite:///./data/usage.db"
    # Stored Responses API responses (`store: true`), kept in the usage database: dropped after
    # this many days, and beyond this many per user (the oldest first).
    responses_store_days: float = Field(30.0, gt=0)
    responses_store_max_per_user: int = Field(1000, ge=1)
    # Bearer token for GET /v1/usage until per-client keys exist; unset = reports disabled (403).
    admin_token: SecretStr | None = None
    # Lotti's credits service; billing is on only when both are set.
    credits_service_url: str | None = None
    credits_service_api_key: SecretStr | None = None
    # When the credits service cannot be reached for the pre-flight balance check: "open" lets
    # the request through (the charge still waits in the outbox), "closed" answers 503.
    credits_fail_policy: Literal["open", "closed"] = "open"
    credits_balance_ttl: float = Field(5.0, ge=0)  # seconds a fetched balance is trusted
    credits_timeout: float = Field(5.0, gt=0)  # per call to the credits service
    # Output tokens assumed by the pre-flight worst case when the client sent no max_tokens.
    credits_preflight_max_tokens: int = Field(8192, ge=0)
    credits_retry_max_delay: float = Field(300.0, gt=0)  # backoff cap for outbox retries
    # Rows the ledger cannot take (database down, disk full) are fsynced here and replayed later.
    spool_dir: Path = Path("./data/spool")
    # While the ledger is down: "open" serves and spools; "closed" answers 503 before any upstream call.
    ledger_fail_policy: Literal["open", "closed"] = "open"

    # --- usage dashboard (issue 15) ---
    dashboard_session_ttl: float = Field(28800.0, gt=0)  # seconds a /dashboard login lasts
    # Signs /dashboard session cookies; unset = derived from ADMIN_TOKEN (random per process when
    # that is unset too). Set the same value on every instance behind one load balancer.
    dashboard_session_secret: SecretStr | None = None

    @field_validator("credits_service_url")
    @classmethod
    def _check_credits_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("usage_db_url")
    @classmethod
    def _check_usage_db_url(cls, value: str) -> str:
        try:
            parse_database_url(value)
        except ValueError:
            raise ValueError("must start with sqlite://, postgresql:// or memory://") from None
        return value

    @property
    def credits_enabled(self) -> bool:
        key = self.credits_service_api_key.get_secret_value() if self.credits_service_api_key else ""
        return bool(self.credits_service_url and key)

    @property
    def admin_secret(self) -> str:
        return self.admin_token.get_secret_value() if self.admin_token else ""

    # --- access control, limits, budgets, hardening (issue 6) ---
    # With no client keys in the store the proxy is open; binding a non-loopback HOST then needs
    # this explicit opt-in.
    allow_open_proxy: bool = False
    # Seconds a snapshot of the key table is trusted: a revoked key stops working within this time.
    key_cache_ttl: float = Field(5.0, ge=0)
    # Shared rate-limit counters across instances (redis://host:port/db); unset = in memory.
    redis_url: str | None = None
    redis_key_prefix: str = "aiproxy:"
    # Redis unreachable: "open" lets requests through (warning logged), "closed" answers 503.
    rate_limit_redis_failure: Literal["open", "closed"] = "open"
    # Output tokens assumed by the tokens-per-minute estimate when the client sent no max_tokens.
    rate_limit_default_output_tokens: int = Field(1024, ge=0)
    # A stream slot held in Redis expires after this many seconds even if its instance died.
    stream_lease_seconds: float = Field(900.0, gt=0)
    budget_cache_ttl: float = Field(5.0, ge=0)  # seconds a user's spend from the ledger is trusted
    # Output tokens a budget reservation assumes when the client sent no max_tokens.
    budget_default_output_tokens: int = Field(8192, ge=0)
    budget_alert_webhook: str | None = None  # POST target for 80% / 100% budget alerts
    cors_allow_credentials: bool = False
    max_body_bytes: int = Field(20 * 1024 * 1024, ge=1024)
    max_messages: int = Field(2048, ge=1)
    max_json_depth: int = Field(64, ge=4)
    # Values and keys in a body (counted from the raw bytes, before parsing), and content parts
    # per request and per message: what decides how long one request holds the event loop.
    # Reasons for the defaults in docs/security.md ("Bounded work per request").
    max_json_values: int = Field(100_000, ge=1000)
    max_content_parts: int = Field(4096, ge=1)
    max_content_parts_per_message: int = Field(1024, ge=1)
    max_header_bytes: int = Field(8190, ge=1024)  # one header line / field
    max_headers: int = Field(100, ge=8)
    client_body_timeout: float = Field(30.0, gt=0)  # seconds to receive a whole request body
    keepalive_timeout: float = Field(30.0, gt=0)  # idle (and header-phase) time before closing
    max_concurrent_requests: int = Field(1024, ge=1)  # more in flight → 503 at once, no queue
    max_connections: int = Field(4096, ge=1)  # open client connections; more → 503 and closed
    # --- connection floods (issue 11): per-client cap, trusted proxies, separate ops listener ---
    max_connections_per_ip: int = Field(256, ge=1)  # per client address; more → 429 and closed
    trusted_proxies: str = ""  # addresses/CIDRs whose X-Forwarded-For is believed, e.g. 10.0.0.0/8
    ops_port: int | None = Field(None, ge=0, le=65535)  # /health, /health/ready, /metrics only; uncapped
    ops_host: str = ""  # ops listener address; empty = HOST
    # --- response cache (issue 15): complete chat answers replayed without calling the upstream ---
    response_cache: Literal["off", "memory", "redis"] = "off"  # redis: REDIS_URL, shared by instances
    response_cache_ttl: float = Field(3600.0, gt=0)  # seconds an answer stays cached
    response_cache_max_bytes: int = Field(64 * 1024 * 1024, ge=1024)  # memory mode: LRU bound
    response_cache_scope: Literal["user", "global"] = "user"  # a hit only for the same billing user, or anyone
    cache_hit_price_ratio: Decimal = Field(Decimal(0), ge=0)  # a hit is charged this share of its full cost

    @field_validator("ops_port", mode="before")
    @classmethod
    def _empty_port_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_trusted_proxies(cls, value: str) -> str:
        from aiproxy.server.clientaddr import parse_networks

        parse_networks(value)
        return value

    @property
    def trusted_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        from aiproxy.server.clientaddr import parse_networks

        return parse_networks(self.trusted_proxies)

    @property
    def ops_listen_host(self) -> str:
        return self.ops_host or self.host

    # --- reliability & operations (issue 7) ---
    # Retries before the first byte reaches the client: attempts per model beyond the first,
    # full-jitter exponential backoff (base, cap) and the deadline after which no retry starts.
    # A Retry-After longer than the cap is not waited out: the 429 goes to the client at once.
    upstream_retries: int = Field(2, ge=0, le=10)
    upstream_retry_base_delay: float = Field(0.5, ge=0)
    upstream_retry_max_delay: float = Field(5.0, ge=0)
    upstream_retry_deadline: float = Field(30.0, ge=0)
    # Fallback chains on 429/5xx/first-byte timeout, across providers:
    # "gemini-2.5-pro=anthropic/claude-sonnet-4-5,gemini-2.5-flash;..."
    # (a [fallbacks] table in MODELS_FILE works too; this setting wins per model).
    model_fallbacks: str = ""
    # Circuit breaker per provider: this many consecutive failures (429/5xx/timeout) stop sending
    # to it for CIRCUIT_OPEN_SECONDS, then one trial decides; 0 turns the breaker off.
    circuit_failures: int = Field(5, ge=0)
    circuit_open_seconds: float = Field(30.0, gt=0)
    # Seconds in-flight requests may take to finish after SIGTERM/SIGINT before they are cut.
    drain_timeout: float = Field(30.0, ge=0)
    # Processes serving one port (SO_REUSEPORT); 1 = this process serves.
    workers: int = Field(1, ge=1, le=256)
    reuse_port: bool = False  # set by the workers supervisor for its children

    @field_validator("model_fallbacks")
    @classmethod
    def _check_fallbacks(cls, value: str) -> str:
        from aiproxy.providers.retry import parse_fallbacks

        parse_fallbacks(value)
        return value
    # --- compatibility (issue 3) ---
    # How Gemini's thoughts reach clients: `field` as reasoning_content (OpenAI-style clients),
    # `think-tags` as <think>…</think> at the start of content (Lotti shows only content).
    # A request may choose per call with the X-Reasoning-Format header.
    reasoning_format: Literal["field", "think-tags"] = "field"
    # --- media (issue 3) ---
    max_media_bytes: int = Field(15 * 1024 * 1024, ge=1)  # decoded media per request, else 413
    media_fetch_timeout: float = Field(10.0, gt=0)  # seconds to fetch ALL of one request's remote images
    max_remote_media: int = Field(16, ge=0)  # http(s) image URLs fetched per request; more → 400
    media_fetch_concurrency: int = Field(4, ge=1, le=64)  # of one request's remote images fetched at once
    media_fetch_allow_private: bool = False  # tests only: allow loopback/private image URLs


def load_settings(env: Mapping[str, str] | None = None, *, require_key: bool = True, **overrides: Any) -> Settings:
    """Build validated settings; raise ConfigError with one operator-facing line on any problem.

    `env` replaces os.environ (tests pass their own); `.env` in the working directory is read
    only when `env` is None, so tests are never affected by a developer's local file.
    """
    try:
        if env is None:
            settings = Settings(**overrides)
        else:
            values: dict[str, Any] = {k.lower(): v for k, v in env.items() if k.lower() in Settings.model_fields}
            values.update(overrides)
            settings = Settings(_env_file=None, **values)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = str(err["loc"][0]).upper() if err["loc"] else "settings"
        raise ConfigError(f"invalid setting {name}: {err['msg']}") from None
    if settings.ops_port and settings.ops_port == settings.port:
        raise ConfigError(f"invalid setting OPS_PORT: must differ from PORT ({settings.port})")
    if require_key and not settings.demo and not settings.gemini_key:
        raise ConfigError(
            "GEMINI_API_KEY environment variable is required "
            "(set it in .env, or run `make demo` to try the proxy against the bundled emulator)"
        )
    return settings

