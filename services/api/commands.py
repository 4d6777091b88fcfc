"""Write requests: the bodies of the POST endpoints, each turned into one fact.

Field rules live here (lengths, ranges, known channels) so that a bad body is a 422 naming
the field; rules that need the database (unknown onboarding, milestone not in the plan,
resume without a pause) are checked by ``shared.projection.manual.record_fact``.
Fact ids are derived from the content, so the same command sent twice records one fact.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.api.params import Moment, PlainText
from shared.analytics.registration import ContractTerms, registration
from shared.domain.facts import (
    EvidenceRecorded,
    MilestoneAmended,
    OnboardingPaused,
    OnboardingRegistered,
    OnboardingResumed,
)
from shared.projection.manual import fact_id

Text = Annotated[PlainText, Field(min_length=1, max_length=255)]
LongText = Annotated[PlainText, Field(min_length=1, max_length=4000)]
Channel = Literal["email", "slack", "call", "meeting", "other"]


class _Command(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class RegisterOnboarding(_Command):
    """Start an onboarding at contract signature (closed-won)."""

    account_id: Text
    plan: Text = Field(description="plan key, e.g. smb, mid_market, enterprise")
    signed_at: Moment = Field(description="contract signature: the TTFV clock starts here")
    onboarding_id: Text | None = Field(
        default=None, description="defaults to a stable id derived from account and plan"
    )
    csm: Text | None = None
    champion_user_id: Text | None = None
    licensed_seats: Annotated[int, Field(ge=0, le=1_000_000)] | None = None
    account_name: Text | None = None

    def fact(self) -> OnboardingRegistered:
        terms = ContractTerms(
            plan_key=self.plan,
            onboarding_id=self.onboarding_id,
            csm=self.csm,
            champion_user_id=self.champion_user_id,
            licensed_seats=self.licensed_seats,
            account_name=self.account_name,
        )
        return registration(terms, self.account_id, self.signed_at)


class RecordEvidence(_Command):
    """Manual evidence that a milestone is met: who confirmed it, when, how, and proof."""

    milestone_key: Text
    confirmed_by: Text
    channel: Channel
    at: Moment | None = Field(default=None, description="when confirmed; default: now")
    quote: LongText | None = None
    link: Annotated[PlainText, Field(min_length=1, max_length=2000)] | None = None
    recorded_by: Text | None = Field(default=None, description="default: the API key's name")

    def fact(self, onboarding_id: str, now: datetime, key_name: str) -> EvidenceRecorded:
        at = self.at or now
        return EvidenceRecorded(
            id=fact_id("evidence", onboarding_id, self.milestone_key, at, self.confirmed_by),
            onboarding_id=onboarding_id,
            milestone_key=self.milestone_key,
            at=at,
            confirmed_by=self.confirmed_by,
            channel=self.channel,
            quote=self.quote,
            link=self.link,
            recorded_by=self.recorded_by or key_name,
        )


class PauseOnboarding(_Command):
    """A formal pause: SLA and escalation clocks stop; TTFV (the customer's clock) does not."""

    reason: LongText
    at: Moment | None = Field(default=None, description="default: now")
    author: Text | None = Field(default=None, description="default: the API key's name")

    def fact(self, onboarding_id: str, now: datetime, key_name: str) -> OnboardingPaused:
        at = self.at or now
        return OnboardingPaused(
            id=fact_id("pause", onboarding_id, at),
            onboarding_id=onboarding_id,
            at=at,
            reason=self.reason,
            author=self.author or key_name,
        )


class ResumeOnboarding(_Command):
    """The end of a pause."""

    at: Moment | None = Field(default=None, description="default: now")
    author: Text | None = Field(default=None, description="default: the API key's name")

    def fact(self, onboarding_id: str, now: datetime, key_name: str) -> OnboardingResumed:
        at = self.at or now
        return OnboardingResumed(
            id=fact_id("resume", onboarding_id, at),
            onboarding_id=onboarding_id,
            at=at,
            author=self.author or key_name,
        )


class AmendMilestone(_Command):
    """A recorded change to one milestone (title, description or due day); never in place."""

    milestone_key: Text
    author: Text
    reason: LongText
    at: Moment | None = Field(default=None, description="default: now")
    title: Text | None = None
    description: LongText | None = None
    due_day: Annotated[int, Field(ge=0, le=3650)] | None = None

    @model_validator(mode="after")
    def _changes_something(self) -> AmendMilestone:
        if self.title is None and self.description is None and self.due_day is None:
            raise ValueError("an amendment changes at least one of title, description, due_day")
        return self

    def fact(self, onboarding_id: str, now: datetime, key_name: str = "") -> MilestoneAmended:
        """(``key_name`` unused: an amendment names its own ``author``.)"""
        at = self.at or now
        return MilestoneAmended(
            id=fact_id(
                "amendment",
                onboarding_id,
                self.milestone_key,
                at,
                self.title,
                self.description,
                self.due_day,
            ),
            onboarding_id=onboarding_id,
            at=at,
            milestone_key=self.milestone_key,
            author=self.author,
            reason=self.reason,
            title=self.title,
            description=self.description,
            due_day=self.due_day,
        )
