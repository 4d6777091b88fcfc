"""Query filters shared by the list, report and escalation routes: checked against the
configured plans so a typo is a 422 naming the known values, not an empty page; the
cohort as the filters' signature range; and the paging parameters they share."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, TypedDict

from fastapi import Depends, Query
from pydantic import AfterValidator

from services.api.dependencies import RuntimeDep
from services.api.errors import ApiError
from services.api.params import TextFilter, month_range
from shared.domain.plans import Plan
from shared.storage.projections import ProjectionFilter


def cohort_month(value: str) -> str:
    """A ``YYYY-MM`` cohort within the API's calendar (a ``ValueError`` otherwise)."""
    month_range(value)  # a month outside the API's calendar is refused here, as a 422
    return value


Cohort = Annotated[
    Annotated[str, AfterValidator(cohort_month)] | None,
    Query(
        pattern=r"^\d{4}-(0[1-9]|1[0-2])$",
        description="signature-month cohort, YYYY-MM (UTC), 1970-01 to 2999-12",
    ),
]
Filter = Annotated[TextFilter | None, Query()]
Limit = Annotated[int, Query(ge=1, le=200)]
Cursor = Annotated[
    str | None, Query(max_length=2048, description="next_cursor of the previous page")
]


def known(
    plans: Mapping[str, Plan],
    *,
    segment: str | None = None,
    plan: str | None = None,
    stage: str | None = None,
) -> None:
    """422 when a segment, plan or stage filter names nothing any configured plan has."""
    values = plans.values()
    _known("segment", segment, {p.segment for p in values})
    _known("plan", plan, {p.key for p in values})
    _known("stage", stage, {s.key for p in values for s in p.stages})


def _known(name: str, value: str | None, choices: set[str]) -> None:
    if value is not None and value not in choices:
        listed = ", ".join(sorted(choices))
        raise ApiError(422, "invalid_request", f"unknown {name} '{value}' (known: {listed})")


class CohortBounds(TypedDict):
    """The signature range of a cohort, as the list and report filters name it."""

    signed_from: datetime | None
    signed_before: datetime | None


def cohort_bounds(cohort: str | None) -> CohortBounds:
    """``YYYY-MM`` (already checked by ``Cohort``) → its signature range in UTC."""
    if cohort is None:
        return CohortBounds(signed_from=None, signed_before=None)
    start, end = month_range(cohort)
    return CohortBounds(signed_from=start, signed_before=end)


def _report_filter(
    runtime: RuntimeDep,
    segment: Filter = None,
    plan: Filter = None,
    csm: Filter = None,
    cohort: Cohort = None,
) -> ProjectionFilter:
    """The filters every grouped report takes (segment, plan, CSM, cohort), checked against
    the configured plans."""
    known(runtime.plans, segment=segment, plan=plan)
    return ProjectionFilter(segment=segment, plan_key=plan, csm=csm, **cohort_bounds(cohort))


ReportFilter = Annotated[ProjectionFilter, Depends(_report_filter)]
