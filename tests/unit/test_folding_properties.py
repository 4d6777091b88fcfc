"""The folded projection equals ``evaluate`` over every fact, field for field.

A random history over a shipped plan (duplicates, shuffled order, late events with earlier
times, events ahead of ``now``, pauses and resumes, amendments, evidence) is stored in
random batches; after each one the onboarding is projected the way the projector does it
(prior state + events stored since + activity summaries + the rule events ``fold`` asks
for) at a random ``now``, and at a random earlier ``as_of``, and compared with the oracle.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from unittest.mock import patch

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.domain import folding
from shared.domain.activity import ActivityDay, compact, straddles, summarize, upto
from shared.domain.evaluate import evaluate
from shared.domain.facts import EventObserved, Fact
from shared.domain.folding import Folding, Loaded, Prior, fold
from shared.domain.state import MilestoneStatus, OnboardingState
from shared.domain.trail import Slide, Tally, Trail, slide_rows, trail_stats

from .factories import PLANS, amend, day, event, evidence, pause, registration, resume

EXAMPLES = 300 if os.environ.get("CI") == "true" else 60
USERS = [f"u{n:02d}" for n in range(34)]
NAMES = [
    ("Kickoff Call Completed", {}),
    ("Success Criteria Agreed", {}),
    ("Executive Sponsor Named", {}),
    ("Integration Connected", {}),
    ("Data Sync Completed", {"status": "success"}),
    ("Data Sync Completed", {"status": "failed"}),
    ("Workflow Run", {"environment": "production"}),
    ("Workflow Run", {"environment": "sandbox"}),
    ("Training Completed", {}),
    ("Logged In", {}),
    ("Logged In", {}),
    ("Logged In", {}),
    ("Logged In", {}),
    ("Record Created", {}),
    ("Record Created", {}),
    ("Report Delivered", {}),
    ("Page Viewed", {}),
    ("Page Viewed", {}),
]
MANUAL = ["kickoff_call", "success_criteria_agreed", "training_delivered", "sponsor_confirmation"]

moment = st.floats(min_value=-3.0, max_value=130.0, allow_nan=False).map(lambda d: round(d, 4))
usage = st.builds(
    lambda at, what, user: event(at, what[0], user, **what[1]),
    moment,
    st.sampled_from(NAMES),
    st.sampled_from([*USERS, None]),
)
manual = st.one_of(
    st.builds(lambda at, key: evidence(at, key), moment, st.sampled_from(MANUAL)),
    st.builds(pause, moment),
    st.builds(resume, moment),
    st.builds(
        lambda at, key, due: amend(at, key, due_day=due),
        moment,
        st.sampled_from(["integration_connected", "first_report_delivered"]),
        st.integers(1, 60),
    ),
)


@dataclass(frozen=True)
class Kept:
    """What a projection stores: its state and fold record (insert number, first event
    after its moment, tallies)."""

    state: OnboardingState
    seq: int
    ahead: datetime | None
    tallies: dict[str, Tally]


@dataclass
class Store:
    """What the database holds: facts in insertion order, cut into committed batches."""

    batches: list[list[Fact]]

    def upto(self, batch: int) -> list[Fact]:
        return [f for b in self.batches[: batch + 1] for f in b]

    def events(self, batch: int) -> list[EventObserved]:
        return list({f.id: f for f in self.upto(batch) if isinstance(f, EventObserved)}.values())

    def numbered(self, batch: int) -> list[tuple[EventObserved, int]]:
        """Each stored event with its insert number: the batch that first stored it (a
        duplicate keeps the first one's)."""
        found: dict[str, tuple[EventObserved, int]] = {}
        for n, b in enumerate(self.batches[: batch + 1]):
            for f in b:
                if isinstance(f, EventObserved):
                    found.setdefault(f.id, (f, n))
        return list(found.values())


def _days(
    events: list[EventObserved], now: datetime, until_now: bool, compacted: bool
) -> list[ActivityDay]:
    """The projector's activity read: the stored summaries (compacted, as for a large
    account, or as stored), and ``now``'s day from the events when it straddles ``now`` (or,
    ``as_of``, when later events must not exist)."""
    stored = summarize(e for e in events if e.at.date() <= now.date())
    if compacted:
        stored = compact(stored, "u00", now.date())
    if not straddles(stored, now):
        return stored
    today = summarize(e for e in events if e.at.date() == now.date() and e.at <= now)
    return upto(stored, today, now)


def _project(
    plan_key: str,
    store: Store,
    batch: int,
    now: datetime,
    prior: Kept | None,
    as_of: bool = False,
    compacted: bool = True,
) -> tuple[Folding, int]:
    """Fold as the projector does, reading spans, trails and slides from the store (events
    numbered up to ``batch``); the outcome and the number of reads."""
    plan, reg = PLANS[plan_key], registration(plan_key)
    facts = store.upto(batch)
    events = store.events(batch)
    if as_of:
        facts = [f for f in facts if f.at <= now]
        events = [e for e in events if e.at <= now]
    manual_facts = [f for f in facts if not isinstance(f, EventObserved)]
    folded_prior = None
    numbered = store.numbered(batch)
    if as_of:
        numbered = [(e, n) for e, n in numbered if e.at <= now]
    if prior is not None:
        fresh = [e for e, n in numbered if n > prior.seq]
        folded_prior = Prior(prior.state, fresh, prior.ahead, prior.seq, prior.tallies)
    ahead_at = None if as_of else min((e.at for e in events if e.at > now), default=None)
    loaded = Loaded()
    reads = 0
    for _ in range(10):
        folding = fold(
            plan,
            reg,
            manual_facts,
            _days(events, now, as_of, compacted),
            folded_prior,
            loaded,
            ahead_at,
            now,
        )
        if folding.state is not None:
            return folding, reads
        for need in folding.needs:
            reads += 1
            if isinstance(need, Trail):
                loaded.add_trail(need, trail_stats(need, events))
                continue
            if isinstance(need, Slide):
                loaded.add_slide(need, slide_rows(need, numbered))
                continue
            loaded.add(
                need,
                (e for e in events if e.name in need.names and need.since <= e.at <= need.until),
            )
    raise AssertionError("fold kept asking for more")


@st.composite
def histories(draw: st.DrawFn) -> tuple[str, Store, list[datetime]]:
    facts: list[Fact] = draw(st.lists(usage, max_size=110)) + draw(st.lists(manual, max_size=6))
    if draw(st.booleans()):  # a go-live, then a crowd of users: windows that complete
        live = draw(moment)
        facts += [
            event(live - 2, "Integration Connected"),
            event(live - 1, "Data Sync Completed", status="success"),
            event(live, "Workflow Run", environment="production"),
            event(live + 1, "Report Delivered"),
        ]
        for user in draw(st.lists(st.sampled_from(USERS), min_size=5, max_size=34)):
            at = live + draw(st.floats(min_value=-1.0, max_value=35.0))
            facts.append(event(at, draw(st.sampled_from(["Logged In", "Record Created"])), user))
    if facts and draw(st.booleans()):
        facts += draw(st.lists(st.sampled_from(facts), max_size=8))  # duplicates
    order = draw(st.permutations(facts))
    cuts = sorted(draw(st.lists(st.integers(0, len(order)), min_size=1, max_size=6)))
    batches = [list(order[a:b]) for a, b in zip([0, *cuts], [*cuts, len(order)], strict=True)]
    start = draw(st.floats(min_value=0.0, max_value=60.0))
    steps = draw(
        st.lists(
            st.floats(min_value=0.0, max_value=25.0), min_size=len(batches), max_size=len(batches)
        )
    )
    nows, at = [], start
    for step in steps:
        at += step
        nows.append(day(at))
    return draw(st.sampled_from(sorted(PLANS))), Store(batches), nows


@settings(max_examples=EXAMPLES, deadline=None)
@given(histories(), st.floats(min_value=-2.0, max_value=140.0), st.booleans(), st.booleans())
def test_folding_batch_by_batch_equals_evaluate_over_all_facts(
    history, as_of_day, compacted, far_slides
) -> None:
    # Whether a kept tally slides or its trail is summed again is a matter of cost only
    # (``SLIDE_SPAN``); sliding over any distance must give the same answers.
    span = timedelta(days=400) if far_slides else folding.SLIDE_SPAN
    with patch.object(folding, "SLIDE_SPAN", span):
        _fold_batch_by_batch(history, as_of_day, compacted)


def _fold_batch_by_batch(
    history: tuple[str, Store, list[datetime]], as_of_day: float, compacted: bool
) -> None:
    plan_key, store, nows = history
    plan, reg = PLANS[plan_key], registration(plan_key)
    prior = None
    for batch, now in enumerate(nows):
        folding, _ = _project(plan_key, store, batch, now, prior, compacted=compacted)
        assert folding.state == evaluate(plan, reg, store.upto(batch), now)
        ahead = min((e.at for e in store.events(batch) if e.at > now), default=None)
        prior = _kept(folding, batch, ahead)
    last = len(nows) - 1
    as_of = day(as_of_day)
    past, _ = _project(plan_key, store, last, as_of, prior, as_of=True, compacted=compacted)
    expected = evaluate(plan, reg, [f for f in store.upto(last) if f.at <= as_of], as_of)
    assert past.state == expected


@st.composite
def crowds(draw: st.DrawFn) -> tuple[str, Store, list[datetime]]:
    """Many users logging in over a few weeks, stored in many small batches with the clock
    moving a little each time: rolling rules stay open for a while, then complete, so their
    trail aggregates, the tallies slid from them and the completions they bound are all
    exercised."""
    start = draw(st.floats(min_value=0.0, max_value=20.0))
    # Few users keep a rolling rule open for the whole stream: its tally slides along.
    users = st.sampled_from([*USERS[: draw(st.integers(1, len(USERS)))], None])
    facts: list[Fact] = [
        event(round(start + draw(st.floats(-1.0, 30.0)), 4), "Logged In", draw(users))
        for _ in range(draw(st.integers(10, 160)))
    ]
    facts += draw(st.lists(usage, max_size=20))
    if draw(st.booleans()):
        facts += draw(st.lists(st.sampled_from(facts), max_size=8))  # duplicates
    if draw(st.booleans()):
        facts.sort(key=lambda f: f.at)  # in event-time order, as a live stream mostly is
    order = draw(st.permutations(facts)) if draw(st.booleans()) else facts
    size = draw(st.integers(1, 25))
    batches = [list(order[n : n + size]) for n in range(0, len(order), size)] or [[]]
    live = draw(st.booleans())  # the clock just past each batch's latest event, as when caught up
    nows: list[datetime] = []
    at = day(start)
    for batch in batches:
        if live and batch:
            at = max(at, max(f.at for f in batch) + timedelta(seconds=draw(st.integers(0, 60))))
        else:
            at += timedelta(days=draw(st.floats(min_value=0.0, max_value=3.0)))
        nows.append(at)
    return draw(st.sampled_from(sorted(PLANS))), Store(batches), nows


@settings(max_examples=EXAMPLES, deadline=None)
@given(crowds(), st.floats(min_value=0.0, max_value=60.0), st.booleans(), st.booleans())
def test_folding_crowds_of_logins_equals_evaluate_over_all_facts(
    history, as_of_day, compacted, far_slides
) -> None:
    test_folding_batch_by_batch_equals_evaluate_over_all_facts.hypothesis.inner_test(
        history, as_of_day, compacted, far_slides
    )


def test_a_tick_that_only_moves_the_clock_reads_no_events() -> None:
    history = [
        event(1, "Kickoff Call Completed"),
        event(1, "Success Criteria Agreed"),
        event(1, "Executive Sponsor Named"),
        event(2, "Integration Connected"),
        *(event(3 + n / 10, "Page Viewed", f"u{n % 5:02d}") for n in range(40)),
    ]
    store = Store([history])
    first, reads = _project("smb", store, 0, day(8), None)
    assert reads > 0
    ticked, reads = _project("smb", store, 0, day(15), _kept(first, 0, None))
    assert reads == 0
    assert ticked.state == evaluate(PLANS["smb"], registration("smb"), history, day(15))
    assert ticked.state.escalations  # the clock alone fired something: technical completion late


def test_an_event_ahead_of_now_counts_when_its_moment_comes() -> None:
    ahead = day(10) + timedelta(seconds=20)
    store = Store([[event(1, "Kickoff Call Completed"), event(ahead, "Integration Connected")]])
    before, _ = _project("smb", store, 0, day(10), None)
    assert before.state and before.state.next_due_at == ahead
    after, _ = _project("smb", store, 0, ahead, _kept(before, 0, ahead))
    assert after.state is not None
    status = next(m for m in after.state.milestones if m.key == "integration_connected")
    assert status.completed_at == ahead


def test_an_event_stored_ahead_completes_a_rolling_rule_once_its_moment_has_passed() -> None:
    # Four users in a week, the fifth's login stored ahead of the first projection: the
    # second one, long after, must find the week that ended at it, though nothing is new.
    logins = [event(9 + n, "Logged In", f"u{n:02d}") for n in range(1, 5)]
    store = Store([[*logins, event(16, "Logged In", "u05")], []])
    first, _ = _project("smb", store, 0, day(14), None)
    assert first.state and _status(first.state, "team_adoption").completed_at is None
    later, _ = _project("smb", store, 1, day(25), _kept(first, 0, day(16)))
    assert later.state == evaluate(PLANS["smb"], registration("smb"), store.upto(1), day(25))
    assert _status(later.state, "team_adoption").completed_at == day(16)


def _kept(folding: Folding, seq: int, ahead: datetime | None) -> Kept:
    assert folding.state is not None
    return Kept(folding.state, seq, ahead, folding.tallies)


def _status(state: OnboardingState, key: str) -> MilestoneStatus:
    return next(s for s in state.milestones if s.key == key)
