"""Values the services exchange on the bus: the ``onboarding.facts`` notice and the
dead-letter record.

Ingest publishes one notice per account per batch; the milestones consumer re-projects the
account's onboardings. The facts themselves are in the database; the notice is a nudge.
Its optional ``watermark`` (ISO 8601) says how far in event time the input it came from is
complete (docs/watermark.md); a notice without one (HTTP ingest, older producers) means
complete up to the clock.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from shared.bus.bus import Message


@dataclass(frozen=True)
class FactsNotice:
    account_id: str
    fact_ids: tuple[str, ...]
    onboarding_id: str | None = None
    watermark: datetime | None = None

    def encode(self) -> bytes:
        value: dict[str, Any] = {"account_id": self.account_id, "fact_ids": list(self.fact_ids)}
        if self.onboarding_id is not None:
            value["onboarding_id"] = self.onboarding_id
        if self.watermark is not None:
            value["watermark"] = self.watermark.isoformat()
        return orjson.dumps(value)

    @classmethod
    def decode(cls, value: bytes) -> FactsNotice:
        """Parse a notice; raises ``ValueError`` naming what is wrong."""
        try:
            data = orjson.loads(value)
        except orjson.JSONDecodeError as error:
            raise ValueError(f"facts notice is not JSON: {error}") from error
        if not isinstance(data, dict) or not isinstance(data.get("account_id"), str):
            raise ValueError("facts notice needs a string account_id")
        fact_ids = data.get("fact_ids", [])
        if not isinstance(fact_ids, list) or not all(isinstance(f, str) for f in fact_ids):
            raise ValueError("facts notice fact_ids must be a list of strings")
        onboarding_id = data.get("onboarding_id")
        if onboarding_id is not None and not isinstance(onboarding_id, str):
            raise ValueError("facts notice onboarding_id must be a string")
        return cls(data["account_id"], tuple(fact_ids), onboarding_id, _watermark(data))


def _watermark(data: dict[str, Any]) -> datetime | None:
    raw = data.get("watermark")
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise ValueError("facts notice watermark must be an ISO 8601 string")
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError as error:
        raise ValueError(f"facts notice watermark is not ISO 8601: {raw!r}") from error
    if moment.tzinfo is None:
        raise ValueError(f"facts notice watermark needs a UTC offset: {raw!r}")
    return moment


def dead_letter(message: Message, reason: str, error: str, original: bytes | None = None) -> bytes:
    """The dead-letter record for a consumed ``message`` that could not be processed.

    JSON ``{"reason", "error", "topic", "partition", "offset", "original"}``; ``original`` is
    the record's bytes (or ``original``, e.g. one item of a batch record) as text, or as
    base64 with ``"original_encoding": "base64"`` when they are not UTF-8.
    """
    raw = message.value if original is None else original
    record: dict[str, Any] = {
        "reason": reason,
        "error": error,
        "topic": message.topic,
        "partition": message.partition,
        "offset": message.offset,
    }
    try:
        record["original"] = raw.decode("utf-8")
    except UnicodeDecodeError:
        record["original"] = base64.b64encode(raw).decode("ascii")
        record["original_encoding"] = "base64"
    return orjson.dumps(record)
