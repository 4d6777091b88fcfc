"""JSON-ready encoding of an ``OnboardingState`` for projections, the API and the bus.

Datetimes become ISO-8601 UTC strings and tuples lists; TTFV days are rounded to two
decimals here (and only here) so the core keeps exact figures. The shape mirrors the
dataclasses field by field, so ``shared.storage.projections.decode_state`` can invert it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from shared.domain.state import OnboardingState

_ROUNDED = {"days", "elapsed_days"}


def to_json(value: Any) -> Any:
    """Plain JSON values for dataclasses, mappings, sequences and datetimes."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_json(v) for v in value]
    return value


def state_to_dict(state: OnboardingState) -> dict[str, Any]:
    data: dict[str, Any] = to_json(state)
    ttfv = data["ttfv"]
    for name in _ROUNDED:
        if ttfv[name] is not None:
            ttfv[name] = round(ttfv[name], 2)
    return data
