"""Escalations: day-based SLA rules, silence and the champion going quiet.

Day rules fire at ``signed_at + day`` (pause-shifted) if their condition holds at that
moment, and resolve when it stops holding (or the onboarding is Successfully Onboarded).
Silence fires ``quiet_days`` after the last event and resolves at the next one, so each
quiet spell is its own escalation. Nothing fires while paused or once onboarded. Alongside
what fired, ``evaluate_escalations`` returns the future moments at which something would
fire, for the timers.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.domain.calendar import add_days
from shared.domain.facts import EventObserved
from shared.domain.plans import Calendar, EscalationRule
from shared.domain.sla import Pause, shift
from shared.domain.state import EscalationStatus


@dataclass(frozen=True)
class Context:
    """What escalation rules look at, all as of ``now``."""

    signed_at: datetime
    now: datetime
    completions: Mapping[str, datetime | None]  # milestone key → completed_at
    exits: Mapping[str, datetime | None]  # stage key → exited_at
    onboarded_at: datetime | None
    events: Sequence[EventObserved]  # the account's events, sorted by (at, id)
    champion: str | None
    pauses: tuple[Pause, ...]
    calendar: Calendar


@dataclass(frozen=True)
class Escalations:
    fired: tuple[EscalationStatus, ...]
    upcoming: tuple[datetime, ...]  # moments > now at which a rule would fire


def _day(moment: datetime) -> str:
    return moment.date().isoformat()


def _stopped(ctx: Context, moment: datetime | None) -> datetime | None:
    """When an escalation's condition stopped holding: its own resolution or onboarding."""
    ends = [m for m in (moment, ctx.onboarded_at) if m is not None and m <= ctx.now]
    return min(ends) if ends else None


def _blocked(ctx: Context, moment: datetime) -> bool:
    return ctx.onboarded_at is not None and ctx.onboarded_at <= moment


def _condition(
    rule: EscalationRule, ctx: Context, due: datetime
) -> tuple[bool, datetime | None, str]:
    """(holds at ``due``, when it stopped holding, what is missing)."""
    if rule.kind == "stage_not_exited":
        assert rule.stage is not None
        exited = ctx.exits.get(rule.stage)
        return exited is None or exited > due, exited, f"stage {rule.stage} not exited"
    done = [ctx.completions.get(key) for key in rule.milestones]
    if rule.kind == "milestone_missing":
        at = done[0]
        return at is None or at > due, at, f"{rule.milestones[0]} not complete"
    first = min((at for at in done if at is not None), default=None)
    names = ", ".join(rule.milestones)
    return first is None or first > due, first, f"none of {names} complete"


def _day_rule(
    rule: EscalationRule, ctx: Context
) -> tuple[EscalationStatus | None, datetime | None]:
    assert rule.day is not None
    nominal = add_days(ctx.signed_at, rule.day, ctx.calendar, rule.business_days)
    due = shift(nominal, ctx.pauses, start=ctx.signed_at)
    if due is None or _blocked(ctx, due):
        return None, None
    if due > ctx.now:
        return None, due
    holds, stopped_at, missing = _condition(rule, ctx, due)
    if not holds:
        return None, None
    unit = "business day" if rule.business_days else "day"
    reason = f"{rule.key}: {missing} by {unit} {rule.day} (due {_day(due)})"
    return _status(rule, due, _stopped(ctx, stopped_at), reason), None


def _status(
    rule: EscalationRule, fired_at: datetime, resolved_at: datetime | None, reason: str
) -> EscalationStatus:
    return EscalationStatus(
        rule_key=rule.key,
        kind=rule.kind,
        level=rule.level,
        action=rule.action,
        title=rule.title,
        due_at=fired_at,
        fired_at=fired_at,
        resolved_at=resolved_at,
        reason=reason,
    )


def _quiet_spells(
    ctx: Context, times: Sequence[datetime], quiet: timedelta
) -> Iterator[tuple[datetime, datetime | None, datetime]]:
    """(start, next activity or None, fire moment) for each spell long enough to fire."""
    starts = [ctx.signed_at, *(t for t in times if t > ctx.signed_at)]
    for i, start in enumerate(starts):
        fire = shift(start + quiet, ctx.pauses, start=start)
        if fire is None:
            continue
        following = starts[i + 1] if i + 1 < len(starts) else None
        if following is not None and following <= fire:
            continue
        yield start, following, fire


def _silence(rule: EscalationRule, ctx: Context) -> tuple[list[EscalationStatus], datetime | None]:
    assert rule.quiet_days is not None
    fired, upcoming = [], None
    times = sorted({e.at for e in ctx.events})
    for start, following, fire in _quiet_spells(ctx, times, timedelta(days=rule.quiet_days)):
        if _blocked(ctx, fire):
            continue
        if fire > ctx.now:
            upcoming = fire
            continue
        reason = (
            f"{rule.key}: no events from the account for {rule.quiet_days} days "
            f"(since {_day(start)})"
        )
        fired.append(_status(rule, fire, _stopped(ctx, following), reason))
    return fired, upcoming


def _champion_quiet(
    rule: EscalationRule, ctx: Context
) -> tuple[list[EscalationStatus], datetime | None]:
    assert rule.quiet_days is not None
    champion = ctx.champion
    mine = sorted({e.at for e in ctx.events if champion is not None and e.user_id == champion})
    if not mine:
        return [], None
    others = sorted(e.at for e in ctx.events if e.user_id not in (None, champion))
    fired, upcoming = [], None
    quiet = timedelta(days=rule.quiet_days)
    for i, last in enumerate(mine):
        following = mine[i + 1] if i + 1 < len(mine) else None
        fire = shift(last + quiet, ctx.pauses, start=last)
        if fire is None or (following is not None and following <= fire) or _blocked(ctx, fire):
            continue
        if fire > ctx.now:
            upcoming = fire
            continue
        after = bisect_right(others, last)
        if after == len(others) or others[after] > fire:
            continue  # nobody else was active either: that is silence, not the champion
        reason = (
            f"{rule.key}: champion {champion} silent for {rule.quiet_days} days "
            f"(last seen {_day(last)}) while other users stayed active"
        )
        fired.append(_status(rule, fire, _stopped(ctx, following), reason))
    return fired, upcoming


def evaluate_escalations(rules: Sequence[EscalationRule], ctx: Context) -> Escalations:
    """Every escalation that fired up to ``ctx.now``, and the next moments one would fire."""
    fired: list[EscalationStatus] = []
    upcoming: list[datetime] = []
    for rule in rules:
        if rule.kind == "silence":
            found, next_at = _silence(rule, ctx)
            fired.extend(found)
        elif rule.kind == "champion_quiet":
            found, next_at = _champion_quiet(rule, ctx)
            fired.extend(found)
        else:
            status, next_at = _day_rule(rule, ctx)
            if status is not None:
                fired.append(status)
        if next_at is not None:
            upcoming.append(next_at)
    fired.sort(key=lambda e: (e.fired_at, e.rule_key))
    return Escalations(tuple(fired), tuple(upcoming))
