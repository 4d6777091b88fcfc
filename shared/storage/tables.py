"""The database schema as SQLAlchemy models; Alembic's first revision creates exactly this.

Only repositories (and Alembic) import this module. Every constraint and index is named by
the convention below so that migrations can refer to them on both SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

ID = String(255)
Json = JSON().with_variant(JSONB(), "postgresql")
AutoId = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements INTEGER only


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in, timezone-aware UTC out, on every dialect.

    SQLite has no time zones: values are stored as UTC text that sorts chronologically and
    come back with ``tzinfo=UTC``. Naive datetimes are refused rather than guessed.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: firstvalue stores UTC-aware times only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None or value.tzinfo is UTC:  # asyncpg's timestamptz: already UTC
            return value
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = metadata


class EventRecord(Base):
    """A usage event attributed to an account; the id is the dedupe key."""

    __tablename__ = "events"
    __table_args__ = (
        # Rule reads by (account, name, time); reads by account and time use it too (fewer
        # indexes to keep on every insert: migration 2026_12_02_0005).
        Index("ix_events_account_id_name_occurred_at", "account_id", "name", "occurred_at"),
        Index("ix_events_account_id_seq", "account_id", "seq"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    account_id: Mapped[str] = mapped_column(ID)
    user_id: Mapped[str | None] = mapped_column(ID)
    name: Mapped[str] = mapped_column(String(255))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    properties: Mapped[dict[str, Any]] = mapped_column(Json)
    source: Mapped[str] = mapped_column(String(32))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The account's insert sequence when stored (``AccountSequenceRecord``); None for
    # events stored before it existed or bulk-loaded (``activity_days.rebuild`` sets it).
    seq: Mapped[int | None] = mapped_column(BigInteger)


class AccountSequenceRecord(Base):
    """Per account, the number of the last insert of its events.

    Each insert of an account's events takes the next number and holds this row's lock until
    its transaction commits, so the numbers commit in order: a reader that sees number N
    has seen every event numbered up to N (what "stored since the last projection" means).
    """

    __tablename__ = "account_sequences"

    account_id: Mapped[str] = mapped_column(ID, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)


class ActivityMarkRecord(Base):
    """Per account, how far its events are summarised in ``activity_days``: every event
    numbered up to ``seq`` is counted there, none after it. The projector folds the rest
    when it reads the summaries (``activity_days.catch_up``), holding this row's lock, so
    each number range is folded once; ``previous`` is the mark before that fold (what the
    fold's own statement reads back to know which events are new to it)."""

    __tablename__ = "activity_marks"

    account_id: Mapped[str] = mapped_column(ID, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    previous: Mapped[int] = mapped_column(BigInteger)


class ActivityDayRecord(Base):
    """One user's events on one UTC day in one account: first and last moment, and how many
    (``user_key`` is ``"u:" + user_id``, or ``""`` for events without a user). Complete up
    to the account's ``ActivityMarkRecord``; stored events are never repeated, so a
    duplicate never counts."""

    __tablename__ = "activity_days"

    account_id: Mapped[str] = mapped_column(ID, primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    user_key: Mapped[str] = mapped_column(String(260), primary_key=True)
    first_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_at: Mapped[datetime] = mapped_column(UTCDateTime())
    events: Mapped[int] = mapped_column(BigInteger)


class IdentityRecord(Base):
    """A user (``userId`` or ``anonymousId``) and the account it belongs to, once known."""

    __tablename__ = "identities"

    user_id: Mapped[str] = mapped_column(ID, primary_key=True)
    account_id: Mapped[str | None] = mapped_column(ID)
    linked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AccountProfileRecord(Base):
    """What a Mixpanel group profile says of an account: its name and licensed seats, which
    fill the account's registrations (see ``shared.storage.account_profiles``)."""

    __tablename__ = "account_profiles"

    account_id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str | None] = mapped_column(String(255))
    licensed_seats: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PendingEventRecord(Base):
    """An event from a user not yet tied to an account; applied when the identity arrives."""

    __tablename__ = "pending_events"
    __table_args__ = (Index("ix_pending_events_user_id", "user_id"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    user_id: Mapped[str] = mapped_column(ID)
    name: Mapped[str] = mapped_column(String(255))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    properties: Mapped[dict[str, Any]] = mapped_column(Json)
    source: Mapped[str] = mapped_column(String(32))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())


class OnboardingRecord(Base):
    """An onboarding's registration (``OnboardingRegistered``): one account on one plan."""

    __tablename__ = "onboardings"
    __table_args__ = (
        UniqueConstraint("fact_id"),
        Index("ix_onboardings_account_id", "account_id"),
    )

    onboarding_id: Mapped[str] = mapped_column(ID, primary_key=True)
    fact_id: Mapped[str] = mapped_column(ID)
    account_id: Mapped[str] = mapped_column(ID)
    plan_key: Mapped[str] = mapped_column(String(100))
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    csm: Mapped[str | None] = mapped_column(String(255))
    champion_user_id: Mapped[str | None] = mapped_column(ID)
    licensed_seats: Mapped[int | None] = mapped_column(Integer)
    account_name: Mapped[str | None] = mapped_column(String(255))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())


class OnboardingFactRecord(Base):
    """A manual fact about one onboarding: evidence, pause, resume or amendment."""

    __tablename__ = "onboarding_facts"
    __table_args__ = (
        Index("ix_onboarding_facts_onboarding_id_occurred_at", "onboarding_id", "occurred_at"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    onboarding_id: Mapped[str] = mapped_column(ForeignKey("onboardings.onboarding_id"))
    kind: Mapped[str] = mapped_column(String(32))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    payload: Mapped[dict[str, Any]] = mapped_column(Json)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ProjectionRecord(Base):
    """The derived state of one onboarding, with the columns lists filter and sort on."""

    __tablename__ = "onboarding_projections"
    __table_args__ = (
        Index("ix_onboarding_projections_next_due_at", "next_due_at"),
        Index("ix_onboarding_projections_signed_at_onboarding_id", "signed_at", "onboarding_id"),
        Index("ix_onboarding_projections_account_id", "account_id"),
    )

    onboarding_id: Mapped[str] = mapped_column(
        ForeignKey("onboardings.onboarding_id"), primary_key=True
    )
    account_id: Mapped[str] = mapped_column(ID)
    account_name: Mapped[str | None] = mapped_column(String(255))
    plan_key: Mapped[str] = mapped_column(String(100))
    plan_version: Mapped[int] = mapped_column(Integer)
    segment: Mapped[str] = mapped_column(String(64))
    csm: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(32))
    current_stage: Mapped[str | None] = mapped_column(String(100))
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    first_value_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ttfv_days: Mapped[float | None] = mapped_column(Float)
    breach: Mapped[str] = mapped_column(String(16))
    health_score: Mapped[float] = mapped_column(Float)
    health_tier: Mapped[str] = mapped_column(String(16))
    onboarded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    tasks_done_no_value: Mapped[bool] = mapped_column(Boolean)
    open_escalations: Mapped[int] = mapped_column(Integer)
    max_escalation_level: Mapped[int] = mapped_column(Integer)
    next_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    state: Mapped[dict[str, Any]] = mapped_column(Json)
    # What the folded projection needs besides the state (``shared.projection.folded``):
    # the account's insert sequence seen, the plan rules' digest, the first event ahead.
    fold: Mapped[dict[str, Any] | None] = mapped_column(Json)


class AnnouncementRecord(Base):
    """What has been announced of one onboarding (``shared.projection.announce``): the state
    as seen at the watermark it was announced by, the latest watermark heard for it (and
    when), and the earliest transition held beyond that watermark (indexed: the timers
    release it when the watermark passes)."""

    __tablename__ = "announcements"
    __table_args__ = (Index("ix_announcements_held_at", "held_at"),)

    onboarding_id: Mapped[str] = mapped_column(
        ForeignKey("onboardings.onboarding_id"), primary_key=True
    )
    # None: the stored projection's state is what was announced (nothing held back).
    state: Mapped[dict[str, Any] | None] = mapped_column(Json)
    watermark: Mapped[datetime | None] = mapped_column(UTCDateTime())
    heard_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    held_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class EscalationRecord(Base):
    """One escalation of one onboarding as of its latest projection (replaced on save)."""

    __tablename__ = "escalations"
    __table_args__ = (Index("ix_escalations_fired_at", "fired_at"),)

    onboarding_id: Mapped[str] = mapped_column(
        ForeignKey("onboardings.onboarding_id"), primary_key=True
    )
    rule_key: Mapped[str] = mapped_column(String(100), primary_key=True)
    fired_at: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    account_id: Mapped[str] = mapped_column(ID)
    segment: Mapped[str] = mapped_column(String(64))
    csm: Mapped[str | None] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(32))
    level: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(100))
    title: Mapped[str] = mapped_column(Text)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reason: Mapped[str] = mapped_column(Text)
    ladder: Mapped[str | None] = mapped_column(String(32))  # "sla" for the day rules' ladder
    raised_from: Mapped[int | None] = mapped_column(Integer)  # the ladder level it raised
    resolution: Mapped[str | None] = mapped_column(Text)  # why it resolved


class OutboxRecord(Base):
    """A message to publish, written in the same transaction as the state that caused it."""

    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("topic", "message_id"),
        Index("ix_outbox_sent_at_id", "sent_at", "id"),
    )

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    topic: Mapped[str] = mapped_column(String(255))
    key: Mapped[str | None] = mapped_column(ID)
    message_id: Mapped[str] = mapped_column(ID)
    payload: Mapped[dict[str, Any]] = mapped_column(Json)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ApiKeyRecord(Base):
    """An API key: only the sha256 of the key is stored, never the key itself."""

    __tablename__ = "api_keys"
    __table_args__ = (UniqueConstraint("key_hash"),)

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class IdempotencyRecord(Base):
    """The first successful response to a write sent with an ``Idempotency-Key``.

    Keys are scoped per API key (two clients may pick the same key); ``request_hash`` is
    the fingerprint of method, path and body, so a reused key with another body is refused.
    """

    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("ix_idempotency_keys_created_at", "created_at"),)

    api_key: Mapped[str] = mapped_column(String(100), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]] = mapped_column(Json)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WebhookDeliveryRecord(Base):
    """One transition or escalation to POST to the configured webhook, and how that went.

    ``status``: ``pending`` (due at ``next_attempt_at``, or leased to a sender until then),
    ``delivered`` or ``failed`` (gave up: attempts used up, or a 4xx that retrying cannot fix).
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("topic", "message_id"),
        Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    topic: Mapped[str] = mapped_column(String(255))
    message_id: Mapped[str] = mapped_column(ID)
    key: Mapped[str | None] = mapped_column(ID)
    payload: Mapped[dict[str, Any]] = mapped_column(Json)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ConsoleSessionRecord(Base):
    """A signed-in console session: the cookie holds a random token, this row its sha256.

    Tied to the API key's hash, so a deleted or rotated key ends its sessions."""

    __tablename__ = "console_sessions"
    __table_args__ = (Index("ix_console_sessions_expires_at", "expires_at"),)

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    api_key_hash: Mapped[str] = mapped_column(String(64))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ShareLinkRecord(Base):
    """A customer's read-only link to their onboarding plan; revoked, never deleted."""

    __tablename__ = "share_links"
    __table_args__ = (Index("ix_share_links_onboarding_id", "onboarding_id"),)

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    onboarding_id: Mapped[str] = mapped_column(ForeignKey("onboardings.onboarding_id"))
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


# The list's order (signature newest first, then id) as an index of its own, so a page is
# an index range scan at any size instead of a sort of every matching onboarding.
Index(
    "ix_onboarding_projections_signed_at_desc_onboarding_id",
    ProjectionRecord.signed_at.desc(),
    ProjectionRecord.onboarding_id,
)
