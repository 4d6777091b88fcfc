"""The annotated plan in README.md is one users copy: it must load and mean what it says."""

from __future__ import annotations

import re
from pathlib import Path

from shared.domain.plan_loader import load_plan_text

README = Path(__file__).resolve().parents[2] / "README.md"


def _readme_plan_text() -> str:
    blocks = re.findall(r"```yaml\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    (plan,) = [b for b in blocks if b.startswith("key:")]
    return plan


def test_readme_plan_example_loads_and_passes_lint() -> None:
    plan = load_plan_text(_readme_plan_text(), "README.md")

    assert plan.key == "smb"
    assert plan.ttfv_target.max_days == 14
    assert plan.milestone("first_report_delivered").kind == "outcome"
    assert plan.milestone("users_logged_in").rule.within.anchor == "go_live"
    assert [e.key for e in plan.escalations] == ["technical_completion_late", "account_silent"]
