"""console sessions and customer share links

Revision ID: 2026_12_02_0007
Revises: 2026_12_02_0006
Create Date: 2026-12-02 02:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "2026_12_02_0007"
down_revision: str | None = "2026_12_02_0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "console_sessions",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("api_key_hash", sa.String(length=64), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_console_sessions")),
    )
    op.create_index("ix_console_sessions_expires_at", "console_sessions", ["expires_at"])
    op.create_table(
        "share_links",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("onboarding_id", sa.String(length=255), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["onboarding_id"],
            ["onboardings.onboarding_id"],
            name=op.f("fk_share_links_onboarding_id_onboardings"),
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_share_links")),
    )
    op.create_index("ix_share_links_onboarding_id", "share_links", ["onboarding_id"])


def downgrade() -> None:
    op.drop_index("ix_share_links_onboarding_id", table_name="share_links")
    op.drop_table("share_links")
    op.drop_index("ix_console_sessions_expires_at", table_name="console_sessions")
    op.drop_table("console_sessions")
