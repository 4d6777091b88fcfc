"""Plans from files: a plan file or folder given on the command line, and the packaged
defaults. The reading lives here, outside the pure core, which only parses text
(``shared.domain.plan_loader.load_plan_text``)."""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from importlib import resources
from os import PathLike
from pathlib import Path

from shared.config import Settings
from shared.domain.plan_loader import PlanError, load_plan_text
from shared.domain.plans import Plan


def load_plan_file(path: str | PathLike[str]) -> Plan:
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise PlanError(str(file), 1, "?", "(file)", f"cannot read: {error}") from error
    return load_plan_text(text, str(file))


def load_plans(paths: Iterable[str | PathLike[str]]) -> dict[str, Plan]:
    """Plans by key from files and folders (every ``*.yaml``/``*.yml`` in a folder)."""
    if isinstance(paths, str | PathLike):
        paths = [paths]
    plans: dict[str, Plan] = {}
    origin: dict[str, str] = {}
    for path in paths:
        base = Path(path)
        files = sorted([*base.glob("*.yaml"), *base.glob("*.yml")]) if base.is_dir() else [base]
        for file in files:
            plan = load_plan_file(file)
            if plan.key in plans:
                raise PlanError(
                    str(file),
                    1,
                    plan.key,
                    "key",
                    f"plan defined twice (also in {origin[plan.key]})",
                )
            plans[plan.key], origin[plan.key] = plan, str(file)
    return plans


@cache
def _packaged() -> tuple[Plan, ...]:
    folder = resources.files("shared.default_plans")
    found = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            text = entry.read_text(encoding="utf-8")
            found.append(load_plan_text(text, f"shared/default_plans/{entry.name}"))
    return tuple(found)


def default_plans() -> dict[str, Plan]:
    """The packaged ``smb``, ``mid_market`` and ``enterprise`` plans, by key."""
    return {plan.key: plan for plan in _packaged()}


def configured_plans(settings: Settings) -> dict[str, Plan]:
    """The plans in ``settings.plans`` (a file or folder), else the packaged defaults."""
    return load_plans([settings.plans]) if settings.plans else default_plans()
