"""TTFV distributions per group: percentiles, histogram, breach counts, open ones by age.

Pure computation over one sample per onboarding. On PostgreSQL the same figures are computed
in SQL (``shared.storage.reports``: ``percentile_disc`` is nearest-rank); the API tests check
both against the same hand-computed answers.

Percentiles use the **nearest-rank** definition: of ``n`` TTFVs sorted ascending, the p-th
percentile is the value at 1-based rank ``ceil(p / 100 × n)``. It is always a TTFV some
customer really had (never an interpolation between two), it is what PostgreSQL's
``percentile_disc`` returns, and it is easy to check by hand: of ``[3, 5, 10, 12, 20, 30]``
p50 is rank 3 → 10, p75 rank 5 → 20, p90 rank 6 → 30.

Buckets are right-closed: a bucket ``(lower, upper]`` counts ``lower < days ≤ upper`` (the
first starts at 0 inclusive, the last has no upper bound), so a TTFV of exactly 14 days —
on target for SMB, whose breach starts *over* 14 — falls in ``7–14``.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

PERCENTILES = (50, 75, 90)
HISTOGRAM_EDGES = (7.0, 14.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0)  # days, upper bounds
AGE_EDGES = (14.0, 30.0, 60.0, 90.0)  # days since signature, for onboardings still open
BREACH_LEVELS = ("none", "breach", "severe")
TOTAL = "all"  # the group name of the overall distribution


@dataclass(frozen=True)
class TTFVSample:
    """One onboarding as the report sees it."""

    group: str
    ttfv_days: float | None  # None: first value not reached (yet)
    age_days: float  # days since contract signature, at the report's moment
    breach: str  # none | breach | severe (open ones judged on elapsed days)


@dataclass(frozen=True)
class Bucket:
    lower: float
    upper: float | None  # None: no upper bound
    count: int

    @property
    def label(self) -> str:
        low = f"{self.lower:g}"
        return f"{low}+" if self.upper is None else f"{low}-{self.upper:g}"


@dataclass(frozen=True)
class GroupDistribution:
    group: str
    onboardings: int
    reached: int
    open: int
    percentiles: dict[int, float | None]  # 50/75/90 → days; None when nothing reached
    max_days: float | None
    breaches: dict[str, int]  # none / breach / severe → onboardings (reached and open)
    open_by_age: tuple[Bucket, ...]
    histogram: tuple[Bucket, ...]  # TTFV of those that reached first value


def percentile(ordered: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile of values already sorted ascending; None when empty."""
    if not ordered:
        return None
    if not 0 < p <= 100:
        raise ValueError(f"percentile {p} is outside (0, 100]")
    rank = math.ceil(p / 100 * len(ordered))
    return ordered[max(rank, 1) - 1]


def buckets(values: Iterable[float], edges: Sequence[float]) -> tuple[Bucket, ...]:
    """Right-closed buckets ``[0, e1], (e1, e2], …, (en, ∞)`` with their counts."""
    counts = [0] * (len(edges) + 1)
    for value in values:
        counts[_bucket_index(value, edges)] += 1
    lowers = (0.0, *edges)
    uppers: tuple[float | None, ...] = (*edges, None)
    return tuple(Bucket(lo, up, n) for lo, up, n in zip(lowers, uppers, counts, strict=True))


def _bucket_index(value: float, edges: Sequence[float]) -> int:
    for index, edge in enumerate(edges):
        if value <= edge:
            return index
    return len(edges)


def distribution(group: str, samples: Sequence[TTFVSample]) -> GroupDistribution:
    """The distribution of one group's samples."""
    reached = sorted(s.ttfv_days for s in samples if s.ttfv_days is not None)
    open_ages = [s.age_days for s in samples if s.ttfv_days is None]
    breaches = Counter(s.breach for s in samples)
    return GroupDistribution(
        group=group,
        onboardings=len(samples),
        reached=len(reached),
        open=len(open_ages),
        percentiles={p: percentile(reached, p) for p in PERCENTILES},
        max_days=reached[-1] if reached else None,
        breaches={level: breaches.get(level, 0) for level in BREACH_LEVELS},
        open_by_age=buckets(open_ages, AGE_EDGES),
        histogram=buckets(reached, HISTOGRAM_EDGES),
    )


def report(samples: Iterable[TTFVSample]) -> tuple[GroupDistribution, list[GroupDistribution]]:
    """The overall distribution and one per group (groups sorted by name)."""
    everything = list(samples)
    grouped: dict[str, list[TTFVSample]] = defaultdict(list)
    for sample in everything:
        grouped[sample.group].append(sample)
    groups = [distribution(name, grouped[name]) for name in sorted(grouped)]
    return distribution(TOTAL, everything), groups
