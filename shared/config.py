"""Settings: one object, read from ``FIRSTVALUE_*`` environment variables once at start-up.

Everything that depends on the environment takes a ``Settings`` (or the values it needs) as
an argument; nothing reads the environment after start-up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote

from pydantic import SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

SCOPES = ("read", "write")


@dataclass(frozen=True)
class ApiKeySpec:
    """A bootstrap API key given in the environment as ``name:scope:key``."""

    name: str
    scopes: tuple[str, ...]
    key: str


def sqlite_dsn(path: str | Path) -> str:
    """The SQLAlchemy URL of a SQLite file through the aiosqlite driver."""
    return f"sqlite+aiosqlite:///{Path(path)}"


def postgres_dsn(user: str, password: str | None, host: str, port: int, database: str) -> str:
    """The SQLAlchemy URL of a PostgreSQL database through the asyncpg driver."""
    auth = quote(user, safe="")
    if password:
        auth += ":" + quote(password, safe="")
    return f"postgresql+asyncpg://{auth}@{host}:{port}/{database}"


def async_database_url(url: str) -> str:
    """Point a plain ``postgres://``/``postgresql://``/``sqlite://`` URL at the async driver.

    Operators paste URLs from their hosting provider; the service only speaks asyncpg and
    aiosqlite, so the driver is filled in rather than failing at first connect.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"database_url {url!r} is not a URL (expected scheme://...)")
    driver = {
        "postgres": "postgresql+asyncpg",
        "postgresql": "postgresql+asyncpg",
        "sqlite": "sqlite+aiosqlite",
    }.get(scheme, scheme)
    if driver not in ("postgresql+asyncpg", "sqlite+aiosqlite"):
        raise ValueError(
            f"database_url scheme {scheme!r} is not supported "
            "(use postgresql+asyncpg:// or sqlite+aiosqlite://)"
        )
    return f"{driver}://{rest}"


def parse_api_keys(value: str) -> list[ApiKeySpec]:
    """Parse ``name:scope:key,...`` (scope ``read`` or ``write``; ``write`` implies read)."""
    specs = []
    for item in filter(None, (part.strip() for part in value.split(","))):
        name, _, rest = item.partition(":")
        scope, _, key = rest.partition(":")
        if not (name and key) or scope not in SCOPES:
            raise ValueError(
                f"api key {name or item!r}: expected name:scope:key with scope read or write"
            )
        scopes = ("read", "write") if scope == "write" else ("read",)
        specs.append(ApiKeySpec(name=name, scopes=scopes, key=key))
    return specs


def _comma_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return [str(part) for part in value]


class Settings(BaseSettings):
    """The service's configuration; see README "Settings"."""

    model_config = SettingsConfigDict(env_prefix="FIRSTVALUE_", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///./firstvalue.db"
    kafka_bootstrap_servers: str | None = None
    plans: Path | None = None
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_keys: Annotated[list[ApiKeySpec], NoDecode] = []
    segment_write_keys: Annotated[list[str], NoDecode] = []
    rudderstack_write_keys: Annotated[list[str], NoDecode] = []  # write keys with Rudder's limits
    account_property: str = "account_id"
    mixpanel_group_key: str = "company_id"
    mixpanel_tokens: Annotated[list[str], NoDecode] = []
    # "open": HTTP ingest accepts any write key or token when none is configured. Without
    # it, `firstvalue api` and `firstvalue ingest` refuse to start with no keys (README).
    ingest_auth: Literal["keys", "open"] = "keys"
    max_body_bytes: int = 1024 * 1024  # REST request bodies; the ingest routes have their own
    max_clock_skew_days: float = 7.0
    timer_interval_seconds: float = 30.0
    # Catch-up without a flood (docs/watermark.md): how late (event time) an event may come
    # behind the latest one read on its partition and still count as on time (unset: ingest
    # carries no watermark, everything is announced at the clock); and how long an input
    # that says nothing is taken as caught up and idle (its watermark then follows the clock).
    allowed_lateness_seconds: float | None = 5.0
    watermark_idle_seconds: float = 15.0
    metrics_host: str = "127.0.0.1"  # where `firstvalue ingest`/`milestones` serve /metrics
    ingest_metrics_port: int = 9464  # 0: any free port (logged)
    milestones_metrics_port: int = 9465
    # Signed webhooks (README "Webhooks"): unset URL = no webhook worker at all.
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None  # HMAC-SHA256 key; required with webhook_url
    webhook_timeout_seconds: float = 10.0  # per attempt; a timeout is retried
    webhook_max_attempts: int = 8  # then the delivery is marked failed
    webhook_backoff_seconds: float = 2.0  # first retry; doubles each attempt
    webhook_backoff_max_seconds: float = 600.0
    webhook_concurrency: int = 4  # requests in flight at once per process
    # Idempotency keys and settled webhook deliveries older than this are pruned hourly by
    # the milestones service (README "Retention"); 0 leaves it to `firstvalue prune`.
    retention_days: float = 30.0
    # Outages (README "Durability and outages"): a database with fsync or synchronous_commit
    # off is refused at start-up unless declared disposable; an outage is waited out, or for
    # at most this long when set (then the process exits for its supervisor to restart it).
    allow_non_durable_database: bool = False
    outage_budget_seconds: float | None = None

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        return async_database_url(value)

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    @field_validator("api_keys", mode="before")
    @classmethod
    def _parse_api_keys(cls, value: Any) -> Any:
        return parse_api_keys(value) if isinstance(value, str) else value

    @field_validator(
        "segment_write_keys", "rudderstack_write_keys", "mixpanel_tokens", mode="before"
    )
    @classmethod
    def _parse_comma_list(cls, value: Any) -> list[str]:
        return _comma_list(value)

    @field_validator("mixpanel_group_key")
    @classmethod
    def _property_name(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must name a property")
        return value.strip()

    @field_validator(
        "timer_interval_seconds",
        "max_clock_skew_days",
        "webhook_timeout_seconds",
        "webhook_backoff_seconds",
        "webhook_backoff_max_seconds",
        "webhook_max_attempts",
        "webhook_concurrency",
        "max_body_bytes",
    )
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be greater than 0")
        return value

    @field_validator("outage_budget_seconds")
    @classmethod
    def _budget(cls, value: float | None) -> float | None:
        if value is not None and value < 0:
            raise ValueError("must be 0 or more seconds (unset or 0: wait out any outage)")
        return value or None

    @field_validator("allowed_lateness_seconds", mode="before")
    @classmethod
    def _off_when_empty(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("allowed_lateness_seconds", "watermark_idle_seconds")
    @classmethod
    def _not_negative(cls, value: float | None) -> float | None:
        if value is not None and value < 0:
            raise ValueError("must be 0 or more seconds")
        return value

    def allowed_lateness(self) -> timedelta | None:
        """The lateness ingest's watermark allows; None: no watermark is carried."""
        if self.allowed_lateness_seconds is None:
            return None
        return timedelta(seconds=self.allowed_lateness_seconds)

    @field_validator("retention_days")
    @classmethod
    def _retention(cls, value: float) -> float:
        if value != 0 and not value >= 1:  # shorter would drop keys clients still retry
            raise ValueError("must be 0 (no automatic pruning) or at least 1 day")
        return value

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url(cls, value: str | None) -> str | None:
        value = value.strip() or None if value is not None else None
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} is not an http:// or https:// URL")
        return value

    @model_validator(mode="after")
    def _webhook_needs_secret(self) -> Settings:
        secret = self.webhook_secret.get_secret_value() if self.webhook_secret else ""
        if self.webhook_url and not secret:
            raise ValueError(
                "FIRSTVALUE_WEBHOOK_SECRET is required when FIRSTVALUE_WEBHOOK_URL is set "
                "(deliveries are always signed)"
            )
        return self


def ingest_auth_refusal(settings: Settings) -> str | None:
    """Why a production service must not start with these settings: HTTP ingest with no
    write keys and no tokens would take events from anyone who reaches the port."""
    if _any_ingest_key(settings) or settings.ingest_auth == "open":
        return None
    return (
        "no ingest keys: set FIRSTVALUE_SEGMENT_WRITE_KEYS and/or FIRSTVALUE_MIXPANEL_TOKENS, "
        "or FIRSTVALUE_INGEST_AUTH=open to accept any write key"
    )


def _any_ingest_key(settings: Settings) -> bool:
    return bool(
        settings.segment_write_keys or settings.rudderstack_write_keys or settings.mixpanel_tokens
    )


def accepts_any_key(settings: Settings, configured: Sequence[str]) -> bool:
    """Whether a vendor's ingest routes, with ``configured`` as their own keys, take any key:
    only with none of their own, and only when ingest is open — said so
    (``FIRSTVALUE_INGEST_AUTH=open``) or no ingest key of any vendor configured (which the
    services refuse at start-up unless it is said). Segment keys alone keep Mixpanel shut."""
    if configured:
        return False
    return settings.ingest_auth == "open" or not _any_ingest_key(settings)


def load_settings(**overrides: Any) -> Settings:
    """Read the environment once (explicit overrides win); call at start-up and pass down."""
    return Settings(**overrides)
