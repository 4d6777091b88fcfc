"""``firstvalue plans diff``: what a plan change would do, before anyone adopts it.

Pure: ``compare`` takes one onboarding's state under the old plan and under the new one
(both from ``evaluate`` over the same facts at the same ``now``) and names what differs in
the three things CS ops act on — stage (and status); TTFV (first value moment, days and
breach: the target band is shown, but a band moving alone changes nobody's figures); and
escalations (which rules fired, at what level and day, open or resolved). ``DiffReport``
collects them with the counts the CLI prints.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from shared.domain.state import EscalationStatus, OnboardingState

KINDS = ("stage", "ttfv", "escalations")


@dataclass(frozen=True)
class OnboardingDiff:
    onboarding_id: str
    account_id: str
    account_name: str | None
    plan_key: str
    old_version: int
    new_version: int
    changed: tuple[str, ...]  # a subset of KINDS, in that order
    old_stage: str
    new_stage: str
    old_ttfv: str
    new_ttfv: str
    escalations_added: tuple[str, ...]  # under the new plan only
    escalations_removed: tuple[str, ...]  # under the old plan only

    def to_dict(self) -> dict[str, Any]:
        return {
            "onboarding_id": self.onboarding_id,
            "account_id": self.account_id,
            "account_name": self.account_name,
            "plan_key": self.plan_key,
            "old_version": self.old_version,
            "new_version": self.new_version,
            "changed": list(self.changed),
            "stage": {"old": self.old_stage, "new": self.new_stage},
            "ttfv": {"old": self.old_ttfv, "new": self.new_ttfv},
            "escalations": {
                "added": list(self.escalations_added),
                "removed": list(self.escalations_removed),
            },
        }


@dataclass
class DiffReport:
    """Every onboarding looked at: the changed ones, and the ones that could not be compared."""

    evaluated: int = 0
    diffs: list[OnboardingDiff] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)  # reason → onboardings

    def add(self, diff: OnboardingDiff | None) -> None:
        self.evaluated += 1
        if diff is not None:
            self.diffs.append(diff)

    def counts(self) -> dict[str, int]:
        """Changed onboardings in total and per kind (one onboarding may count in several)."""
        by_kind = Counter(kind for d in self.diffs for kind in d.changed)
        return {"changed": len(self.diffs), **{kind: by_kind[kind] for kind in KINDS}}

    def to_dict(self) -> dict[str, Any]:
        return {
            "evaluated": self.evaluated,
            "counts": self.counts(),
            "skipped": dict(sorted(self.skipped.items())),
            "onboardings": [d.to_dict() for d in self.diffs],
        }


def stage_label(state: OnboardingState) -> str:
    """``setup (in_progress)``; ``— (onboarded)`` once the last stage has exited."""
    return f"{state.current_stage or '—'} ({state.status})"


def ttfv_label(state: OnboardingState) -> str:
    """``9.0d none [7–14]``, or elapsed days so far with ``open`` before first value."""
    t = state.ttfv
    band = f"[{t.target_min_days:g}–{t.target_max_days:g}]"
    if t.days is None:
        return f"open {t.elapsed_days:.1f}d {t.breach} {band}"
    return f"{t.days:.1f}d {t.breach} {band}"


def escalation_label(e: EscalationStatus) -> str:
    """``setup_missing_day_14 L1 2026-03-16 open`` — rule, level, day fired, state."""
    return f"{e.rule_key} L{e.level} {e.fired_at.date().isoformat()} {e.state}"


def _ttfv(state: OnboardingState) -> tuple[object, ...]:
    return (state.ttfv.reached_at, state.ttfv.days, state.ttfv.breach)


def compare(old: OnboardingState, new: OnboardingState) -> OnboardingDiff | None:
    """What differs between one onboarding's state under the old and the new plan (None:
    nothing CS ops would notice)."""
    old_stage, new_stage = stage_label(old), stage_label(new)
    old_escalations = {escalation_label(e) for e in old.escalations}
    new_escalations = {escalation_label(e) for e in new.escalations}
    checks = {
        "stage": old_stage != new_stage,
        "ttfv": _ttfv(old) != _ttfv(new),  # the band moving alone changes nobody's figures
        "escalations": old_escalations != new_escalations,
    }
    changed = tuple(kind for kind in KINDS if checks[kind])
    if not changed:
        return None
    return OnboardingDiff(
        onboarding_id=new.onboarding_id,
        account_id=new.account_id,
        account_name=new.account_name,
        plan_key=new.plan_key,
        old_version=old.plan_version,
        new_version=new.plan_version,
        changed=changed,
        old_stage=old_stage,
        new_stage=new_stage,
        old_ttfv=ttfv_label(old),
        new_ttfv=ttfv_label(new),
        escalations_added=tuple(sorted(new_escalations - old_escalations)),
        escalations_removed=tuple(sorted(old_escalations - new_escalations)),
    )
