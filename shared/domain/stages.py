"""Stage gating: each stage exits at the later of its own criterion and its entry.

Stage 0 is entered at signature and stage *i* at the exit of stage *i-1*, so evidence that
arrives early is kept and counts the moment the gate opens. A stage's criterion is met when
all of ``exit_all`` are complete (the last of them) and/or any of ``exit_any`` is (the first
of them); with both lists, the later of the two.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from shared.domain.calendar import add_days
from shared.domain.plans import Calendar, Stage
from shared.domain.sla import Pause, shift
from shared.domain.state import StageState, StageStatus

Completions = Mapping[str, datetime | None]


def criterion_met_at(stage: Stage, completions: Completions) -> datetime | None:
    """When the stage's exit criterion was first met (``None`` if not yet)."""
    moments: list[datetime] = []
    if stage.exit_all:
        done = [completions.get(key) for key in stage.exit_all]
        if any(at is None for at in done):
            return None
        moments.append(max(at for at in done if at is not None))
    if stage.exit_any:
        done_any = [at for key in stage.exit_any if (at := completions.get(key)) is not None]
        if not done_any:
            return None
        moments.append(min(done_any))
    return max(moments) if moments else None


def stage_status(
    stage: Stage,
    entered_at: datetime | None,
    completions: Completions,
    pauses: Iterable[Pause],
    calendar: Calendar,
    now: datetime,
) -> StageStatus:
    """One stage's gate, SLA (entry + ``max_days``, pause-shifted) and overdue flag."""
    met = criterion_met_at(stage, completions)
    exited = max(met, entered_at) if met is not None and entered_at is not None else None
    due = None
    if entered_at is not None:
        nominal = add_days(entered_at, stage.max_days, calendar, stage.business_days)
        due = shift(nominal, pauses, start=entered_at)
    state: StageState = (
        "pending" if entered_at is None else "active" if exited is None else "exited"
    )
    return StageStatus(
        key=stage.key,
        title=stage.title,
        owner=stage.owner,
        state=state,
        entered_at=entered_at,
        criterion_met_at=met,
        exited_at=exited,
        due_at=due,
        overdue=state == "active" and due is not None and now >= due,
    )
