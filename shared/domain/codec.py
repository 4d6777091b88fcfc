"""JSON-ready encoding of an ``OnboardingState`` for projections, the API and the bus.

Datetimes become ISO-8601 UTC strings and tuples lists; TTFV days are rounded to two
decimals here (and only here) so the core keeps exact figures. The shape mirrors the
dataclasses field by field, so ``state_from_dict`` inverts it; ``stored_state.StoredState``
names it for readers. ``state_to_dict`` makes it through orjson's C encoder, exactly as
``reference_state_to_dict`` (plain Python, per value) does: a property test holds them equal.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import types
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import Any, Literal, Union, cast, get_args, get_origin, get_type_hints

import orjson

from shared.domain.state import EscalationStatus, OnboardingState
from shared.domain.stored_state import StoredEscalation, StoredState

_ROUNDED = {"days", "elapsed_days"}


Encoder = Callable[[Any], Any]
_ENCODERS: dict[type, Encoder] = {}


def to_json(value: Any) -> Any:
    """Plain JSON values for dataclasses, mappings, sequences and datetimes.

    The branch is chosen once per concrete type, not by a chain of ``isinstance`` checks
    per value: that chain was a fifth of a replay's time (the projector encodes every
    state it re-derives)."""
    encode = _ENCODERS.get(type(value))
    if encode is None:
        encode = _ENCODERS.setdefault(type(value), _encoder_for(type(value)))
    return encode(value)


def _encoder_for(cls: type) -> Encoder:
    if issubclass(cls, datetime):
        return lambda value: value.astimezone(UTC).isoformat()
    if issubclass(cls, date):
        return lambda value: value.isoformat()
    if dataclasses.is_dataclass(cls):
        names = tuple(f.name for f in dataclasses.fields(cls))
        return lambda value: {name: to_json(getattr(value, name)) for name in names}
    if issubclass(cls, Mapping):
        return lambda value: {str(k): to_json(v) for k, v in value.items()}
    if issubclass(cls, list | tuple | set | frozenset):
        return lambda value: [to_json(v) for v in value]
    return _keep


def _keep(value: Any) -> Any:
    return value


def reference_state_to_dict(state: OnboardingState) -> StoredState:
    """The stored-state document of ``state``, value by value (``to_json``)."""
    data: StoredState = to_json(state)
    return _rounded(data)


# A moment as orjson writes it, unless in UTC as ``to_json`` writes every moment: naive, or
# with another offset (the fraction matched whole, so only the offset decides).
_NOT_UTC = re.compile(rb'"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?+(?!\+00:00")')


def state_to_dict(state: OnboardingState) -> StoredState:
    """``reference_state_to_dict(state)``, encoded in C by orjson and decoded back: dataclasses
    as their fields in order, tuples as lists, moments in ISO-8601 like ``isoformat``, about
    twice as fast as walking the values in Python (the projector encodes every state it
    derives). Where orjson would write a value otherwise (a moment not in UTC, which
    ``to_json`` converts; a set, a key that is not a string), or could not write it, the
    reference encodes the state."""
    try:
        text = orjson.dumps(state)
    except TypeError:
        return reference_state_to_dict(state)
    if _NOT_UTC.search(text):
        return reference_state_to_dict(state)
    data: StoredState = orjson.loads(text)
    return _rounded(data)


def _rounded(data: StoredState) -> StoredState:
    ttfv = cast(dict[str, Any], data["ttfv"])
    for name in _ROUNDED:
        if ttfv[name] is not None:
            ttfv[name] = round(ttfv[name], 2)
    return data


Decoder = Callable[[Any], Any]


def _optional(decode: Decoder) -> Decoder:
    return lambda value: None if value is None else decode(value)


@functools.cache
def _decoder(tp: Any) -> Decoder:
    """A function rebuilding a value of type ``tp`` from ``state_to_dict`` output,
    built once per type: inspecting the hints on every value was most of decoding's cost,
    and replay decodes every stored state it changes."""
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        return _optional(_decoder(args[0]) if len(args) == 1 else _keep)
    if origin is Literal or tp is Any:
        return _optional(_keep)
    if origin is tuple:
        item = _decoder(get_args(tp)[0])
        return _optional(lambda value: tuple(item(v) for v in value))
    if tp is datetime:
        return _optional(datetime.fromisoformat)
    if tp is float:
        return _optional(float)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        hints = get_type_hints(tp)
        fields = tuple((f.name, _decoder(hints[f.name])) for f in dataclasses.fields(tp))
        cls = tp

        def build(value: Any) -> Any:
            return cls(**{name: decode(value[name]) for name, decode in fields if name in value})

        return _optional(build)
    return _keep


def state_from_dict(data: StoredState) -> OnboardingState:
    """The inverse of ``state_to_dict`` (a stored projection back to the core's state)."""
    state: OnboardingState = _decoder(OnboardingState)(data)
    return state


def escalation_from_dict(data: StoredEscalation) -> EscalationStatus:
    """One escalation of a stored state back to the core's (the API shows every escalation,
    listed or in a detail, from this one type)."""
    escalation: EscalationStatus = _decoder(EscalationStatus)(data)
    return escalation
