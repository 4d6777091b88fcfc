"""``evaluate(plan, registration, facts, now)``: an onboarding's whole state, derived.

Facts may come in any order, duplicated, and mixed with other onboardings' facts; only
those with ``at <= now`` count. The same facts and ``now`` always give the same state,
which is what makes replays, ``as_of`` queries and late events exact.

Order of work: stages are gated in plan order, and each stage's milestones are evaluated
just before its gate, because windows may be anchored to go-live or to the stage's entry.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from shared.domain import health as health_score
from shared.domain import ttfv as ttfv_figures
from shared.domain.activity import Activity
from shared.domain.calendar import add_days
from shared.domain.escalations import Context, evaluate_escalations, ladder
from shared.domain.facts import (
    EventObserved,
    EvidenceRecorded,
    Fact,
    MilestoneAmended,
    OnboardingRegistered,
)
from shared.domain.milestones import RuleProgress, completion
from shared.domain.plans import Milestone, Plan
from shared.domain.rules import describe, matches
from shared.domain.signals import changes_at, signals
from shared.domain.sla import Pause, paused_days, pauses, shift
from shared.domain.stages import stage_status
from shared.domain.state import (
    AmendmentApplied,
    HealthContribution,
    MilestoneDefinition,
    MilestoneStatus,
    OnboardingState,
    PauseStatus,
    StageStatus,
)

DEFAULT_CHAMPION_QUIET_DAYS = 14

ProgressOf = Callable[[Milestone, datetime | None, Sequence[EvidenceRecorded]], RuleProgress]
"""Where a milestone stands, given its window's anchor (``None``: not happened yet) and its
manual evidence up to ``now``. ``evaluate`` computes it from every matching event; the
projector's folded path (``shared.domain.folding``) from far fewer, with the same result."""


def relevant_facts(
    registration: OnboardingRegistered, facts: Iterable[Fact], now: datetime
) -> list[Fact]:
    """This onboarding's facts up to ``now``, deduplicated by id, sorted by ``(at, id)``."""
    unique: dict[str, Fact] = {}
    for fact in sorted((f for f in facts if f.at <= now), key=lambda f: (f.at, f.id)):
        if _mine(registration, fact):
            unique.setdefault(fact.id, fact)
    return list(unique.values())


def amended(
    milestones: Sequence[Milestone], amendments: Sequence[MilestoneAmended]
) -> tuple[list[Milestone], tuple[AmendmentApplied, ...]]:
    """The milestones with each amendment applied in time order (``None`` keeps a field),
    and the history: each amendment with the definition it replaced."""
    current = {m.key: m for m in milestones}
    history: list[AmendmentApplied] = []
    for change in amendments:
        m = current.get(change.milestone_key)
        previous = MilestoneDefinition(m.title, m.description, m.due_day) if m else None
        history.append(AmendmentApplied(**vars(change), previous=previous))
        if m is None:
            continue
        current[m.key] = replace(
            m,
            title=change.title if change.title is not None else m.title,
            description=change.description if change.description is not None else m.description,
            due_day=change.due_day if change.due_day is not None else m.due_day,
        )
    return [current[m.key] for m in milestones], tuple(history)


@dataclass(frozen=True)
class _Gated:
    progress: dict[str, RuleProgress]
    stages: tuple[StageStatus, ...]
    go_live_at: datetime | None


def _anchor(
    m: Milestone, signed_at: datetime, go_live_at: datetime | None, entered_at: datetime | None
) -> datetime | None:
    window = m.rule.within if m.rule is not None else None
    if window is None or window.anchor in ("signature", "rolling"):
        return signed_at
    return go_live_at if window.anchor == "go_live" else entered_at


def _gate(
    plan: Plan,
    milestones: Sequence[Milestone],
    progress_of: ProgressOf,
    evidence: dict[str, list[EvidenceRecorded]],
    stop_clock: tuple[Pause, ...],
    signed_at: datetime,
    now: datetime,
) -> _Gated:
    progress: dict[str, RuleProgress] = {}
    completions: dict[str, datetime | None] = {}
    statuses: list[StageStatus] = []
    go_live_at: datetime | None = None
    entered: datetime | None = signed_at

    def run(m: Milestone, entered_at: datetime | None) -> None:
        anchor = _anchor(m, signed_at, go_live_at, entered_at)
        found = progress_of(m, anchor, evidence.get(m.key, []))
        progress[m.key] = found
        completions[m.key] = found.completed_at

    for stage in plan.stages:
        for m in milestones:
            if m.stage == stage.key:
                run(m, entered)
        status = stage_status(stage, entered, completions, stop_clock, plan.calendar, now)
        statuses.append(status)
        if stage.key == plan.go_live_stage:
            go_live_at = status.exited_at
        entered = status.exited_at
    for m in milestones:  # a milestone outside every stage (lint refuses it; be total anyway)
        if m.key not in progress:
            run(m, None)
    return _Gated(progress, tuple(statuses), go_live_at)


def _rule_text(m: Milestone) -> str:
    parts = [describe(m.rule)] if m.rule is not None else []
    if m.manual:
        parts.append("manual confirmation")
    return " or ".join(parts)


def _milestone_status(
    m: Milestone, found: RuleProgress, due_at: datetime | None, now: datetime
) -> MilestoneStatus:
    done = found.completed_at
    return MilestoneStatus(
        key=m.key,
        title=m.title,
        kind=m.kind,
        weight=m.weight,
        stage=m.stage,
        due_at=due_at,
        progress=found.progress,
        completed_at=done,
        on_time=None if done is None else due_at is None or done <= due_at,
        overdue=done is None and due_at is not None and now >= due_at,
        count=found.count,
        distinct_users=found.distinct_users,
        required_count=m.rule.min_count if m.rule is not None else 1,
        required_users=m.rule.min_distinct_users if m.rule is not None else 0,
        window_opens_at=found.window_opens_at,
        window_closes_at=found.window_closes_at,
        event_ids=found.event_ids,
        confirmations=found.confirmations,
        rule=_rule_text(m),
        description=m.description,
    )


@dataclass(frozen=True)
class Inputs:
    """This onboarding's facts up to ``now``, split by kind, and the first one after it."""

    events: Sequence[Activity]  # what signals and escalations look at, sorted by time
    evidence: dict[str, list[EvidenceRecorded]]
    amendments: tuple[MilestoneAmended, ...]
    pauses: tuple[Pause, ...]
    ahead: datetime | None = None  # the earliest fact after ``now``: counted when it comes


def _mine(registration: OnboardingRegistered, fact: Fact) -> bool:
    if isinstance(fact, OnboardingRegistered):
        return False
    if isinstance(fact, EventObserved):
        return fact.account_id == registration.account_id
    return fact.onboarding_id == registration.onboarding_id


def inputs(registration: OnboardingRegistered, facts: Iterable[Fact], now: datetime) -> Inputs:
    """Split the onboarding's facts (any order, duplicates, others' facts mixed in)."""
    given = list(facts)
    mine = relevant_facts(registration, given, now)
    evidence: dict[str, list[EvidenceRecorded]] = defaultdict(list)
    for f in mine:
        if isinstance(f, EvidenceRecorded):
            evidence[f.milestone_key].append(f)
    return Inputs(
        events=[f for f in mine if isinstance(f, EventObserved)],
        evidence=evidence,
        amendments=tuple(f for f in mine if isinstance(f, MilestoneAmended)),
        pauses=pauses(mine, now),
        ahead=min((f.at for f in given if f.at > now and _mine(registration, f)), default=None),
    )


@dataclass(frozen=True)
class _Scored:
    statuses: tuple[MilestoneStatus, ...]
    contributions: tuple[HealthContribution, ...]
    upcoming: list[datetime | None]  # SLA moments still ahead for incomplete milestones


def _score(
    plan: Plan,
    milestones: Sequence[Milestone],
    gated: _Gated,
    stop_clock: tuple[Pause, ...],
    signed: datetime,
    now: datetime,
) -> _Scored:
    """Each milestone's SLA (pause-shifted), status and health contribution."""

    def sla(days: int, business: bool) -> datetime | None:
        return shift(add_days(signed, days, plan.calendar, business), stop_clock, start=signed)

    statuses, contributions, upcoming = [], [], []
    for m in milestones:
        found = gated.progress[m.key]
        due_at = sla(m.due_day, m.business_days)
        late_limit = sla(2 * m.due_day, m.business_days)
        statuses.append(_milestone_status(m, found, due_at, now))
        in_progress = found.progress == "in_progress"
        done = found.completed_at
        share = health_score.contribution(
            m.key, m.weight, done, due_at, late_limit, in_progress, now
        )
        if share is not None:
            contributions.append(share)
        if done is None:
            upcoming += [due_at, late_limit, found.window_closes_at, found.drops_at]
    return _Scored(tuple(statuses), tuple(contributions), upcoming)


def _champion_quiet_days(plan: Plan) -> int:
    rule = next((r for r in plan.escalations if r.kind == "champion_quiet"), None)
    return rule.quiet_days if rule and rule.quiet_days else DEFAULT_CHAMPION_QUIET_DAYS


def evaluate(
    plan: Plan, registration: OnboardingRegistered, facts: Iterable[Fact], now: datetime
) -> OnboardingState:
    """The onboarding's state as of ``now``, derived from its facts alone."""
    given = inputs(registration, facts, now)
    signed = registration.at
    events = [e for e in given.events if isinstance(e, EventObserved)]  # all of them here

    def progress_of(
        m: Milestone, anchor: datetime | None, evidence: Sequence[EvidenceRecorded]
    ) -> RuleProgress:
        rule = m.rule
        hits = [e for e in events if rule is not None and matches(rule, e)]
        return completion(m, hits, evidence, signed, anchor, now)

    return derive(plan, registration, given, progress_of, now)


def derive(
    plan: Plan,
    registration: OnboardingRegistered,
    given: Inputs,
    progress_of: ProgressOf,
    now: datetime,
) -> OnboardingState:
    """The state from split inputs, each milestone's progress from ``progress_of``."""
    signed, champion = registration.at, registration.champion_user_id
    milestones, history = amended(plan.milestones, given.amendments)
    gated = _gate(plan, milestones, progress_of, given.evidence, given.pauses, signed, now)
    scored = _score(plan, milestones, gated, given.pauses, signed, now)
    completions = {k: p.completed_at for k, p in gated.progress.items()}
    exits = {s.key: s.exited_at for s in gated.stages}
    onboarded_at = exits.get(plan.onboarded_stage)
    first_value_at = completions.get(plan.first_value)
    current = next((s.key for s in gated.stages if s.state != "exited"), None)
    quiet_days = _champion_quiet_days(plan)
    context = Context(
        signed_at=signed,
        now=now,
        completions=completions,
        exits=exits,
        onboarded_at=onboarded_at,
        events=given.events,
        champion=champion,
        pauses=given.pauses,
        calendar=plan.calendar,
    )
    fired = evaluate_escalations(plan.escalations, context)
    upcoming = [
        *scored.upcoming,
        *(s.due_at for s in gated.stages if s.state == "active"),
        *fired.upcoming,
        *changes_at(given.events, champion, quiet_days, now),
        given.ahead,
    ]
    if first_value_at is None:
        upcoming += ttfv_figures.breach_moments(signed, plan.ttfv_target)
    open_pause = next((p for p in given.pauses if p.end is None), None)
    tasks = [m.key for m in milestones if m.kind == "task"]
    on_time = sum(1 for s in scored.statuses if s.on_time)
    return OnboardingState(
        onboarding_id=registration.onboarding_id,
        account_id=registration.account_id,
        account_name=registration.account_name,
        plan_key=plan.key,
        plan_version=plan.version,
        segment=plan.segment,
        csm=registration.csm,
        signed_at=signed,
        as_of=now,
        status="onboarded" if onboarded_at else "paused" if open_pause else "onboarding",
        current_stage=current,
        onboarded_at=onboarded_at,
        stages=gated.stages,
        milestones=scored.statuses,
        ttfv=ttfv_figures.ttfv(signed, first_value_at, now, plan.ttfv_target),
        decomposition=ttfv_figures.decompose(
            signed, completions.get(plan.first_engagement), gated.go_live_at, first_value_at
        ),
        health=health_score.health(scored.contributions),
        completion_rate=on_time / len(scored.statuses) if scored.statuses else 0.0,
        escalations=fired.fired,
        ladder=ladder(fired.fired),
        signals=signals(
            given.events, signed, champion, quiet_days, current == plan.onboarded_stage, now
        ),
        pause=PauseStatus(
            paused=open_pause is not None,
            paused_since=open_pause.start if open_pause else None,
            paused_days=paused_days(given.pauses, now),
        ),
        tasks_done_no_value=bool(tasks)
        and all(completions.get(key) for key in tasks)
        and first_value_at is None,
        amendments=history,
        next_due_at=min((m for m in upcoming if m is not None and m > now), default=None),
    )
