"""The folded read: a page of onboardings' states from what their fold needs, never their
accounts' whole histories (docs/projection.md).

Per page, in this order: the accounts' insert numbers (every event numbered up to them has
committed), the rule events stored since each prior projection, the activity summaries as
stored (and, only where a summary straddles ``now``, the straddling rows' last moments up
to ``now`` and the first event after ``now`` from the latest events; elsewhere the
summaries tell the first event after ``now``), the manual facts; then ``fold`` each
onboarding (its signal inputs made once), reading the spans of rule events and the trails
(aggregates of unfinished rolling rules' windows) it asks for, round after round (anchors
come from earlier stages), with one query of each kind per round for the whole page.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from shared.domain.activity import straddles, upto
from shared.domain.codec import state_from_dict
from shared.domain.facts import EventObserved, OnboardingRegistered
from shared.domain.folding import (
    Folding,
    Loaded,
    Need,
    Prior,
    Span,
    fold_inputs,
    rule_names,
    rules_digest,
    signal_inputs,
    trailing,
)
from shared.domain.plans import Plan
from shared.domain.state import OnboardingState
from shared.domain.stored_state import StoredState
from shared.domain.trail import Slide, Tally, Trail
from shared.storage import account_events, activity_days
from shared.storage.onboardings import OnboardingRepository
from shared.storage.projections import ProjectionRepository

MAX_ROUNDS = 8  # a round per stage at most, in practice one to three


@dataclass(frozen=True)
class Folded:
    """One onboarding's state, the fold record to store beside it, and its stored state
    decoded (None: none, or one that no longer decodes)."""

    state: OnboardingState
    fold: dict[str, Any]
    previous: OnboardingState | None = None


def _prior_state(stored: StoredState | None) -> OnboardingState | None:
    try:
        return state_from_dict(stored) if stored is not None else None
    except (KeyError, TypeError, ValueError):
        return None


async def fold_page(
    session: AsyncSession,
    chosen: Sequence[tuple[OnboardingRegistered, Plan]],
    stored: Mapping[str, StoredState],
    folds: Mapping[str, dict[str, Any]],
    now: datetime,
    *,
    as_of: bool = False,
) -> list[Folded]:
    """The states of ``chosen`` at ``now``; ``stored``/``folds``: their stored states and
    fold records (a prior is used only when made under the same rules). ``as_of``: the
    state from the facts up to ``now`` only, as of a past moment (nothing later exists)."""
    accounts = sorted({r.account_id for r, _ in chosen})
    seqs = await account_events.sequences(session, accounts)
    digests = {r.onboarding_id: rules_digest(p) for r, p in chosen}
    priors: dict[str, tuple[OnboardingState, dict[str, Any]]] = {}
    previous = {r.onboarding_id: _prior_state(stored.get(r.onboarding_id)) for r, _ in chosen}
    for r, _ in chosen:
        record = folds.get(r.onboarding_id)
        state = previous[r.onboarding_id]
        if record and state and record.get("digest") == digests[r.onboarding_id]:
            priors[r.onboarding_id] = (state, record)
    after: dict[str, int] = {}
    for r, _ in chosen:
        if r.onboarding_id in priors:
            seen = int(priors[r.onboarding_id][1]["seq"])
            after[r.account_id] = min(seen, after.get(r.account_id, seen))
    numbered = await account_events.stored_since(session, after, rule_names(p for _, p in chosen))
    champions = {(r.account_id, r.champion_user_id) for r, _ in chosen}
    await activity_days.catch_up(session, seqs)  # the summaries count every event up to seqs
    days = await activity_days.compacted_days(session, champions, now.date())
    straddling = {a for a, c in champions if straddles(days[a, c], now)}
    today = await activity_days.day_upto(
        session, {a: days[a, c] for a, c in champions if a in straddling}, now
    )
    # The first event after ``now``: a summary wholly after it starts with it; only where a
    # summary straddles ``now`` must the events say (``first_after``).
    ahead: dict[str, datetime | None] = dict.fromkeys(accounts)
    if not as_of:
        for a, c in champions:
            ahead[a] = min((d.first_at for d in days[a, c] if d.first_at > now), default=None)
        ahead.update(await account_events.first_after(session, straddling, now))
    for a, c in champions:
        if a in straddling:
            days[a, c] = upto(days[a, c], today[a], now)
    manual = await OnboardingRepository(session).manual_facts_for_many(
        [r.onboarding_id for r, _ in chosen], until=now if as_of else None
    )
    loaded = {a: Loaded() for a in accounts}
    done: dict[str, Folding] = {}
    folded_priors = {
        r.onboarding_id: _prior(
            *priors[r.onboarding_id], numbered[r.account_id], seqs[r.account_id]
        )
        for r, _ in chosen
        if r.onboarding_id in priors
    }
    # Every rule from signature (no window opens earlier): read at once for an onboarding
    # without a prior (one round, not one per anchor), and as the last resort for all.
    whole = {
        r.onboarding_id: (r.account_id, Span(tuple(sorted(rule_names([p]))), r.at, now))
        for r, p in chosen
        if rule_names([p]) and r.at <= now
    }
    first: list[tuple[str, Need]] = [w for i, w in whole.items() if i not in priors]
    for r, p in chosen:
        if r.onboarding_id in folded_priors:
            wanted = trailing(p, r, folded_priors[r.onboarding_id], now)
            first += [(r.account_id, need) for need in wanted]
    await _read(session, first, loaded, seqs)
    given = {
        r.onboarding_id: signal_inputs(
            r,
            manual[r.onboarding_id],
            days[r.account_id, r.champion_user_id],
            ahead[r.account_id],
            now,
        )
        for r, _ in chosen
    }
    for last in range(MAX_ROUNDS + 1):
        needed: list[tuple[str, Need]] = []
        for r, plan in chosen:
            if r.onboarding_id in done:
                continue
            prior = folded_priors.get(r.onboarding_id)
            found = fold_inputs(plan, r, given[r.onboarding_id], prior, loaded[r.account_id], now)
            if found.state is not None:
                done[r.onboarding_id] = found
            needed += [(r.account_id, need) for need in found.needs]
        if not needed:
            break
        if last == MAX_ROUNDS:
            raise RuntimeError("folding did not settle although every rule event was read")
        if last == MAX_ROUNDS - 1:  # the last resort: every rule event, and the trails asked
            needed = [*whole.values(), *((a, n) for a, n in needed if not isinstance(n, Span))]
        await _read(session, needed, loaded, seqs)
    return [
        Folded(
            _settled(done[r.onboarding_id]),
            {
                "seq": seqs[r.account_id],
                "digest": digests[r.onboarding_id],
                "ahead": _iso(ahead[r.account_id]),
                "tallies": {k: _tally_record(t) for k, t in done[r.onboarding_id].tallies.items()},
            },
            previous[r.onboarding_id],
        )
        for r, _ in chosen
    ]


def _settled(folding: Folding) -> OnboardingState:
    assert folding.state is not None
    return folding.state


def _prior(
    state: OnboardingState,
    record: Mapping[str, Any],
    numbered: Sequence[tuple[int, EventObserved]],
    seq: int,
) -> Prior:
    """The prior from a stored state and its fold record; ``numbered``: its account's rule
    events stored since the page's least record, with their numbers (``seq``: the page's).
    Only those numbered after the record's and up to the page's are fresh: a tally kept
    with it holds those up to its number, and the next record holds up to ``seq``."""
    seen = int(record["seq"])
    return Prior(
        state,
        [e for n, e in numbered if seen < n <= seq],
        _moment(record.get("ahead")),
        seen,
        _tallies(record.get("tallies")),
    )


def _tally_record(tally: Tally) -> dict[str, Any]:
    return {
        "since": tally.since.isoformat(),
        "until": tally.until.isoformat(),
        "count": tally.count,
        "users": [[u, n, at.isoformat(), i] for u, (n, (at, i)) in tally.users.items()],
        "latest": [[at.isoformat(), i] for at, i in tally.latest],
    }


def _tallies(records: Any) -> dict[str, Tally]:
    """The tallies of a fold record (none when it has none or one does not decode: the
    trail is then summed again)."""
    if not isinstance(records, dict):
        return {}
    try:
        return {
            key: Tally(
                datetime.fromisoformat(r["since"]),
                datetime.fromisoformat(r["until"]),
                int(r["count"]),
                {u: (int(n), (datetime.fromisoformat(at), i)) for u, n, at, i in r["users"]},
                tuple((datetime.fromisoformat(at), i) for at, i in r["latest"]),
            )
            for key, r in records.items()
        }
    except (KeyError, TypeError, ValueError):
        return {}


async def _read(
    session: AsyncSession,
    wanted: Sequence[tuple[str, Need]],
    loaded: Mapping[str, Loaded],
    seqs: Mapping[str, int],
) -> None:
    """Read the spans (one query for all of them) into each account's ``Loaded``, the
    trails (one more; their events numbered up to the page's ``seqs``) and the slides."""
    spans = [(a, s) for a, s in wanted if isinstance(s, Span)]
    if spans:
        rows = [(a, n, s.since, s.until) for a, s in spans for n in s.names]
        read = await account_events.in_spans(session, rows)
        for a, span in spans:
            loaded[a].add(
                span,
                (e for e in read[a] if e.name in span.names and span.since <= e.at <= span.until),
            )
    trails = [(a, t) for a, t in wanted if isinstance(t, Trail)]
    for (a, trail), stats in (await account_events.trails(session, trails, seqs)).items():
        loaded[a].add_trail(trail, stats)
    slides = [(a, s) for a, s in wanted if isinstance(s, Slide)]
    for (a, slide), moved in (await account_events.slides(session, slides)).items():
        loaded[a].add_slide(slide, moved)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _moment(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


async def state_as_of(
    session: AsyncSession, registration: OnboardingRegistered, plan: Plan, as_of: datetime
) -> OnboardingState:
    """``evaluate`` over the onboarding's facts up to ``as_of``, folded from its stored
    projection (the ``?as_of=`` detail): reads only what that prior cannot answer."""
    projections = ProjectionRepository(session)
    stored = await projections.state_dicts([registration.onboarding_id])
    folds = await projections.folds([registration.onboarding_id])
    page = await fold_page(session, [(registration, plan)], stored, folds, as_of, as_of=True)
    return page[0].state
