"""escalation ladder: each escalation row says which ladder, the level it raised, why it resolved

Revision ID: 2026_11_23_0002
Revises: 2026_11_23_0001
Create Date: 2026-11-23 12:15:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "2026_11_23_0002"
down_revision: str | None = "2026_11_23_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("escalations", sa.Column("ladder", sa.String(length=32), nullable=True))
    op.add_column("escalations", sa.Column("raised_from", sa.Integer(), nullable=True))
    op.add_column("escalations", sa.Column("resolution", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("escalations") as batch:
        batch.drop_column("resolution")
        batch.drop_column("raised_from")
        batch.drop_column("ladder")
