"""Facts: the immutable, timestamped inputs from which every onboarding's state is derived.

Every fact has a deterministic ``id`` (duplicates are dropped by id) and an ``at`` moment in
event time; ``evaluate(plan, registration, facts, now)`` only ever looks at facts with
``at <= now``, which is what makes ``as_of`` queries and replays exact.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class OnboardingRegistered:
    """An account starts onboarding on a plan at contract signature (closed-won)."""

    id: str
    onboarding_id: str
    account_id: str
    plan_key: str
    at: datetime  # contract signature
    csm: str | None = None
    champion_user_id: str | None = None
    licensed_seats: int | None = None
    account_name: str | None = None


@dataclass(frozen=True)
class EventObserved:
    """A product-usage event attributed to an account (id = messageId / $insert_id / hash)."""

    id: str
    account_id: str
    user_id: str | None
    name: str
    at: datetime
    properties: Mapping[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class EvidenceRecorded:
    """Manual evidence that a milestone is met: who confirmed it, when, how, and proof."""

    id: str
    onboarding_id: str
    milestone_key: str
    at: datetime  # when the customer confirmed
    confirmed_by: str
    channel: str  # email, slack, call, meeting, other
    quote: str | None = None
    link: str | None = None
    recorded_by: str | None = None


@dataclass(frozen=True)
class OnboardingPaused:
    """A formal pause: SLA and escalation clocks stop; the customer's TTFV clock does not."""

    id: str
    onboarding_id: str
    at: datetime
    reason: str
    author: str | None = None


@dataclass(frozen=True)
class OnboardingResumed:
    """The end of a pause."""

    id: str
    onboarding_id: str
    at: datetime
    author: str | None = None


@dataclass(frozen=True)
class MilestoneAmended:
    """A recorded change to one milestone's definition; nothing is edited in place.

    Fields left ``None`` keep their previous value. The prior definition stays visible in the
    onboarding's amendment history.
    """

    id: str
    onboarding_id: str
    at: datetime
    milestone_key: str
    author: str
    reason: str
    title: str | None = None
    description: str | None = None
    due_day: int | None = None


ManualFact = EvidenceRecorded | OnboardingPaused | OnboardingResumed | MilestoneAmended
"""What people enter about an onboarding (through the API), as opposed to observed usage."""
CommandFact = OnboardingRegistered | ManualFact
"""What the write API (and a manual-facts file) carries: a registration or a manual fact."""

Fact = (
    OnboardingRegistered
    | EventObserved
    | EvidenceRecorded
    | OnboardingPaused
    | OnboardingResumed
    | MilestoneAmended
)
