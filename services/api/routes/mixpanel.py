"""Mixpanel-compatible HTTP ingest: ``POST /track`` and ``POST /import``, as the official SDKs
and Mixpanel's documented HTTP API send them.

Bodies: form ``data=`` (a JSON object or array, or base64 of one, like older clients),
a JSON array or object, or NDJSON; gzip too. ``/track`` finds the project token inside each
event's properties and answers ``1``/``0``, or ``{"status": 1|0, "error"}`` with
``verbose=1``. ``/import`` authenticates by HTTP Basic (service account ``user:secret`` with
``?project_id=``, project token or API secret as the user) or, without Basic, by the events'
tokens; it answers ``{"code": 200, "num_records_imported": N, "status": "OK"}``. Its
``strict=1`` (the default) checks every event: invalid ones are listed in ``failed_records``
of a 400 while the valid ones are still ingested; with ``strict=0`` everything is accepted and
the invalid events reach the dead-letter topic instead. The Python SDK (mixpanel 5.x) always
sends ``verbose=1`` and requires ``"status": 1``, so verbose replies use 1/0 for status.
Keys are checked against ``FIRSTVALUE_MIXPANEL_TOKENS`` when it is set.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from services.api.dependencies import Runtime, RuntimeDep
from services.api.ingest_requests import (
    NO_BUS,
    BadEncoding,
    BodyTooLarge,
    basic_credentials,
    publish_records,
    read_body,
)
from shared.analytics.event import DELIVERY, RECEIVED_AT, SOURCE_MARKER
from shared.analytics.mixpanel import MIXPANEL, normalize_mixpanel
from shared.analytics.normalize import InvalidMessage
from shared.analytics.registration import contract_terms, is_contract_signed
from shared.config import accepts_any_key
from shared.observability.metrics import HTTP_INGESTED

MAX_TRACK_BYTES = 1024 * 1024
MAX_IMPORT_BYTES = 10 * 1024 * 1024
MAX_EVENTS = 2000
_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    413: "Payload Too Large",
    414: "URI Too Long",
    503: "Unavailable",
}

router = APIRouter(tags=["mixpanel ingest"])


class MixpanelError(Exception):
    """A request Mixpanel would refuse as a whole."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Payload:
    """A request's parameters (query and form) and its body (empty when the events came as a
    form's ``data``), not yet parsed."""

    params: dict[str, str]
    body: bytes
    ndjson: bool

    def flag(self, name: str, default: bool) -> bool:
        value = self.params.get(name)
        return default if value is None else value.strip().lower() in ("1", "true")


@dataclass(frozen=True)
class Failure:
    index: int
    insert_id: str | None
    field: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "insert_id": self.insert_id,
            "field": self.field,
            "message": self.message,
        }


async def track(request: Request, runtime: RuntimeDep) -> Response:
    """Events from client libraries; the token is in each event's properties."""
    verbose = request.query_params.get("verbose") == "1"
    try:
        payload = await _read(request, MAX_TRACK_BYTES)
        verbose = payload.flag("verbose", False)
        _require_bus(runtime)
        events = _parse_events(payload)
        if not _tokens_allowed(runtime, events):
            raise MixpanelError(401, "token, missing or unknown")
        accepted, failures = _check(runtime, events, datetime.now(UTC))
        await _publish(runtime, accepted)
        HTTP_INGESTED.labels("mixpanel_track", "accepted").inc(len(accepted))
        if failures:
            HTTP_INGESTED.labels("mixpanel_track", "rejected").inc(len(failures))
            return _track_reply(verbose, 400, _summary(failures, len(events)))
        return _track_reply(verbose, 200, None)
    except MixpanelError as exc:
        HTTP_INGESTED.labels("mixpanel_track", "rejected").inc()
        return _track_reply(verbose, exc.status, exc.message)


def add_get_and_post(path: str, endpoint: Any, name: str) -> None:
    """``path`` on POST and GET (the SDKs send both), each with an OpenAPI id of its own."""
    router.add_api_route(path, endpoint, methods=["POST"], name=name)
    router.add_api_route(path, endpoint, methods=["GET"], name=f"{name}_get")


add_get_and_post("/track", track, "mixpanel_track")


async def import_events(request: Request, runtime: RuntimeDep) -> Response:
    """Batches from servers (≤2,000 events, ≤10 MB); ``strict=1`` reports each bad event.

    Replies as the client asks: ``verbose=1`` → ``{"status": 1|0, "error"}`` (the SDKs'
    verbose mode); ``verbose=0`` → the legacy ``1``/``0`` (mixpanel-node's default) unless
    ``project_id`` names the newer API; otherwise ``{"code", "num_records_imported",
    "status"}``."""
    mode = _import_mode(request.query_params.get("verbose"))
    try:
        payload = await _read(request, MAX_IMPORT_BYTES)
        mode = _import_mode(payload.params.get("verbose"))
        if mode == "legacy" and payload.params.get("project_id", "").strip():
            mode = "json"  # the newer /import (service accounts) always answers JSON
        _require_bus(runtime)
        events = _parse_events(payload)
        _authorize_import(request, runtime, payload, events)
        received_at = datetime.now(UTC)
        accepted, failures = _check(runtime, events, received_at)
        strict = payload.flag("strict", True)
        published = accepted if strict else [*accepted, *_records(events, failures, received_at)]
        await _publish(runtime, published)
        HTTP_INGESTED.labels("mixpanel_import", "accepted").inc(len(published))
        if failures and strict:
            HTTP_INGESTED.labels("mixpanel_import", "rejected").inc(len(failures))
            message = _summary(failures, len(events))
            if mode == "legacy":
                return PlainTextResponse("0", 400)
            body = _import_body(mode == "verbose", 400, message)
            body["num_records_imported"] = len(accepted)
            body["failed_records"] = [f.to_dict() for f in failures]
            return JSONResponse(body, 400)
        if mode == "legacy":
            return PlainTextResponse("1")
        status: int | str = 1 if mode == "verbose" else "OK"
        return JSONResponse(
            {"code": 200, "num_records_imported": len(accepted), "status": status}
            | ({"error": None} if mode == "verbose" else {})
        )
    except MixpanelError as exc:
        HTTP_INGESTED.labels("mixpanel_import", "rejected").inc()
        if mode == "legacy":
            return PlainTextResponse("0", exc.status)
        return JSONResponse(_import_body(mode == "verbose", exc.status, exc.message), exc.status)


add_get_and_post("/import", import_events, "mixpanel_import")


def _import_mode(verbose: str | None) -> str:
    """``verbose`` (1), ``legacy`` (0) or ``json`` (not given) — see ``import_events``."""
    if verbose is None:
        return "json"
    return "verbose" if verbose.strip().lower() in ("1", "true") else "legacy"


def _track_reply(verbose: bool, status: int, error: str | None) -> Response:
    if verbose:
        return JSONResponse({"status": 0 if error else 1, "error": error}, status)
    return PlainTextResponse("0" if error else "1", status)


def _import_body(verbose: bool, status: int, error: str) -> dict[str, Any]:
    return {"code": status, "error": error, "status": 0 if verbose else _REASONS[status]}


def _summary(failures: Sequence[Failure], total: int) -> str:
    first = failures[0]
    more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
    return (
        f"some data points in the request failed validation: {len(failures)} of {total}; "
        f"event {first.index}: {first.message}{more}"
    )


async def _read(request: Request, limit: int) -> Payload:
    """A request's parameters (query, then form fields) and its body, not yet parsed."""
    try:
        raw = await read_body(request, limit)
    except BodyTooLarge as exc:
        raise MixpanelError(413, str(exc)) from exc
    except BadEncoding as exc:
        raise MixpanelError(400, str(exc)) from exc
    params, body = dict(request.query_params), raw.strip()
    kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if kind == "application/x-www-form-urlencoded" or body.startswith(b"data="):
        params.update(_form(body))
        body = b""
    return Payload(params, body, ndjson=kind in ("application/x-ndjson", "application/ndjson"))


def _parse_events(payload: Payload) -> list[Any]:
    """The events in order, in any of the shapes Mixpanel accepts: ``data``, JSON or NDJSON;
    an NDJSON line that is not JSON stays as its bytes."""
    body = payload.body
    if not body:
        events = _data(payload.params.get("data"))
    elif payload.ndjson:
        events = _ndjson(body)
    else:
        try:
            events = _listed(_json(body, "the body"))
        except MixpanelError:
            if b"\n" not in body:
                raise
            events = _ndjson(body)  # NDJSON sent without its content type
    try:
        orjson.dumps([event for event in events if not isinstance(event, bytes)])
    except orjson.JSONEncodeError as exc:
        raise MixpanelError(400, "the events are nested too deeply to store") from exc
    if len(events) > MAX_EVENTS:
        raise MixpanelError(400, f"request has {len(events)} events (max {MAX_EVENTS} per request)")
    return events


def _form(body: bytes) -> dict[str, str]:
    try:
        fields = parse_qs(body.decode("ascii"), keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError) as exc:
        raise MixpanelError(400, f"invalid form body: {exc}") from exc
    return {name: values[-1] for name, values in fields.items()}


def _data(value: str | None) -> list[Any]:
    """The ``data`` parameter: JSON, or base64 of JSON as older clients send it."""
    if value is None or not value.strip():
        raise MixpanelError(400, "data, missing or empty")
    text = value.strip()
    if not text.startswith(("{", "[")):
        try:
            text = base64.b64decode(
                text.replace(" ", "+").replace("-", "+").replace("_", "/") + "=" * (-len(text) % 4),
                validate=True,
            ).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise MixpanelError(400, "data is neither JSON nor base64-encoded JSON") from exc
    return _listed(_json(text.encode(), "data"))


def _json(raw: bytes, what: str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MixpanelError(400, f"{what} is not valid JSON: {exc}") from exc


def _listed(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        return [value]
    raise MixpanelError(400, "expected an event object or an array of events")


def _ndjson(body: bytes) -> list[Any]:
    events: list[Any] = []
    for line in body.splitlines():
        if not line.strip():
            continue
        try:
            events.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            events.append(bytes(line))  # reported (strict) or dead-lettered (not strict)
    return events


def _property(event: Any, name: str) -> Any:
    """``event["properties"][name]``, or None when the event has no such property."""
    properties = event.get("properties") if isinstance(event, dict) else None
    return properties.get(name) if isinstance(properties, Mapping) else None


def _tokens_allowed(runtime: Runtime, events: Sequence[Any]) -> bool:
    """With tokens configured, every event that carries properties must name one of them."""
    allowed = runtime.settings.mixpanel_tokens
    if accepts_any_key(runtime.settings, allowed):
        return True
    carriers = [e for e in events if isinstance(e, dict) and isinstance(e.get("properties"), dict)]
    return bool(carriers) and all(_property(e, "token") in allowed for e in carriers)


def _authorize_import(
    request: Request, runtime: Runtime, payload: Payload, events: Sequence[Any]
) -> None:
    """Service account ``user:secret`` + ``project_id``, token or API secret as Basic user,
    or (no Basic) the events' own tokens."""
    user, secret = basic_credentials(request.headers.get("authorization", ""))
    if user is None and payload.params.get("api_key"):
        user = payload.params["api_key"]  # the legacy API key parameter (mixpanel-node's key)
    if user is not None and secret and not payload.params.get("project_id", "").strip():
        raise MixpanelError(400, "project_id is required with service account credentials")
    allowed = runtime.settings.mixpanel_tokens
    if accepts_any_key(runtime.settings, allowed):
        return
    if user is None:
        if not _tokens_allowed(runtime, events):
            raise MixpanelError(401, "missing or unknown credentials or project token")
        return
    if (f"{user}:{secret}" if secret else user) not in allowed:
        raise MixpanelError(401, "unknown service account, project token or API secret")


def _check(
    runtime: Runtime, events: Sequence[Any], received_at: datetime
) -> tuple[list[dict[str, Any]], list[Failure]]:
    """Stamp and validate each event: the stamped records that pass, and the failures."""
    settings = runtime.settings
    stamp = received_at.isoformat()
    accepted: list[dict[str, Any]] = []
    failures: list[Failure] = []
    for index, event in enumerate(events):
        try:
            if isinstance(event, bytes):
                raise InvalidMessage("invalid_json", "this line is not valid JSON")
            record = _stamped(event, stamp)
            normalized = normalize_mixpanel(
                record,
                received_at=received_at,
                max_clock_skew_days=settings.max_clock_skew_days,
                group_key=settings.mixpanel_group_key,
            )
            if is_contract_signed(normalized):
                contract_terms(normalized.properties, runtime.plans.keys())
            accepted.append(record)
        except InvalidMessage as error:
            failures.append(Failure(index, _insert_id(event), error.field or "", str(error)))
        except Exception as error:  # anything else a hostile event trips is its failure too
            failures.append(Failure(index, _insert_id(event), "", f"unreadable event: {error}"))
    return accepted, failures


def _insert_id(event: Any) -> str | None:
    value = _property(event, "$insert_id")
    return value if isinstance(value, str) else None


def _stamped(event: Any, stamp: str) -> Any:
    """The record for the bus: an event object marked as Mixpanel's and stamped with its
    arrival (``stamp``, ISO-8601); anything else (to be dead-lettered) as it came. An event
    with neither ``$insert_id`` nor ``time`` is also stamped with a delivery id: nothing of
    the client's identifies it, so each delivery is an event of its own (as Mixpanel counts
    it), while a redelivery of this record inside firstvalue stays one."""
    if not isinstance(event, dict):
        return event
    record = {**event, SOURCE_MARKER: MIXPANEL, RECEIVED_AT: stamp}
    properties = event.get("properties")
    if (
        isinstance(properties, dict)
        and not properties.get("$insert_id")
        and properties.get("time") is None
    ):
        record[DELIVERY] = uuid.uuid4().hex
    return record


def _records(
    events: Sequence[Any], failures: Sequence[Failure], received_at: datetime
) -> list[Any]:
    """The failed events as records for the bus (non-strict import: they are dead-lettered
    there with their reason rather than dropped)."""
    stamp = received_at.isoformat()
    return [_stamped(events[failure.index], stamp) for failure in failures]


def _require_bus(runtime: Runtime) -> None:
    if runtime.bus is None:
        raise MixpanelError(503, NO_BUS)


async def _publish(runtime: Runtime, records: Sequence[Any]) -> None:
    if records and runtime.bus is not None:
        await publish_records(runtime.bus, runtime.settings, records)


# The profile routes (/engage, /groups) join this router, so the app serves every Mixpanel
# endpoint through one include; imported last, as they use this module's request functions.
from services.api.routes import mixpanel_profiles  # noqa: E402

mixpanel_profiles.add_routes()
