"""Mixpanel profile updates over HTTP: ``/engage`` (people) and ``/groups`` (group profiles),
GET or POST, with ``data=`` (base64 or JSON) as the SDKs send them, one update or a batch.

Replies as ``/track`` does: ``1``/``0``, or ``{"status": 1|0, "error"}`` with ``verbose=1``.
Each update is checked (``shared.analytics.mixpanel_profiles``) and published to
``analytics.events`` marked as a profile; the ingest consumer uses what ties users to
accounts and names accounts, and acknowledges the rest. Tokens (``$token``) are checked
against ``FIRSTVALUE_MIXPANEL_TOKENS`` when it is set.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from services.api.dependencies import RuntimeDep
from services.api.routes.mixpanel import (
    MAX_TRACK_BYTES,
    Failure,
    MixpanelError,
    _parse_events,
    _publish,
    _read,
    _require_bus,
    _summary,
    _track_reply,
    add_get_and_post,
)
from shared.analytics.event import RECEIVED_AT, SOURCE_MARKER
from shared.analytics.mixpanel import MIXPANEL
from shared.analytics.mixpanel_profiles import ENGAGE, GROUPS, PROFILE_MARKER, normalize_profile
from shared.analytics.normalize import InvalidMessage
from shared.config import accepts_any_key
from shared.observability.metrics import HTTP_INGESTED


async def engage(request: Request, runtime: RuntimeDep) -> Response:
    """People profile updates (``$distinct_id``)."""
    return await _profiles(request, runtime, ENGAGE)


async def groups(request: Request, runtime: RuntimeDep) -> Response:
    """Group profile updates (``$group_key`` + ``$group_id``)."""
    return await _profiles(request, runtime, GROUPS)


def add_routes() -> None:
    """Serve ``/engage`` and ``/groups`` on the Mixpanel router."""
    add_get_and_post("/engage", engage, "mixpanel_engage")
    add_get_and_post("/groups", groups, "mixpanel_groups")


async def _profiles(request: Request, runtime: RuntimeDep, kind: str) -> Response:
    endpoint = f"mixpanel_{kind}"
    verbose = request.query_params.get("verbose") == "1"
    try:
        payload = await _read(request, MAX_TRACK_BYTES)
        verbose = payload.flag("verbose", False)
        _require_bus(runtime)
        updates = _parse_events(payload)
        allowed = runtime.settings.mixpanel_tokens
        tokens = [u.get("$token") if isinstance(u, dict) else None for u in updates]
        if not accepts_any_key(runtime.settings, allowed) and not all(t in allowed for t in tokens):
            raise MixpanelError(401, "$token, missing or unknown")
        received_at = datetime.now(UTC)
        records, failures = _checked(runtime, updates, kind, received_at)
        await _publish(runtime, records)
        HTTP_INGESTED.labels(endpoint, "accepted").inc(len(records))
        if failures:
            HTTP_INGESTED.labels(endpoint, "rejected").inc(len(failures))
            return _track_reply(verbose, 400, _summary(failures, len(updates)))
        return _track_reply(verbose, 200, None)
    except MixpanelError as exc:
        HTTP_INGESTED.labels(endpoint, "rejected").inc()
        return _track_reply(verbose, exc.status, exc.message)


def _checked(
    runtime: RuntimeDep, updates: list[Any], kind: str, received_at: datetime
) -> tuple[list[dict[str, Any]], list[Failure]]:
    """The stamped records of the valid updates, and the failures."""
    stamp = received_at.isoformat()
    records: list[dict[str, Any]] = []
    failures: list[Failure] = []
    for index, update in enumerate(updates):
        try:
            if not isinstance(update, dict):
                raise InvalidMessage("not_an_object", "a profile update must be a JSON object")
            record = {**update, SOURCE_MARKER: MIXPANEL, RECEIVED_AT: stamp, PROFILE_MARKER: kind}
            normalize_profile(
                record, received_at=received_at, group_key=runtime.settings.mixpanel_group_key
            )
            records.append(record)
        except InvalidMessage as error:
            failures.append(Failure(index, None, error.field or "", str(error)))
        except Exception as error:  # anything else a hostile update trips is its failure too
            failures.append(Failure(index, None, "", f"unreadable update: {error}"))
    return records, failures
