"""Signed webhooks: every transition and escalation, POSTed to ``FIRSTVALUE_WEBHOOK_URL``.

Design — why a consumer group and a table, not a call in the projector:

    onboarding.transitions ─┐  consumer group "webhooks"   ┌──────────────────────┐  sender loop
    onboarding.escalations ─┴─► enqueue (ON CONFLICT) ───►│ webhook_deliveries   │──► HTTP POST
                                commit, then offsets       └──────────────────────┘  retry/backoff

* The webhook worker reads the same topics downstream systems read, in its own consumer
  group, so the milestones consumer never waits for it: a slow or dead receiver costs only
  this group's lag. It sees exactly what was published — once per transition id, because
  the outbox publishes each id once — and nothing that was rolled back.
* Intake stores each message as a ``webhook_deliveries`` row (unique on topic + message id)
  and commits the offset only after the row is committed: a crash redelivers, the unique key
  drops the repeat. The table is the durable retry queue; the bus offsets are not held
  hostage by a receiver that is down for a day.
* The sender leases due rows (attempt counted, ``next_attempt_at`` pushed past the request
  timeout), POSTs them outside any transaction, and settles each: ``delivered``; back to
  ``pending`` with exponential backoff on 5xx, 408, 429, timeouts and connection errors;
  ``failed`` with the last error once ``webhook_max_attempts`` are used up or on another 4xx.
  Several instances share the work through ``SKIP LOCKED`` and the lease.

Delivery is at-least-once: the ``X-Firstvalue-Delivery`` header (the transition id) lets a
receiver drop a repeat. Wire format (README "Webhooks"): JSON body ``{"id", "topic", "type",
"text", "event"}``; ``X-Firstvalue-Timestamp: <unix seconds>``; ``X-Firstvalue-Signature:
sha256=<hex HMAC-SHA256 of "<timestamp>.<raw body>" keyed by the secret>``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

import orjson

SIGNATURE_HEADER = "X-Firstvalue-Signature"
TIMESTAMP_HEADER = "X-Firstvalue-Timestamp"
DELIVERY_HEADER = "X-Firstvalue-Delivery"
MAX_SKEW_SECONDS = 300  # receivers should refuse older timestamps (replayed requests)


def signed_string(timestamp: int, body: bytes) -> bytes:
    """What is signed: the timestamp, a dot, then the raw body bytes as sent."""
    return str(timestamp).encode() + b"." + body


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Firstvalue-Signature`` value: ``sha256=`` + hex HMAC-SHA256."""
    digest = hmac.new(secret.encode(), signed_string(timestamp, body), hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    now: float,
    *,
    max_skew: float = MAX_SKEW_SECONDS,
) -> bool:
    """A receiver's check (constant-time), as shown in the README: the signature matches and
    the timestamp is recent. ``headers`` keys are matched case-insensitively."""
    lower = {k.lower(): v for k, v in headers.items()}
    try:
        timestamp = int(lower[TIMESTAMP_HEADER.lower()])
        signature = lower[SIGNATURE_HEADER.lower()]
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > max_skew:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def body(topic: str, message_id: str, payload: Mapping[str, Any]) -> bytes:
    """The POST body: Slack-compatible (``text``) plus the event itself for machines."""
    return orjson.dumps(
        {
            "id": message_id,
            "topic": topic,
            "type": payload.get("type"),
            "text": slack_text(payload),
            "event": payload,
        }
    )


def _escape(value: object) -> str:
    """Slack mrkdwn needs only &, < and > escaped."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_text(payload: Mapping[str, Any]) -> str:
    """One human line per transition, readable in a Slack channel."""
    p = {k: _escape(v) for k, v in payload.items() if v is not None}
    who = f"*{p.get('account_id', '?')}* (onboarding `{p.get('onboarding_id', '?')}`)"
    kind = payload.get("type")
    if kind == "StageEntered":
        return f":arrow_right: {who} entered stage *{p.get('stage')}*"
    if kind == "StageExited":
        return f":white_check_mark: {who} exited stage *{p.get('stage')}*"
    if kind == "FirstValueReached":
        breach = "" if payload.get("breach") in (None, "none") else f" — TTFV {p['breach']}"
        return f":tada: {who} reached first value in {p.get('ttfv_days')} days{breach}"
    if kind == "SuccessfullyOnboarded":
        return f":trophy: {who} is Successfully Onboarded ({p.get('plan_key')})"
    if kind == "EscalationOpened":
        return (
            f":rotating_light: Escalation level {p.get('level')} for {who}: {p.get('title')} "
            f"→ {p.get('action')} ({p.get('reason')})"
        )
    if kind == "EscalationRaised":
        return (
            f":rotating_light: Escalation raised {p.get('from_level')}→{p.get('level')} for "
            f"{who}: {p.get('title')} → {p.get('action')} ({p.get('reason')})"
        )
    if kind == "EscalationResolved":
        return (
            f":large_green_circle: Escalation `{p.get('rule_key')}` resolved for {who}: "
            f"{p.get('resolution')}"
        )
    return f"{p.get('type', 'Event')} for {who}"
