"""Where the time goes, and how many finish: TTV decomposition percentiles and the program's
completion rates per group.

Pure computation over one sample per onboarding (``shared.storage.reports`` reads them).

- **Decomposition**: nearest-rank p50/p75/p90 (as ``shared.reports.ttfv``) of handoff
  (signature → first CS engagement), setup (→ go-live) and activation (→ first value), each
  over the onboardings whose span is known, with that count.
- **Onboarding completion rate**: onboardings that reached first value within their plan's
  band, over those whose outcome is settled — first value reached, or the band's upper bound
  passed without it. One still inside its band has not failed yet and is left out.
- **Milestone completion rate**: milestones completed within their SLA over all milestones of
  the group's onboardings (the per-onboarding ``completion_rate``, summed over the group).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from shared.reports.ttfv import PERCENTILES, TOTAL, percentile

PARTS = ("handoff", "setup", "activation")


@dataclass(frozen=True)
class DecompositionSample:
    """One onboarding as this report sees it."""

    group: str
    spans: dict[str, float | None]  # handoff / setup / activation → days (None: not known)
    within_band: bool | None  # True reached in band, False reached late or band passed, None open
    milestones_on_time: int
    milestones: int


@dataclass(frozen=True)
class Span:
    count: int  # onboardings whose span is known
    percentiles: dict[int, float | None]


@dataclass(frozen=True)
class Rate:
    numerator: int
    denominator: int

    @property
    def value(self) -> float | None:
        return self.numerator / self.denominator if self.denominator else None


@dataclass(frozen=True)
class GroupDecomposition:
    group: str
    onboardings: int
    spans: dict[str, Span]
    onboarding_completion: Rate  # reached within band / settled
    milestone_completion: Rate  # completed within SLA / all milestones


def decomposition(group: str, samples: Sequence[DecompositionSample]) -> GroupDecomposition:
    """The figures of one group's samples."""
    spans = {}
    for part in PARTS:
        known = sorted(v for s in samples if (v := s.spans.get(part)) is not None)
        spans[part] = Span(len(known), {p: percentile(known, p) for p in PERCENTILES})
    settled = [s.within_band for s in samples if s.within_band is not None]
    return GroupDecomposition(
        group=group,
        onboardings=len(samples),
        spans=spans,
        onboarding_completion=Rate(sum(settled), len(settled)),
        milestone_completion=Rate(
            sum(s.milestones_on_time for s in samples), sum(s.milestones for s in samples)
        ),
    )


def report(
    samples: Iterable[DecompositionSample],
) -> tuple[GroupDecomposition, list[GroupDecomposition]]:
    """The overall figures and one set per group (groups sorted by name)."""
    everything = list(samples)
    grouped: dict[str, list[DecompositionSample]] = defaultdict(list)
    for sample in everything:
        grouped[sample.group].append(sample)
    groups = [decomposition(name, grouped[name]) for name in sorted(grouped)]
    return decomposition(TOTAL, everything), groups
