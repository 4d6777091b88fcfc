"""Plain builders for unit tests: registrations, events and facts with deterministic ids."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.domain.facts import (
    EventObserved,
    EvidenceRecorded,
    Fact,
    MilestoneAmended,
    OnboardingPaused,
    OnboardingRegistered,
    OnboardingResumed,
)
from shared.domain.plans import Plan
from shared.plan_files import default_plans

SIGNED = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)  # a Thursday
ACCOUNT = "acme"
ONBOARDING = "acme-smb"
PLANS = default_plans()


def day(n: float, start: datetime = SIGNED) -> datetime:
    return start + timedelta(days=n)


def _id(*parts: Any) -> str:
    return hashlib.sha1(repr(parts).encode()).hexdigest()[:16]


def registration(
    plan: Plan | str = "smb", at: datetime = SIGNED, champion: str | None = "u00"
) -> OnboardingRegistered:
    key = plan if isinstance(plan, str) else plan.key
    return OnboardingRegistered(
        id=f"reg-{ONBOARDING}",
        onboarding_id=ONBOARDING,
        account_id=ACCOUNT,
        plan_key=key,
        at=at,
        csm="casey",
        champion_user_id=champion,
        licensed_seats=10,
    )


def event(
    when: float | datetime, name: str, user: str | None = "u00", **props: Any
) -> EventObserved:
    at = when if isinstance(when, datetime) else day(when)
    return EventObserved(_id(at, name, user, sorted(props.items())), ACCOUNT, user, name, at, props)


def evidence(when: float, milestone: str, by: str = "Dana (VP Ops)") -> EvidenceRecorded:
    return EvidenceRecorded(_id(when, milestone, by), ONBOARDING, milestone, day(when), by, "email")


def pause(when: float, reason: str = "customer reorg") -> OnboardingPaused:
    return OnboardingPaused(_id("pause", when), ONBOARDING, day(when), reason, "casey")


def resume(when: float) -> OnboardingResumed:
    return OnboardingResumed(_id("resume", when), ONBOARDING, day(when), "casey")


def amend(when: float, milestone: str, **changes: Any) -> MilestoneAmended:
    return MilestoneAmended(
        _id("amend", when, milestone),
        ONBOARDING,
        day(when),
        milestone,
        "casey",
        "scope change",
        **changes,
    )


def kickoff_done(at: float = 1) -> list[Fact]:
    return [
        event(at, "Kickoff Call Completed"),
        event(at, "Success Criteria Agreed"),
        event(at, "Executive Sponsor Named"),
    ]


def setup_done(at: float = 5) -> list[Fact]:
    return [
        event(at - 2, "Integration Connected"),
        event(at - 1, "Data Sync Completed", status="success"),
        event(at, "Workflow Run", environment="production"),
    ]


def chatter(until: float, every: float = 3, users: tuple[str, ...] = ("u00", "u01")) -> list[Fact]:
    """Background activity (so silence does not fire): a page view per user every few days."""
    found: list[Fact] = []
    n = every
    while n <= until:
        found += [event(n, "Page Viewed", user) for user in users]
        n += every
    return found


def stalled_in_setup(until: float) -> list[Fact]:
    """Kickoff done, integration connected, then nothing more of setup; users stay active."""
    return [*kickoff_done(1), event(4, "Integration Connected"), *chatter(until)]
