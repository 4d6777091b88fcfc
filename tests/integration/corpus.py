"""The malformed-input corpus: records a pipeline might produce to ``analytics.events`` that
cannot be ingested, each with the dead-letter reason it must get, interleaved with good
Segment and Mixpanel events that must all be stored.

Bus-agnostic, so the same corpus runs on the in-memory bus (``test_dlq_corpus.py``) and on a
real Kafka broker: ``build_corpus(now, run)`` gives the records to publish (in order, keyed by
the corpus account), ``verify_dead_letters(corpus, source, dead)`` checks the dead letters
against the consumed source records, and ``corpus.good_ids`` are the event ids that must be
stored for ``corpus.account``.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson

from shared.analytics.normalize import normalize_record
from shared.bus import topics
from shared.bus.bus import Message

PLAN = "smb"  # a plan key every default plan set has


@dataclass(frozen=True)
class BadInput:
    """One malformed record and the reason its dead letter must carry. ``item``: the record
    is a Segment batch envelope and only this item of it is bad (its own bytes are the
    dead letter's original)."""

    kind: str
    value: bytes
    reason: str
    item: dict[str, Any] | None = None


@dataclass(frozen=True)
class Corpus:
    account: str
    records: list[tuple[str, bytes]]  # (key, value) in publish order
    bad: list[BadInput]
    good_ids: frozenset[str]
    registered_plan: str = PLAN  # the good Contract Signed registers this plan for the account


def _json(value: Any) -> bytes:
    return orjson.dumps(value)


def build_corpus(now: datetime, run: str) -> Corpus:
    """The corpus for one run (``run`` makes its ids unique); times are relative to ``now``,
    the moment the records are published."""
    account = f"corpus_{run}"
    at = (now - timedelta(hours=1)).isoformat()
    future = (now + timedelta(days=30)).isoformat()
    mp_time = int((now - timedelta(hours=1)).timestamp())

    def seg(n: str, **fields: Any) -> dict[str, Any]:
        return {
            "type": "track", "userId": f"u_{run}", "event": "Corpus Event",
            "messageId": f"{run}-{n}", "timestamp": at, "context": {"groupId": account},
            "properties": {}, **fields,
        }  # fmt: skip

    def mp(n: str, **properties: Any) -> dict[str, Any]:
        return {
            "event": "Corpus Event",
            "properties": {
                "distinct_id": f"m_{run}", "time": mp_time, "$insert_id": f"{run}-{n}"[:36],
                "company_id": account, "token": "tok", **properties,
            },
        }  # fmt: skip

    big = "x" * 33_000
    deep = _json(seg("deep")).replace(
        b'"properties":{}', b'"properties":{"deep":' + b"[" * 300 + b"]" * 300 + b"}"
    )
    bad_item = {"type": "track", "event": "Corpus Event", "messageId": f"{run}-item"}
    cases = [
        ("truncated JSON", b'{"type": "track", "userId": "u", "event": "A"', "invalid_json"),
        ("not JSON at all", b"hello, world", "invalid_json"),
        ("empty record", b"", "invalid_json"),
        ("NUL byte in the bytes", b'{"type":"track",\x00"userId":"u","event":"A"}',
         "invalid_json"),
        ("invalid UTF-8", b'{"type":"track","userId":"\xff\xfe","event":"A"}', "invalid_json"),
        ("lone surrogate escape", b'{"type":"track","userId":"\\ud800","event":"A"}',
         "invalid_json"),
        ("JSON array", _json([seg("arr")]), "not_an_object"),
        ("JSON number", b"42", "not_an_object"),
        ("JSON string", b'"track"', "not_an_object"),
        ("JSON null", b"null", "not_an_object"),
        ("NUL character in a string", _json(seg("nul", event="A\u0000B")), "nul_character"),
        ("over 32 KB", _json(seg("big", properties={"blob": big})), "too_large"),
        ("nested too deeply", deep, "too_deep"),
        ("no user ids", _json(seg("nouser", userId=None)), "missing_user"),
        ("null everything", _json({k: None for k in seg("null")}), "unsupported_type"),
        ("userId an object", _json(seg("uobj", userId={"id": 1})), "invalid_user"),
        ("anonymousId a boolean", _json(seg("ubool", userId=None, anonymousId=True)),
         "invalid_user"),
        ("messageId too long", _json(seg("x" * 120)), "invalid_message_id"),
        ("messageId a number", _json(seg("mnum", messageId=12345)), "invalid_message_id"),
        ("timestamp unparsable", _json(seg("tsbad", timestamp="yesterday")),
         "invalid_timestamp"),
        ("timestamp a number", _json(seg("tsnum", timestamp=1700000000)), "invalid_timestamp"),
        ("timestamp beyond the skew", _json(seg("tsfut", timestamp=future)),
         "timestamp_in_future"),
        ("sentAt unparsable", _json(seg("sent", sentAt="soon")), "invalid_timestamp"),
        ("receivedAt unparsable", _json(seg("recv", receivedAt=17)), "invalid_timestamp"),
        ("unknown type", _json(seg("type", type="purchase")), "unsupported_type"),
        ("track without event", _json(seg("noevent", event=None)), "missing_event"),
        ("event not a string", _json(seg("evnum", event=7)), "invalid_event"),
        ("group without groupId", _json(seg("nogroup", type="group", event=None)),
         "missing_group_id"),
        ("groupId a list", _json(seg("glist", type="group", groupId=["a"])),
         "invalid_group_id"),
        ("alias without previousId", _json(seg("noprev", type="alias")),
         "missing_previous_id"),
        ("properties not an object", _json(seg("props", properties=[1, 2])),
         "invalid_properties"),
        ("traits not an object", _json(seg("traits", type="identify", traits="vip")),
         "invalid_traits"),
        ("context not an object", _json(seg("ctx", context="web")), "invalid_context"),
        ("context.groupId an object", _json(seg("cgid", context={"groupId": {}})),
         "invalid_group_id"),
        ("integrations not an object", _json(seg("integ", integrations=["All"])),
         "invalid_integrations"),
        ("page name not a string", _json(seg("page", type="page", name=3)), "invalid_name"),
        ("Mixpanel without distinct_id", _json(mp("nodist", distinct_id=None)),
         "missing_user"),
        ("Mixpanel placeholder distinct_id", _json(mp("anon", distinct_id="null")),
         "invalid_user"),
        ("Mixpanel time as a string", _json(mp("tstr", time="1700000000")),
         "invalid_timestamp"),
        ("Mixpanel time before 1971", _json(mp("t0", time=1000)), "invalid_timestamp"),
        ("Mixpanel time beyond the skew", _json(mp("tfut", time=mp_time + 30 * 86400)),
         "timestamp_in_future"),
        ("Mixpanel $insert_id too long", _json(mp("i", **{"$insert_id": "a" * 37})),
         "invalid_insert_id"),
        ("Mixpanel $insert_id bad characters", _json(mp("i", **{"$insert_id": "a b/c"})),
         "invalid_insert_id"),
        ("Mixpanel properties not an object",
         _json({"event": "Corpus Event", "properties": "distinct_id=m"}), "invalid_properties"),
        ("Mixpanel event name empty", _json({**mp("noname"), "event": ""}), "missing_event"),
        ("Mixpanel group key an object", _json(mp("gk", company_id={"id": account})),
         "invalid_group_key"),
        ("Mixpanel token a number", _json(mp("tok", token=5)), "invalid_token"),
        ("unknown source shape", _json({"name": "Corpus Event", "data": {"user": "u"}}),
         "unknown_source"),
        ("unknown source marker", _json({**seg("amp"), "_source": "amplitude"}),
         "unknown_source"),
        ("Contract Signed without plan",
         _json(seg("cs1", event="Contract Signed", properties={"csm": "Dana"})),
         "missing_plan"),
        ("Contract Signed with an unknown plan (Mixpanel)",
         _json({**mp("cs2", plan="platinum"), "event": "Contract Signed"}), "unknown_plan"),
        ("Contract Signed with negative seats",
         _json(seg("cs3", event="Contract Signed",
                   properties={"plan": PLAN, "licensed_seats": -3})), "invalid_contract"),
        ("batch envelope whose batch is not a list", _json({"batch": {"0": seg("b")}}),
         "invalid_batch"),
    ]  # fmt: skip
    bad = [BadInput(kind, value, reason) for kind, value, reason in cases]
    envelope = {"batch": [seg("batch-good"), bad_item], "context": {"groupId": account}}
    bad.append(BadInput("bad item in a batch", _json(envelope), "missing_user", bad_item))

    contract = seg("contract", event="Contract Signed", properties={"plan": PLAN})
    good: list[dict[str, Any]] = [contract]
    records: list[tuple[str, bytes]] = [(account, _json(contract))]
    for index, case in enumerate(bad):
        event = seg(f"good-{index}") if index % 2 else mp(f"good-{index}")
        good.append(event)
        records += [(account, _json(event)), (account, case.value)]
    ids = {_event_id(e, now) for e in good}
    ids.add(f"{run}-batch-good")  # the good item of the batch envelope
    return Corpus(account, records, bad, frozenset(ids))


def _event_id(record: dict[str, Any], now: datetime) -> str:
    return normalize_record(record, received_at=now, max_clock_skew_days=7).id


def _original(letter: dict[str, Any]) -> bytes:
    if letter.get("original_encoding") == "base64":
        return base64.b64decode(letter["original"])
    return str(letter["original"]).encode()


def verify_dead_letters(corpus: Corpus, source: Sequence[Message], dead: Sequence[bytes]) -> None:
    """Every bad input is dead-lettered exactly once, with its reason, its original bytes (or
    its batch item) and the topic, partition and offset of the record it came in."""
    by_position = {(m.partition, m.offset): m for m in source if m.topic == topics.EVENTS}
    expected = {case.value: case for case in corpus.bad}
    seen: dict[str, dict[str, Any]] = {}
    for value in dead:
        letter = orjson.loads(value)
        message = by_position.get((letter["partition"], letter["offset"]))
        assert message is not None, f"dead letter points at no consumed record: {letter}"
        case = expected.get(message.value)
        assert case is not None, f"a good record was dead-lettered: {letter}"
        assert case.kind not in seen, f"{case.kind} dead-lettered twice"
        seen[case.kind] = letter
        assert letter["topic"] == topics.EVENTS
        assert letter["reason"] == case.reason, (case.kind, letter["reason"], letter["error"])
        assert letter["error"], case.kind
        if case.item is None:
            assert _original(letter) == case.value, case.kind
        else:
            assert orjson.loads(_original(letter)).items() >= case.item.items(), case.kind
    missing = [case.kind for case in corpus.bad if case.kind not in seen]
    assert not missing, f"not dead-lettered: {missing}"
