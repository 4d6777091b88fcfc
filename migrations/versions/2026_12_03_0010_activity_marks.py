"""activity marks: per account, the insert number up to which its events are summarised
(summaries are folded when first read, not by the insert; the summaries stored so far are
complete up to each account's current number)

Revision ID: 2026_12_03_0010
Revises: 2026_12_02_0009
Create Date: 2026-12-03 13:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "2026_12_03_0010"
down_revision: str | None = "2026_12_02_0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "activity_marks",
        sa.Column("account_id", sa.String(length=255), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("previous", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_activity_marks")),
    )
    op.execute(
        "INSERT INTO activity_marks (account_id, seq, previous) "
        "SELECT account_id, seq, seq FROM account_sequences"
    )


def downgrade() -> None:
    # Summaries must be complete again when the insert maintains them: fold what is left.
    postgresql = op.get_bind().dialect.name == "postgresql"
    day = "CAST(e.occurred_at AT TIME ZONE 'UTC' AS date)" if postgresql else "date(e.occurred_at)"
    least, greatest = ("LEAST", "GREATEST") if postgresql else ("min", "max")
    op.execute(
        f"""
        INSERT INTO activity_days (account_id, day, user_key, first_at, last_at, events)
        SELECT e.account_id, {day}, COALESCE('u:' || e.user_id, ''),
               min(e.occurred_at), max(e.occurred_at), count(*)
        FROM events AS e
        LEFT JOIN activity_marks AS m ON m.account_id = e.account_id
        WHERE e.seq > COALESCE(m.seq, 0)
        GROUP BY 1, 2, 3
        ON CONFLICT (account_id, day, user_key) DO UPDATE SET
            first_at = {least}(activity_days.first_at, excluded.first_at),
            last_at = {greatest}(activity_days.last_at, excluded.last_at),
            events = activity_days.events + excluded.events
        """
    )
    op.drop_table("activity_marks")
