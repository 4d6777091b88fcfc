"""Mixpanel profile updates (``/engage`` for people, ``/groups`` for group profiles) →
``NormalizedEvent``, as the SDKs send them: ``{"$token", "$distinct_id" | "$group_key" +
"$group_id", "$set" | "$set_once" | "$unset" | "$union" | "$append" | "$remove" | "$delete"
| "$add": …}``.

firstvalue uses what ties users to accounts and what names an account; the rest is
acknowledged and not stored:
- a people profile that sets the configured group key (e.g. ``company_id``) becomes an
  ``identify`` call naming that account, which links the user as a Segment identify does;
- a group profile of the configured group key becomes an ``account`` statement: its
  ``$name`` (or ``name``) and ``licensed_seats`` from ``$set`` in ``traits``, from
  ``$set_once`` in ``properties`` (filled only where still unknown).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from shared.analytics.event import (
    MAX_ID_LENGTH,
    InvalidMessage,
    NormalizedEvent,
    checked_message,
    content_id,
    identifier,
    received_time,
)
from shared.analytics.mixpanel import MAX_EVENT_BYTES, MIXPANEL, group_account

PROFILE_MARKER = "_profile"  # stamped by HTTP ingest: "engage" or "groups"
ENGAGE, GROUPS = "engage", "groups"
OPERATIONS = ("$set", "$set_once", "$unset", "$union", "$append", "$remove", "$delete", "$add")
_OBJECT_OPERATIONS = ("$set", "$set_once", "$union", "$append", "$remove", "$add")
MAX_SEATS = 2**31 - 1  # the storage column is a 32-bit integer


def normalize_profile(
    message: Any, *, received_at: datetime, group_key: str, within_limits: bool = False
) -> NormalizedEvent:
    """One profile update → an ``identify`` (people) or ``account`` (group) statement;
    raises ``InvalidMessage`` with the reason."""
    message = checked_message(
        message, "a profile update", MAX_EVENT_BYTES, within_limits=within_limits
    )
    kind = message.get(PROFILE_MARKER)
    if kind not in (ENGAGE, GROUPS):
        raise InvalidMessage("unknown_source", f"{PROFILE_MARKER} must be engage or groups")
    operations = [op for op in OPERATIONS if op in message]
    if not operations:
        raise InvalidMessage(
            "missing_operation", f"a profile update needs one of {', '.join(OPERATIONS)}"
        )
    for op in _OBJECT_OPERATIONS:
        if op in message and not isinstance(message[op], dict):
            raise InvalidMessage("invalid_profile", f"{op} must be an object", op)
    if "$unset" in message and not isinstance(message["$unset"], list):
        raise InvalidMessage("invalid_profile", "$unset must be a list of names", "$unset")
    identifier(message, "$token", "invalid_token", numbers=False)
    received_at = received_time(message, received_at)
    set_now: dict[str, Any] = message.get("$set") or {}
    set_once: dict[str, Any] = message.get("$set_once") or {}
    event_id = content_id(message, received_at)
    if kind == ENGAGE:
        user = identifier(message, "$distinct_id", "invalid_user")
        if user is None:
            raise InvalidMessage("missing_user", "$distinct_id is required", "$distinct_id")
        account = group_account({group_key: set_now.get(group_key)}, group_key) or group_account(
            {group_key: set_once.get(group_key)}, group_key
        )
        return NormalizedEvent(
            event_id, MIXPANEL, "identify", user, None, received_at, received_at,
            traits={**set_once, **set_now}, context_group_id=account,
        )  # fmt: skip
    key = identifier(message, "$group_key", "invalid_group_key", numbers=False)
    group = identifier(message, "$group_id", "invalid_group_id")
    if key is None or group is None:
        raise InvalidMessage(
            "missing_group_id", "$group_key and $group_id are required", "$group_id"
        )
    return NormalizedEvent(
        event_id, MIXPANEL, "account", "", None, received_at, received_at,
        properties=account_fields(set_once, "$set_once"), traits=account_fields(set_now, "$set"),
        group_id=group if key == group_key else None,
    )  # fmt: skip


def account_fields(values: Mapping[str, Any], path: str) -> dict[str, Any]:
    """The account name and licensed seats a group profile's ``values`` give, checked."""
    fields: dict[str, Any] = {}
    name = values.get("$name", values.get("name"))
    if name is not None:
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_ID_LENGTH:
            raise InvalidMessage(
                "invalid_profile", f"{path}.$name must be a short non-empty string", path
            )
        fields["name"] = name.strip()
    seats = values.get("licensed_seats")
    if seats is not None:
        if isinstance(seats, bool) or not isinstance(seats, int | float) or not seats >= 0:
            raise InvalidMessage(
                "invalid_profile", f"{path}.licensed_seats must be a non-negative number", path
            )
        if seats > MAX_SEATS:
            raise InvalidMessage("out_of_range", f"{path}.licensed_seats is over {MAX_SEATS}", path)
        fields["licensed_seats"] = int(seats)
    return fields
