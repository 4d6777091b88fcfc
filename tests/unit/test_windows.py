"""Rule windows: anchored to go-live, and rolling."""

from __future__ import annotations

from shared.domain.evaluate import evaluate

from .factories import (
    PLANS,
    day,
    event,
    evidence,
    kickoff_done,
    registration,
    setup_done,
)

SMB = PLANS["smb"]
GO_LIVE = 5  # setup_done(5)


def _milestone(facts, now: float, key: str):
    state = evaluate(SMB, registration(), facts, day(now))
    return next(m for m in state.milestones if m.key == key)


def _logins(at: float, users: range) -> list:
    return [event(at, "Logged In", f"u{n:02d}") for n in users]


def test_seven_of_ten_users_within_21_days_of_go_live_completes() -> None:
    facts = [
        *kickoff_done(1),
        *setup_done(GO_LIVE),
        *_logins(GO_LIVE + 3, range(6)),
        event(GO_LIVE + 10, "Logged In", "u06"),
    ]
    logged_in = _milestone(facts, 40, "users_logged_in")
    assert logged_in.progress == "complete"
    assert logged_in.completed_at == day(GO_LIVE + 10)
    assert (logged_in.count, logged_in.distinct_users) == (7, 7)
    assert logged_in.window_opens_at == day(GO_LIVE)
    assert logged_in.window_closes_at == day(GO_LIVE + 21)


def test_logins_before_go_live_do_not_count() -> None:
    facts = [
        *kickoff_done(1),
        *_logins(2, range(3, 10)),
        *setup_done(GO_LIVE),
        *_logins(GO_LIVE + 1, range(3)),
    ]
    logged_in = _milestone(facts, 40, "users_logged_in")
    assert logged_in.progress == "in_progress"
    assert logged_in.distinct_users == 3


def test_logins_after_the_window_do_not_count() -> None:
    facts = [
        *kickoff_done(1),
        *setup_done(GO_LIVE),
        *_logins(GO_LIVE + 1, range(6)),
        event(GO_LIVE + 22, "Logged In", "u06"),
    ]
    logged_in = _milestone(facts, 40, "users_logged_in")
    assert logged_in.progress == "in_progress"
    assert (logged_in.count, logged_in.distinct_users) == (6, 6)


def test_nothing_counts_before_go_live_is_known() -> None:
    facts = [*kickoff_done(1), *_logins(2, range(10))]
    logged_in = _milestone(facts, 4, "users_logged_in")
    assert (logged_in.progress, logged_in.count, logged_in.window_opens_at) == (
        "not_started",
        0,
        None,
    )


def test_rolling_window_needs_the_users_inside_any_seven_days() -> None:
    spread = [*kickoff_done(1), *[event(2 * n + 1, "Logged In", f"u{n:02d}") for n in range(5)]]
    assert _milestone(spread, 40, "team_adoption").progress != "complete"
    close = [*kickoff_done(1), *[event(10 + n, "Logged In", f"u{n:02d}") for n in range(5)]]
    adoption = _milestone(close, 40, "team_adoption")
    assert adoption.completed_at == day(14)
    assert adoption.distinct_users == 5


def test_rolling_progress_counts_the_last_seven_days() -> None:
    facts = [*kickoff_done(1), *_logins(10, range(2)), *_logins(20, range(2, 5))]
    adoption = _milestone(facts, 22, "team_adoption")
    assert (adoption.progress, adoption.distinct_users) == ("in_progress", 3)


def test_manual_evidence_completes_at_the_earlier_of_rule_and_confirmation() -> None:
    by_evidence = _milestone(
        [evidence(2, "kickoff_call"), event(4, "Kickoff Call Completed")], 10, "kickoff_call"
    )
    assert by_evidence.completed_at == day(2)
    assert len(by_evidence.confirmations) == 1
    assert by_evidence.event_ids == ()
    by_event = _milestone(
        [evidence(6, "kickoff_call"), event(4, "Kickoff Call Completed")], 10, "kickoff_call"
    )
    assert by_event.completed_at == day(4) and len(by_event.event_ids) == 1


def test_evidence_lists_at_most_50_event_ids_including_the_completing_one() -> None:
    facts = [*kickoff_done(1), *setup_done(GO_LIVE)]
    facts += [event(GO_LIVE + 1 + n / 100, "Logged In", f"u{n % 3:02d}") for n in range(80)]
    facts += _logins(GO_LIVE + 2, range(3, 7))
    logged_in = _milestone(facts, 40, "users_logged_in")
    assert logged_in.progress == "complete"
    assert len(logged_in.event_ids) == 50
    assert logged_in.count == 84
