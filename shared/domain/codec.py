"""JSON-ready encoding of an ``OnboardingState`` for projections, the API and the bus.

Datetimes become ISO-8601 UTC strings and tuples lists; TTFV days are rounded to two
decimals here (and only here) so the core keeps exact figures. The shape mirrors the
dataclasses field by field, so ``shared.storage.projections.decode_state`` can invert it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import Any

from shared.domain.state import OnboardingState

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


def state_to_dict(state: OnboardingState) -> dict[str, Any]:
    data: dict[str, Any] = to_json(state)
    ttfv = data["ttfv"]
    for name in _ROUNDED:
        if ttfv[name] is not None:
            ttfv[name] = round(ttfv[name], 2)
    return data
