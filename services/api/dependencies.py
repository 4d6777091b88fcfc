"""Request-scoped dependencies: the per-request session (the request owns the transaction)
and the process-wide resources the lifespan created."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.api.key_cache import KeyCache
from shared.bus.bus import Bus
from shared.config import Settings
from shared.domain.plans import Plan
from shared.storage.engine import read_only


@dataclass(frozen=True)
class Runtime:
    """What the lifespan builds once per process and every request shares."""

    settings: Settings
    plans: Mapping[str, Plan]
    sessionmaker: async_sessionmaker[AsyncSession]
    bus: Bus | None  # None: this API does not accept HTTP ingest (no bus to publish to)
    keys: KeyCache = field(default_factory=KeyCache)
    read_sessionmaker: async_sessionmaker[AsyncSession] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "read_sessionmaker", read_only(self.sessionmaker))


def runtime(request: Request) -> Runtime:
    state: Runtime = request.app.state.runtime
    return state


_READS = frozenset({"GET", "HEAD"})  # the API's reads: no GET or HEAD route writes


async def session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request: commit when the route succeeds, roll back when it raises.
    Reads get a read-only session (on SQLite it waits for no writer; ``read_only``)."""
    state = runtime(request)
    makers = state.read_sessionmaker if request.method in _READS else state.sessionmaker
    async with makers() as db:
        try:
            yield db
        except BaseException:
            await db.rollback()
            raise
        await db.commit()


async def _runtime(request: Request) -> Runtime:
    """``runtime`` as a dependency: async, so FastAPI runs it on the event loop instead of
    handing it to the thread pool as it does every sync dependency (a cost on each request)."""
    return runtime(request)


RuntimeDep = Annotated[Runtime, Depends(_runtime)]
SessionDep = Annotated[AsyncSession, Depends(session, scope="function")]
