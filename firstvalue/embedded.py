"""``firstvalue run``: the whole system in one process, serving the API and the console,
with demo data (or, with ``--no-demo``, none: a small team's production on one machine).

SQLite (by default) and an in-memory bus; the ingest and milestones consumers, the timer
loop and (when ``FIRSTVALUE_WEBHOOK_URL`` is set) the webhook worker run as asyncio tasks
beside uvicorn — the same code paths as production, so the demo
history goes in exactly as real traffic would: messages published to ``analytics.events``,
manual facts through ``record_fact``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import secrets
import signal
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson
import uvicorn
import uvloop
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from firstvalue import demo_data
from services.api.app import create_app
from services.api.http_server import uvicorn_options
from services.ingest.consumer import IngestOptions, run_ingest
from services.milestones.service import run_configured
from shared.analytics.normalize import partition_key
from shared.bus import topics
from shared.bus.memory import MemoryBus
from shared.config import Settings, ingest_auth_refusal
from shared.domain.plans import Plan
from shared.plan_files import configured_plans
from shared.projection.manual import record_fact
from shared.projection.publisher import relay_outbox
from shared.storage import migrate
from shared.storage.api_keys import ApiKeyRepository
from shared.storage.engine import create_engine, create_sessionmaker
from shared.storage.onboardings import OnboardingRepository
from shared.storage.projections import ProjectionFilter, ProjectionRepository

DEMO_KEY_FILE = Path(".firstvalue-demo-key")
DEMO_WRITE_KEY_FILE = Path(".firstvalue-demo-write-key")
DEMO_KEY_NAME = "demo"
ADMIN_KEY_FILE = Path(".firstvalue-key")  # --no-demo without FIRSTVALUE_API_KEYS
ADMIN_KEY_NAME = "admin"
PUBLISH_CHUNK = 2000
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass
class Pipeline:
    """The consumers and timers running in this process."""

    settings: Settings
    bus: MemoryBus
    sessionmaker: async_sessionmaker[AsyncSession]
    plans: Mapping[str, Plan]
    tasks: list[asyncio.Task[None]]

    async def drained(self) -> bool:
        """Everything published has been ingested and projected."""
        return (
            await self.bus.lag(topics.EVENTS, "ingest") == 0
            and await self.bus.lag(topics.FACTS, "milestones") == 0
        )

    async def first_failure(self) -> BaseException | None:
        """Wait until a consumer or the timer loop stops by itself; return why."""
        done, _ = await asyncio.wait(self.tasks, return_when=asyncio.FIRST_COMPLETED)
        task = done.pop()
        return None if task.cancelled() else task.exception()

    def check(self) -> None:
        """Fail loudly if a consumer died instead of waiting forever for it."""
        for task in self.tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise RuntimeError(f"{task.get_name()} stopped") from task.exception()


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: ``run`` owns Ctrl-C for the whole process."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def run(
    settings: Settings,
    console: Console | None = None,
    *,
    plans: Mapping[str, Plan] | None = None,
    demo: bool = True,
) -> None:
    """Run until Ctrl-C (SIGINT) or SIGTERM, then shut everything down cleanly. With
    ``demo``, an empty database first gets the demo history. On uvloop, as ``firstvalue
    api`` runs under uvicorn: the API, the consumers and aiosqlite's thread hand-offs all
    share this one loop."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_main(settings, console or Console(), plans, demo))


async def _main(
    settings: Settings, console: Console, plans: Mapping[str, Plan] | None, demo: bool
) -> None:
    started = time.perf_counter()
    settings = _with_demo_write_key(settings)
    # Bind first: a busy port fails in a second, not after the demo data has loaded.
    sock = _bind(settings.api_host, settings.api_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in _SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    failed: BaseException | None = None
    try:
        console.print("Migrating the database and starting the pipeline…")
        async with start_pipeline(settings, plans) as pipeline:
            if demo and not await _until(stop, _load_demo_if_empty(pipeline, console)):
                console.print(
                    "[yellow]Stopped while loading the demo data: the database holds part of "
                    "it. Delete it to load the demo afresh next time.[/yellow]"
                )
                return
            watchdog = asyncio.create_task(pipeline.first_failure(), name="watchdog")
            watchdog.add_done_callback(lambda _: stop.set())
            await _serve(settings, pipeline, sock, stop, console, started, demo)
            failed = watchdog.result() if watchdog.done() else None
            watchdog.cancel()
    finally:
        for sig in _SIGNALS:
            loop.remove_signal_handler(sig)
        sock.close()
    if failed is not None:
        console.print(f"[red]firstvalue stopped: a consumer failed: {failed!r}[/red]")
        raise SystemExit(1)
    console.print("[dim]firstvalue stopped.[/dim]")


def _bind(host: str, port: int) -> socket.socket:
    # IPPROTO_TCP spelled out: asyncio sets TCP_NODELAY only on sockets that say so, and an
    # accepted connection inherits the listener's protocol number. With 0 (the default),
    # Nagle's algorithm met the client's delayed ACK: ~40 ms on every keep-alive request.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise SystemExit(f"firstvalue: cannot listen on {host}:{port}: {exc.strerror}") from exc
    return sock


async def _serve(
    settings: Settings,
    pipeline: Pipeline,
    sock: socket.socket,
    stop: asyncio.Event,
    console: Console,
    started: float,
    demo: bool,
) -> None:
    if demo:
        key: str | None = await _stored_key(pipeline.sessionmaker, DEMO_KEY_FILE, DEMO_KEY_NAME)
    elif settings.api_keys:
        key = None  # the team's own keys (FIRSTVALUE_API_KEYS)
    else:
        key = await _stored_key(pipeline.sessionmaker, ADMIN_KEY_FILE, ADMIN_KEY_NAME)
    example = await _example_account(pipeline.sessionmaker) if demo else None
    app = create_app(
        settings, plans=pipeline.plans, sessionmaker=pipeline.sessionmaker, bus=pipeline.bus
    )
    config = uvicorn.Config(
        app, log_level="warning", lifespan="on", server_header=False, **uvicorn_options()
    )
    server = _Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]), name="api")
    while not server.started and not serving.done() and not stop.is_set():
        await asyncio.wait({serving}, timeout=0.05)
    if server.started:
        elapsed = time.perf_counter() - started
        if demo:
            assert key is not None
            _banner(console, settings, key, example, elapsed)
        else:
            _production_banner(console, settings, key, elapsed)
        await _until(stop, asyncio.shield(serving))
    server.should_exit = True
    await serving


async def _until(stop: asyncio.Event, work: Awaitable[object]) -> bool:
    """Await ``work`` unless ``stop`` is set first (then cancel it); True if it finished."""
    task = asyncio.ensure_future(work)
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    if task in done:
        task.result()
        return True
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return False


@contextlib.asynccontextmanager
async def start_pipeline(
    settings: Settings, plans: Mapping[str, Plan] | None = None
) -> AsyncIterator[Pipeline]:
    """Migrate, then start the bus, consumers and timers; stop them all on the way out."""
    await migrate(settings.database_url)
    plans = plans if plans is not None else configured_plans(settings)
    engine = create_engine(settings.database_url, application_name="firstvalue-embedded")
    sessionmaker = create_sessionmaker(engine)
    bus = MemoryBus()
    await bus.start()
    tasks = [
        asyncio.create_task(
            run_ingest(
                bus,
                sessionmaker,
                IngestOptions.from_settings(settings, plans),
                lateness=settings.allowed_lateness(),
            ),
            name="ingest",
        ),
        asyncio.create_task(  # facts consumer, timers, webhook worker, retention
            run_configured(bus, sessionmaker, plans, settings), name="milestones"
        ),
    ]
    try:
        yield Pipeline(settings, bus, sessionmaker, plans, tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await bus.stop()
        await engine.dispose()


async def _load_demo_if_empty(pipeline: Pipeline, console: Console) -> None:
    async with pipeline.sessionmaker() as session:
        if await OnboardingRepository(session).ids(after=None, limit=1):
            console.print("Database already holds onboardings: no demo data loaded.")
            return
    with _progress(console) as progress:
        task = progress.add_task("Generating demo history", total=demo_data.DEFAULT_ACCOUNTS)
        try:
            history = await asyncio.to_thread(
                demo_data.generate,
                pipeline.plans,
                datetime.now(UTC),
                on_account=lambda: progress.advance(task),
            )
        except (ValueError, KeyError, LookupError) as exc:  # a plan the generator cannot drive
            progress.stop()
            console.print(
                f"[yellow]No demo data: it cannot be built on the configured plans ({exc}); "
                "serving without it.[/yellow]",
                soft_wrap=True,
                highlight=False,
            )
            return
        await load_history(pipeline, history, progress)


async def load_history(
    pipeline: Pipeline, history: demo_data.DemoHistory, progress: Progress | None = None
) -> None:
    """Load a generated history through the real path; return once it is all projected."""
    await _publish(pipeline, history, progress or Progress(disable=True))
    await _record_facts(pipeline, history, progress or Progress(disable=True))


async def _publish(pipeline: Pipeline, history: demo_data.DemoHistory, progress: Progress) -> None:
    """Send every message through ``analytics.events`` and wait until it is projected."""
    total = len(history.messages)
    account_property = pipeline.settings.account_property
    # One account's messages together, in time order, as a keyed partition would hold them:
    # each projection then sees an account's history in a few batches, not in hundreds.
    keyed = sorted(
        ((partition_key(m, account_property), orjson.dumps(m)) for m in history.messages),
        key=lambda item: item[0] or "",
    )
    task = progress.add_task("Ingesting events", total=total)
    for start in range(0, total, PUBLISH_CHUNK):
        await pipeline.bus.publish_many(topics.EVENTS, keyed[start : start + PUBLISH_CHUNK])
        await asyncio.sleep(0)  # let the consumers take their share of the loop
    await _wait_drained(pipeline, lambda backlog: progress.update(task, completed=total - backlog))


async def _record_facts(
    pipeline: Pipeline, history: demo_data.DemoHistory, progress: Progress
) -> None:
    """Manual facts (sponsor confirmations, pauses, amendments) go in as the API would."""
    task = progress.add_task("Recording manual evidence", total=len(history.facts))
    for fact in history.facts:
        async with pipeline.sessionmaker() as session, session.begin():
            await record_fact(session, pipeline.plans, fact, datetime.now(UTC))
        progress.advance(task)
    await relay_outbox(pipeline.sessionmaker, pipeline.bus)
    await _wait_drained(pipeline)


async def _wait_drained(
    pipeline: Pipeline, on_backlog: Callable[[int], object] | None = None
) -> None:
    """Poll until the consumers have caught up (they run on this loop, so polling is cheap)."""
    while True:
        pipeline.check()
        backlog = await pipeline.bus.lag(topics.EVENTS, "ingest")
        if on_backlog is not None:
            on_backlog(backlog)
        if backlog == 0 and await pipeline.drained():
            return
        await asyncio.sleep(0.1)


def _with_demo_write_key(settings: Settings) -> Settings:
    """Without configured ingest keys the embedded runner makes its own write key (kept in
    ``.firstvalue-demo-write-key``), as Segment write key and Mixpanel token alike: its
    HTTP ingest is never open to any key unless ``FIRSTVALUE_INGEST_AUTH=open`` says so."""
    if ingest_auth_refusal(settings) is None:
        return settings
    key = _kept_secret(DEMO_WRITE_KEY_FILE, "wk_demo_")
    return settings.model_copy(update={"segment_write_keys": [key], "mixpanel_tokens": [key]})


def _kept_secret(path: Path, prefix: str) -> str:
    """The secret in ``path``, made (readable by the owner only) on first use."""
    key = path.read_text().strip() if path.exists() else ""
    if not key:
        key = prefix + secrets.token_urlsafe(24)
        path.write_text(key + "\n")
        os.chmod(path, 0o600)
    return key


async def _stored_key(sessionmaker: async_sessionmaker[AsyncSession], file: Path, name: str) -> str:
    """A read+write key kept in ``file`` (mode 600; the table holds only its hash): the demo
    key, or with ``--no-demo`` the first key of a team that configured none."""
    key = _kept_secret(file, f"fv_{name}_")
    async with sessionmaker() as session, session.begin():
        await ApiKeyRepository(session).ensure(name, ("read", "write"), key, datetime.now(UTC))
    return key


async def _example_account(sessionmaker: async_sessionmaker[AsyncSession]) -> str | None:
    """A "tasks done but no value" onboarding to show off: a breached one if there is one."""
    async with sessionmaker() as session:
        projections = ProjectionRepository(session)
        for breach in ("severe", None):
            filters = ProjectionFilter(at_risk=True, breach=breach)
            page = await projections.list(filters, limit=1)
            if page.items:
                return page.items[0].onboarding_id
    return None


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def _banner(
    console: Console, settings: Settings, key: str, example: str | None, elapsed: float
) -> None:
    url = f"http://{settings.api_host}:{settings.api_port}"
    auth = f'-H "Authorization: Bearer {key}"'
    say = functools.partial(console.print, soft_wrap=True, highlight=False)
    say(f"\n[bold green]firstvalue is serving on {url}[/] (ready in {elapsed:.1f} s)")
    say(f"Demo API key (read+write, kept in {DEMO_KEY_FILE}): [bold]{key}[/]")
    _say_made_write_key(say, settings)
    say("")
    say("Onboardings, newest first (filters: segment, stage, status, csm, breach, at_risk, …):")
    say(f"  curl {auth} '{url}/v1/onboardings?limit=5'")
    if example:
        say("One that looks done but isn't: every task complete, no first value yet:")
        say(f"  curl {auth} '{url}/v1/onboardings/{example}'")
    say(f"\nConsole: {url}/ (sign in with the key above)")
    say(f"OpenAPI: {url}/docs · metrics: {url}/metrics · Ctrl-C stops.")


def _say_made_write_key(say: Callable[[str], object], settings: Settings) -> bool:
    """Print the write key this runner made, if it is the one in use (an operator's own keys
    are never echoed); True if it printed one."""
    made = DEMO_WRITE_KEY_FILE.read_text().strip() if DEMO_WRITE_KEY_FILE.exists() else ""
    if not made or made not in settings.segment_write_keys:
        return False
    say(
        f"Ingest write key (Segment write key and Mixpanel token, kept in "
        f"{DEMO_WRITE_KEY_FILE}): [bold]{made}[/]"
    )
    return True


def _production_banner(
    console: Console, settings: Settings, key: str | None, elapsed: float
) -> None:
    """How a team starts on its own data: the key, where events go, what to configure."""
    url = f"http://{settings.api_host}:{settings.api_port}"
    say = functools.partial(console.print, soft_wrap=True, highlight=False)
    say(f"\n[bold green]firstvalue is serving on {url}[/] (ready in {elapsed:.1f} s, no demo)")
    if key is None:
        say("API keys: those in FIRSTVALUE_API_KEYS.")
    else:
        say(f"API key (read+write, kept in {ADMIN_KEY_FILE}): [bold]{key}[/]")
        say("  (set FIRSTVALUE_API_KEYS=name:write:key,... to use your own keys instead)")
    say(f"Console: {url}/ · OpenAPI: {url}/docs · metrics: {url}/metrics")
    say(f"Register onboardings: POST {url}/v1/onboardings, or a 'Contract Signed' event.")
    say(f"Events: Segment's HTTP API at {url}/v1/batch, Mixpanel's at {url}/track and /import.")
    if _say_made_write_key(say, settings):
        say(
            "  (set FIRSTVALUE_SEGMENT_WRITE_KEYS and FIRSTVALUE_MIXPANEL_TOKENS, comma-separated, "
            "to use your own instead)"
        )
    say("Ctrl-C stops.")
