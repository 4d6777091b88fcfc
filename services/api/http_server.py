"""How uvicorn serves the app: request heads large enough for the vendor SDKs, and their
error shape when a head is refused anyway.

Mixpanel's SDKs send ``/track``, ``/engage`` and ``/groups`` as GET with the base64 event in
the query (mixpanel-node's ``track()``, ``people.set``): a 45 KB property makes a 60 KB
request line, four times h11's default limit for a request head (16 KB). Past our limit,
uvicorn would answer a bare ``400 Invalid HTTP request received.``, which the SDKs cannot
parse; this protocol answers with a JSON body both vendors' clients read as an error:
Segment's ``code``/``message`` and Mixpanel's ``status``/``error``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
import orjson
from uvicorn.protocols.http.h11_impl import H11Protocol

MAX_REQUEST_HEAD_BYTES = 1024 * 1024  # request line + headers (Mixpanel's event limit)
LINGER_SECONDS = 2.0  # after a refusal, what the client still sends is read and dropped


class VendorErrorH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, with its refusals of malformed or oversize requests in the
    vendors' error shape. The refusal is followed by a lingering close (as web servers do):
    closing at once with the rest of the client's request unread would reset the
    connection, and the client would lose the reply."""

    refused = False

    def data_received(self, data: bytes) -> None:
        if not self.refused:
            super().data_received(data)

    def send_400_response(self, msg: str) -> None:
        message = f"{msg} (request line and headers are limited to {MAX_REQUEST_HEAD_BYTES} bytes)"
        body = orjson.dumps(
            {"code": "invalid_request", "message": message, "status": 0, "error": message}
        )
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
        self.refused = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
        asyncio.get_running_loop().call_later(LINGER_SECONDS, self.transport.close)


def uvicorn_options() -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.run`` / ``uvicorn.Config`` serving the app."""
    return {"http": VendorErrorH11Protocol, "h11_max_incomplete_event_size": MAX_REQUEST_HEAD_BYTES}
