"""Usage events bulk-loaded with ``COPY``, in exactly the form ingest stores them.

Rows are made by ingest's own decoding (``services.ingest.records.decode``) and its account
attribution, so ids (the Segment ``messageId``), names, times and property documents are
what ``firstvalue ingest`` would have written for the same messages; only the statement
differs (``COPY`` instead of the batch insert). Every row carries insert number
``LOADED_SEQ``, as if the load were one batch; what the insert derives beside the rows (the
accounts' ``account_sequences`` rows and ``activity_days`` summaries) is left to
``shared.storage.activity_days.rebuild``, run once after the load.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import orjson

from services.ingest.identity import account_named_by
from services.ingest.outcome import DeadLetter
from services.ingest.records import IngestOptions, decode

EVENT_COLUMNS = (
    "id", "account_id", "user_id", "name", "occurred_at", "properties", "source", "recorded_at",
    "seq",
)  # fmt: skip
LOADED_SEQ = 1  # the loaded rows' insert number (rather than NULL, which ``rebuild`` would
# number with an UPDATE of every row: a second copy of the table until vacuumed)
IDENTITY_COLUMNS = ("user_id", "account_id", "linked_at")


def stored_rows(
    messages: Iterable[dict[str, Any]], received_at: datetime, options: IngestOptions
) -> list[tuple[Any, ...]]:
    """The ``events`` rows ingest stores for these Segment track messages (each must name its
    account, as ``context.groupId`` does); a message ingest would refuse raises."""
    rows = []
    for message in messages:
        for event in decode(orjson.dumps(message), received_at, options):
            if isinstance(event, DeadLetter):
                raise ValueError(f"ingest refuses a generated message: {event.reason}")
            account = account_named_by(event, options.account_property)
            if account is None:
                raise ValueError(f"generated message {event.id} names no account")
            rows.append(
                (
                    event.id,
                    account,
                    event.user_id,
                    event.name or "",
                    event.at,
                    orjson.dumps(event.properties).decode(),
                    event.source,
                    received_at,
                    LOADED_SEQ,
                )
            )
    return rows


async def copy_events(conn: Any, rows: Sequence[tuple[Any, ...]]) -> None:
    """COPY ``stored_rows`` into ``events`` over one asyncpg connection."""
    await conn.copy_records_to_table("events", records=rows, columns=EVENT_COLUMNS)


async def copy_identities(conn: Any, rows: Sequence[tuple[str, str, datetime]]) -> None:
    """COPY (user, account, linked at) rows into ``identities``: users already known."""
    await conn.copy_records_to_table("identities", records=rows, columns=IDENTITY_COLUMNS)
