"""initial schema: events, identities, onboardings, facts, projections, outbox, api keys

Revision ID: 2026_11_23_0001
Revises:
Create Date: 2026-11-23 10:15:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "2026_11_23_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.String(length=255)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def timestamp() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", ID, nullable=False),
        sa.Column("account_id", ID, nullable=False),
        sa.Column("user_id", ID, nullable=True),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("occurred_at", timestamp(), nullable=False),
        sa.Column("properties", JSON, nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("recorded_at", timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    op.create_index("ix_events_account_id_occurred_at", "events", ["account_id", "occurred_at"])

    op.create_table(
        "identities",
        sa.Column("user_id", ID, nullable=False),
        sa.Column("account_id", ID, nullable=True),
        sa.Column("linked_at", timestamp(), nullable=True),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_identities")),
    )

    op.create_table(
        "pending_events",
        sa.Column("id", ID, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("occurred_at", timestamp(), nullable=False),
        sa.Column("properties", JSON, nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("recorded_at", timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pending_events")),
    )
    op.create_index("ix_pending_events_user_id", "pending_events", ["user_id"])

    op.create_table(
        "onboardings",
        sa.Column("onboarding_id", ID, nullable=False),
        sa.Column("fact_id", ID, nullable=False),
        sa.Column("account_id", ID, nullable=False),
        sa.Column("plan_key", sa.String(length=100), nullable=False),
        sa.Column("signed_at", timestamp(), nullable=False),
        sa.Column("csm", sa.String(length=255), nullable=True),
        sa.Column("champion_user_id", ID, nullable=True),
        sa.Column("licensed_seats", sa.Integer(), nullable=True),
        sa.Column("account_name", sa.String(length=255), nullable=True),
        sa.Column("recorded_at", timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("onboarding_id", name=op.f("pk_onboardings")),
        sa.UniqueConstraint("fact_id", name=op.f("uq_onboardings_fact_id")),
    )
    op.create_index("ix_onboardings_account_id", "onboardings", ["account_id"])

    op.create_table(
        "onboarding_facts",
        sa.Column("id", ID, nullable=False),
        sa.Column("onboarding_id", ID, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("occurred_at", timestamp(), nullable=False),
        sa.Column("payload", JSON, nullable=False),
        sa.Column("recorded_at", timestamp(), nullable=False),
        sa.ForeignKeyConstraint(
            ["onboarding_id"],
            ["onboardings.onboarding_id"],
            name=op.f("fk_onboarding_facts_onboarding_id_onboardings"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_onboarding_facts")),
    )
    op.create_index(
        "ix_onboarding_facts_onboarding_id_occurred_at",
        "onboarding_facts",
        ["onboarding_id", "occurred_at"],
    )

    op.create_table(
        "onboarding_projections",
        sa.Column("onboarding_id", ID, nullable=False),
        sa.Column("account_id", ID, nullable=False),
        sa.Column("account_name", sa.String(length=255), nullable=True),
        sa.Column("plan_key", sa.String(length=100), nullable=False),
        sa.Column("plan_version", sa.Integer(), nullable=False),
        sa.Column("segment", sa.String(length=64), nullable=False),
        sa.Column("csm", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("current_stage", sa.String(length=100), nullable=True),
        sa.Column("signed_at", timestamp(), nullable=False),
        sa.Column("first_value_at", timestamp(), nullable=True),
        sa.Column("ttfv_days", sa.Float(), nullable=True),
        sa.Column("breach", sa.String(length=16), nullable=False),
        sa.Column("health_score", sa.Float(), nullable=False),
        sa.Column("health_tier", sa.String(length=16), nullable=False),
        sa.Column("onboarded_at", timestamp(), nullable=True),
        sa.Column("tasks_done_no_value", sa.Boolean(), nullable=False),
        sa.Column("open_escalations", sa.Integer(), nullable=False),
        sa.Column("max_escalation_level", sa.Integer(), nullable=False),
        sa.Column("next_due_at", timestamp(), nullable=True),
        sa.Column("updated_at", timestamp(), nullable=False),
        sa.Column("state", JSON, nullable=False),
        sa.ForeignKeyConstraint(
            ["onboarding_id"],
            ["onboardings.onboarding_id"],
            name=op.f("fk_onboarding_projections_onboarding_id_onboardings"),
        ),
        sa.PrimaryKeyConstraint("onboarding_id", name=op.f("pk_onboarding_projections")),
    )
    op.create_index(
        "ix_onboarding_projections_account_id", "onboarding_projections", ["account_id"]
    )
    op.create_index(
        "ix_onboarding_projections_next_due_at", "onboarding_projections", ["next_due_at"]
    )
    op.create_index(
        "ix_onboarding_projections_signed_at_onboarding_id",
        "onboarding_projections",
        ["signed_at", "onboarding_id"],
    )

    op.create_table(
        "escalations",
        sa.Column("onboarding_id", ID, nullable=False),
        sa.Column("rule_key", sa.String(length=100), nullable=False),
        sa.Column("fired_at", timestamp(), nullable=False),
        sa.Column("account_id", ID, nullable=False),
        sa.Column("segment", sa.String(length=64), nullable=False),
        sa.Column("csm", sa.String(length=255), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=100), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("due_at", timestamp(), nullable=False),
        sa.Column("resolved_at", timestamp(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["onboarding_id"],
            ["onboardings.onboarding_id"],
            name=op.f("fk_escalations_onboarding_id_onboardings"),
        ),
        sa.PrimaryKeyConstraint(
            "onboarding_id", "rule_key", "fired_at", name=op.f("pk_escalations")
        ),
    )
    op.create_index("ix_escalations_fired_at", "escalations", ["fired_at"])

    op.create_table(
        "outbox",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("topic", sa.String(length=255), nullable=False),
        sa.Column("key", ID, nullable=True),
        sa.Column("message_id", ID, nullable=False),
        sa.Column("payload", JSON, nullable=False),
        sa.Column("created_at", timestamp(), nullable=False),
        sa.Column("sent_at", timestamp(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("topic", "message_id", name=op.f("uq_outbox_topic_message_id")),
    )
    op.create_index("ix_outbox_sent_at_id", "outbox", ["sent_at", "id"])

    op.create_table(
        "api_keys",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("scopes", sa.String(length=100), nullable=False),
        sa.Column("created_at", timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )


def downgrade() -> None:
    op.drop_table("api_keys")
    op.drop_table("outbox")
    op.drop_table("escalations")
    op.drop_table("onboarding_projections")
    op.drop_table("onboarding_facts")
    op.drop_table("onboardings")
    op.drop_table("pending_events")
    op.drop_table("identities")
    op.drop_table("events")
