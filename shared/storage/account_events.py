"""Reads of many accounts' usage events at once, for a page of onboardings.

``events_by_account`` reads whole histories (the reference path, ``EventRepository.
for_account``, tests); the projector reads only what its fold lacks: the events stored
since its last projection (``sequences`` + ``stored_since``), the rule events of given
spans (``in_spans``, through the account/name/time index), the aggregates of unfinished
rolling rules' trailing windows (``trails``) and the first event ahead of ``now``
(``first_after``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.domain.facts import EventObserved
from shared.domain.milestones import EVIDENCE_CAP
from shared.domain.trail import (
    TALLY_USERS,
    Moment,
    Slide,
    SlideRows,
    Tally,
    Trail,
    TrailStats,
    User,
    in_order,
    next_firsts,
    slide_rows,
    trail_stats,
)
from shared.storage import dialect
from shared.storage.tables import AccountSequenceRecord, EventRecord

IDS_PER_QUERY = 1000  # bound parameters per ``IN`` list, well under the drivers' limits


async def events_by_account(
    session: AsyncSession, account_ids: Collection[str], *, until: datetime | None = None
) -> dict[str, list[EventObserved]]:
    """Each account's events in event-time order (only ``at <= until`` when given); every
    requested account is a key, with an empty list when it has no events."""
    found: dict[str, list[EventObserved]] = {account_id: [] for account_id in account_ids}
    ordered = sorted(found)
    read = _driver_rows if dialect.is_postgresql(session) else _rows
    for start in range(0, len(ordered), IDS_PER_QUERY):
        for r in await read(session, ordered[start : start + IDS_PER_QUERY], until):
            found[r[1]].append(
                EventObserved(
                    id=r[0], account_id=r[1], user_id=r[2], name=r[3], at=r[4], properties=r[5]
                )
            )
    return found


async def _rows(
    session: AsyncSession, account_ids: list[str], until: datetime | None
) -> Sequence[Any]:
    e = EventRecord
    stmt = select(e.id, e.account_id, e.user_id, e.name, e.occurred_at, e.properties).where(
        e.account_id.in_(account_ids)
    )
    if until is not None:
        stmt = stmt.where(e.occurred_at <= until)
    return (await session.execute(stmt.order_by(e.account_id, e.occurred_at, e.id))).all()


async def _driver_rows(
    session: AsyncSession, account_ids: list[str], until: datetime | None
) -> Sequence[Any]:
    """The same query straight on asyncpg (``dialect.fetch``): SQLAlchemy's per-row result
    processing was over half the cost of a page's ~50,000 events."""
    bound = "" if until is None else " AND occurred_at <= $2"
    return await dialect.fetch(
        session,
        "SELECT id, account_id, user_id, name, occurred_at, properties FROM events"
        f" WHERE account_id = ANY($1::varchar[]){bound}"
        " ORDER BY account_id, occurred_at, id",
        account_ids,
        *([] if until is None else [until]),
    )


async def sequences(session: AsyncSession, account_ids: Collection[str]) -> dict[str, int]:
    """Each account's last insert number (0: none yet). Read it before the events: every
    event numbered up to it has committed (``AccountSequenceRecord``)."""
    found = dict.fromkeys(account_ids, 0)
    ordered = sorted(found)
    s = AccountSequenceRecord
    for start in range(0, len(ordered), IDS_PER_QUERY):
        stmt = select(s.account_id, s.seq).where(
            s.account_id.in_(ordered[start : start + IDS_PER_QUERY])
        )
        found.update((a, n) for a, n in (await session.execute(stmt)).all())
    return found


async def stored_since(
    session: AsyncSession, after: Mapping[str, int], names: Collection[str]
) -> dict[str, list[tuple[int, EventObserved]]]:
    """Per account, its events named ``names`` stored after insert number ``after[account]``
    (what a projection made then has not seen), each with its number, through the
    (account, seq) index."""
    found: dict[str, list[tuple[int, EventObserved]]] = {a: [] for a in after}
    if not after or not names:
        return found
    chosen = sorted(after.items())
    if dialect.is_postgresql(session):
        since = [a for a, _ in chosen], [n for _, n in chosen], sorted(names)
        for r in await dialect.fetch(session, _SINCE, *since):
            found[r[1]].append((r[6], _event(r)))
        return found
    e = EventRecord
    for start in range(0, len(chosen), IDS_PER_QUERY):
        page = chosen[start : start + IDS_PER_QUERY]
        stmt = select(
            e.id, e.account_id, e.user_id, e.name, e.occurred_at, e.properties, e.seq
        ).where(
            or_(*(and_(e.account_id == a, e.seq > n) for a, n in page)),
            e.name.in_(sorted(names)),
        )
        for r in (await session.execute(stmt)).all():
            found[r[1]].append((r[6], _event(r)))
    return found


async def in_spans(
    session: AsyncSession, spans: Sequence[tuple[str, str, datetime, datetime]]
) -> dict[str, list[EventObserved]]:
    """Per account, its events in each ``(account, name, since, until)`` (bounds included),
    through the (account, name, time) index. An event in two spans comes twice."""
    found: dict[str, list[EventObserved]] = {a: [] for a, _, _, _ in spans}
    if not spans:
        return found
    if dialect.is_postgresql(session):
        columns = list(zip(*spans, strict=True))
        rows: Sequence[Any] = await dialect.fetch(session, _SPANS, *(list(c) for c in columns))
    else:
        e = EventRecord
        stmt = select(e.id, e.account_id, e.user_id, e.name, e.occurred_at, e.properties).where(
            or_(
                *(
                    and_(
                        e.account_id == a,
                        e.name == n,
                        e.occurred_at >= since,
                        e.occurred_at <= until,
                    )
                    for a, n, since, until in spans
                )
            )
        )
        rows = (await session.execute(stmt)).all()
    for r in rows:
        found[r[1]].append(_event(r))
    return found


async def trails(
    session: AsyncSession, wanted: Sequence[tuple[str, Trail]], seqs: Mapping[str, int]
) -> dict[tuple[str, Trail], TrailStats]:
    """Each ``(account, trail)``'s aggregate (``trail.trail_stats`` of its events numbered
    up to ``seqs[account]``, with the tally to keep). On PostgreSQL the server sums the
    window up and returns a few rows per trail and one per user (``_TRAILS``); SQLite
    (the embedded demo) reads the events and sums them here."""
    if not wanted:
        return {}
    if not dialect.is_postgresql(session):
        spans = [(a, n, t.wide, t.until) for a, t in wanted for n in t.names]
        read = await _numbered(session, spans)
        return {(a, t): trail_stats(t, (e for e, n in read[a] if n <= seqs[a])) for a, t in wanted}
    chosen = list(dict.fromkeys(wanted))
    rows = [
        (i, a, n, t.wide, t.since, t.until, seqs[a])
        for i, (a, t) in enumerate(chosen)
        for n in t.names
    ]
    columns = [list(c) for c in zip(*rows, strict=True)]
    counts = {i: (0, 0, 0, 0, 0) for i in range(len(chosen))}
    users: dict[int, dict[User, tuple[int, Moment]]] = {i: {} for i in range(len(chosen))}
    latest: dict[int, list[Moment]] = {i: [] for i in range(len(chosen))}
    for r in await dialect.fetch(session, _TRAILS, *columns, EVIDENCE_CAP, TALLY_USERS):
        i = r["i"]
        if r["part"] == 0:
            counts[i] = (r["wide_count"], r["wide_users"], r["count"], r["users"], r["groups"])
        elif r["part"] == 1:
            users[i][r["user_id"]] = (r["count"], (r["at"], r["id"]))
        else:
            latest[i].append((r["at"], r["id"]))
    found: dict[tuple[str, Trail], TrailStats] = {}
    for i, (account, trail) in enumerate(chosen):
        wide_count, wide_users, count, n_users, groups = counts[i]
        last = tuple(sorted(latest[i])[-EVIDENCE_CAP:])
        tally = None
        if groups <= TALLY_USERS:
            tally = Tally(trail.since, trail.until, count, users[i], last)
        found[account, trail] = TrailStats(
            wide_count,
            wide_users,
            count,
            n_users,
            firsts=tuple(sorted(first for _, first in users[i].values())[: EVIDENCE_CAP - 1]),
            latest=last,
            tally=tally,
        )
    return found


async def slides(
    session: AsyncSession, wanted: Sequence[tuple[str, Slide]]
) -> dict[tuple[str, Slide], SlideRows]:
    """Each ``(account, slide)``'s rows (``trail.slide_rows`` of its events): only the
    events that left the tally's window or came into it stored before it, and one index
    probe per user that left (``_SLIDES``); SQLite reads the span and picks them here."""
    if not wanted:
        return {}
    chosen = list(dict.fromkeys(wanted))
    if not dialect.is_postgresql(session):
        spans = [(a, n, s.reach, s.until1) for a, s in chosen for n in s.names]
        read = await _numbered(session, spans)
        return {(a, s): slide_rows(s, read[a]) for a, s in chosen}
    rows = [
        (i, a, n, s.seq, s.reach, s.since0, s.since1, s.until0, s.until1)
        for i, (a, s) in enumerate(chosen)
        for n in s.names
    ]
    columns = [list(c) for c in zip(*rows, strict=True)]
    parts: dict[int, tuple[list[tuple[Moment, User]], ...]] = {
        i: ([], [], []) for i in range(len(chosen))
    }
    for r in await dialect.fetch(session, _SLIDES, *columns):
        parts[r["i"]][r["part"]].append(((r["at"], r["id"]), r["user_id"]))
    found: dict[tuple[str, Slide], SlideRows] = {}
    for i, (account, slide) in enumerate(chosen):
        before, entered, probes = parts[i]
        found[account, slide] = SlideRows(
            in_order(before), in_order(entered), next_firsts(slide, before, probes)
        )
    return found


async def _numbered(
    session: AsyncSession, spans: Sequence[tuple[str, str, datetime, datetime]]
) -> dict[str, list[tuple[EventObserved, int]]]:
    """SQLite: per account, its events in each ``(account, name, since, until)`` with their
    insert numbers (ids once)."""
    e = EventRecord
    stmt = select(e.id, e.account_id, e.user_id, e.name, e.occurred_at, e.properties, e.seq).where(
        or_(
            *(
                and_(e.account_id == a, e.name == n, e.occurred_at >= lo, e.occurred_at <= hi)
                for a, n, lo, hi in spans
            )
        )
    )
    found: dict[str, dict[str, tuple[EventObserved, int]]] = {a: {} for a, _, _, _ in spans}
    for r in (await session.execute(stmt)).all():
        found[r[1]][r[0]] = (_event(r), r[6] if r[6] is not None else 0)
    return {a: list(events.values()) for a, events in found.items()}


async def first_after(
    session: AsyncSession, account_ids: Collection[str], now: datetime
) -> dict[str, datetime | None]:
    """Each account's earliest event after ``now`` (None: none); the projector asks only
    where a summary straddles ``now``. On PostgreSQL one index probe per event name of the
    account (``_FIRST_AFTER``), not a walk of its index entries."""
    found: dict[str, datetime | None] = dict.fromkeys(account_ids)
    ordered = sorted(found)
    if not ordered:
        return found
    if dialect.is_postgresql(session):
        for account, at in await dialect.fetch(session, _FIRST_AFTER, ordered, now):
            found[account] = None if at is None else _aware(at)
        return found
    e = EventRecord
    for start in range(0, len(ordered), IDS_PER_QUERY):
        stmt = (
            select(e.account_id, func.min(e.occurred_at))
            .where(e.account_id.in_(ordered[start : start + IDS_PER_QUERY]), e.occurred_at > now)
            .group_by(e.account_id)
        )
        for account, at in (await session.execute(stmt)).all():
            found[account] = _aware(at)
    return found


async def last_moments(
    session: AsyncSession, account_ids: Sequence[str], since: datetime, until: datetime
) -> dict[tuple[str, str | None], datetime]:
    """Each (account, user)'s last event in ``[since, until]`` (PostgreSQL: the account's
    names walked on the (account, name, time) index, then each name's range)."""
    read = await dialect.fetch(session, _LAST_MOMENTS, list(account_ids), since, until)
    return {(r[0], r[1]): _aware(r[2]) for r in read}


def _aware(value: datetime | str) -> datetime:
    """Aggregates bypass the column type on SQLite (text comes back)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _event(r: Any) -> EventObserved:
    return EventObserved(
        id=r[0], account_id=r[1], user_id=r[2], name=r[3], at=r[4], properties=r[5]
    )


_SINCE = """
    SELECT e.id, e.account_id, e.user_id, e.name, e.occurred_at, e.properties, e.seq
    FROM unnest($1::varchar[], $2::bigint[]) AS w(account_id, seq)
    JOIN events AS e ON e.account_id = w.account_id AND e.seq > w.seq
    WHERE e.name = ANY($3::varchar[])
"""

_SPANS = """
    SELECT e.id, e.account_id, e.user_id, e.name, e.occurred_at, e.properties
    FROM unnest($1::varchar[], $2::varchar[], $3::timestamptz[], $4::timestamptz[])
         AS w(account_id, name, since, until)
    JOIN events AS e ON e.account_id = w.account_id AND e.name = w.name
                    AND e.occurred_at >= w.since AND e.occurred_at <= w.until
"""

# Per trail ``i`` (one row of ``w`` per name it counts), over the events numbered up to
# the account's ``seq``: part 0 the counts, from one grouping per user of the window's
# events (and how many user groups the window holds); part 1 per user ranked <= $9 by first
# moment (ties at the cut included, so the caller's (time, id) order decides) its count,
# first moment and the least id at that moment (an index lookup each); part 2 the latest
# $8 events of each name, walked backwards on the (account, name, time) index. User-less
# events are one group, as ``trail_stats`` keys them; ids order by code point
# (``COLLATE "C"``), as Python's do.
_TRAILS = """
    WITH w AS (
        SELECT * FROM unnest($1::int[], $2::varchar[], $3::varchar[], $4::timestamptz[],
                             $5::timestamptz[], $6::timestamptz[], $7::bigint[])
                 AS w(i, account_id, name, wide, since, until, seq)
    ), per_user AS (
        SELECT w.i, e.user_id, count(*) AS wide_count,
               count(*) FILTER (WHERE e.occurred_at >= w.since) AS count,
               min(e.occurred_at) FILTER (WHERE e.occurred_at >= w.since) AS first_at
        FROM w JOIN events AS e ON e.account_id = w.account_id AND e.name = w.name
                               AND e.occurred_at >= w.wide AND e.occurred_at <= w.until
        WHERE e.seq <= w.seq
        GROUP BY w.i, e.user_id
    ), ranked AS (
        SELECT i, user_id, count, first_at,
               rank() OVER (PARTITION BY i ORDER BY first_at) AS n
        FROM per_user WHERE first_at IS NOT NULL
    )
    SELECT i, 0 AS part, sum(wide_count)::int AS wide_count,
           count(user_id) AS wide_users, sum(count)::int AS count,
           count(user_id) FILTER (WHERE count > 0) AS users,
           count(*) FILTER (WHERE count > 0) AS groups,
           NULL::timestamptz AS at, NULL::varchar AS id, NULL::varchar AS user_id
    FROM per_user GROUP BY i
    UNION ALL
    SELECT r.i, 1, 0, 0, r.count::int, 0, 0, r.first_at, (
        SELECT min(e.id COLLATE "C") FROM w JOIN events AS e
            ON e.account_id = w.account_id AND e.name = w.name AND e.occurred_at = r.first_at
        WHERE w.i = r.i AND e.user_id IS NOT DISTINCT FROM r.user_id AND e.seq <= w.seq
    ), r.user_id
    FROM ranked AS r WHERE r.n <= $9
    UNION ALL
    SELECT w.i, 2, 0, 0, 0, 0, 0, l.occurred_at, l.id, NULL
    FROM w CROSS JOIN LATERAL (
        SELECT e.occurred_at, e.id FROM events AS e
        WHERE e.account_id = w.account_id AND e.name = w.name
          AND e.occurred_at >= w.since AND e.occurred_at <= w.until AND e.seq <= w.seq
        ORDER BY e.occurred_at DESC, e.id COLLATE "C" DESC LIMIT $8
    ) AS l
"""

# Per slide ``i`` (one row of ``w`` per name), over the events numbered up to its ``seq``:
# part 0 those in [reach, since1) (those in [since0, until0] left), part 1 those
# in (until0, until1] from since1 on, part 2 for each user with one that left, its first
# in [since1, until1] per name (an index walk from since1 that stops at the user's first).
_SLIDES = """
    WITH w AS (
        SELECT * FROM unnest($1::int[], $2::varchar[], $3::varchar[], $4::bigint[],
                             $5::timestamptz[], $6::timestamptz[], $7::timestamptz[],
                             $8::timestamptz[], $9::timestamptz[])
                 AS w(i, account_id, name, seq, reach, since0, since1, until0, until1)
    ), before AS (
        SELECT w.i, e.occurred_at, e.id, e.user_id,
               e.occurred_at >= w.since0 AND e.occurred_at <= w.until0 AS gone
        FROM w JOIN events AS e ON e.account_id = w.account_id AND e.name = w.name
                               AND e.occurred_at >= w.reach AND e.occurred_at < w.since1
        WHERE e.seq <= w.seq
    ), movers AS (
        SELECT DISTINCT i, user_id FROM before WHERE gone
    )
    SELECT i, 0 AS part, occurred_at AS at, id, user_id FROM before
    UNION ALL
    SELECT w.i, 1, e.occurred_at, e.id, e.user_id
    FROM w JOIN events AS e ON e.account_id = w.account_id AND e.name = w.name
                           AND e.occurred_at > w.until0 AND e.occurred_at >= w.since1
                           AND e.occurred_at <= w.until1
    WHERE e.seq <= w.seq
    UNION ALL
    SELECT w.i, 2, n.occurred_at, n.id, m.user_id
    FROM movers AS m JOIN w ON w.i = m.i
    CROSS JOIN LATERAL (
        SELECT e.occurred_at, e.id FROM events AS e
        WHERE e.account_id = w.account_id AND e.name = w.name
          AND e.occurred_at >= w.since1 AND e.occurred_at <= w.until1
          AND e.seq <= w.seq AND e.user_id IS NOT DISTINCT FROM m.user_id
        ORDER BY e.occurred_at, e.id COLLATE "C" LIMIT 1
    ) AS n
"""

# Each account's distinct event names, one index probe each (a loose scan of the
# (account, name, time) index): reads by account and time go through them name by name.
_NAMES = """
    names AS (
        SELECT w.account_id,
               (SELECT min(e.name) FROM events AS e WHERE e.account_id = w.account_id) AS name
        FROM unnest($1::varchar[]) AS w(account_id)
        UNION ALL
        SELECT n.account_id,
               (SELECT min(e.name) FROM events AS e
                WHERE e.account_id = n.account_id AND e.name > n.name)
        FROM names AS n WHERE n.name IS NOT NULL
    )
"""

_FIRST_AFTER = f"""
    WITH RECURSIVE {_NAMES}
    SELECT n.account_id, min((
        SELECT min(e.occurred_at) FROM events AS e
        WHERE e.account_id = n.account_id AND e.name = n.name AND e.occurred_at > $2
    ))
    FROM names AS n WHERE n.name IS NOT NULL GROUP BY n.account_id
"""

_LAST_MOMENTS = f"""
    WITH RECURSIVE {_NAMES}
    SELECT n.account_id, e.user_id, max(e.occurred_at)
    FROM names AS n JOIN events AS e
         ON e.account_id = n.account_id AND e.name = n.name
        AND e.occurred_at >= $2 AND e.occurred_at <= $3
    GROUP BY n.account_id, e.user_id
"""
