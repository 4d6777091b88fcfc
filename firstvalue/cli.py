"""The ``firstvalue`` command: the embedded all-in-one, each service alone, plans, demo data.

Settings are read once here (``FIRSTVALUE_*``) and passed down; each command is a thin shell
over the services and the core.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import signal
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar

import orjson
import typer
import uvicorn
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from firstvalue import demo_data, records
from firstvalue.plans_diff import KINDS, DiffReport
from shared.config import Settings, ingest_auth_refusal, load_settings
from shared.domain.plan_loader import PlanError
from shared.domain.plans import Plan
from shared.plan_files import load_plan_file

T = TypeVar("T")

app = typer.Typer(
    name="firstvalue",
    help="Onboarding is done when the customer has a result, not when your checklist is.",
    no_args_is_help=True,
    add_completion=False,
)
plans_app = typer.Typer(help="Onboarding plans (YAML).", no_args_is_help=True)
app.add_typer(plans_app, name="plans")
console = Console()
errors = Console(stderr=True)


class ExportFormat(enum.StrEnum):
    """``backfill --format``: the vendor shape of an export's lines."""

    auto = "auto"
    segment = "segment"
    mixpanel = "mixpanel"


PortOption = Annotated[
    int | None, typer.Option("--port", help="HTTP port (default FIRSTVALUE_API_PORT or 8000).")
]


def _settings(**overrides: Any) -> Settings:
    try:
        return load_settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        errors.print(f"[red]Invalid settings:[/red] {exc}")
        raise typer.Exit(2) from exc


@app.command()
def run(
    port: PortOption = None,
    no_demo: Annotated[
        bool,
        typer.Option(
            "--no-demo",
            help="No demo data: your own onboardings, through the HTTP ingest and the API.",
        ),
    ] = False,
) -> None:
    """Everything in one process: SQLite (or FIRSTVALUE_DATABASE_URL), in-memory bus, the API
    and console on 127.0.0.1; demo data unless --no-demo."""
    from firstvalue import embedded

    settings = _durable(_settings(api_port=port))
    embedded.run(settings, console, plans=_configured_plans(settings), demo=not no_demo)


@app.command()
def migrate() -> None:
    """Apply the database migrations to FIRSTVALUE_DATABASE_URL."""
    from shared.storage import migrate_sync

    settings = _settings()
    migrate_sync(settings.database_url)
    console.print("Database is at the latest migration.")


@app.command()
def api(port: PortOption = None) -> None:
    """Serve the REST API and the HTTP ingest (needs Kafka for ingest)."""
    from services.api.app import create_app
    from services.api.http_server import uvicorn_options

    settings = _settings(api_port=port)
    plans = _configured_plans(settings)  # a refused plan is the first thing to say
    _refuse_open_ingest(_durable(settings))
    app = create_app(settings, plans=plans)
    uvicorn.run(
        app,
        host=settings.api_host,
        port=settings.api_port,
        server_header=False,
        **uvicorn_options(),
    )


@app.command()
def ingest() -> None:
    """Consume analytics.events into facts (needs Kafka)."""
    from firstvalue import standalone

    settings = _durable(_kafka_settings())
    _refuse_open_ingest(settings)
    _until_signal(standalone.ingest(settings))


@app.command()
def milestones() -> None:
    """Consume onboarding.facts, project onboardings and fire SLA timers (needs Kafka)."""
    from firstvalue import standalone

    _until_signal(standalone.milestones(_durable(_kafka_settings())))


@plans_app.command("check")
def plans_check(
    files: Annotated[list[Path], typer.Argument(help="Plan YAML files.", exists=False)],
) -> None:
    """Load and lint plans: OK per plan, or the file, line and reason it was refused."""
    failed = False
    for path in files:
        try:
            plan = load_plan_file(path)
        except (PlanError, OSError) as exc:
            _print_plan_failure(path, exc)
            failed = True
        else:
            console.print(
                f"[green]OK[/green]   {path}: plan '{plan.key}' v{plan.version} "
                f"({len(plan.stages)} stages, {len(plan.milestones)} milestones)",
                highlight=False,
                soft_wrap=True,
            )
    if failed:
        raise typer.Exit(1)


@plans_app.command("diff")
def plans_diff_command(
    old: Annotated[Path, typer.Argument(help="Plans in use now: a YAML file or a folder of them.")],
    new: Annotated[Path, typer.Argument(help="Proposed plans: a YAML file or a folder of them.")],
    now: Annotated[
        str | None, typer.Option(help="Evaluate as of this ISO-8601 moment (default: now).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Which onboardings in FIRSTVALUE_DATABASE_URL would change stage, TTFV or escalations
    if NEW replaced OLD. A dry run: nothing is written."""
    from firstvalue import replay

    settings = _settings()
    old_plans, new_plans = _load_plans(old), _load_plans(new)
    moment = _moment(now)
    report = _run_on_database(
        settings,
        lambda sessions: _counted(
            sessions,
            "Evaluating onboardings",
            lambda tick: replay.diff_database(sessions, old_plans, new_plans, moment, tick),
        ),
    )
    if as_json:
        console.out(orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2).decode())
        return
    _print_diff(report)


@app.command("replay")
def replay_command(
    now: Annotated[
        str | None, typer.Option(help="Re-derive state as of this ISO-8601 moment (default: now).")
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1, help="Processes replaying disjoint id ranges at once (PostgreSQL; a core each)."
        ),
    ] = 1,
) -> None:
    """Re-derive every onboarding's state from its facts under the current plans
    (FIRSTVALUE_PLANS), then publish the transitions that causes."""
    from firstvalue import replay
    from shared.bus.factory import create_bus
    from shared.projection.publisher import relay_outbox

    settings = _settings()
    plans = _configured_plans(settings)
    moment = _moment(now)

    async def main(sessions: async_sessionmaker[AsyncSession]) -> tuple[int, int, int | None]:
        projected = await _counted(
            sessions,
            "Replaying onboardings",
            lambda tick: replay.replay_all(sessions, plans, moment, tick, workers=workers),
        )
        total = await replay.count_onboardings(sessions)
        if not settings.kafka_bootstrap_servers:
            return projected, total, None  # no broker: the running service relays them
        bus = create_bus(settings, client_id="firstvalue-replay")
        await bus.start()
        try:
            return projected, total, await relay_outbox(sessions, bus)
        finally:
            await bus.stop()

    projected, total, published = _run_on_database(settings, main)
    versions = ", ".join(f"{p.key} v{p.version}" for p in plans.values())
    console.print(f"Replayed {projected} onboardings under {versions}.", highlight=False)
    if projected < total:
        errors.print(
            f"[yellow]{total - projected} onboardings were not replayed: their plan "
            "is not among FIRSTVALUE_PLANS (named in the log above).[/yellow]"
        )
    if published is None:
        console.print(
            "No Kafka configured: the transitions wait in the outbox; the running "
            "service (`firstvalue run`) publishes them on its next timer tick."
        )
    else:
        console.print(f"Published {published} transitions and escalations from the outbox.")


@app.command("prune")
def prune_command(
    older_than_days: Annotated[
        float,
        typer.Option(min=1, help="Delete bookkeeping rows created more than this many days ago."),
    ] = 30.0,
) -> None:
    """Delete stored Idempotency-Key responses and settled (delivered or failed) webhook
    deliveries older than the cut-off; facts and pending deliveries are never touched."""
    from shared.storage.retention import Pruned, prune

    cutoff = datetime.now(UTC) - timedelta(days=older_than_days)

    async def main(sessions: async_sessionmaker[AsyncSession]) -> Pruned:
        async with sessions() as session, session.begin():
            return await prune(session, cutoff)

    pruned = _run_on_database(_settings(), main)
    console.print(
        f"Pruned rows created before {cutoff.isoformat(timespec='seconds')}: "
        f"{pruned.idempotency_keys} idempotency keys, "
        f"{pruned.webhook_deliveries} settled webhook deliveries.",
        highlight=False,
    )


def _configured_plans(settings: Settings) -> dict[str, Plan]:
    """FIRSTVALUE_PLANS (or the packaged plans); a refused plan ends the command with its
    one-line reason (file, line, field), never a traceback."""
    from shared.plan_files import configured_plans

    try:
        plans = configured_plans(settings)
    except (PlanError, OSError) as exc:
        errors.print(f"[red]Plans refused:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from exc
    if not plans:
        errors.print(f"[red]Plans refused:[/red] no plans (*.yaml) in {settings.plans}")
        raise typer.Exit(2)
    return plans


def _load_plans(path: Path) -> dict[str, Plan]:
    from shared.plan_files import load_plans

    try:
        plans = load_plans([path])
    except (PlanError, OSError) as exc:
        _print_plan_failure(path, exc)
        raise typer.Exit(2) from exc
    if not plans:
        errors.print(f"[red]FAIL[/red] {path}: no plans (*.yaml) there", highlight=False)
        raise typer.Exit(2)
    return plans


def _print_plan_failure(path: Path, exc: PlanError | OSError) -> None:
    """A refused plan names its file, line and reason; an unreadable file, why."""
    if isinstance(exc, OSError):
        errors.print(f"[red]FAIL[/red] {path}: {exc.strerror or exc}", highlight=False)
    else:
        errors.print(f"[red]FAIL[/red] {exc}", highlight=False, soft_wrap=True)


def _run_on_database(
    settings: Settings, work: Callable[[async_sessionmaker[AsyncSession]], Awaitable[T]]
) -> T:
    """Run ``work`` with one engine for the command; a database that cannot be read (down,
    not migrated) ends the command with the reason instead of a traceback."""
    from sqlalchemy.exc import DBAPIError

    from shared.storage.engine import create_engine, create_sessionmaker

    async def main() -> T:
        engine = create_engine(settings.database_url, application_name="firstvalue-cli")
        try:
            return await work(create_sessionmaker(engine))
        finally:
            await engine.dispose()

    try:
        return asyncio.run(main())
    except (DBAPIError, OSError) as exc:
        reason = getattr(exc, "orig", None) or exc
        errors.print(
            f"[red]Database error:[/red] {reason}\n(is FIRSTVALUE_DATABASE_URL right, "
            "and migrated? `firstvalue migrate`)",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(2) from exc


async def _counted(
    sessions: async_sessionmaker[AsyncSession],
    label: str,
    work: Callable[[Callable[[int], object]], Awaitable[T]],
) -> T:
    """Run ``work`` with a progress bar over every onboarding (on stderr: stdout stays data)."""
    from firstvalue.replay import count_onboardings

    total = await count_onboardings(sessions)
    with _progress(errors) as progress:
        task = progress.add_task(label, total=total)
        return await work(lambda n: progress.advance(task, n))


def _print_diff(report: DiffReport) -> None:
    table = Table(title="Onboardings that would change", show_lines=False)
    for column in ("onboarding", "account", "plan", "changes", "stage", "TTFV", "escalations"):
        table.add_column(column, overflow="fold", no_wrap=column in ("onboarding", "plan"))
    for d in report.diffs:
        escalations = [f"+ {e}" for e in d.escalations_added]
        escalations += [f"- {e}" for e in d.escalations_removed]
        table.add_row(
            d.onboarding_id,
            d.account_name or d.account_id,
            f"{d.plan_key} v{d.old_version}→v{d.new_version}",
            ", ".join(d.changed),
            _arrow(d.old_stage, d.new_stage),
            _arrow(d.old_ttfv, d.new_ttfv),
            "\n".join(escalations) or "—",
        )
    if report.diffs:
        console.print(table)
    counts = report.counts()
    console.print(
        f"{report.evaluated} onboardings evaluated, {counts['changed']} would change "
        + "("
        + ", ".join(f"{k}: {counts[k]}" for k in KINDS)
        + ")",
        highlight=False,
    )
    for reason, n in sorted(report.skipped.items()):
        console.print(f"skipped {n}: {reason}", highlight=False)


@app.command("demo-data")
def demo_data_command(
    out: Annotated[Path, typer.Option("--out", help="Folder for events.ndjson and facts.ndjson.")],
    accounts: Annotated[int, typer.Option(min=1)] = demo_data.DEFAULT_ACCOUNTS,
    seed: int = demo_data.DEFAULT_SEED,
    days: Annotated[int, typer.Option(min=7, help="Days of history.")] = demo_data.DEFAULT_DAYS,
    now: Annotated[
        str | None, typer.Option(help="End of the history, ISO-8601 (default: now).")
    ] = None,
) -> None:
    """Write a realistic synthetic history: Segment messages and manual facts, as NDJSON."""
    settings = _settings()
    plans = _configured_plans(settings)
    end = _moment(now)
    out.mkdir(parents=True, exist_ok=True)
    with _progress() as progress:
        task = progress.add_task("Generating accounts", total=accounts)
        history = demo_data.generate(
            plans,
            end,
            accounts=accounts,
            seed=seed,
            days=days,
            on_account=lambda: progress.advance(task),
        )
        written = progress.add_task("Writing events.ndjson", total=len(history.messages))
        with (out / "events.ndjson").open("wb") as f:
            for i, message in enumerate(history.messages, 1):
                f.write(orjson.dumps(message) + b"\n")
                if i % 5000 == 0 or i == len(history.messages):
                    progress.update(written, completed=i)
        with (out / "facts.ndjson").open("wb") as f:
            for fact in history.facts:
                f.write(orjson.dumps(records.to_record(fact)) + b"\n")
    console.print(
        f"{len(history.accounts)} accounts, {len(history.messages)} messages, "
        f"{len(history.facts)} manual facts up to {history.now.isoformat()} → {out}/"
    )


@app.command("backfill")
def backfill_command(
    files: Annotated[list[Path], typer.Argument(help="NDJSON exports, one event a line; .gz too.")],
    format: Annotated[
        ExportFormat, typer.Option("--format", help="Vendor shape of the lines (auto: per line).")
    ] = ExportFormat.auto,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Lines per transaction.")
    ] = 1000,
    checkpoint: Annotated[
        Path | None,
        typer.Option(help="Checkpoint file (default: FILE.checkpoint.json beside the first FILE)."),
    ] = None,
    restart: Annotated[
        bool, typer.Option("--restart", help="Ignore the checkpoint and start from line 1.")
    ] = False,
) -> None:
    """Ingest Segment or Mixpanel NDJSON exports as live ingestion would, resumably.

    Rejected lines go to FILE.rejected.ndjson (line, reason, original); exit code 1 if any.
    """
    from firstvalue import backfill_view
    from services.ingest import backfill

    settings = _settings()
    where = backfill.checkpoint_path(files, checkpoint)
    with backfill_view.ProgressBar(errors) as bar:
        try:
            summary = asyncio.run(
                backfill.run(
                    settings,
                    files,
                    fmt=format.value,
                    batch_size=batch_size,
                    checkpoint=checkpoint,
                    restart=restart,
                    observer=bar,
                )
            )
        except (backfill.BackfillError, backfill.CheckpointError) as exc:
            errors.print(f"[red]Backfill failed:[/red] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from exc
        except KeyboardInterrupt:
            errors.print(f"Interrupted. Run the same command again to resume from {where}.")
            raise typer.Exit(130) from None
        except Exception as exc:  # a database or broker failure: say how to resume
            errors.print(
                f"[red]Backfill stopped:[/red] {exc!r}\nWhat was stored is kept; run "
                f"the same command again to resume from {where}.",
                highlight=False,
            )
            raise typer.Exit(2) from exc
    backfill_view.print_summary(console, summary)
    if summary.totals.rejected:
        raise typer.Exit(1)


def _arrow(old: str, new: str) -> str:
    return old if old == new else f"{old} → {new}"


def _moment(text: str | None) -> datetime:
    """An ``--now`` option: the ISO-8601 moment given (UTC), else now."""
    if not text:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise typer.BadParameter(f"not an ISO-8601 moment: {text!r}") from exc
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _durable(settings: Settings) -> Settings:
    """Refuse, in one line and exit 2, a database that may lose acknowledged commits."""
    from shared.storage.durability import NonDurableDatabase, ensure_durable

    try:
        asyncio.run(ensure_durable(settings.database_url, settings))
    except NonDurableDatabase as exc:
        errors.print(f"firstvalue: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from exc
    return settings


def _refuse_open_ingest(settings: Settings) -> None:
    """Production services never start with HTTP ingest open by accident (one line, exit 2)."""
    refusal = ingest_auth_refusal(settings)
    if refusal is not None:
        errors.print(f"firstvalue: refusing to start: {refusal}", highlight=False, soft_wrap=True)
        raise typer.Exit(2)


def _kafka_settings() -> Settings:
    settings = _settings()
    if not settings.kafka_bootstrap_servers:
        errors.print(
            "This service runs alone only with Kafka: set "
            "FIRSTVALUE_KAFKA_BOOTSTRAP_SERVERS (or use `firstvalue run`)."
        )
        raise typer.Exit(2)
    return settings


def _until_signal(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` until it ends or SIGINT/SIGTERM cancels it (a clean stop, exit 0)."""

    async def supervise() -> None:
        task = asyncio.ensure_future(main)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(supervise())


def _progress(on: Console | None = None) -> Progress:
    return Progress(
        TextColumn("{task.description:<24}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=on or console,
    )
