"""The demo history's stored states, exported from this checkout and, with ``--reference``,
from another one, byte for byte: the same answers before and after a change of the
projection's code.

  deploy/local/with-servers.sh .venv/bin/python bench/replay_states.py
      [--reference CHECKOUT] [--accounts A]                                (or: make bench)

Each checkout, in its own virtualenv (``CHECKOUT/.venv``) and a fresh PostgreSQL database:
the demo history (``demo_data.generate``, seed 7, A accounts over 120 days) through the
real ingest and milestones consumers at one fixed moment, then ``firstvalue replay`` at
that moment, then ``firstvalue replay`` under plans with smb's TTFV target tightened (the
helpers of ``tests/e2e/test_plans_diff_replay.py``, which every checkout since the plans
diff has). The export holds every onboarding's stored state after each of the three
steps, keys sorted; the two exports must be equal. The reference checkout needs none of
this file: it is run as this script's ``--export`` step with the checkout's code first on
the path. Not a speed bench: it prints how long each export took, for scale only.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
STEPS = ("ingested", "replayed", "tightened")  # the export's stored states, step by step


def export(url: str, out: Path, accounts: int) -> None:
    """Run in the checkout that is the working directory: its code, its test helpers."""
    sys.path.insert(0, os.getcwd())
    import orjson

    from firstvalue import demo_data
    from shared.plan_files import load_plans
    from tests.e2e.test_plans_diff_replay import (
        DEFAULTS,
        NOW,
        cli,
        ingest,
        stored,
        tightened_plans,
    )

    plans = load_plans([DEFAULTS])
    history = demo_data.generate(plans, NOW, accounts=accounts, days=120)
    asyncio.run(ingest(url, plans, history))
    ingested = asyncio.run(stored(url))
    cli(url, "replay", "--now", NOW.isoformat())
    replayed = asyncio.run(stored(url))
    with tempfile.TemporaryDirectory() as folder:
        cli(url, "replay", "--now", NOW.isoformat(), plans=tightened_plans(Path(folder) / "v2"))
    tightened = asyncio.run(stored(url))
    messages = orjson.dumps(history.messages, option=orjson.OPT_SORT_KEYS)
    document = {
        "history": {
            "messages": len(history.messages),
            "facts": len(history.facts),
            "sha256": hashlib.sha256(messages).hexdigest(),
        },
        "ingested": ingested,
        "replayed": replayed,
        "tightened": tightened,
    }
    out.write_bytes(orjson.dumps(document, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2))


def _run_export(checkout: Path, url: str, out: Path, accounts: int) -> float:
    """This script's ``--export`` step in ``checkout`` with its own interpreter; seconds."""
    python = checkout / ".venv" / "bin" / "python"
    if not python.exists():
        sys.exit(f"{checkout}: no .venv/bin/python (make dev-venv there first)")
    started = time.monotonic()
    command = [str(python), str(HERE), "--export", url, str(out), "--accounts", str(accounts)]
    subprocess.run(command, cwd=checkout, check=True)
    return time.monotonic() - started


def _differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Where two exports differ: the step and onboarding ids (at most 10)."""
    found = []
    for step in STEPS:
        if (n := len(a[step])) != len(b[step]):
            found.append(f"{step}: {n} onboardings here, {len(b[step])} there")
        found += [f"{step}: {i}" for i in sorted(a[step]) if a[step][i] != b[step].get(i)]
    return found[:10]


async def main(reference: Path | None, accounts: int) -> None:
    import orjson

    from shared.storage.scratch import scratch_database

    server = os.environ.get("FIRSTVALUE_TEST_DATABASE_URL")
    if not server:
        sys.exit("set FIRSTVALUE_TEST_DATABASE_URL (deploy/local/with-servers.sh does)")
    checkouts = [HERE.parent.parent] + ([reference.resolve()] if reference else [])
    exports: list[dict[str, Any]] = []
    for checkout in checkouts:
        async with scratch_database(server, "fv_states") as url:
            with tempfile.TemporaryDirectory() as folder:
                out = Path(folder) / "states.json"
                seconds = _run_export(checkout, url, out, accounts)
                data = out.read_bytes()
        found = orjson.loads(data)
        exports.append(found)
        changed = sum(found["replayed"][i] != found["tightened"].get(i) for i in found["replayed"])
        print(
            f"{checkout}: {len(found['ingested'])} onboardings, "
            f"{found['history']['messages']:,} messages; export sha256 "
            f"{hashlib.sha256(data).hexdigest()[:16]}, {len(data):,} bytes, {seconds:.1f} s; "
            f"the tightened plans changed {changed}"
        )
    here = exports[0]
    unchanged = sum(here["ingested"][i] == here["replayed"].get(i) for i in here["ingested"])
    print(f"replay at the ingestion's moment left {unchanged} of {len(here['ingested'])} unchanged")
    if len(exports) == 2:
        if exports[0]["history"] != exports[1]["history"]:
            sys.exit("the two checkouts generate different demo histories: not comparable")
        differences = _differences(exports[0], exports[1])
        if differences:
            sys.exit("the exports differ:\n  " + "\n  ".join(differences))
        print("the exports are equal: every stored state after ingest, replay, tightened replay")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", type=Path, help="another checkout to compare with")
    parser.add_argument("--accounts", type=int, default=320, help="demo accounts (default 320)")
    parser.add_argument("--export", nargs=2, metavar=("URL", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.accounts < 1:
        parser.error("--accounts must be at least 1")
    if args.export:
        export(args.export[0], Path(args.export[1]), args.accounts)
    else:
        asyncio.run(main(args.reference, args.accounts))
