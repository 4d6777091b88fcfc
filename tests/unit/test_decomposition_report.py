"""The decomposition report's arithmetic against answers worked out by hand."""

from __future__ import annotations

from shared.reports.decomposition import DecompositionSample, report


def sample(
    group: str,
    handoff: float | None = None,
    setup: float | None = None,
    activation: float | None = None,
    within: bool | None = None,
    on_time: int = 0,
    milestones: int = 12,
) -> DecompositionSample:
    return DecompositionSample(
        group=group,
        spans={"handoff": handoff, "setup": setup, "activation": activation},
        within_band=within,
        milestones_on_time=on_time,
        milestones=milestones,
    )


def test_worked_example_and_percentiles_over_known_spans_only() -> None:
    samples = [
        sample("smb", 4, 14, 14, within=False, on_time=3),  # the articles' 4 + 14 + 14
        sample("smb", 1, 5, None, within=False, on_time=7),
        sample("smb", 2, 6, 3, within=True, on_time=10),
        sample("smb", None, None, None, within=None, on_time=0),  # open, inside its band
    ]
    total, (smb,) = report(samples)
    assert smb.onboardings == 4
    # handoff [1, 2, 4]: p50 rank 2 → 2, p75/p90 rank 3 → 4
    assert smb.spans["handoff"].count == 3
    assert smb.spans["handoff"].percentiles == {50: 2, 75: 4, 90: 4}
    assert smb.spans["setup"].percentiles == {50: 6, 75: 14, 90: 14}
    # activation [3, 14]: p50 rank 1 → 3, p75 rank 2 → 14
    assert smb.spans["activation"].count == 2
    assert smb.spans["activation"].percentiles == {50: 3, 75: 14, 90: 14}
    # in band 1 of the 3 settled (the open one is left out); 20 of 48 milestones on time
    assert (smb.onboarding_completion.numerator, smb.onboarding_completion.denominator) == (1, 3)
    assert smb.milestone_completion.value == 20 / 48
    assert total.group == "all" and total.milestone_completion == smb.milestone_completion


def test_groups_are_sorted_and_add_up_to_the_total() -> None:
    samples = [
        sample("mid_market", 3, within=True, on_time=2, milestones=10),
        sample("smb", within=False, on_time=1),
        sample("enterprise", 9, 30, within=None, on_time=0, milestones=14),
    ]
    total, groups = report(samples)
    assert [g.group for g in groups] == ["enterprise", "mid_market", "smb"]
    assert total.onboardings == sum(g.onboardings for g in groups) == 3
    assert total.milestone_completion.numerator == 3
    assert total.milestone_completion.denominator == 36
    assert total.onboarding_completion.denominator == 2  # enterprise's is not settled yet
    assert total.spans["handoff"].percentiles[50] == 3  # [3, 9] → rank 1


def test_an_empty_group_has_no_figures_rather_than_zeros() -> None:
    total, groups = report([])
    assert groups == [] and total.onboardings == 0
    assert total.onboarding_completion.value is None and total.milestone_completion.value is None
    assert total.spans["setup"].count == 0 and total.spans["setup"].percentiles[50] is None
