"""Safe defaults at start-up: production services refuse to run with HTTP ingest open by
accident; the embedded demo makes its own write key; its pre-bound socket sends small
responses at once (TCP_NODELAY) like uvicorn's own listeners."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from firstvalue import embedded
from firstvalue.cli import app
from shared.config import ingest_auth_refusal, load_settings

pytestmark = pytest.mark.e2e

INGEST_SETTINGS = ("SEGMENT_WRITE_KEYS", "MIXPANEL_TOKENS", "INGEST_AUTH")


@pytest.fixture
def no_ingest_keys(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in INGEST_SETTINGS:
        monkeypatch.delenv(f"FIRSTVALUE_{name}", raising=False)
    return monkeypatch


@pytest.mark.parametrize("command", ["api", "ingest"])
def test_a_service_with_no_ingest_keys_refuses_to_start_in_one_line(
    command: str, no_ingest_keys: pytest.MonkeyPatch
) -> None:
    no_ingest_keys.setenv("FIRSTVALUE_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9")  # never reached
    result = CliRunner().invoke(app, [command])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, lines
    assert "FIRSTVALUE_SEGMENT_WRITE_KEYS" in lines[0]
    assert "FIRSTVALUE_INGEST_AUTH=open" in lines[0]


@pytest.mark.parametrize(
    ("setting", "value"),
    [("segment_write_keys", "wk1"), ("mixpanel_tokens", "tok"), ("ingest_auth", "open")],
)
def test_keys_tokens_or_an_explicit_open_let_services_start(
    setting: str, value: str, no_ingest_keys: pytest.MonkeyPatch
) -> None:
    assert ingest_auth_refusal(load_settings()) is not None
    assert ingest_auth_refusal(load_settings(**{setting: value})) is None


def test_ingest_auth_takes_only_keys_or_open(no_ingest_keys: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="ingest_auth"):
        load_settings(ingest_auth="any")


def test_the_demo_makes_and_keeps_its_own_write_key(
    tmp_path: Path, no_ingest_keys: pytest.MonkeyPatch
) -> None:
    no_ingest_keys.chdir(tmp_path)
    first = embedded._with_demo_write_key(load_settings())
    key = (tmp_path / ".firstvalue-demo-write-key").read_text().strip()
    assert first.segment_write_keys == [key] and first.mixpanel_tokens == [key]
    assert key.startswith("wk_demo_") and len(key) > 30
    assert (tmp_path / ".firstvalue-demo-write-key").stat().st_mode & 0o077 == 0
    again = embedded._with_demo_write_key(load_settings())
    assert again.segment_write_keys == [key]  # the same key on the next start


@pytest.mark.parametrize(
    ("setting", "value"), [("segment_write_keys", "mine"), ("ingest_auth", "open")]
)
def test_the_demo_keeps_configured_keys_or_an_explicit_open(
    tmp_path: Path, no_ingest_keys: pytest.MonkeyPatch, setting: str, value: str
) -> None:
    no_ingest_keys.chdir(tmp_path)
    settings = load_settings(**{setting: value})
    assert embedded._with_demo_write_key(settings) is settings
    assert not (tmp_path / ".firstvalue-demo-write-key").exists()


async def test_connections_on_the_demo_socket_have_tcp_nodelay() -> None:
    sock = embedded._bind("127.0.0.1", 0)
    seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def accepted(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server_side: socket.socket = writer.get_extra_info("socket")
        seen.set_result(server_side.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    server = await asyncio.start_server(accepted, sock=sock)
    try:
        host, port = sock.getsockname()[:2]
        _, client = await asyncio.open_connection(host, port)
        assert await asyncio.wait_for(seen, 10) != 0
        client.close()
    finally:
        server.close()
        await server.wait_closed()
