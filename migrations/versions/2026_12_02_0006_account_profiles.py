"""account profiles: an account's name and licensed seats from Mixpanel group profiles

Revision ID: 2026_12_02_0006
Revises: 2026_12_02_0005
Create Date: 2026-12-02 02:10:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "2026_12_02_0006"
down_revision: str | None = "2026_12_02_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "account_profiles",
        sa.Column("account_id", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("licensed_seats", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_account_profiles")),
    )


def downgrade() -> None:
    op.drop_table("account_profiles")
