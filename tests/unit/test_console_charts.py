"""The console's chart geometry: bars scale to the tallest, parts lie end to end on a scale
that holds the band, and a timeline puts every moment inside its plot."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.api.console import charts

SIGNED = datetime(2026, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)


def test_bars_scale_to_the_tallest_and_sit_on_the_axis() -> None:
    chart = charts.bar_chart([("0-7", 2), ("7-14", 4), ("14-30", 0)], width=300, height=118)
    half, tall, none = (b.height for b in chart.bars)
    assert tall == 100 and half == 50 and none == 0  # 118 less the 18-pixel label axis
    assert all(round(b.y + b.height, 1) == 100 for b in chart.bars)
    assert [b.label for b in chart.bars] == ["0-7", "7-14", "14-30"]
    assert charts.bar_chart([("a", 0)]).bars[0].height == 0  # nothing to show: no division by 0


def test_stacked_parts_lie_end_to_end_and_hold_the_band() -> None:
    bar = charts.stacked_bar(
        [("handoff", 4), ("setup", 14), ("activation", 14)], (7, 14), width=360
    )
    handoff, setup, activation = bar.segments
    assert (
        handoff.x == 0
        and setup.x == handoff.width
        and activation.x == round(handoff.width + setup.width, 1)
    )
    assert round(activation.x + activation.width) <= 360  # 32 days within 32 × 1.05
    assert bar.band is not None and bar.band[0] < bar.band[1] < activation.x + activation.width
    unknown = charts.stacked_bar([("handoff", 2), ("setup", None), ("activation", -1)], (60, 90))
    assert [s.name for s in unknown.segments] == ["handoff", "activation"]
    assert unknown.segments[1].width == 0  # negative (value before go-live) takes no width
    assert unknown.band is not None and unknown.band[1] < 360  # the band sets the scale


def test_timeline_places_every_moment_inside_the_plot() -> None:
    stage = charts.StageSpan("Kickoff", "exited", SIGNED, SIGNED + 5 * DAY, SIGNED + 7 * DAY, False)
    points = [
        charts.MilestonePoint("Call", "complete", SIGNED + 2 * DAY, SIGNED + 3 * DAY, False),
        charts.MilestonePoint("Sign-off", "not_started", None, SIGNED + 40 * DAY, False),
    ]
    as_of = SIGNED + 20 * DAY
    t = charts.timeline(
        SIGNED,
        as_of,
        [(stage, points)],
        [("go-live", SIGNED + 5 * DAY), ("first value", None)],
        [(SIGNED + 8 * DAY, SIGNED + 10 * DAY), (SIGNED + 15 * DAY, None)],
        width=900,
        label_width=200,
    )
    assert [r.kind for r in t.rows] == ["stage", "milestone", "milestone"]
    xs = [r.due_x for r in t.rows] + [t.rows[1].done_x] + [m.x for m in t.markers]
    assert all(x is not None and 200 <= x <= 900 for x in xs)
    assert t.rows[2].done_x is None  # not done: only its due marker
    assert [m.label for m in t.markers] == ["go-live"]  # first value not reached: no line
    closed, still = t.pauses
    assert closed.x < still.x and still.x + still.width <= 900  # an open pause ends at as_of
    assert t.ticks[0].label == "day 0" and t.ticks[0].x == 200
