"""A ``Contract Signed`` track event registers an onboarding (the clock starts at its time).

Properties: ``plan`` (required, a known plan key), ``onboarding_id`` (else derived from the
account and plan, so a resent event registers the same onboarding), ``csm``,
``champion_user_id``, ``licensed_seats``, ``account_name``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.analytics.normalize import MAX_ID_LENGTH, InvalidMessage, NormalizedEvent
from shared.domain.facts import OnboardingRegistered

CONTRACT_SIGNED = "Contract Signed"
MAX_SEATS = 2**31 - 1  # the storage column is a 32-bit integer on every backend


@dataclass(frozen=True)
class ContractTerms:
    plan_key: str
    onboarding_id: str | None = None
    csm: str | None = None
    champion_user_id: str | None = None
    licensed_seats: int | None = None
    account_name: str | None = None


def onboarding_id_for(account_id: str, plan_key: str) -> str:
    """The deterministic id of an account's onboarding on a plan."""
    digest = hashlib.sha256(f"{account_id}\x1f{plan_key}".encode()).hexdigest()
    return f"onb_{digest[:24]}"


def registration_id(onboarding_id: str) -> str:
    """The fact id of an onboarding's registration (one per onboarding)."""
    return f"registered:{onboarding_id}"


def is_contract_signed(event: NormalizedEvent) -> bool:
    return event.type == "track" and event.name == CONTRACT_SIGNED


def _text(properties: Mapping[str, Any], key: str) -> str | None:
    value = properties.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidMessage("invalid_contract", f"{CONTRACT_SIGNED}: {key} must be a string")
    if len(str(value)) > MAX_ID_LENGTH:
        raise InvalidMessage("invalid_contract", f"{CONTRACT_SIGNED}: {key} is too long")
    return str(value)


def contract_terms(properties: Mapping[str, Any], plan_keys: Collection[str]) -> ContractTerms:
    """Validate a ``Contract Signed`` event's properties; raises ``InvalidMessage``."""
    plan = _text(properties, "plan")
    if plan is None:
        raise InvalidMessage("missing_plan", f"{CONTRACT_SIGNED} needs a 'plan' property")
    if plan not in plan_keys:
        known = ", ".join(sorted(plan_keys)) or "none"
        raise InvalidMessage("unknown_plan", f"unknown plan {plan!r} (known: {known})")
    seats = properties.get("licensed_seats")
    if seats is not None and (
        isinstance(seats, bool) or not isinstance(seats, int | float) or seats < 0
    ):
        raise InvalidMessage(
            "invalid_contract", f"{CONTRACT_SIGNED}: licensed_seats must be a non-negative number"
        )
    if seats is not None and not seats <= MAX_SEATS:  # also NaN
        raise InvalidMessage(
            "out_of_range",
            f"{CONTRACT_SIGNED}: licensed_seats {seats!r} is over {MAX_SEATS}",
            "properties.licensed_seats",
        )
    return ContractTerms(
        plan_key=plan,
        onboarding_id=_text(properties, "onboarding_id"),
        csm=_text(properties, "csm"),
        champion_user_id=_text(properties, "champion_user_id"),
        licensed_seats=int(seats) if seats is not None else None,
        account_name=_text(properties, "account_name"),
    )


def registration(terms: ContractTerms, account_id: str, at: datetime) -> OnboardingRegistered:
    """The registration fact for an account that signed on ``terms`` at ``at``."""
    onboarding_id = terms.onboarding_id or onboarding_id_for(account_id, terms.plan_key)
    return OnboardingRegistered(
        id=registration_id(onboarding_id),
        onboarding_id=onboarding_id,
        account_id=account_id,
        plan_key=terms.plan_key,
        at=at,
        csm=terms.csm,
        champion_user_id=terms.champion_user_id,
        licensed_seats=terms.licensed_seats,
        account_name=terms.account_name,
    )
