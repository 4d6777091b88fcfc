"""Chart geometry for server-rendered SVG: pure functions from figures to rectangles and
ticks, drawn by ``templates/charts.html``. No script, no chart library, nothing to load."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

DAY = timedelta(days=1)


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    value: float


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    bars: tuple[Bar, ...]
    peak: float


def bar_chart(
    items: Sequence[tuple[str, float]], width: int = 360, height: int = 120, axis: int = 18
) -> BarChart:
    """Vertical bars side by side; the tallest fills the height above the label axis."""
    peak = max((value for _, value in items), default=0) or 1
    slot = width / max(len(items), 1)
    plot = height - axis
    bars = tuple(
        Bar(
            x=round(n * slot + slot * 0.1, 1),
            y=round(plot - plot * value / peak, 1),
            width=round(slot * 0.8, 1),
            height=round(plot * value / peak, 1),
            label=label,
            value=value,
        )
        for n, (label, value) in enumerate(items)
    )
    return BarChart(width, height, bars, peak)


@dataclass(frozen=True)
class Segment:
    name: str
    x: float
    width: float
    days: float


@dataclass(frozen=True)
class StackedBar:
    width: int
    segments: tuple[Segment, ...]
    band: tuple[float, float] | None  # x of the band's lower and upper bound
    scale_days: float


def stacked_bar(
    parts: Sequence[tuple[str, float | None]],
    band_days: tuple[float, float] | None = None,
    width: int = 360,
) -> StackedBar:
    """Known parts laid end to end on a day scale wide enough for them and the band."""
    # A part can be negative (first value before go-live): it takes no width then.
    known = [(name, max(days, 0.0)) for name, days in parts if days is not None]
    total = sum(days for _, days in known)
    scale = max(total, band_days[1] if band_days else 0, 1.0) * 1.05
    segments, x = [], 0.0
    for name, days in known:
        w = width * days / scale
        segments.append(Segment(name, round(x, 1), round(w, 1), days))
        x += w
    band = (
        (round(width * band_days[0] / scale, 1), round(width * band_days[1] / scale, 1))
        if band_days
        else None
    )
    return StackedBar(width, tuple(segments), band, scale)


@dataclass(frozen=True)
class Span:
    x: float
    width: float


@dataclass(frozen=True)
class Row:
    label: str
    kind: str  # stage | milestone
    state: str  # the stage's state or the milestone's progress
    bar: Span | None  # a stage's time in it
    done_x: float | None  # a milestone's completion
    due_x: float | None  # the SLA moment
    late: bool


@dataclass(frozen=True)
class Marker:
    label: str
    x: float


@dataclass(frozen=True)
class Tick:
    label: str
    x: float


@dataclass(frozen=True)
class Timeline:
    width: int
    label_width: int
    rows: tuple[Row, ...]
    markers: tuple[Marker, ...]
    pauses: tuple[Span, ...]
    ticks: tuple[Tick, ...]
    row_height: int

    @property
    def height(self) -> int:
        return (len(self.rows) + 2) * self.row_height


@dataclass(frozen=True)
class StageSpan:
    title: str
    state: str
    entered_at: datetime | None
    exited_at: datetime | None
    due_at: datetime | None
    overdue: bool


@dataclass(frozen=True)
class MilestonePoint:
    title: str
    progress: str
    completed_at: datetime | None
    due_at: datetime | None
    late: bool


def timeline(
    signed_at: datetime,
    as_of: datetime,
    stages: Sequence[tuple[StageSpan, Sequence[MilestonePoint]]],
    markers: Sequence[tuple[str, datetime | None]],
    pauses: Sequence[tuple[datetime, datetime | None]],
    width: int = 900,
    label_width: int = 260,
) -> Timeline:
    """Stages and their milestones on one day axis from signature to past the last moment."""
    moments = [as_of, *(m for _, m in markers if m is not None)]
    for stage, points in stages:
        moments += [t for t in (stage.entered_at, stage.exited_at, stage.due_at) if t]
        moments += [t for p in points for t in (p.completed_at, p.due_at) if t]
    span_days = max((t - signed_at) / DAY for t in moments) * 1.05 + 1
    plot = width - label_width

    def x(t: datetime) -> float:
        return round(label_width + plot * max((t - signed_at) / DAY, 0) / span_days, 1)

    rows: list[Row] = []
    for stage, points in stages:
        bar = None
        if stage.entered_at is not None:
            end = stage.exited_at or as_of
            bar = Span(x(stage.entered_at), max(x(end) - x(stage.entered_at), 2))
        rows.append(
            Row(
                stage.title,
                "stage",
                stage.state,
                bar,
                None,
                x(stage.due_at) if stage.due_at else None,
                stage.overdue,
            )
        )
        for p in points:
            rows.append(
                Row(
                    p.title,
                    "milestone",
                    p.progress,
                    None,
                    x(p.completed_at) if p.completed_at else None,
                    x(p.due_at) if p.due_at else None,
                    p.late,
                )
            )
    step = _tick_step(span_days)
    ticks = tuple(
        Tick(f"day {d}", x(signed_at + d * DAY)) for d in range(0, int(span_days) + 1, step)
    )
    return Timeline(
        width=width,
        label_width=label_width,
        rows=tuple(rows),
        markers=tuple(Marker(label, x(at)) for label, at in markers if at is not None),
        pauses=tuple(Span(x(start), max(x(end or as_of) - x(start), 2)) for start, end in pauses),
        ticks=ticks,
        row_height=20,
    )


def _tick_step(span_days: float) -> int:
    for step in (1, 2, 7, 14, 30, 60, 90):
        if span_days / step <= 12:
            return step
    return 180
