"""idempotency keys for API writes; an index in the onboarding list's order (newest first)

Revision ID: 2026_11_23_0004
Revises: 2026_11_23_0003
Create Date: 2026-11-23 12:10:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "2026_11_23_0004"
down_revision: str | None = "2026_11_23_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("api_key", sa.String(length=100), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("response", JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("api_key", "key", name=op.f("pk_idempotency_keys")),
    )
    op.create_index("ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"])
    op.create_index(
        "ix_onboarding_projections_signed_at_desc_onboarding_id",
        "onboarding_projections",
        [sa.text("signed_at DESC"), "onboarding_id"],
    )


def downgrade() -> None:
    op.drop_index(
        "ix_onboarding_projections_signed_at_desc_onboarding_id",
        table_name="onboarding_projections",
    )
    op.drop_index("ix_idempotency_keys_created_at", table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
