"""Onboardings bulk-loaded with ``COPY``: registrations (``onboardings``) and their
projections (``onboarding_projections``), as row tuples in the column order below."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

REGISTRATION_COLUMNS = (
    "onboarding_id", "fact_id", "account_id", "plan_key", "signed_at", "csm",
    "champion_user_id", "licensed_seats", "account_name", "recorded_at",
)  # fmt: skip
PROJECTION_COLUMNS = (
    "onboarding_id", "account_id", "account_name", "plan_key", "plan_version", "segment", "csm",
    "status", "current_stage", "signed_at", "first_value_at", "ttfv_days", "breach",
    "health_score", "health_tier", "onboarded_at", "tasks_done_no_value", "open_escalations",
    "max_escalation_level", "next_due_at", "updated_at", "state",
)  # fmt: skip


async def copy_onboardings(
    conn: Any, registrations: Sequence[tuple[Any, ...]], projections: Sequence[tuple[Any, ...]]
) -> None:
    """COPY the registrations, then their projections, over one asyncpg connection."""
    await conn.copy_records_to_table(
        "onboardings", records=registrations, columns=REGISTRATION_COLUMNS
    )
    await conn.copy_records_to_table(
        "onboarding_projections", records=projections, columns=PROJECTION_COLUMNS
    )


async def analyze(conn: Any) -> None:
    """VACUUM ANALYZE both tables once loaded, so the planner knows their sizes."""
    await conn.execute("VACUUM ANALYZE onboardings")
    await conn.execute("VACUUM ANALYZE onboarding_projections")


async def copy_registrations(conn: Any, registrations: Sequence[tuple[Any, ...]]) -> None:
    """COPY registrations alone (their projections to be derived, not written)."""
    await conn.copy_records_to_table(
        "onboardings", records=registrations, columns=REGISTRATION_COLUMNS
    )
