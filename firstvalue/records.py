"""Manual facts as JSON records (one per NDJSON line, named by a ``type`` field).

The on-disk form of ``facts.ndjson`` written by ``firstvalue demo-data`` and read back by
whatever loads it; datetimes are ISO-8601 UTC.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any, get_args

from shared.domain.facts import (
    CommandFact,
)

_TYPES: dict[str, type[CommandFact]] = {cls.__name__: cls for cls in get_args(CommandFact)}


class InvalidRecord(ValueError):
    """A line that is not a manual fact this version understands."""


def to_record(fact: CommandFact) -> dict[str, Any]:
    record: dict[str, Any] = {"type": type(fact).__name__}
    for f in dataclasses.fields(fact):
        value = getattr(fact, f.name)
        record[f.name] = value.isoformat() if isinstance(value, datetime) else value
    return record


def from_record(record: dict[str, Any]) -> CommandFact:
    kind = record.get("type")
    cls = _TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise InvalidRecord(f"unknown fact type {kind!r} (known: {', '.join(_TYPES)})")
    values = {k: v for k, v in record.items() if k != "type"}
    try:
        values["at"] = datetime.fromisoformat(values["at"])
        fact = cls(**values)
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidRecord(f"{kind}: {exc}") from exc
    if fact.at.tzinfo is None:
        raise InvalidRecord(f"{kind} {fact.id}: 'at' needs a UTC offset")
    return fact
