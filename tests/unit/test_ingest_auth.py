"""Which write keys the HTTP ingest takes: a vendor with no keys of its own is open only
when ingest is open (said so, or no vendor's key configured), never because another vendor
has keys."""

from __future__ import annotations

from shared.config import Settings, accepts_any_key, ingest_auth_refusal


def _settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_no_key_of_any_vendor_is_open_but_refused_at_start_up_unless_said() -> None:
    settings = _settings()
    assert accepts_any_key(settings, settings.mixpanel_tokens)
    assert ingest_auth_refusal(settings) is not None
    assert ingest_auth_refusal(_settings(ingest_auth="open")) is None


def test_segment_keys_alone_keep_mixpanel_shut() -> None:
    settings = _settings(segment_write_keys=["wk"])
    assert not accepts_any_key(settings, settings.mixpanel_tokens)
    assert not accepts_any_key(settings, settings.segment_write_keys)
    assert ingest_auth_refusal(settings) is None


def test_rudderstack_keys_alone_count_as_ingest_keys() -> None:
    settings = _settings(rudderstack_write_keys=["rk"])
    assert ingest_auth_refusal(settings) is None
    assert not accepts_any_key(settings, settings.mixpanel_tokens)


def test_open_ingest_takes_any_key_for_a_vendor_without_keys_only() -> None:
    settings = _settings(ingest_auth="open", segment_write_keys=["wk"])
    assert accepts_any_key(settings, settings.mixpanel_tokens)
    assert not accepts_any_key(settings, settings.segment_write_keys)
