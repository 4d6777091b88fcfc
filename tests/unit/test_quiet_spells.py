"""Quiet spells skip the pause clock for a spell that activity ends before it could fire.

That holds because ``sla.shift`` only ever pushes a moment later (or holds it open): the
spells found equal the plain walk that shifts every spell's fire moment first, for any
activity and pauses."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.domain.escalations import Context, _quiet_spells
from shared.domain.plans import Calendar
from shared.domain.sla import Pause, shift

from .factories import SIGNED, day

EXAMPLES = 500 if os.environ.get("CI") == "true" else 150

moment = st.floats(min_value=-5.0, max_value=90.0, allow_nan=False).map(lambda d: day(round(d, 3)))


@st.composite
def pause_list(draw: st.DrawFn) -> tuple[Pause, ...]:
    """Pauses in time order, the last one possibly still open."""
    starts = sorted(draw(st.lists(moment, max_size=4, unique=True)))
    found = []
    for i, start in enumerate(starts):
        following = starts[i + 1] if i + 1 < len(starts) else None
        length = draw(st.floats(min_value=0.0, max_value=20.0, allow_nan=False))
        end = start + timedelta(days=length)
        if following is None and draw(st.booleans()):
            found.append(Pause(start))
        else:
            found.append(Pause(start, min(end, following) if following else end))
    return tuple(found)


def plain_spells(
    ctx: Context, times: Sequence[datetime], quiet: timedelta
) -> Iterator[tuple[datetime, datetime | None, datetime]]:
    """Every spell's fire moment shifted first, then compared with the next activity."""
    starts = [ctx.signed_at, *(t for t in times if t > ctx.signed_at)]
    for i, start in enumerate(starts):
        fire = shift(start + quiet, ctx.pauses, start=start)
        if fire is None:
            continue
        following = starts[i + 1] if i + 1 < len(starts) else None
        if following is not None and following <= fire:
            continue
        yield start, following, fire


def context(pauses: tuple[Pause, ...]) -> Context:
    return Context(SIGNED, day(100), {}, {}, None, [], None, pauses, Calendar())


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.lists(moment, max_size=40), pause_list(), st.integers(1, 21))
def test_quiet_spells_equal_the_plain_walk(
    times: list[datetime], pauses: tuple[Pause, ...], quiet_days: int
) -> None:
    ctx, quiet = context(pauses), timedelta(days=quiet_days)
    ordered = sorted(set(times))
    assert list(_quiet_spells(ctx, ordered, quiet)) == list(plain_spells(ctx, ordered, quiet))


@settings(max_examples=EXAMPLES, deadline=None)
@given(moment, pause_list(), st.one_of(st.none(), moment))
def test_pauses_only_push_a_due_moment_later(
    due: datetime, pauses: tuple[Pause, ...], start: datetime | None
) -> None:
    shifted = shift(due, pauses, start=start)
    assert shifted is None or shifted >= due
    assert shift(due, (), start=start) == due
