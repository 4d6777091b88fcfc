"""Engagement signals beyond milestones: silence, the champion going quiet, single-threading.

These are observations of the account's activity as of ``now``; they do not depend on the
plan's SLAs (a pause stops escalations, not what the account actually does).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from shared.domain.activity import Activity
from shared.domain.state import Signals

ACTIVE_SPAN = timedelta(days=14)


def _last_by_user(events: Sequence[Activity], since: datetime) -> dict[str, datetime]:
    last: dict[str, datetime] = {}
    for event in events:
        if event.user_id is not None and event.at > since:
            last[event.user_id] = max(event.at, last.get(event.user_id, event.at))
    return last


def champion_quiet(
    events: Sequence[Activity], champion: str | None, quiet_days: int, now: datetime
) -> bool:
    """The champion was active before, silent for ``quiet_days``, while others were not."""
    if champion is None:
        return False
    seen = [e.at for e in events if e.user_id == champion]
    if not seen:
        return False
    last = max(seen)
    if now - last < timedelta(days=quiet_days):
        return False
    return any(e.at > last and e.user_id not in (None, champion) for e in events)


def signals(
    events: Sequence[Activity],
    signed_at: datetime,
    champion: str | None,
    champion_quiet_days: int,
    in_onboarded_stage: bool,
    now: datetime,
) -> Signals:
    last_event_at = max((e.at for e in events), default=None)
    active = _last_by_user(events, now - ACTIVE_SPAN)
    return Signals(
        last_event_at=last_event_at,
        silent_days=(now - (last_event_at or signed_at)) / timedelta(days=1),
        champion_quiet=champion_quiet(events, champion, champion_quiet_days, now),
        single_threaded=in_onboarded_stage and len(active) == 1,
        active_users_14d=len(active),
    )


def changes_at(
    events: Sequence[Activity], champion: str | None, champion_quiet_days: int, now: datetime
) -> list[datetime]:
    """Moments after ``now`` at which these signals flip by time alone."""
    moments = [at + ACTIVE_SPAN for at in _last_by_user(events, now - ACTIVE_SPAN).values()]
    seen = [e.at for e in events if champion is not None and e.user_id == champion]
    if seen:
        moments.append(max(seen) + timedelta(days=champion_quiet_days))
    return [m for m in moments if m > now]
