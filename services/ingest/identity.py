"""Which account an event belongs to: the rules that tie users to accounts.

A ``group`` call links its user to ``groupId``; an ``identify`` call links its user when it
names the account (``context.groupId`` or the configured account trait). A usage event
names its own account through ``context.groupId`` or the configured account property;
otherwise it takes its user's linked account, or waits (pending) until the link arrives.
"""

from __future__ import annotations

from typing import Any

from shared.analytics.normalize import NormalizedEvent


def _account_value(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value).strip()
    return text or None


def account_named_by(event: NormalizedEvent, account_property: str) -> str | None:
    """The account the message itself names, if any."""
    if event.type == "group":
        return event.group_id
    if event.context_group_id:
        return event.context_group_id
    if event.type == "identify":
        return _account_value(event.traits.get(account_property))
    return _account_value(event.properties.get(account_property))


def link_of(event: NormalizedEvent, account_property: str) -> tuple[str, str] | None:
    """(user, account) when the message states that its user belongs to an account."""
    if event.type not in ("group", "identify"):
        return None
    account = account_named_by(event, account_property)
    return (event.user_id, account) if account else None
