"""Why a manual fact or a projection request is refused; the API maps them to 4xx."""

from __future__ import annotations


class FactRejected(ValueError):
    """A command that cannot be applied; the message says why, for the person who sent it."""


class UnknownOnboarding(FactRejected):
    """No onboarding with that id is registered (→ 404)."""

    def __init__(self, onboarding_id: str) -> None:
        super().__init__(f"unknown onboarding {onboarding_id!r}")
        self.onboarding_id = onboarding_id


class UnknownPlan(FactRejected):
    """The plan key is not among the loaded plans."""


class UnknownMilestone(FactRejected):
    """The milestone is not in the onboarding's plan (or does not take manual evidence)."""


class InvalidPauseState(FactRejected):
    """Pause while paused, resume while running, or a pause/resume out of order."""


class ConflictingRegistration(FactRejected):
    """The onboarding id is registered already, with different details (→ 409)."""


class InvalidFact(FactRejected):
    """Anything else wrong with the fact itself, e.g. a moment in the future."""
