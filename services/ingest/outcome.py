"""What ingesting records gives back, the same on every path (bus consumer, backfill, demo
data): counts of what was stored, the fact ids to announce per account, and the dead
letters — records (or items of a batch record) that were not ingested, each with its reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.bus.messages import FactsNotice


@dataclass(frozen=True)
class DeadLetter:
    """A record that was not ingested, and why. ``index``: its position among the records
    handed in; ``original``: the bytes of the one item of a batch record that failed (None:
    the whole record's)."""

    index: int
    reason: str
    error: str
    original: bytes | None = None


@dataclass
class IngestResult:
    """What a batch changed. ``facts`` holds, per account, the fact ids the batch carried
    (new or repeated): a redelivered batch re-announces them, so no notice is ever lost."""

    accepted: int = 0
    duplicates: int = 0
    pending: int = 0
    registered: int = 0
    rejected: list[DeadLetter] = field(default_factory=list)
    facts: dict[str, list[str]] = field(default_factory=dict)

    def notices(self) -> list[FactsNotice]:
        """One ``onboarding.facts`` notice per account the records touched."""
        return [FactsNotice(account, tuple(ids)) for account, ids in self.facts.items()]

    def add(self, other: IngestResult) -> None:
        """Add what another part of the same batch changed (its dead letters too)."""
        self.accepted += other.accepted
        self.duplicates += other.duplicates
        self.pending += other.pending
        self.registered += other.registered
        self.rejected.extend(other.rejected)
        for account, ids in other.facts.items():
            self.facts.setdefault(account, []).extend(ids)
