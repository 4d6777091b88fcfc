"""The TTFV report's arithmetic against answers worked out by hand (nearest-rank percentiles)."""

from __future__ import annotations

import pytest

from shared.reports.ttfv import (
    AGE_EDGES,
    HISTOGRAM_EDGES,
    TTFVSample,
    buckets,
    distribution,
    percentile,
    report,
)


def reached(group: str, days: float, breach: str = "none") -> TTFVSample:
    return TTFVSample(group=group, ttfv_days=days, age_days=days + 100, breach=breach)


def still_open(group: str, age: float, breach: str = "none") -> TTFVSample:
    return TTFVSample(group=group, ttfv_days=None, age_days=age, breach=breach)


def test_nearest_rank_percentiles_of_six_values() -> None:
    values = [3.0, 5.0, 10.0, 12.0, 20.0, 30.0]
    # ranks ceil(.5*6)=3, ceil(.75*6)=5, ceil(.9*6)=6
    assert [percentile(values, p) for p in (50, 75, 90, 100)] == [10.0, 20.0, 30.0, 30.0]


def test_nearest_rank_percentiles_of_ten_values() -> None:
    values = [float(v) for v in range(1, 11)]
    # ranks 5, 8 (7.5 up), 9
    assert [percentile(values, p) for p in (50, 75, 90)] == [5.0, 8.0, 9.0]


def test_percentile_of_one_value_is_that_value_and_of_none_is_none() -> None:
    assert percentile([4.5], 50) == 4.5 and percentile([4.5], 90) == 4.5
    assert percentile([], 50) is None
    with pytest.raises(ValueError):
        percentile([1.0], 0)


def test_buckets_are_right_closed() -> None:
    got = buckets([0.0, 7.0, 7.01, 14.0, 14.5, 200.0], HISTOGRAM_EDGES)
    counts = {b.label: b.count for b in got}
    assert counts["0-7"] == 2  # 0 and exactly 7
    assert counts["7-14"] == 2  # 7.01 and exactly 14
    assert counts["14-30"] == 1
    assert counts["180+"] == 1
    assert sum(counts.values()) == 6
    assert [b.label for b in buckets([], AGE_EDGES)] == ["0-14", "14-30", "30-60", "60-90", "90+"]


def test_group_distribution_counts_reached_open_breaches_and_ages() -> None:
    samples = [
        reached("smb", 3),
        reached("smb", 5),
        reached("smb", 10),
        reached("smb", 12),
        reached("smb", 20, "breach"),
        reached("smb", 30, "severe"),
        still_open("smb", 5),
        still_open("smb", 20, "breach"),
        still_open("smb", 95, "severe"),
    ]
    got = distribution("smb", samples)
    assert (got.onboardings, got.reached, got.open) == (9, 6, 3)
    assert got.percentiles == {50: 10.0, 75: 20.0, 90: 30.0}
    assert got.max_days == 30.0
    assert got.breaches == {"none": 5, "breach": 2, "severe": 2}
    assert [b.count for b in got.open_by_age] == [1, 1, 0, 0, 1]
    assert [b.count for b in got.histogram] == [2, 2, 2, 0, 0, 0, 0, 0, 0]


def test_report_groups_sorted_with_an_overall_total() -> None:
    total, groups = report([reached("b", 40), reached("a", 2), still_open("a", 1), reached("b", 4)])
    assert [g.group for g in groups] == ["a", "b"]
    assert (total.onboardings, total.reached, total.open) == (4, 3, 1)
    assert total.percentiles[50] == 4.0 and total.max_days == 40.0
    assert groups[0].percentiles == {50: 2.0, 75: 2.0, 90: 2.0}
    assert groups[1].percentiles[50] == 4.0 and groups[1].percentiles[75] == 40.0


def test_a_group_that_reached_nothing_has_no_percentiles() -> None:
    got = distribution("x", [still_open("x", 3)])
    assert got.percentiles == {50: None, 75: None, 90: None} and got.max_days is None
    assert got.open == 1 and sum(b.count for b in got.histogram) == 0
