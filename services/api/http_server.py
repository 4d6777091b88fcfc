"""How uvicorn serves the app: request heads large enough for the vendor SDKs, bounded, and
the vendors' error shape when a head is refused.

Mixpanel's SDKs send ``/track``, ``/engage`` and ``/groups`` as GET with the base64 event in
the query (mixpanel-node's ``track()``, ``people.set``): a 45 KB property makes a 60 KB
request line, four times h11's default limit for a request head (16 KB). Heads are allowed
up to ``MAX_REQUEST_HEAD_BYTES`` on either of uvicorn's HTTP implementations (httptools when
installed, else h11); past it, or when a request cannot be parsed, uvicorn would answer a
bare ``400 Invalid HTTP request received.`` that the SDKs cannot parse. These protocols
answer with a JSON body both vendors' clients read as an error: Segment's ``code`` and
``message``, Mixpanel's ``status`` and ``error``.
"""

from __future__ import annotations

import asyncio
import importlib.util
from typing import Any

import h11
import orjson
from uvicorn.protocols.http.h11_impl import H11Protocol

MAX_REQUEST_HEAD_BYTES = 1024 * 1024  # request line + headers (Mixpanel's event limit)
LINGER_SECONDS = 2.0  # after a refusal, what the client still sends is read and dropped


def refusal_body(msg: str) -> bytes:
    message = f"{msg} (request line and headers are limited to {MAX_REQUEST_HEAD_BYTES} bytes)"
    return orjson.dumps(
        {"code": "invalid_request", "message": message, "status": 0, "error": message}
    )


class _Refusing:
    """A refusal followed by a lingering close (as web servers do): closing at once with the
    rest of the client's request unread would reset the connection, losing the reply."""

    transport: asyncio.Transport
    refused = False

    def linger(self) -> None:
        self.refused = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
        asyncio.get_running_loop().call_later(LINGER_SECONDS, self.transport.close)


class VendorErrorH11Protocol(_Refusing, H11Protocol):
    """uvicorn's h11 protocol, refusing in the vendors' error shape."""

    def data_received(self, data: bytes) -> None:
        if not self.refused:
            super().data_received(data)

    def send_400_response(self, msg: str) -> None:
        body = refusal_body(msg)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        for event in (
            h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
            h11.Data(data=body),
            h11.EndOfMessage(),
        ):
            self.transport.write(self.conn.send(event) or b"")
        self.linger()


def _httptools_protocol() -> type | None:
    """The httptools variant (uvicorn's faster parser), when httptools is installed: it has
    no head limit of its own, so the URL and headers are counted here."""
    if importlib.util.find_spec("httptools") is None:
        return None
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class VendorErrorHttpToolsProtocol(_Refusing, HttpToolsProtocol):
        head_bytes = 0

        def data_received(self, data: bytes) -> None:
            if not self.refused:
                super().data_received(data)

        def on_message_begin(self) -> None:
            self.head_bytes = 0
            super().on_message_begin()

        def _count(self, size: int) -> None:
            self.head_bytes += size
            if self.head_bytes > MAX_REQUEST_HEAD_BYTES:  # the parser turns this into a 400
                raise ValueError("request head too large")

        def on_url(self, url: bytes) -> None:
            self._count(len(url))
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._count(len(name) + len(value))
            super().on_header(name, value)

        def send_400_response(self, msg: str) -> None:
            body = refusal_body(msg)
            self.transport.write(
                b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n"
                b"content-length: "
                + str(len(body)).encode()
                + b"\r\nconnection: close\r\n\r\n"
                + body
            )
            self.linger()

    return VendorErrorHttpToolsProtocol


def uvicorn_options() -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.run`` / ``uvicorn.Config`` serving the app."""
    fast = _httptools_protocol()
    if fast is not None:
        return {"http": fast}
    return {"http": VendorErrorH11Protocol, "h11_max_incomplete_event_size": MAX_REQUEST_HEAD_BYTES}
