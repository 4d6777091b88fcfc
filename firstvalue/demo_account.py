"""One demo account: its users, its scenario's timeline, and the Segment messages and manual
facts that timeline produces (all times are days after contract signature).

Milestone events are generated from the plan's own rules — event name, property filters,
counts, distinct users and windows — so the account meets exactly the criteria its scenario
says it meets; background sessions and near misses (failed syncs, sandbox runs) make it look
like real usage.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from firstvalue.demo_scenarios import SIGNED_OFF, THIN, min_age, quiet_days
from shared.domain.facts import (
    EvidenceRecorded,
    ManualFact,
    MilestoneAmended,
    OnboardingPaused,
    OnboardingResumed,
)
from shared.domain.plans import EventRule, Milestone, Plan, PropertyFilter

MANUAL_SHARE = 0.06  # milestones with a rule and `manual: true` recorded by hand this often
SEATS: dict[str, int] = {"smb": 10, "mid_market": 25, "enterprise": 60}
# Sessions per active user per week: keeps ~320 accounts near 30–80k messages.
SESSION_RATE: dict[str, float] = {"smb": 0.4, "mid_market": 0.2, "enterprise": 0.1}
OTHER_SEATS, OTHER_SESSION_RATE = 25, 0.2  # a custom plan's accounts: mid-market-like
NOISE_EVENTS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("Page Viewed", "path", ("/home", "/reports", "/records", "/settings", "/integrations")),
    ("Dashboard Opened", "dashboard", ("overview", "pipeline", "usage", "team")),
    ("Settings Changed", "setting", ("notifications", "timezone", "permissions", "theme")),
    ("Search Performed", "scope", ("records", "reports", "people")),
)
_SPONSOR_QUOTES = (
    "The team runs its weekly review from the new reports now.",
    "We got what we bought this for: the first reports reached the board.",
    "Confirmed: our onboarding goals are met, across the whole team.",
)
_FIRST = (
    "Alex",
    "Blake",
    "Casey",
    "Dana",
    "Eli",
    "Farah",
    "Gus",
    "Hana",
    "Ivan",
    "Jun",
    "Kai",
    "Lior",
    "Mina",
    "Noor",
    "Omar",
    "Pia",
    "Quinn",
    "Rosa",
    "Sven",
    "Tara",
    "Uma",
    "Vik",
    "Wen",
    "Yara",
    "Zoe",
)
_LAST = (
    "Adams",
    "Berg",
    "Costa",
    "Diaz",
    "Evans",
    "Fischer",
    "Garcia",
    "Haddad",
    "Ito",
    "Jensen",
    "Kowalski",
    "Lopez",
    "Mehta",
    "Nakamura",
    "Olsen",
    "Park",
    "Rossi",
    "Silva",
    "Tanaka",
    "Ueda",
    "Varga",
    "Weber",
    "Yilmaz",
    "Zhang",
)


@dataclass(frozen=True)
class DemoAccount:
    """One generated account: who it is and which scenario it plays."""

    account_id: str
    name: str
    segment: str  # also the plan key
    scenario: str
    csm: str
    champion_user_id: str
    user_ids: tuple[str, ...]
    signed_at: datetime
    onboarding_id: str


@dataclass
class AccountBuilder:
    """One account's messages and facts, from its plan and scenario (days after signature)."""

    rng: random.Random
    plan: Plan
    scenario: str
    index: int
    now: datetime
    days: int
    csm: str
    name: str
    onboarding_id: Callable[[str, str], str]
    messages: list[dict[str, Any]] = field(default_factory=list)
    facts: list[ManualFact] = field(default_factory=list)
    quiet_from: dict[str, float] = field(default_factory=dict)  # user → last active day
    stage_entry: dict[str, float | None] = field(default_factory=dict)
    go_live: float | None = None
    pause: tuple[float, float] | None = None  # (start, end) in days; end may lie past now

    def __post_init__(self) -> None:
        rng, plan = self.rng, self.plan
        self.account_id = f"acct_{self.index + 1:04d}_{rng.getrandbits(24):06x}"
        self.onboarding = self.onboarding_id(self.account_id, plan.key)
        self.domain = self.name.split()[0].lower() + ".example"
        self.users = [
            f"{self.account_id}_u{n:02d}" for n in range(SEATS.get(plan.key, OTHER_SEATS))
        ]
        self.champion = self.users[0]
        self.sponsor = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
        low = min(min_age(plan, self.scenario), self.days - 1)
        age = rng.uniform(low, self._max_age(low))
        self.signed_at = _business_hour(self.now - timedelta(days=age), rng)
        self.age = (self.now - self.signed_at).total_seconds() / 86400
        self.cutoff = self.age  # nothing after the history's end (or the account's silence)

    def build(self) -> tuple[DemoAccount, list[dict[str, Any]], list[ManualFact]]:
        self._track(
            0.0,
            self.champion,
            "Contract Signed",
            {
                "plan": self.plan.key,
                "csm": self.csm,
                "champion_user_id": self.champion,
                "licensed_seats": len(self.users),
                "account_name": self.name,
                "account_id": self.account_id,
            },
        )
        schedule = self._schedule()
        self._emit_milestones(schedule)
        self._emit_activity()
        self._introduce_users()
        end = self.signed_at + timedelta(days=self.cutoff)
        messages = [m for m in self.messages if m.pop("_at") <= end]
        account = DemoAccount(
            account_id=self.account_id,
            name=self.name,
            segment=self.plan.key,
            scenario=self.scenario,
            csm=self.csm,
            champion_user_id=self.champion,
            user_ids=tuple(self.users),
            signed_at=self.signed_at,
            onboarding_id=self.onboarding,
        )
        return account, messages, [f for f in self.facts if f.at <= end]

    # -- the scenario's timing --------------------------------------------------------------

    def _max_age(self, low: float) -> float:
        if self.scenario == "on_track":
            fv_due = self.plan.milestone(self.plan.first_value).due_day
            return max(low, min(self.days - 1, fv_due * 0.85))
        if self.scenario == "silent":
            return min(self.days - 1, low + 30)
        return self.days - 1

    def _schedule(self) -> dict[str, float | None]:
        """Completion day of every milestone (None = never) for this scenario."""
        plan, rng, scenario = self.plan, self.rng, self.scenario
        fv = plan.first_value
        target = plan.ttfv_target.max_days
        fv_due = plan.milestone(fv).due_day
        pace = {
            "fast_first_value": rng.uniform(0.4, 0.55),
            "onboarded_with_sponsor": rng.uniform(0.75, 0.9),
            "slow_first_value": rng.uniform(1.25, 1.7) * target / fv_due,
            "severe_breach": rng.uniform(1.5, 1.9),
        }.get(scenario, rng.uniform(0.6, 0.8))
        schedule: dict[str, float | None] = {
            m.key: max(0.3, m.due_day * pace * rng.uniform(0.92, 1.04)) for m in plan.milestones
        }
        if scenario == "fast_first_value":
            schedule[fv] = min(schedule[fv] or 0.0, target * rng.uniform(0.35, 0.55))
        elif scenario == "slow_first_value":
            schedule[fv] = min(target * rng.uniform(1.2, 1.7), self.age - 2)
        elif scenario == "severe_breach":
            if target * 2.05 + 3 <= self.age:
                schedule[fv] = rng.uniform(target * 2.05, min(self.age - 2, target * 2.6))
            else:
                self._never_after(schedule, plan.go_live_stage)
        elif scenario == "stalled_in_setup":
            self._never_after(schedule, plan.go_live_stage)
            for m in [m for m in plan.milestones if m.stage == plan.go_live_stage][1:]:
                schedule[m.key] = None
        elif scenario == "tasks_done_no_value":
            for m in plan.milestones:
                if m.kind != "task":
                    schedule[m.key] = None
        elif scenario == "silent":
            quiet = quiet_days(plan, "silence")
            self.cutoff = self.age - rng.uniform(quiet + 3, max(quiet + 4, self.age - 6))
        elif scenario == "champion_quiet":
            quiet = quiet_days(plan, "champion_quiet")
            self.quiet_from[self.champion] = self.age - rng.uniform(quiet + 3, quiet + 10)
        elif scenario == "paused":
            self._pause(schedule)
        elif scenario == "amended_success_milestone":
            self._amend()
        if scenario not in SIGNED_OFF:
            for m in plan.milestones:
                if m.rule is None and m.manual:
                    schedule[m.key] = None
        return self._gate(schedule)

    def _never_after(self, schedule: dict[str, float | None], stage: str) -> None:
        keys = [s.key for s in self.plan.stages]
        later = set(keys[keys.index(stage) + 1 :])
        for m in self.plan.milestones:
            if m.stage in later:
                schedule[m.key] = None

    def _pause(self, schedule: dict[str, float | None]) -> None:
        rng = self.rng
        start = min(
            rng.uniform(0.3, 0.6) * self.plan.milestone(self.plan.first_value).due_day, self.age - 4
        )
        resumed = self.age - start > 14 and rng.random() < 0.5
        length = rng.uniform(8, min(25.0, self.age - start - 3)) if resumed else None
        at = self.signed_at + timedelta(days=start)
        reason = rng.choice(
            (
                "customer re-organisation",
                "budget freeze until next quarter",
                "champion on parental leave",
                "security review on the customer side",
            )
        )
        self.facts.append(
            OnboardingPaused(
                id=f"demo:{self.onboarding}:paused",
                onboarding_id=self.onboarding,
                at=at,
                reason=reason,
                author=self.csm,
            )
        )
        for key, day in schedule.items():
            if day is not None and day > start:
                schedule[key] = None if length is None else day + length
        if length is not None:
            self.facts.append(
                OnboardingResumed(
                    id=f"demo:{self.onboarding}:resumed",
                    onboarding_id=self.onboarding,
                    at=at + timedelta(days=length),
                    author=self.csm,
                )
            )
        self.pause = (start, start + length if length is not None else float("inf"))

    def _amend(self) -> None:
        rng = self.rng
        fv = self.plan.milestone(self.plan.first_value)
        self.facts.append(
            MilestoneAmended(
                id=f"demo:{self.onboarding}:amended:{fv.key}",
                onboarding_id=self.onboarding,
                at=self.signed_at + timedelta(days=rng.uniform(2, 6)),
                milestone_key=fv.key,
                author=self.csm,
                reason=rng.choice(
                    (
                        "The board now wants the weekly pipeline report first",
                        "Success criteria revised at kickoff: regional report first",
                        "The sponsor changed the outcome they bought for",
                    )
                ),
                title=f"{fv.title} (as agreed at kickoff)",
                due_day=fv.due_day + 7,
            )
        )

    def _gate(self, schedule: dict[str, float | None]) -> dict[str, float | None]:
        """Move windowed milestones inside their windows; drop those whose anchor never comes."""
        previous_exit: float | None = 0.0
        for stage in self.plan.stages:
            self.stage_entry[stage.key] = previous_exit
            for m in self.plan.milestones:
                day = schedule[m.key]
                if m.stage == stage.key and day is not None and m.rule is not None:
                    schedule[m.key] = self._inside_window(m, m.rule, day)
            met = _criterion(stage.exit_all, stage.exit_any, schedule)
            previous_exit = (
                None if met is None or previous_exit is None else max(met, previous_exit)
            )
            if stage.key == self.plan.go_live_stage:
                self.go_live = previous_exit
        return schedule

    def _anchor(self, m: Milestone, rule: EventRule) -> float | None:
        anchor = rule.within.anchor if rule.within else "signature"
        if anchor == "go_live":
            return self.go_live
        if anchor == "stage_entry":
            return self.stage_entry.get(m.stage)
        return 0.0

    def _inside_window(self, m: Milestone, rule: EventRule, day: float) -> float | None:
        if rule.within is None or rule.within.anchor == "rolling":
            return day
        anchor = self._anchor(m, rule)
        if anchor is None:
            return None
        earliest = anchor + self.rng.uniform(1.0, max(1.5, min(6.0, rule.within.days / 3)))
        return min(max(day, earliest), anchor + rule.within.days - 0.5)

    # -- messages and facts -------------------------------------------------------------------

    def _emit_milestones(self, schedule: Mapping[str, float | None]) -> None:
        for m in self.plan.milestones:
            day = schedule[m.key]
            if m.rule is not None:
                self._near_misses(m.rule, day)
            if day is None:
                continue
            # Some CSMs log a call or a workshop by hand instead of the product emitting it.
            if m.manual and (m.rule is None or self.rng.random() < MANUAL_SHARE):
                self._emit_evidence(m, day)
            elif m.rule is not None:
                self._emit_rule(m, m.rule, day)

    def _emit_rule(self, m: Milestone, rule: EventRule, day: float) -> None:
        """Just enough matching events, the last one exactly at ``day``."""
        users = self._milestone_users(max(1, rule.min_distinct_users))
        count = max(rule.min_count, len(users))
        span = self._span(m, rule, day)
        for i in range(count):
            when = day if i == count - 1 else day - self.rng.uniform(0.05, max(0.1, span))
            props: dict[str, Any] = {}
            for f in rule.where:
                _set_path(props, f.property, _satisfying(f))
            self._track(max(0.05, when), users[i % len(users)], rule.events[0], props)

    def _span(self, m: Milestone, rule: EventRule, day: float) -> float:
        if rule.within is None:
            return min(day, 3.0)
        if rule.within.anchor == "rolling":
            return rule.within.days * 0.7
        return max(0.0, min(day - (self._anchor(m, rule) or 0.0) - 0.2, rule.within.days * 0.7))

    def _milestone_users(self, n: int) -> list[str]:
        """The champion first, unless the champion goes quiet; then the others in order."""
        pool = [u for u in self.users if u not in self.quiet_from]
        pool += [u for u in self.users if u in self.quiet_from]
        return pool[: min(n, len(pool))]

    def _near_misses(self, rule: EventRule, day: float | None) -> None:
        """Failed syncs before a good one, sandbox runs before production: the realistic noise."""
        rng, event = self.rng, rule.events[0]
        last = self.age if day is None else day
        if event == "Data Sync Completed":
            for _ in range(rng.randint(1, 2) if day is not None else rng.randint(3, 6)):
                self._track(
                    rng.uniform(last * 0.5, last),
                    self.users[1],
                    event,
                    {
                        "status": "failed",
                        "error": rng.choice(("auth_expired", "timeout", "schema_mismatch")),
                    },
                )
        elif event == "Workflow Run":
            for _ in range(rng.randint(1, 3)):
                self._track(
                    rng.uniform(last * 0.6, last),
                    self.users[1],
                    event,
                    {"environment": "sandbox", "workflow": "lead routing"},
                )

    def _emit_evidence(self, m: Milestone, day: float) -> None:
        """The sponsor's written sign-off, or a CSM's note of a task done with the champion."""
        rng = self.rng
        sign_off = m.rule is None
        channel = rng.choice(("email", "call", "meeting", "slack") if sign_off else ("meeting",))
        champion = " ".join(self._person(0))
        self.facts.append(
            EvidenceRecorded(
                id=f"demo:{self.onboarding}:evidence:{m.key}",
                onboarding_id=self.onboarding,
                milestone_key=m.key,
                at=self.signed_at + timedelta(days=day),
                confirmed_by=(
                    f"{self.sponsor} (executive sponsor, {self.name})"
                    if sign_off
                    else f"{champion} (champion, {self.name})"
                ),
                channel=channel,
                quote=rng.choice(_SPONSOR_QUOTES) if sign_off else None,
                link=f"https://crm.example/notes/{self.account_id}/{m.key}"
                if channel == "email" or not sign_off
                else None,
                recorded_by=self.csm,
            )
        )

    def _emit_activity(self) -> None:
        """Background sessions: a Logged In and a few noise events each. The champion looks in
        every few days (until their scenario silences them); other seats come and go."""
        rng = self.rng
        thin = self.scenario in THIN or (self.scenario == "severe_breach" and self.go_live is None)
        for n, user in enumerate(self.users[: 2 if thin else None]):
            if n == 0:
                days: Iterator[float] = _steady_days(rng, rng.uniform(0.2, 2), self.cutoff)
            else:
                start = (
                    rng.uniform(0.2, 3)
                    if n == 1
                    else (None if self.go_live is None else self.go_live + rng.uniform(0.5, 10))
                )
                if start is None:
                    continue
                rate = (
                    SESSION_RATE.get(self.plan.key, OTHER_SESSION_RATE)
                    * (2 if n == 1 else 1)
                    * (0.4 if thin else 1)
                )
                days = _poisson_days(rng, start, self.cutoff, rate / 7)
            for day in days:
                if n and self.pause and self.pause[0] <= day <= self.pause[1]:
                    continue  # during a pause only the champion looks in
                self._session(user, day)

    def _session(self, user: str, day: float) -> None:
        rng = self.rng
        self._track(day, user, "Logged In", {"method": rng.choice(("sso", "password"))})
        for _ in range(rng.randint(0, 2)):
            name, prop, values = NOISE_EVENTS[rng.randrange(len(NOISE_EVENTS))]
            self._track(day + rng.uniform(0.001, 0.03), user, name, {prop: rng.choice(values)})

    def _introduce_users(self) -> None:
        """Each seat gets identify and group calls just before its first event (or provisioning)."""
        first: dict[str, datetime] = {}
        for m in self.messages:
            user = m["userId"]
            first[user] = min(first.get(user, m["_at"]), m["_at"])
        for n, user in enumerate(self.users):
            provisioned = self.signed_at + timedelta(days=self.rng.uniform(0.5, 10))
            at = first.get(user, provisioned) - timedelta(minutes=2)
            given, family = self._person(n)
            title = "Champion" if n == 0 else "Admin" if n == 1 else "Member"
            self._message(
                at,
                {
                    "type": "identify",
                    "userId": user,
                    "traits": {
                        "name": f"{given} {family}",
                        "email": f"{given}.{family}@{self.domain}".lower(),
                        "title": title,
                    },
                },
            )
            self._message(
                at,
                {
                    "type": "group",
                    "userId": user,
                    "groupId": self.account_id,
                    "traits": {
                        "name": self.name,
                        "plan": self.plan.key,
                        "segment": self.plan.segment,
                        "scenario": self.scenario,
                        "csm": self.csm,
                    },
                },
            )

    def _person(self, n: int) -> tuple[str, str]:
        """The n-th seat holder's given and family name (stable, no randomness spent)."""
        given = _FIRST[(n * 7 + self.index) % len(_FIRST)]
        return given, _LAST[(n * 5 + self.index * 3) % len(_LAST)]

    def _track(self, day: float, user: str, event: str, properties: dict[str, Any]) -> None:
        if day > self.quiet_from.get(user, float("inf")):
            return
        self._message(
            self.signed_at + timedelta(days=day),
            {
                "type": "track",
                "userId": user,
                "event": event,
                "properties": properties,
                "context": {
                    "groupId": self.account_id,
                    "library": {"name": "analytics-python", "version": "2.3.3"},
                },
            },
        )

    def _message(self, at: datetime, body: dict[str, Any]) -> None:
        body["messageId"] = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        body["timestamp"] = at.isoformat(timespec="milliseconds")
        body["_at"] = at
        self.messages.append(body)


def _criterion(
    exit_all: tuple[str, ...], exit_any: tuple[str, ...], schedule: Mapping[str, float | None]
) -> float | None:
    if exit_all:
        done = [schedule.get(k) for k in exit_all]
        return None if None in done else max(d for d in done if d is not None)
    present = [d for d in (schedule.get(k) for k in exit_any) if d is not None]
    return min(present) if present else None


def _poisson_days(rng: random.Random, start: float, end: float, rate: float) -> Iterator[float]:
    day = start
    while rate > 0:
        day += rng.expovariate(rate)
        if day >= end:
            return
        yield day


def _steady_days(rng: random.Random, start: float, end: float) -> Iterator[float]:
    """Every two to six days: someone who uses the product as part of their week."""
    day = start
    while day < end:
        yield day
        day += rng.uniform(2, 6)


def _business_hour(moment: datetime, rng: random.Random) -> datetime:
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight + timedelta(hours=rng.uniform(13, 21))  # 9:00–17:00 US Eastern, in UTC


def _satisfying(f: PropertyFilter) -> Any:
    """A property value that passes ``f``."""
    if f.op in ("eq", "gte", "lte"):
        return f.value
    if f.op == "in":
        return list(f.value)[0]
    if f.op in ("ne", "not_in", "exists"):
        return "yes" if f.op == "exists" else f"not-{f.value}"
    if f.op in ("gt", "lt"):
        return f.value + 1 if f.op == "gt" else f.value - 1
    return str(f.value)  # contains


def _set_path(props: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    for part in parents:
        props = props.setdefault(part, {})
    props[leaf] = value
