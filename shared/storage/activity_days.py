"""Accounts' insert sequences and daily activity summaries (``shared.domain.activity``).

The event insert numbers the events (``EventRepository``: on PostgreSQL inside its one
statement, on SQLite through ``next_sequences``). The summaries are folded from numbered
events: on PostgreSQL when the projector first reads them (``catch_up``: the events
numbered after the account's mark, ``ActivityMarkRecord``), so the ingest hot path does
not write them and an account nobody projects is never summarised; on SQLite (the
embedded single process, whose read-only sessions cannot write) by the insert (``add``).
The projector reads them compacted
(``compacted``: ``activity.compact``'s few rows a day, grouped by PostgreSQL, whatever the
number of users) and, for a day that straddles ``now``, its moments up to ``now``
(``day_upto``).
``rebuild`` makes both right again for accounts whose events were loaded around the
repository (a bulk ``COPY``): run it once after such a load, before projecting.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.domain.activity import ActivityDay, compacted
from shared.storage import account_events, dialect
from shared.storage.tables import (
    AccountSequenceRecord,
    ActivityDayRecord,
    ActivityMarkRecord,
    EventRecord,
)

IDS_PER_QUERY = 1000


def user_key(user_id: str | None) -> str:
    return "" if user_id is None else f"u:{user_id}"


def _user(key: str) -> str | None:
    return key[2:] if key else None


async def next_sequences(session: AsyncSession, account_ids: Collection[str]) -> dict[str, int]:
    """Take each account's next insert number (locking its row until commit)."""
    ordered = sorted(account_ids)
    found: dict[str, int] = {}
    s = AccountSequenceRecord
    for start in range(0, len(ordered), IDS_PER_QUERY):
        stmt = dialect.insert(session, s).values(
            [{"account_id": a, "seq": 1} for a in ordered[start : start + IDS_PER_QUERY]]
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["account_id"], set_={"seq": s.seq + 1}
        ).returning(s.account_id, s.seq)
        found.update((a, n) for a, n in (await session.execute(stmt)).all())
    return found


async def catch_up(session: AsyncSession, seqs: Mapping[str, int]) -> None:
    """Fold into the summaries every event numbered up to ``seqs[account]`` that they do
    not count yet (PostgreSQL; on SQLite the insert keeps them). Read ``seqs`` first
    (``account_events.sequences``): every event numbered up to them has committed.

    A cheap read of the marks finds the accounts behind; for those one statement locks
    their marks in account order, folds the events numbered between the mark (as it is
    once locked: another fold may have moved it meanwhile) and ``seqs``, and moves the
    marks, so each event is counted once whatever runs concurrently."""
    if not seqs or not dialect.is_postgresql(session):
        return
    ordered = sorted(seqs)
    marks = await dialect.fetch(session, _MARKS, ordered)
    done = {r[0]: r[1] for r in marks}
    behind = [a for a in ordered if seqs[a] > done.get(a, 0)]
    if behind:
        await dialect.fetch(session, _CATCH_UP, behind, [seqs[a] for a in behind])


_MARKS = "SELECT account_id, seq FROM activity_marks WHERE account_id = ANY($1::varchar[])"


def summary_upsert(source: str) -> str:
    """The PostgreSQL statement that folds the rows of ``source`` (a CTE of ``account_id,
    user_id, occurred_at``) into the summaries, in key order (the lock order)."""
    return f"""
    INSERT INTO activity_days (account_id, day, user_key, first_at, last_at, events)
    SELECT account_id, CAST(occurred_at AT TIME ZONE 'UTC' AS date),
           COALESCE('u:' || user_id, ''), min(occurred_at), max(occurred_at), count(*)
    FROM {source} GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (account_id, day, user_key) DO UPDATE SET
        first_at = LEAST(activity_days.first_at, excluded.first_at),
        last_at = GREATEST(activity_days.last_at, excluded.last_at),
        events = activity_days.events + excluded.events
"""


# ``previous`` keeps the mark as it was once locked (RETURNING gives only the new row).
_CATCH_UP = f"""
    WITH wanted AS (
        SELECT * FROM unnest($1::varchar[], $2::bigint[]) AS w(account_id, upto)
    ), marked AS (
        INSERT INTO activity_marks AS m (account_id, seq, previous)
        SELECT account_id, upto, 0 FROM wanted ORDER BY account_id
        ON CONFLICT (account_id) DO UPDATE
            SET previous = m.seq, seq = GREATEST(m.seq, excluded.seq)
        RETURNING account_id, previous, seq
    ), fresh AS (
        SELECT e.account_id, e.user_id, e.occurred_at
        FROM marked AS k
        JOIN events AS e ON e.account_id = k.account_id AND e.seq > k.previous
                        AND e.seq <= k.seq
    )
    {summary_upsert("fresh")}"""


async def add(session: AsyncSession, rows: Sequence[Sequence[Any]]) -> None:
    """Fold newly inserted event rows ``(id, account, user, name, at, ...)`` into the
    summaries (SQLite's insert; PostgreSQL folds them when read, ``catch_up``)."""
    if not rows:
        return
    groups: dict[tuple[str, date, str], list[datetime]] = {}
    for r in rows:
        at: datetime = r[4]
        groups.setdefault((r[1], at.astimezone(UTC).date(), user_key(r[2])), []).append(at)
    a = ActivityDayRecord
    values = [
        {
            "account_id": account,
            "day": day,
            "user_key": key,
            "first_at": min(times),
            "last_at": max(times),
            "events": len(times),
        }
        for (account, day, key), times in sorted(groups.items())
    ]
    stmt = dialect.insert(session, a)
    least, greatest = (
        (func.least, func.greatest)
        if dialect.is_postgresql(session)
        else (
            func.min,
            func.max,
        )
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["account_id", "day", "user_key"],
        set_={
            "first_at": least(a.first_at, stmt.excluded.first_at),
            "last_at": greatest(a.last_at, stmt.excluded.last_at),
            "events": a.events + stmt.excluded.events,
        },
    )
    for start in range(0, len(values), IDS_PER_QUERY):
        await session.execute(stmt, values[start : start + IDS_PER_QUERY])


async def summaries(
    session: AsyncSession, account_ids: Collection[str]
) -> dict[str, list[ActivityDay]]:
    """Each account's stored summaries as they are (one row per user and day, no grouping:
    ``activity.activity_events`` takes them directly), in one plain indexed read."""
    found: dict[str, list[ActivityDay]] = {a: [] for a in account_ids}
    ordered = sorted(found)
    if not ordered:
        return found
    if dialect.is_postgresql(session):
        for account, key, day, first, last, n in await dialect.fetch(session, _SUMMARIES, ordered):
            found[account].append(ActivityDay(key[2:] if key else None, day, first, last, n))
        return found
    a = ActivityDayRecord
    for start in range(0, len(ordered), IDS_PER_QUERY):
        stmt = select(a.account_id, a.user_key, a.day, a.first_at, a.last_at, a.events).where(
            a.account_id.in_(ordered[start : start + IDS_PER_QUERY])
        )
        for account, key, day, first, last, n in (await session.execute(stmt)).all():
            found[account].append(ActivityDay(_user(key), day, first, last, n))
    return found


Champion = tuple[str, str | None]  # an account and its onboarding's champion


COMPACT_ABOVE = 512  # stored rows of an account above which the server compacts them


async def compacted_days(
    session: AsyncSession, wanted: Collection[Champion], today: date
) -> dict[Champion, list[ActivityDay]]:
    """Per (account, champion) the account's summaries for the projector: as stored, or, on
    PostgreSQL for an account with more than ``COMPACT_ABOVE`` rows, ``activity.compact``
    of those before ``today`` for that champion followed by its rows of ``today`` and later
    as stored (the first event after ``now`` and a straddled day come from those). Either
    gives the signals the same answers (``activity``); the server groups the days of a
    large account (``_COMPACTED``: a few rows a day, whatever the number of users), while a
    small one's rows are fewer than their compaction."""
    found: dict[Champion, list[ActivityDay]] = {w: [] for w in wanted}
    if not found:
        return found
    if not dialect.is_postgresql(session):
        stored = await summaries(session, {a for a, _ in found})
        return {(a, c): stored[a] for a, c in found}
    keys = sorted(found, key=lambda w: (w[0], w[1] or ""))
    read: Sequence[Any] = await dialect.fetch(
        session,
        _COMPACTED,
        list(range(len(keys))),
        [a for a, _ in keys],
        [None if c is None else user_key(c) for _, c in keys],
        today,
        COMPACT_ABOVE,
    )
    parts: dict[tuple[int, int], list[Any]] = {}
    for r in read:
        parts.setdefault((r[0], r[1]), []).append(r)
    for i, (account, champion) in enumerate(keys):
        if (i, 5) not in parts:  # a small account: its rows as stored
            found[account, champion] = _rows(parts.get((i, 0), []))
            continue
        later = _rows(parts[i, 5])
        of_account, of_champion, of_others = (
            {r[2]: (r[4], r[5]) for r in parts.get((i, p), [])} for p in (1, 2, 3)
        )
        last = {r[3][2:]: r[5] for r in parts.get((i, 4), [])}
        today_rows = [d for d in later if d.day == today]
        found[account, champion] = [
            *compacted(champion, of_account, of_champion, of_others, last, today_rows),
            *(d for d in later if d.day > today),
        ]
    return found


def _rows(read: Sequence[Any]) -> list[ActivityDay]:
    """Stored rows ``(i, part, day, user_key, first_at, last_at, events)`` (not part 5's
    marker, which has no day)."""
    return [
        ActivityDay(key[2:] if key else None, day, first, last, n)
        for _, _, day, key, first, last, n in read
        if day is not None
    ]


# Per (account, champion) ``i``: an account with at most $5 stored rows gets them as they
# are (part 0); a larger one gets, for the days before ``$4`` (today), the account's span
# per day (part 1), the champion's (part 2), everyone else's (part 3: named users other
# than the champion) and each such user's last moment (part 4), then its rows of today and
# later as stored (part 5, at least a marker row: ``day`` NULL when there are none).
# ``activity.compact`` makes parts 1–4 from every stored row.
_COMPACTED = """
    WITH w AS (
        SELECT w.*, (SELECT count(*) FROM activity_days AS a WHERE a.account_id = w.account_id)
                    > $5 AS big
        FROM unnest($1::int[], $2::varchar[], $3::varchar[]) AS w(i, account_id, champion)
    ), d AS (
        SELECT w.i, w.champion, a.day, a.user_key, a.first_at, a.last_at, a.events
        FROM w JOIN activity_days AS a ON a.account_id = w.account_id
        WHERE w.big
    ), before AS (
        SELECT *, user_key <> '' AND user_key IS DISTINCT FROM champion AS other
        FROM d WHERE day < $4
    )
    SELECT w.i, 0 AS part, a.day, a.user_key, a.first_at, a.last_at, a.events
    FROM w JOIN activity_days AS a ON a.account_id = w.account_id
    WHERE NOT w.big
    UNION ALL
    SELECT i, 1, day, NULL, min(first_at), max(last_at), 0 FROM before GROUP BY i, day
    UNION ALL
    SELECT i, 2, day, NULL, min(first_at), max(last_at), 0
    FROM before WHERE user_key = champion GROUP BY i, day
    UNION ALL
    SELECT i, 3, day, NULL, min(first_at), max(last_at), 0 FROM before WHERE other GROUP BY i, day
    UNION ALL
    SELECT i, 4, NULL, user_key, NULL, max(last_at), 0 FROM before WHERE other GROUP BY i, user_key
    UNION ALL
    SELECT i, 5, day, user_key, first_at, last_at, events FROM d WHERE day >= $4
    UNION ALL
    SELECT i, 5, NULL::date, NULL, NULL::timestamptz, NULL::timestamptz, 0 FROM w WHERE big
"""


_SUMMARIES = (
    "SELECT account_id, user_key, day, first_at, last_at, events FROM activity_days"
    " WHERE account_id = ANY($1::varchar[])"
)


async def day_upto(
    session: AsyncSession, stored: Mapping[str, Sequence[ActivityDay]], now: datetime
) -> dict[str, list[ActivityDay]]:
    """The summaries of ``now``'s UTC day up to ``now`` (for a day that straddles ``now``),
    per account from its rows as ``stored`` (those of ``now``'s day are used). SQLite (the
    reference) groups the day's events up to ``now``; PostgreSQL keeps every row that ends
    by ``now``, drops those that begin after it and looks up only each straddling row's
    last moment up to ``now`` among the latest events (``account_events.last_moments``,
    ``LOOK_BACK``), reading the whole day's events only when that does not find it. Only
    the moments are exact there: a straddling row keeps its stored count (the stand-in
    events, the only readers, look at moments alone)."""
    if not stored:
        return {}
    start = datetime.combine(now.astimezone(UTC).date(), time(), UTC)
    if not dialect.is_postgresql(session):
        return await _day_from_events(session, list(stored), start, now)
    found: dict[str, list[ActivityDay]] = {a: [] for a in stored}
    open_rows: dict[tuple[str, str | None], ActivityDay] = {}
    for account, rows in stored.items():
        for d in rows:
            if d.day != start.date() or d.first_at > now:
                continue
            if d.last_at <= now:
                found[account].append(d)
            else:
                open_rows[account, d.user_id] = d
    for back in LOOK_BACK:
        if not open_rows:
            return found
        accounts = sorted({a for a, _ in open_rows})
        lasts = await account_events.last_moments(session, accounts, max(start, now - back), now)
        for key, d in list(open_rows.items()):
            if key in lasts:
                last = ActivityDay(d.user_id, d.day, d.first_at, lasts[key], d.events)
                found[key[0]].append(last)
                del open_rows[key]
    if open_rows:  # a last moment older than the look-back: the day's events decide
        return await _day_from_events(session, list(stored), start, now)
    return found


# How far back ``day_upto`` looks for a straddling row's last moment, widening until each is
# found (then the whole day's events). A row straddles when its user sent an event after
# ``now`` (a live stream outrunning the projection, or a clock ahead), so its last one up
# to ``now`` is almost always seconds old.
LOOK_BACK = (timedelta(seconds=5), timedelta(minutes=2), timedelta(hours=1))


async def _day_from_events(
    session: AsyncSession, account_ids: Sequence[str], start: datetime, now: datetime
) -> dict[str, list[ActivityDay]]:
    """The summaries of the accounts' events in ``[start, now]`` (one day, grouped)."""
    found: dict[str, list[ActivityDay]] = {a: [] for a in account_ids}
    e = EventRecord
    stmt = (
        select(
            e.account_id,
            e.user_id,
            func.min(e.occurred_at),
            func.max(e.occurred_at),
            func.count(),
        )
        .where(
            e.account_id.in_(sorted(found)),
            e.occurred_at >= start,
            e.occurred_at <= now,
        )
        .group_by(e.account_id, e.user_id)
    )
    for account, user, first, last, n in (await session.execute(stmt)).all():
        found[account].append(ActivityDay(user, start.date(), _utc(first), _utc(last), n))
    return found


def _utc(value: datetime | str) -> datetime:
    """Aggregates bypass the column type on SQLite (text comes back): parse it."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is UTC:
        return value
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


async def rebuild(session: AsyncSession, account_ids: Iterable[str]) -> None:
    """Recompute these accounts' summaries from their stored events (and their marks)
    and number the events stored without a sequence (bulk loads that bypass
    ``EventRepository``)."""
    ordered = sorted(set(account_ids))
    if not ordered:
        return
    await next_sequences(session, ordered)
    e, a, s = EventRecord, ActivityDayRecord, AccountSequenceRecord
    number = select(s.seq).where(s.account_id == e.account_id).scalar_subquery()
    fill = _FILL_POSTGRESQL if dialect.is_postgresql(session) else _FILL_SQLITE
    for start in range(0, len(ordered), IDS_PER_QUERY):
        chunk = ordered[start : start + IDS_PER_QUERY]
        await session.execute(
            update(e).where(e.account_id.in_(chunk), e.seq.is_(None)).values(seq=number)
        )
        await session.execute(delete(a).where(a.account_id.in_(chunk)))
        await session.execute(fill, {"a": chunk})
    await _marks_at_sequences(session, ordered)


async def _marks_at_sequences(session: AsyncSession, ordered: Sequence[str]) -> None:
    """The accounts' summaries count every stored event: their marks at their numbers."""
    m, s = ActivityMarkRecord, AccountSequenceRecord
    for start in range(0, len(ordered), IDS_PER_QUERY):
        chunk = ordered[start : start + IDS_PER_QUERY]
        await session.execute(delete(m).where(m.account_id.in_(chunk)))
        await session.execute(
            insert(m).from_select(
                ["account_id", "seq", "previous"],
                select(s.account_id, s.seq, s.seq).where(s.account_id.in_(chunk)),
            )
        )


# ``rebuild``'s fill: one grouped insert from the events (the migration fills all the same way).
_FILL_POSTGRESQL = text(
    """
    INSERT INTO activity_days (account_id, day, user_key, first_at, last_at, events)
    SELECT account_id, CAST(occurred_at AT TIME ZONE 'UTC' AS date),
           COALESCE('u:' || user_id, ''), min(occurred_at), max(occurred_at), count(*)
    FROM events WHERE account_id IN :a GROUP BY 1, 2, 3
    """
).bindparams(bindparam("a", expanding=True))
_FILL_SQLITE = text(
    """
    INSERT INTO activity_days (account_id, day, user_key, first_at, last_at, events)
    SELECT account_id, date(occurred_at), COALESCE('u:' || user_id, ''),
           min(occurred_at), max(occurred_at), count(*)
    FROM events WHERE account_id IN :a GROUP BY 1, 2, 3
    """
).bindparams(bindparam("a", expanding=True))
