"""Projections: each onboarding's derived state, stored for fast lists, timers and metrics.

The state is always rebuildable from facts (``evaluate``); this table is a cache with the
columns that lists filter and sort on, the full state as JSON, and the escalation rows.
"""

from __future__ import annotations

import base64
import builtins
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
from sqlalchemy import ColumnElement, and_, delete, false, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.domain import codec
from shared.domain.state import OnboardingState
from shared.domain.stored_state import StoredState
from shared.storage import dialect
from shared.storage.account_events import IDS_PER_QUERY
from shared.storage.tables import EscalationRecord, OnboardingRecord, ProjectionRecord
from shared.storage.views import (
    ESCALATION_FIELDS,
    SUMMARY_FIELDS,
    EscalationRow,
    OnboardingSummary,
    escalation_columns,
    summary_columns,
    summary_row,
)

T = TypeVar("T")


class InvalidCursor(ValueError):
    """A pagination cursor that this service did not hand out."""


@dataclass(frozen=True)
class ProjectionFilter:
    """List filters; ``None`` means "any". ``at_risk`` = all tasks done, no first value."""

    segment: str | None = None
    plan_key: str | None = None
    stage: str | None = None
    status: str | None = None
    csm: str | None = None
    breach: str | tuple[str, ...] | None = None
    tier: str | None = None
    at_risk: bool | None = None
    account_id: str | None = None
    signed_from: datetime | None = None  # a signature-month cohort: [from, before)
    signed_before: datetime | None = None


@dataclass(frozen=True)
class ProjectionPage:
    items: list[OnboardingSummary]
    next_cursor: str | None


@dataclass(frozen=True)
class EscalationPage:
    items: list[EscalationRow]
    next_cursor: str | None


def encode_cursor(*parts: Any) -> str:
    """A page's position: its last row's sort key as base64url JSON (moments in ISO-8601)."""
    values = [p.isoformat() if isinstance(p, datetime) else p for p in parts]
    return base64.urlsafe_b64encode(orjson.dumps(values)).decode().rstrip("=")


def keyset_page(
    rows: Sequence[T], limit: int, key: Callable[[T], Sequence[Any]]
) -> tuple[list[T], str | None]:
    """A page of a keyset query that fetched ``limit + 1`` rows: the first ``limit``, and
    the cursor after the last of them when the extra row says there is more."""
    items = list(rows[:limit])
    return items, encode_cursor(*key(items[-1])) if len(rows) > limit else None


CURSOR_ID_MAX = 255  # the width of the id columns a cursor's ids are compared with


def decode_cursor(cursor: str, size: int) -> tuple[datetime, list[str]]:
    """A cursor parsed strictly into its types: a timezone-aware moment (as UTC), then
    ``size - 1`` ids of text. Anything else raises ``InvalidCursor`` (the API's 400).

    Not signed, on purpose: a cursor is only a position in a sorted list, and any position
    that parses is one a client may start a page from; it grants nothing a filter does not.
    Strict types are what keep a forged one from reaching the database as a bad parameter.
    """
    try:
        values = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(values, list) or len(values) != size:
            raise ValueError("wrong shape")
        moment, *ids = values
        if not isinstance(moment, str):
            raise ValueError("the position's moment is not text")
        at = datetime.fromisoformat(moment)
        if at.tzinfo is None:
            raise ValueError("the position's moment has no offset")
        at = at.astimezone(UTC)
        if not all(_cursor_id(value) for value in ids):
            raise ValueError("an id of the position is not plain text")
        return at, ids
    except (ValueError, TypeError, OverflowError) as error:  # JSONDecodeError: a ValueError
        raise InvalidCursor(f"invalid cursor {cursor[:100]!r}") from error


def _cursor_id(value: object) -> bool:
    """Text both backends compare as it is (orjson refuses unpaired surrogates itself)."""
    return isinstance(value, str) and len(value) <= CURSOR_ID_MAX and "\x00" not in value


class ProjectionRepository:
    """Upserts, lists and pages onboarding projections and their escalations."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def save(self, state: OnboardingState, updated_at: datetime) -> None:
        """Upsert the projection and replace the onboarding's escalation rows."""
        await self.save_many([(state, None)], updated_at)

    async def save_many(
        self,
        states: Sequence[tuple[OnboardingState, StoredState | None]],
        updated_at: datetime,
        folds: Mapping[str, dict[str, Any]] | None = None,
    ) -> None:
        """``save`` for many onboardings (each at most once) in three statements: one upsert,
        one delete and one insert of escalation rows. Each state may come with its
        ``codec.state_to_dict`` encoding, when the caller has it already, and with the fold
        record it was made with (by onboarding id; without one, the next projection folds
        from nothing)."""
        if not states:
            return
        columns = [
            {
                **summary_columns(summary_row(state, updated_at, encoded)),
                "fold": (folds or {}).get(state.onboarding_id),
            }
            for state, encoded in states
        ]
        # Core tables, not the mapped classes: the ORM's bulk path costs per row in Python.
        stmt = dialect.insert(self._session, ProjectionRecord.__table__)
        stmt = stmt.on_conflict_do_update(
            index_elements=["onboarding_id"],
            set_={k: getattr(stmt.excluded, k) for k in columns[0] if k != "onboarding_id"},
        )
        await self._session.execute(stmt, columns)
        ids = [state.onboarding_id for state, _ in states]
        for start in range(0, len(ids), IDS_PER_QUERY):
            await self._session.execute(
                delete(EscalationRecord)
                .where(EscalationRecord.onboarding_id.in_(ids[start : start + IDS_PER_QUERY]))
                .execution_options(synchronize_session=False)
            )
        rows = [row for state, _ in states for row in escalation_columns(state)]
        if rows:
            await self._session.execute(
                dialect.insert(self._session, EscalationRecord.__table__), rows
            )

    async def state_dicts(self, onboarding_ids: Sequence[str]) -> dict[str, StoredState]:
        """``state_dict`` of many onboardings; those without a projection are left out."""
        found: dict[str, StoredState] = {}
        p = ProjectionRecord
        for start in range(0, len(onboarding_ids), IDS_PER_QUERY):
            chunk = onboarding_ids[start : start + IDS_PER_QUERY]
            rows = await self._session.execute(
                select(p.onboarding_id, p.state).where(p.onboarding_id.in_(chunk))
            )
            found.update((r.onboarding_id, r.state) for r in rows)
        return found

    async def folds(self, onboarding_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The fold records stored with these projections (those without one left out)."""
        found: dict[str, dict[str, Any]] = {}
        p = ProjectionRecord
        for start in range(0, len(onboarding_ids), IDS_PER_QUERY):
            chunk = onboarding_ids[start : start + IDS_PER_QUERY]
            rows = await self._session.execute(
                select(p.onboarding_id, p.fold).where(
                    p.onboarding_id.in_(chunk), p.fold.is_not(None)
                )
            )
            found.update((r.onboarding_id, r.fold) for r in rows if r.fold is not None)
        return found

    async def state_dict(self, onboarding_id: str) -> StoredState | None:
        """The stored state as ``codec.state_to_dict`` wrote it."""
        stmt = select(ProjectionRecord.state).where(ProjectionRecord.onboarding_id == onboarding_id)
        result: StoredState | None = await self._session.scalar(stmt)
        return result

    async def state(self, onboarding_id: str) -> OnboardingState | None:
        data = await self.state_dict(onboarding_id)
        return codec.state_from_dict(data) if data is not None else None

    async def get(self, onboarding_id: str) -> OnboardingSummary | None:
        record = await self._session.get(ProjectionRecord, onboarding_id)
        return _summary(record) if record else None

    async def list(
        self, filters: ProjectionFilter, *, limit: int, cursor: str | None = None
    ) -> ProjectionPage:
        """A page ordered by (``signed_at`` desc, ``onboarding_id``), keyset-paginated."""
        stmt = select(ProjectionRecord).where(*filter_conditions(filters))
        if cursor is not None:
            stmt = stmt.where(after_list_cursor(cursor))
        stmt = stmt.order_by(*LIST_ORDER).limit(limit + 1)
        summaries = [_summary(r) for r in (await self._session.scalars(stmt)).all()]
        items, next_cursor = keyset_page(summaries, limit, _list_key)
        return ProjectionPage(items=items, next_cursor=next_cursor)

    async def all(self, filters: ProjectionFilter) -> builtins.list[OnboardingSummary]:
        """Every matching projection (reports compute distributions over them)."""
        stmt = select(ProjectionRecord).where(*filter_conditions(filters)).order_by(*LIST_ORDER)
        return [_summary(r) for r in (await self._session.scalars(stmt)).all()]

    async def due(self, now: datetime, limit: int) -> builtins.list[str]:
        """Onboardings whose next timer moment has come (uses the ``next_due_at`` index)."""
        stmt = (
            select(ProjectionRecord.onboarding_id)
            .where(ProjectionRecord.next_due_at <= now)
            .order_by(ProjectionRecord.next_due_at, ProjectionRecord.onboarding_id)
            .limit(limit)
        )
        return list((await self._session.scalars(stmt)).all())

    async def next_due_after(self, moment: datetime) -> datetime | None:
        """The earliest timer moment strictly after ``moment`` (one index probe)."""
        stmt = select(func.min(ProjectionRecord.next_due_at)).where(
            ProjectionRecord.next_due_at > moment
        )
        found: datetime | None = await self._session.scalar(stmt)
        return found

    async def claim_due(self, now: datetime, limit: int) -> builtins.list[str]:
        """Like ``due``, but row-locks the onboardings it returns until commit, skipping any
        another transaction holds (PostgreSQL ``FOR UPDATE SKIP LOCKED``): concurrent timer
        instances take disjoint pages, and a timer never waits behind the facts consumer.
        The lock is the one ``OnboardingRepository.lock`` takes, so the order (onboarding,
        then projection) is the same everywhere. SQLite serialises writers instead."""
        o = OnboardingRecord
        stmt = (
            select(ProjectionRecord.onboarding_id)
            .join(o, o.onboarding_id == ProjectionRecord.onboarding_id)
            .where(ProjectionRecord.next_due_at <= now)
            .order_by(ProjectionRecord.next_due_at, ProjectionRecord.onboarding_id)
            .limit(limit)
            .with_for_update(of=o, skip_locked=True)
        )
        return list((await self._session.scalars(stmt)).all())

    async def escalations(
        self,
        *,
        open_only: bool = True,
        level: int | None = None,
        segment: str | None = None,
        csm: str | None = None,
        limit: int,
        cursor: str | None = None,
    ) -> EscalationPage:
        """Escalations ordered by (``fired_at`` desc, onboarding, rule), keyset-paginated."""
        e = EscalationRecord
        stmt = select(e)
        if open_only:
            stmt = stmt.where(e.resolved_at.is_(None))
        if level is not None:
            stmt = stmt.where(e.level == level)
        if segment is not None:
            stmt = stmt.where(e.segment == segment)
        if csm is not None:
            stmt = stmt.where(e.csm == csm)
        if cursor is not None:
            fired_at, (onboarding_id, rule_key) = decode_cursor(cursor, 3)
            stmt = stmt.where(
                or_(
                    e.fired_at < fired_at,
                    and_(
                        e.fired_at == fired_at,
                        or_(
                            e.onboarding_id > onboarding_id,
                            and_(e.onboarding_id == onboarding_id, e.rule_key > rule_key),
                        ),
                    ),
                )
            )
        stmt = stmt.order_by(e.fired_at.desc(), e.onboarding_id, e.rule_key).limit(limit + 1)
        records = (await self._session.scalars(stmt)).all()
        rows = [EscalationRow(**{k: getattr(r, k) for k in ESCALATION_FIELDS}) for r in records]
        items, next_cursor = keyset_page(rows, limit, _escalation_key)
        return EscalationPage(items=items, next_cursor=next_cursor)


def _list_key(summary: OnboardingSummary) -> tuple[datetime, str]:
    return summary.signed_at, summary.onboarding_id


def _escalation_key(row: EscalationRow) -> tuple[datetime, str, str]:
    return row.fired_at, row.onboarding_id, row.rule_key


def _summary(record: ProjectionRecord) -> OnboardingSummary:
    return OnboardingSummary(**{k: getattr(record, k) for k in SUMMARY_FIELDS})


LIST_ORDER = (ProjectionRecord.signed_at.desc(), ProjectionRecord.onboarding_id)


def after_list_cursor(cursor: str) -> ColumnElement[bool]:
    """Rows after ``cursor`` in ``LIST_ORDER``: the keyset condition of the list's pages."""
    p = ProjectionRecord
    signed_at, (onboarding_id,) = decode_cursor(cursor, 2)
    return or_(
        p.signed_at < signed_at,
        and_(p.signed_at == signed_at, p.onboarding_id > onboarding_id),
    )


def filter_conditions(f: ProjectionFilter) -> Sequence[Any]:
    p = ProjectionRecord
    conditions: list[Any] = []
    equal = [
        (p.segment, f.segment),
        (p.plan_key, f.plan_key),
        (p.current_stage, f.stage),
        (p.status, f.status),
        (p.csm, f.csm),
        (p.health_tier, f.tier),
        (p.account_id, f.account_id),
    ]
    conditions.extend(column == value for column, value in equal if value is not None)
    if isinstance(f.breach, str):
        conditions.append(p.breach == f.breach)
    elif f.breach is not None:
        conditions.append(p.breach.in_(f.breach) if f.breach else false())
    if f.at_risk is not None:
        conditions.append(p.tasks_done_no_value == f.at_risk)
    if f.signed_from is not None:
        conditions.append(p.signed_at >= f.signed_from)
    if f.signed_before is not None:
        conditions.append(p.signed_at < f.signed_before)
    return conditions
