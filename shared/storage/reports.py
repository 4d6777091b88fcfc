"""Report queries: the TTFV distribution per group, computed where it is cheapest; the TTV
decomposition and completion rates per group.

PostgreSQL aggregates in one query (``GROUPING SETS`` for the groups and the total,
``percentile_disc`` — nearest-rank, as ``shared.reports.ttfv`` defines it — and ``FILTER``
counts for breaches, histogram and open-age buckets), so 100,000 onboardings never leave
the server. SQLite, the single-user embedded store, reads the few columns needed and
computes the same figures with ``shared.reports.ttfv``.

The decomposition report reads, on both backends, the few stored figures it needs per
onboarding (the decomposition and each milestone's ``on_time``, not the whole state) and
computes with ``shared.reports.decomposition``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from shared.reports import decomposition as decomposition_report
from shared.reports.decomposition import DecompositionSample, GroupDecomposition
from shared.reports.ttfv import (
    AGE_EDGES,
    BREACH_LEVELS,
    HISTOGRAM_EDGES,
    PERCENTILES,
    TOTAL,
    Bucket,
    GroupDistribution,
    TTFVSample,
    report,
)
from shared.storage import dialect
from shared.storage.projections import ProjectionFilter, filter_conditions
from shared.storage.tables import ProjectionRecord

GroupBy = Literal["segment", "cohort", "csm", "plan"]
UNASSIGNED = "(unassigned)"  # the group of onboardings without a CSM
DAY_SECONDS = 86_400.0
REPORT_WORK_MEM = "64MB"


class ReportRepository:
    """TTFV distributions over the projections matching a filter."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def ttfv(
        self, filters: ProjectionFilter, group_by: GroupBy, now: datetime
    ) -> tuple[GroupDistribution, list[GroupDistribution]]:
        """The overall distribution and one per group (sorted by group name)."""
        if dialect.is_postgresql(self._session):
            return await self._ttfv_in_sql(filters, group_by, now)
        return await self._ttfv_in_python(filters, group_by, now)

    async def decomposition(
        self, filters: ProjectionFilter, group_by: GroupBy
    ) -> tuple[GroupDecomposition, list[GroupDecomposition]]:
        """Decomposition percentiles and completion rates: overall and per group."""
        p = ProjectionRecord
        stmt = select(
            p.segment,
            p.plan_key,
            p.csm,
            p.signed_at,
            p.ttfv_days,
            p.breach,
            p.state["decomposition"],
            p.state["milestones"],
        ).where(*filter_conditions(filters))
        rows = await self._session.execute(stmt)
        return decomposition_report.report(_decomposition_sample(group_by, *row) for row in rows)

    async def _ttfv_in_python(
        self, filters: ProjectionFilter, group_by: GroupBy, now: datetime
    ) -> tuple[GroupDistribution, list[GroupDistribution]]:
        p = ProjectionRecord
        stmt = select(p.segment, p.plan_key, p.csm, p.signed_at, p.ttfv_days, p.breach).where(
            *filter_conditions(filters)
        )
        samples = [
            TTFVSample(
                group=_python_group(group_by, segment, plan_key, csm, signed_at),
                ttfv_days=ttfv_days,
                age_days=(now - signed_at).total_seconds() / DAY_SECONDS,
                breach=breach,
            )
            for segment, plan_key, csm, signed_at, ttfv_days, breach in await self._session.execute(
                stmt
            )
        ]
        return report(samples)

    async def _ttfv_in_sql(
        self, filters: ProjectionFilter, group_by: GroupBy, now: datetime
    ) -> tuple[GroupDistribution, list[GroupDistribution]]:
        p = ProjectionRecord
        group = _sql_group(group_by).label("grp")
        ttfv = p.ttfv_days
        still_open = p.ttfv_days.is_(None)
        columns: list[Any] = [
            group,
            func.grouping(group).label("is_total"),
            func.count().label("onboardings"),
            func.count(ttfv).label("reached"),
            func.max(ttfv).label("max_days"),
        ]
        columns += [
            func.percentile_disc(pct / 100).within_group(ttfv).label(f"p{pct}")
            for pct in PERCENTILES
        ]
        columns += [
            func.count().filter(p.breach == level).label(f"breach_{level}")
            for level in BREACH_LEVELS
        ]
        columns += [
            func.count().filter(condition).label(f"hist_{n}")
            for n, condition in enumerate(_bucket_conditions(ttfv, HISTOGRAM_EDGES))
        ]
        columns += [
            func.count().filter(and_(still_open, condition)).label(f"age_{n}")
            for n, condition in enumerate(_age_conditions(p.signed_at, now))
        ]
        stmt = (
            select(*columns)
            .where(*filter_conditions(filters))
            .group_by(text("GROUPING SETS ((grp), ())"))
        )
        # The percentiles sort every matching TTFV: in memory, not spilled to disk (the
        # default 4 MB spills at 100,000 onboardings). Scoped to this transaction.
        await self._session.execute(text(f"SET LOCAL work_mem = '{REPORT_WORK_MEM}'"))
        rows = (await self._session.execute(stmt)).mappings().all()
        total = next((r for r in rows if r["is_total"]), None)
        named = [(_group_name(group_by, r["grp"]), r) for r in rows if not r["is_total"]]
        overall = _distribution(TOTAL, total) if total is not None else _empty()
        return overall, [_distribution(name, r) for name, r in sorted(named, key=_first)]


def _decomposition_sample(
    group_by: GroupBy,
    segment: str,
    plan_key: str,
    csm: str | None,
    signed_at: datetime,
    ttfv_days: float | None,
    breach: str,
    spans: dict[str, Any],
    milestones: list[dict[str, Any]],
) -> DecompositionSample:
    reached = ttfv_days is not None
    settled = reached or breach != "none"  # reached, or the band passed without first value
    return DecompositionSample(
        group=_python_group(group_by, segment, plan_key, csm, signed_at),
        spans={part: spans[f"{part}_days"] for part in decomposition_report.PARTS},
        within_band=(reached and breach == "none") if settled else None,
        milestones_on_time=sum(1 for m in milestones if m["on_time"]),
        milestones=len(milestones),
    )


def _python_group(
    group_by: GroupBy, segment: str, plan_key: str, csm: str | None, signed_at: datetime
) -> str:
    if group_by == "segment":
        return segment
    if group_by == "plan":
        return plan_key
    if group_by == "csm":
        return csm or UNASSIGNED
    return f"{signed_at.year:04d}-{signed_at.month:02d}"


def _sql_group(group_by: GroupBy) -> Any:
    p = ProjectionRecord
    if group_by == "segment":
        return p.segment
    if group_by == "plan":
        return p.plan_key
    if group_by == "csm":
        return func.coalesce(p.csm, UNASSIGNED)
    return func.date_trunc("month", func.timezone("UTC", p.signed_at))  # cheaper than to_char


def _group_name(group_by: GroupBy, value: Any) -> str:
    if group_by == "cohort":
        return f"{value.year:04d}-{value.month:02d}"
    return str(value)


def _first(pair: tuple[str, Any]) -> str:
    return pair[0]


def _bucket_conditions(value: Any, edges: tuple[float, ...]) -> list[ColumnElement[bool]]:
    """``value ≤ e1``, ``e1 < value ≤ e2``, …, ``value > en`` (nulls match none)."""
    conditions: list[ColumnElement[bool]] = []
    lower: float | None = None
    for edge in edges:
        upper = value <= edge
        conditions.append(upper if lower is None else and_(value > lower, upper))
        lower = edge
    conditions.append(value > edges[-1])
    return conditions


def _age_conditions(signed_at: Any, now: datetime) -> list[ColumnElement[bool]]:
    """Open-age buckets over ``signed_at``: age ≤ e ⇔ signed_at ≥ now − e days."""
    bounds = [now - timedelta(days=edge) for edge in AGE_EDGES]
    conditions: list[ColumnElement[bool]] = []
    newer: datetime | None = None
    for bound in bounds:
        at_most = signed_at >= bound
        conditions.append(at_most if newer is None else and_(signed_at < newer, at_most))
        newer = bound
    conditions.append(signed_at < bounds[-1])
    return conditions


def _distribution(group: str, row: Any) -> GroupDistribution:
    def counts(prefix: str, edges: tuple[float, ...]) -> tuple[Bucket, ...]:
        lowers = (0.0, *edges)
        uppers: tuple[float | None, ...] = (*edges, None)
        return tuple(
            Bucket(lo, up, int(row[f"{prefix}_{n}"]))
            for n, (lo, up) in enumerate(zip(lowers, uppers, strict=True))
        )

    onboardings, reached = int(row["onboardings"]), int(row["reached"])
    return GroupDistribution(
        group=group,
        onboardings=onboardings,
        reached=reached,
        open=onboardings - reached,
        percentiles={pct: _float(row[f"p{pct}"]) for pct in PERCENTILES},
        max_days=_float(row["max_days"]),
        breaches={level: int(row[f"breach_{level}"]) for level in BREACH_LEVELS},
        open_by_age=counts("age", AGE_EDGES),
        histogram=counts("hist", HISTOGRAM_EDGES),
    )


def _float(value: Any) -> float | None:
    return float(value) if value is not None else None


def _empty() -> GroupDistribution:
    total, _ = report([])
    return total
