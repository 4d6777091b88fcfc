"""The announcement step of a projection: what the outbox gets, held back by the watermark.

The stored projection is exact at the clock; what is announced (topics, webhooks) is that
state as seen at the watermark of its input (``shared.domain.watermark.announce``). The
``announcements`` row of an onboarding keeps what was announced (no state: the projection's
own, nothing held), the latest watermark heard for it and the earliest held moment, so a
later notice or a timer releases what still holds once the watermark passes it
(docs/watermark.md). An onboarding without a row, heard by no notice, announces as before.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.bus import topics
from shared.domain.codec import state_from_dict, state_to_dict
from shared.domain.state import OnboardingState
from shared.domain.stored_state import StoredState
from shared.domain.transitions import ESCALATION_TRANSITIONS, Transition
from shared.domain.watermark import announce, effective_watermark
from shared.storage import dialect
from shared.storage.account_events import IDS_PER_QUERY
from shared.storage.onboardings import OnboardingRepository
from shared.storage.outbox import OutboxRepository, QueuedMessage
from shared.storage.projections import ProjectionRepository
from shared.storage.tables import AnnouncementRecord, OnboardingRecord

IDLE = timedelta(seconds=15)  # FIRSTVALUE_WATERMARK_IDLE_SECONDS' default


@dataclass(frozen=True)
class Heard:
    """A watermark carried by a facts notice, and when the notice was handled."""

    watermark: datetime
    at: datetime


@dataclass(frozen=True)
class _Row:
    state: StoredState | None
    watermark: datetime | None
    heard_at: datetime | None
    held_at: datetime | None


def topic_of(transition: Transition) -> str:
    if isinstance(transition, ESCALATION_TRANSITIONS):
        return topics.ESCALATIONS
    return topics.TRANSITIONS


async def _rows(session: AsyncSession, ids: Sequence[str]) -> dict[str, _Row]:
    a = AnnouncementRecord
    found: dict[str, _Row] = {}
    for start in range(0, len(ids), IDS_PER_QUERY):
        stmt = select(a.onboarding_id, a.state, a.watermark, a.heard_at, a.held_at).where(
            a.onboarding_id.in_(ids[start : start + IDS_PER_QUERY])
        )
        for onboarding_id, state, watermark, heard_at, held_at in await session.execute(stmt):
            found[onboarding_id] = _Row(state, watermark, heard_at, held_at)
    return found


async def _save(session: AsyncSession, rows: Mapping[str, _Row]) -> None:
    if not rows:
        return
    values = [
        {
            "onboarding_id": onboarding_id,
            "state": row.state,
            "watermark": row.watermark,
            "heard_at": row.heard_at,
            "held_at": row.held_at,
        }
        for onboarding_id, row in rows.items()
    ]
    stmt = dialect.insert(session, AnnouncementRecord.__table__)
    stmt = stmt.on_conflict_do_update(
        index_elements=["onboarding_id"],
        set_={k: getattr(stmt.excluded, k) for k in values[0] if k != "onboarding_id"},
    )
    await session.execute(stmt, values)


async def announce_page(
    session: AsyncSession,
    projected: Sequence[tuple[OnboardingState, OnboardingState | None]],
    now: datetime,
    *,
    heard: Mapping[str, Heard] | None = None,
    idle: timedelta = IDLE,
    input_watermark: datetime | None = None,
) -> None:
    """Queue in the outbox what each ``(state, previous)`` lets announce at ``now``, by the
    watermark heard for its account (``heard``, by account id) or the one last heard; keep
    what was announced and what is held. ``previous`` is the state the projection replaced:
    what was announced unless a row says otherwise. ``input_watermark``: the input's as a
    whole (``InputProgress``), for an onboarding not heard from within ``idle``."""
    if not projected:
        return
    rows = await _rows(session, [state.onboarding_id for state, _ in projected])
    queued: list[QueuedMessage] = []
    changed: dict[str, _Row] = {}
    for state, previous in projected:
        row = rows.get(state.onboarding_id)
        news = (heard or {}).get(state.account_id)
        if row is None and news is None and input_watermark is None:
            # nothing heard at all: announced as soon as derived, as ever
            queued.extend(_queued(state, announce(previous, state, now).transitions))
            continue
        watermark = row.watermark if row is not None else None
        heard_at = row.heard_at if row is not None else None
        if news is not None:
            watermark = news.watermark if watermark is None else max(watermark, news.watermark)
            heard_at = news.at
        floor = None
        if row is not None and row.state is not None:
            kept_state = state_from_dict(row.state)
            announced: OnboardingState | None = kept_state
            floor = kept_state.as_of  # the watermark it was seen at
        else:
            announced = previous
        mark = effective_watermark(watermark, heard_at, now, idle, input_watermark)
        out = announce(announced, state, mark, floor)
        queued.extend(_queued(state, out.transitions))
        kept = None if out.held_at is None else state_to_dict(out.announced)
        new = _Row(kept, watermark, heard_at, out.held_at)
        if new != row and not (row is None and new == _Row(None, None, None, None)):
            changed[state.onboarding_id] = new
    await _save(session, changed)
    await OutboxRepository(session).add_many(queued, now)


async def watermark_lag(session: AsyncSession, now: datetime, idle: timedelta = IDLE) -> float:
    """Seconds the slowest input still being heard from is behind ``now`` (0 when every
    input is caught up and idle: their watermarks follow the clock)."""
    a = AnnouncementRecord
    stmt = select(func.min(a.watermark)).where(a.heard_at > now - idle)
    lowest = await session.scalar(stmt)
    if lowest is None:
        return 0.0
    return max((now - lowest).total_seconds(), 0.0)


def _queued(state: OnboardingState, found: Sequence[Transition]) -> list[QueuedMessage]:
    return [QueuedMessage(topic_of(t), state.account_id, t.id, t.to_dict()) for t in found]


async def release_held(
    session: AsyncSession,
    now: datetime,
    *,
    idle: timedelta = IDLE,
    input_watermark: datetime | None = None,
    limit: int = 200,
) -> int:
    """Announce what the watermark has passed since it was held: the onboardings whose
    earliest held moment is at or before their watermark (or, not heard from within ``idle``,
    at or before the input's as a whole: ``input_watermark``, the clock when None),
    a page at a time, each re-announced from its stored state — no re-evaluation: the
    stored state is exact at its moment, and only its view moves with the watermark.
    Returns how many onboardings were looked at."""
    a = AnnouncementRecord
    stmt = (
        select(a.onboarding_id)
        .join(OnboardingRecord, OnboardingRecord.onboarding_id == a.onboarding_id)
        .where(
            a.held_at <= now,
            or_(
                a.held_at <= a.watermark,
                and_(
                    or_(a.heard_at.is_(None), a.heard_at <= now - idle),
                    a.held_at <= (now if input_watermark is None else min(input_watermark, now)),
                ),
            ),
        )
        .order_by(a.held_at, a.onboarding_id)
        .limit(limit)
        .with_for_update(of=OnboardingRecord, skip_locked=True)
    )
    ids = list((await session.scalars(stmt)).all())
    if not ids:
        return 0
    await OnboardingRepository(session).lock_many(ids)  # as the projector does, in id order
    stored = await ProjectionRepository(session).state_dicts(ids)
    projected = [(state_from_dict(stored[i]), None) for i in ids if i in stored]
    # ``previous`` is never used: every one of these has a row.
    await announce_page(session, projected, now, idle=idle, input_watermark=input_watermark)
    return len(ids)
