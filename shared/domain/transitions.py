"""Transitions: what changed between two states of one onboarding, to publish downstream.

Each transition has a deterministic id (sha1 of onboarding, kind, key and moment), so
re-deriving the same change — after a crash, a replay or a timer tick — yields the same id
and the outbox drops the repeat. ``old=None`` (first projection) announces everything.

Escalations: each rule firing is announced once, as ``EscalationRaised`` when it raised the
SLA ladder (a lower rung still open) and ``EscalationOpened`` otherwise; each resolution
once, as ``EscalationResolved`` with the reason.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, ClassVar

from shared.domain.codec import to_json
from shared.domain.state import EscalationStatus, OnboardingState


def transition_id(onboarding_id: str, kind: str, key: str, moment: datetime) -> str:
    raw = "\x1f".join((onboarding_id, kind, key, moment.isoformat()))
    return hashlib.sha1(raw.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class Transition:
    kind: ClassVar[str] = "Transition"

    id: str
    onboarding_id: str
    account_id: str
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: to_json(getattr(self, f.name)) for f in fields(self)}
        return {"type": self.kind, **data}


@dataclass(frozen=True)
class StageEntered(Transition):
    kind: ClassVar[str] = "StageEntered"
    stage: str = ""


@dataclass(frozen=True)
class StageExited(Transition):
    kind: ClassVar[str] = "StageExited"
    stage: str = ""


@dataclass(frozen=True)
class FirstValueReached(Transition):
    kind: ClassVar[str] = "FirstValueReached"
    ttfv_days: float = 0.0
    breach: str = "none"


@dataclass(frozen=True)
class SuccessfullyOnboarded(Transition):
    kind: ClassVar[str] = "SuccessfullyOnboarded"
    plan_key: str = ""
    segment: str = ""


@dataclass(frozen=True)
class EscalationOpened(Transition):
    """A rule fired that does not raise the ladder (the first rung, or a signal)."""

    kind: ClassVar[str] = "EscalationOpened"
    rule_key: str = ""
    level: int = 0
    action: str = ""
    reason: str = ""
    fired_at: datetime | None = None
    title: str = ""
    escalation_kind: str = ""  # the rule's kind: stage_not_exited, silence, ...
    ladder: str | None = None


@dataclass(frozen=True)
class EscalationRaised(Transition):
    """A higher rung of the same ladder fired while a lower one was still open."""

    kind: ClassVar[str] = "EscalationRaised"
    rule_key: str = ""
    level: int = 0
    from_level: int = 0
    action: str = ""
    reason: str = ""
    fired_at: datetime | None = None
    title: str = ""
    escalation_kind: str = ""
    ladder: str | None = None


@dataclass(frozen=True)
class EscalationResolved(Transition):
    kind: ClassVar[str] = "EscalationResolved"
    rule_key: str = ""
    level: int = 0
    fired_at: datetime | None = None
    resolution: str = ""  # why: "stage setup exited", "Successfully Onboarded", ...
    ladder: str | None = None


ESCALATION_TRANSITIONS = (EscalationOpened, EscalationRaised, EscalationResolved)


def _base(state: OnboardingState, kind: str, key: str, at: datetime) -> dict[str, Any]:
    return {
        "id": transition_id(state.onboarding_id, kind, key, at),
        "onboarding_id": state.onboarding_id,
        "account_id": state.account_id,
        "at": at,
    }


def _stages(old: OnboardingState | None, new: OnboardingState) -> list[Transition]:
    before = {s.key: s for s in old.stages} if old else {}
    found: list[Transition] = []
    for s in new.stages:
        prior = before.get(s.key)
        if s.entered_at is not None and (prior is None or prior.entered_at != s.entered_at):
            base = _base(new, "StageEntered", s.key, s.entered_at)
            found.append(StageEntered(**base, stage=s.key))
        if s.exited_at is not None and (prior is None or prior.exited_at != s.exited_at):
            base = _base(new, "StageExited", s.key, s.exited_at)
            found.append(StageExited(**base, stage=s.key))
    return found


def _outcomes(old: OnboardingState | None, new: OnboardingState) -> list[Transition]:
    found: list[Transition] = []
    reached = new.ttfv.reached_at
    if reached is not None and (old is None or old.ttfv.reached_at != reached):
        found.append(
            FirstValueReached(
                **_base(new, "FirstValueReached", "", reached),
                ttfv_days=round(new.ttfv.days or 0.0, 2),
                breach=new.ttfv.breach,
            )
        )
    done = new.onboarded_at
    if done is not None and (old is None or old.onboarded_at != done):
        found.append(
            SuccessfullyOnboarded(
                **_base(new, "SuccessfullyOnboarded", "", done),
                plan_key=new.plan_key,
                segment=new.segment,
            )
        )
    return found


def _fired(new: OnboardingState, e: EscalationStatus, key: str) -> Transition:
    common: dict[str, Any] = {
        "rule_key": e.rule_key,
        "level": e.level,
        "action": e.action,
        "reason": e.reason,
        "fired_at": e.fired_at,
        "title": e.title,
        "escalation_kind": e.kind,
        "ladder": e.ladder,
    }
    if e.raised_from is not None:
        base = _base(new, "EscalationRaised", key, e.fired_at)
        return EscalationRaised(**base, **common, from_level=e.raised_from)
    return EscalationOpened(**_base(new, "EscalationOpened", key, e.fired_at), **common)


RETRACTED = "retracted: the facts now show it never fell due"


def _escalations(old: OnboardingState | None, new: OnboardingState) -> list[Transition]:
    before = {(e.rule_key, e.fired_at): e for e in old.escalations} if old else {}
    found: list[Transition] = _retracted(before, new)
    for e in new.escalations:
        key = f"{e.rule_key}@{e.fired_at.isoformat()}"
        prior = before.get((e.rule_key, e.fired_at))
        if prior is None:
            found.append(_fired(new, e, key))
        if e.resolved_at is not None and (prior is None or prior.resolved_at != e.resolved_at):
            found.append(
                EscalationResolved(
                    **_base(new, "EscalationResolved", key, e.resolved_at),
                    rule_key=e.rule_key,
                    level=e.level,
                    fired_at=e.fired_at,
                    resolution=e.resolution or "",
                    ladder=e.ladder,
                )
            )
    return found


def _retracted(
    before: dict[tuple[str, datetime], EscalationStatus], new: OnboardingState
) -> list[Transition]:
    """Open escalations that the new state no longer holds at all: a late fact (evidence
    dated before the SLA, a pause entered afterwards) or a changed plan erased them. Whoever
    acted on the opening hears that it is over, as a resolution at the evaluation moment.
    (One that fired after ``new.as_of`` is not judged: the new state cannot know it yet.)"""
    kept = {(e.rule_key, e.fired_at) for e in new.escalations}
    return [
        EscalationResolved(
            **_base(new, "EscalationResolved", f"{e.rule_key}@{e.fired_at.isoformat()}", new.as_of),
            rule_key=e.rule_key,
            level=e.level,
            fired_at=e.fired_at,
            resolution=RETRACTED,
            ladder=e.ladder,
        )
        for (rule_key, fired_at), e in before.items()
        if e.resolved_at is None and fired_at <= new.as_of and (rule_key, fired_at) not in kept
    ]


def transitions(old: OnboardingState | None, new: OnboardingState) -> list[Transition]:
    """Every change from ``old`` to ``new``, in time order (each once).

    The sort is stable, so at one moment a stage's exit precedes the next stage's entry.
    """
    found = _stages(old, new) + _outcomes(old, new) + _escalations(old, new)
    return sorted(found, key=lambda t: t.at)
