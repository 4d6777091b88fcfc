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
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from shared.domain.activity import Activity
from shared.domain.calendar import add_days
from shared.domain.plans import Calendar, EscalationRule
from shared.domain.sla import Pause, shift
from shared.domain.state import EscalationLadder, EscalationStatus

SLA_LADDER = "sla"
LADDER_KINDS = frozenset({"milestone_missing", "stage_not_exited", "none_complete"})


@dataclass(frozen=True)
class Context:
    """What escalation rules look at, all as of ``now``."""

    signed_at: datetime
    now: datetime
    completions: Mapping[str, datetime | None]  # milestone key → completed_at
    exits: Mapping[str, datetime | None]  # stage key → exited_at
    onboarded_at: datetime | None
    events: Sequence[Activity]  # the account's events (or stand-ins), sorted by time
    champion: str | None
    pauses: tuple[Pause, ...]
    calendar: Calendar


@dataclass(frozen=True)
class Escalations:
    fired: tuple[EscalationStatus, ...]
    upcoming: tuple[datetime, ...]  # moments > now at which a rule would fire


def _day(moment: datetime) -> str:
    return moment.date().isoformat()


@dataclass(frozen=True)
class _Stop:
    """When (if ever) an escalation's own condition stopped holding, and how to say so."""

    at: datetime | None
    why: str


ONBOARDED = "Successfully Onboarded"


def _stopped(ctx: Context, stop: _Stop) -> _Stop:
    """When and why it resolved as of ``now``: its own condition, or onboarding (earliest)."""
    ends = [s for s in (stop, _Stop(ctx.onboarded_at, ONBOARDED)) if s.at and s.at <= ctx.now]
    return min(ends, key=lambda s: s.at or ctx.now) if ends else _Stop(None, "")


def _blocked(ctx: Context, moment: datetime) -> bool:
    return ctx.onboarded_at is not None and ctx.onboarded_at <= moment


def _condition(rule: EscalationRule, ctx: Context, due: datetime) -> tuple[bool, _Stop, str]:
    """(holds at ``due``, when and why it stopped holding, what is missing)."""
    if rule.kind == "stage_not_exited":
        assert rule.stage is not None
        exited = ctx.exits.get(rule.stage)
        stop = _Stop(exited, f"stage {rule.stage} exited")
        return exited is None or exited > due, stop, f"stage {rule.stage} not exited"
    done = {key: ctx.completions.get(key) for key in rule.milestones}
    if rule.kind == "milestone_missing":
        key = rule.milestones[0]
        at = done[key]
        return at is None or at > due, _Stop(at, f"{key} complete"), f"{key} not complete"
    reached = sorted((at, key) for key, at in done.items() if at is not None)
    first, which = reached[0] if reached else (None, "")
    names = ", ".join(rule.milestones)
    holds = first is None or first > due
    return holds, _Stop(first, f"{which} complete"), f"none of {names} complete"


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
    holds, stop, missing = _condition(rule, ctx, due)
    if not holds:
        return None, None
    unit = "business day" if rule.business_days else "day"
    reason = f"{rule.key}: {missing} by {unit} {rule.day} (due {_day(due)})"
    return _status(rule, due, _stopped(ctx, stop), reason), None


def _status(rule: EscalationRule, fired_at: datetime, stop: _Stop, reason: str) -> EscalationStatus:
    return EscalationStatus(
        rule_key=rule.key,
        kind=rule.kind,
        level=rule.level,
        action=rule.action,
        title=rule.title,
        due_at=fired_at,
        fired_at=fired_at,
        resolved_at=stop.at,
        reason=reason,
        ladder=SLA_LADDER if rule.kind in LADDER_KINDS else None,
        resolution=stop.why if stop.at is not None else None,
    )


def _quiet_spells(
    ctx: Context, times: Sequence[datetime], quiet: timedelta
) -> Iterator[tuple[datetime, datetime | None, datetime]]:
    """(start, next activity or None, fire moment) for each spell long enough to fire.

    A spell whose next activity comes by ``start + quiet`` never fires, whatever the
    pauses (they only push the fire moment later): no clock to shift for it."""
    starts = [ctx.signed_at, *(t for t in times if t > ctx.signed_at)]
    for i, start in enumerate(starts):
        following = starts[i + 1] if i + 1 < len(starts) else None
        if following is not None and following <= start + quiet:
            continue
        fire = shift(start + quiet, ctx.pauses, start=start)
        if fire is None:
            continue
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
        stop = _Stop(following, "account active again")
        fired.append(_status(rule, fire, _stopped(ctx, stop), reason))
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
        if following is not None and following <= last + quiet:
            continue  # back before any fire moment (see ``_quiet_spells``)
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
        stop = _Stop(following, f"champion {champion} active again")
        fired.append(_status(rule, fire, _stopped(ctx, stop), reason))
    return fired, upcoming


def _rung_order(e: EscalationStatus) -> tuple[datetime, int, str]:
    return e.fired_at, e.level, e.rule_key


def _climb(fired: Sequence[EscalationStatus]) -> list[EscalationStatus]:
    """Mark each ladder rung that fired while a lower rung was still open as a raise.

    Rungs firing at the same moment climb in level order, so a pause that lines two up
    still reads as open-then-raise.
    """
    rungs = sorted((e for e in fired if e.ladder is not None), key=_rung_order)
    climbed: list[EscalationStatus] = []
    for i, rung in enumerate(rungs):
        below = [
            r.level
            for r in rungs[:i]
            if r.ladder == rung.ladder and (r.resolved_at is None or r.resolved_at > rung.fired_at)
        ]
        top = max(below, default=0)
        climbed.append(replace(rung, raised_from=top) if 0 < top < rung.level else rung)
    return climbed


def ladder(escalations: Sequence[EscalationStatus]) -> EscalationLadder:
    """The SLA ladder's current (or last) episode, from the rungs that fired."""
    rungs = sorted((e for e in escalations if e.ladder == SLA_LADDER), key=_rung_order)
    episode: list[EscalationStatus] = []
    end: datetime | None = None  # the current episode's end so far (None: still open)
    for rung in rungs:
        if episode and end is not None and rung.fired_at >= end:
            episode = []
        episode.append(rung)
        ends = [r.resolved_at for r in episode]
        end = None if None in ends else max(e for e in ends if e is not None)
    if not episode:
        return EscalationLadder()
    raises = [r.fired_at for r in episode if r.raised_from is not None]
    still_open = [r for r in episode if r.open]
    if still_open:
        top = max(still_open, key=lambda r: (r.level, r.fired_at))
    else:
        top = max(episode, key=lambda r: (r.resolved_at or r.fired_at, r.level))
    return EscalationLadder(
        state=("raised" if raises else "open") if still_open else "resolved",
        level=max((r.level for r in still_open), default=0),
        rule_key=top.rule_key,
        action=top.action,
        reason=top.reason,
        opened_at=episode[0].fired_at,
        raised_at=max(raises, default=None),
        resolved_at=end,
    )


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
    signals = [e for e in fired if e.ladder is None]
    found = sorted([*signals, *_climb(fired)], key=lambda e: (e.fired_at, e.rule_key))
    return Escalations(tuple(found), tuple(upcoming))
