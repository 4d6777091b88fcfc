"""folded projection: events by name (that index also serves reads by time: the plain
account/time index goes) and by insert sequence, per-account insert sequences, per-user
daily activity summaries, and the fold record beside each projection

Revision ID: 2026_12_02_0005
Revises: 2026_11_23_0004
Create Date: 2026-12-02 02:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "2026_12_02_0005"
down_revision: str | None = "2026_11_23_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

# The summaries of the events already stored (later inserts maintain them themselves).
_FILL_POSTGRESQL = """
    INSERT INTO activity_days (account_id, day, user_key, first_at, last_at, events)
    SELECT account_id, CAST(occurred_at AT TIME ZONE 'UTC' AS date),
           COALESCE('u:' || user_id, ''), min(occurred_at), max(occurred_at), count(*)
    FROM events GROUP BY 1, 2, 3
"""
_FILL_SQLITE = """
    INSERT INTO activity_days (account_id, day, user_key, first_at, last_at, events)
    SELECT account_id, date(occurred_at), COALESCE('u:' || user_id, ''),
           min(occurred_at), max(occurred_at), count(*)
    FROM events GROUP BY 1, 2, 3
"""


def upgrade() -> None:
    op.add_column("events", sa.Column("seq", sa.BigInteger(), nullable=True))
    op.create_index(
        "ix_events_account_id_name_occurred_at", "events", ["account_id", "name", "occurred_at"]
    )
    op.create_index("ix_events_account_id_seq", "events", ["account_id", "seq"])
    # The account/name/time index serves every account read by time as well (its prefix);
    # a fourth index on the ingest path's table costs every insert and no read needs it.
    op.drop_index("ix_events_account_id_occurred_at", table_name="events")
    op.create_table(
        "account_sequences",
        sa.Column("account_id", sa.String(length=255), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_account_sequences")),
    )
    op.create_table(
        "activity_days",
        sa.Column("account_id", sa.String(length=255), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("user_key", sa.String(length=260), nullable=False),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "day", "user_key", name=op.f("pk_activity_days")),
    )
    op.add_column("onboarding_projections", sa.Column("fold", JSON, nullable=True))
    postgresql_ = op.get_bind().dialect.name == "postgresql"
    op.execute(_FILL_POSTGRESQL if postgresql_ else _FILL_SQLITE)


def downgrade() -> None:
    op.drop_column("onboarding_projections", "fold")
    op.drop_table("activity_days")
    op.drop_table("account_sequences")
    op.create_index("ix_events_account_id_occurred_at", "events", ["account_id", "occurred_at"])
    op.drop_index("ix_events_account_id_seq", table_name="events")
    op.drop_index("ix_events_account_id_name_occurred_at", table_name="events")
    op.drop_column("events", "seq")
