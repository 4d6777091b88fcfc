"""Settings come from FIRSTVALUE_* variables, with DSNs pointed at the async drivers."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from shared.config import ApiKeySpec, load_settings, postgres_dsn, sqlite_dsn


def test_defaults_run_embedded_on_a_sqlite_file(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "API_KEYS", "SEGMENT_WRITE_KEYS"):
        monkeypatch.delenv(f"FIRSTVALUE_{name}", raising=False)
    settings = load_settings()
    assert settings.database_url == "sqlite+aiosqlite:///./firstvalue.db"
    assert settings.kafka_bootstrap_servers is None
    assert (settings.api_host, settings.api_port, settings.timer_interval_seconds) == (
        "127.0.0.1",
        8000,
        30.0,
    )
    assert settings.api_keys == [] and settings.segment_write_keys == []
    assert settings.retention_days == 30.0


def test_retention_is_off_at_0_and_otherwise_at_least_a_day(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for value, expected in (("0", 0.0), ("1", 1.0), ("90", 90.0)):
        monkeypatch.setenv("FIRSTVALUE_RETENTION_DAYS", value)
        assert load_settings().retention_days == expected


def test_environment_lists_and_urls_are_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIRSTVALUE_DATABASE_URL", "postgres://fv:pw@db:5432/firstvalue")
    monkeypatch.setenv("FIRSTVALUE_API_KEYS", "dash:read:abc, ops:write:def")
    monkeypatch.setenv("FIRSTVALUE_SEGMENT_WRITE_KEYS", "wk1, wk2,")
    monkeypatch.setenv("FIRSTVALUE_KAFKA_BOOTSTRAP_SERVERS", " ")
    monkeypatch.setenv("FIRSTVALUE_PLANS", "plans/")
    settings = load_settings()
    assert settings.database_url == "postgresql+asyncpg://fv:pw@db:5432/firstvalue"
    assert settings.api_keys == [
        ApiKeySpec("dash", ("read",), "abc"),
        ApiKeySpec("ops", ("read", "write"), "def"),
    ]
    assert settings.segment_write_keys == ["wk1", "wk2"]
    assert settings.kafka_bootstrap_servers is None
    assert settings.plans == Path("plans")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("API_KEYS", "dash:admin:abc"),
        ("API_KEYS", "nokey"),
        ("DATABASE_URL", "mysql://x/y"),
        ("TIMER_INTERVAL_SECONDS", "0"),
        ("RETENTION_DAYS", "0.5"),
        ("RETENTION_DAYS", "-1"),
    ],
)
def test_bad_settings_fail_at_start_up(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(f"FIRSTVALUE_{name}", value)
    with pytest.raises(ValidationError):
        load_settings()


def test_dsn_helpers_quote_credentials() -> None:
    assert sqlite_dsn("/tmp/x.db") == "sqlite+aiosqlite:////tmp/x.db"
    assert (
        postgres_dsn("fv", "p@ss/word", "localhost", 5432, "firstvalue")
        == "postgresql+asyncpg://fv:p%40ss%2Fword@localhost:5432/firstvalue"
    )


def test_the_watermark_lateness_is_seconds_or_empty_for_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FIRSTVALUE_ALLOWED_LATENESS_SECONDS", raising=False)
    assert load_settings().allowed_lateness() == timedelta(seconds=5)
    monkeypatch.setenv("FIRSTVALUE_ALLOWED_LATENESS_SECONDS", "")
    assert load_settings().allowed_lateness() is None
    monkeypatch.setenv("FIRSTVALUE_ALLOWED_LATENESS_SECONDS", "-1")
    with pytest.raises(ValidationError, match="allowed_lateness_seconds"):
        load_settings()
