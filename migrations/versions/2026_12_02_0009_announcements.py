"""announcements: what has been announced, by which watermark, and what is held

Revision ID: 2026_12_02_0009
Revises: 2026_12_02_0007
Create Date: 2026-12-02 03:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "2026_12_02_0009"
down_revision: str | None = "2026_12_02_0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    # No rows for existing onboardings: their last projection counts as announced.
    op.create_table(
        "announcements",
        sa.Column("onboarding_id", sa.String(length=255), nullable=False),
        sa.Column("state", JSON, nullable=True),
        sa.Column("watermark", sa.DateTime(timezone=True), nullable=True),
        sa.Column("heard_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("held_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["onboarding_id"],
            ["onboardings.onboarding_id"],
            name=op.f("fk_announcements_onboarding_id_onboardings"),
        ),
        sa.PrimaryKeyConstraint("onboarding_id", name=op.f("pk_announcements")),
    )
    op.create_index("ix_announcements_held_at", "announcements", ["held_at"])


def downgrade() -> None:
    op.drop_index("ix_announcements_held_at", table_name="announcements")
    op.drop_table("announcements")
