"""The start-up check that the database keeps what it acknowledges.

Consumers commit Kafka offsets right after the database commits a batch. With ``fsync`` or
``synchronous_commit`` off, PostgreSQL acknowledges a commit before it is on disk: a crash
then loses events whose offsets are already committed, and nothing redelivers them. So each
service refuses such a database unless told it is disposable
(``FIRSTVALUE_ALLOW_NON_DURABLE_DATABASE=true``: tests, benches). ``full_page_writes`` off is
refused too: a crash mid-write can then leave torn pages that recovery cannot repair.

SQLite (embedded mode) is not checked: it runs in WAL mode with ``synchronous=NORMAL``,
which survives a crash of the process but may lose the last commits on a power loss.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import text
from sqlalchemy.engine import make_url

from shared.bus.outages import Outage, backoff_seconds, is_outage
from shared.config import Settings
from shared.storage.engine import create_engine

log = logging.getLogger(__name__)
DURABLE_SETTINGS = ("fsync", "synchronous_commit", "full_page_writes")


class NonDurableDatabase(RuntimeError):
    """The database acknowledges commits it may lose in a crash."""


def refusal(url: str, settings: dict[str, str]) -> str | None:
    """The one-line reason to refuse ``settings`` (name → value as ``SHOW`` gives it), or
    None when they are durable."""
    off = [f"{name}={value}" for name, value in settings.items() if value == "off"]
    if not off:
        return None
    where = make_url(url).render_as_string(hide_password=True)
    return (
        f"refusing to start: the database {where} runs with {', '.join(off)}, so a crash can "
        "lose events already acknowledged; turn it on, or set "
        "FIRSTVALUE_ALLOW_NON_DURABLE_DATABASE=true for a disposable database"
    )


async def database_settings(url: str) -> dict[str, str]:
    """The durability settings as this service's connections see them (a role's or a
    database's own ``synchronous_commit`` counts, not only the server's)."""
    engine = create_engine(url, application_name="firstvalue-startup")
    try:
        async with engine.connect() as connection:
            return {
                name: str((await connection.execute(text(f"SHOW {name}"))).scalar_one())
                for name in DURABLE_SETTINGS
            }
    finally:
        await engine.dispose()


async def ensure_durable(url: str, config: Settings) -> None:
    """Raise ``NonDurableDatabase`` for a PostgreSQL database that may lose acknowledged
    commits, unless ``config.allow_non_durable_database``. An unreachable database is waited
    for like any outage (within ``config.outage_budget_seconds``, when set)."""
    if not url.startswith("postgresql"):
        return
    outage = Outage("database", logger=log)
    attempt = 0
    while True:
        try:
            settings = await database_settings(url)
            break
        except Exception as error:
            budget = config.outage_budget_seconds
            if not is_outage(error) or (budget is not None and outage.down_for() > budget):
                raise
            attempt += 1
            outage.down(error)
            await asyncio.sleep(backoff_seconds(attempt))
    outage.up()
    reason = refusal(url, settings)
    if reason is None:
        return
    if not config.allow_non_durable_database:
        raise NonDurableDatabase(reason)
    log.info("non-durable database allowed (FIRSTVALUE_ALLOW_NON_DURABLE_DATABASE): %s", settings)
