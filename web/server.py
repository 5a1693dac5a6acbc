"""The HTTP server the app runs in (``app.py``, the tests, the benchmarks): uvicorn with its
connection-level limits set from ``Settings``.

uvicorn on its own leaves two doors open: with httptools (its default when installed) a
request's headers have no size limit (a 1 MB header and 20,000 headers were accepted), and
neither protocol has a deadline for the request line and headers (a client sending a byte now
and then held a connection for 90 s+). So the server runs h11 in a protocol that counts the
line and headers as they arrive (``max_header_bytes``; a larger request gets a 431 and the
connection is closed: h11's own bound holds only for a head still incomplete, so one sent in a
single write went through) and closes a connection whose next request's headers have not all
arrived within ``header_timeout_seconds``. Request bodies have their own deadline (``BodyLimitMiddleware``).
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from kbcore.settings import Settings


class HeaderDeadlineH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request headers are too slow.

    The deadline starts when the connection opens and again whenever data arrives while no
    request is in progress (h11's ``their_state`` is IDLE); it ends once a request's headers
    are complete. Between requests, uvicorn's own keep-alive timeout closes idle connections.
    """

    header_timeout: float = 10.0  # set per server by ``server_config``
    max_header_bytes: int = 16384  # likewise

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._header_deadline: asyncio.TimerHandle | None = None
        self._head_bytes = 0  # of the request whose headers are arriving
        super().connection_made(transport)
        self._arm_header_deadline()

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE:
            self._arm_header_deadline()
            # h11 bounds only a head that is still incomplete: one that arrives whole in one
            # read (a 70,000-byte header, 6,000 headers) went through. Counted here, whole or not.
            end = data.find(b"\r\n\r\n")
            self._head_bytes += len(data) if end < 0 else end + 4
            if self._head_bytes > self.max_header_bytes:
                return self._headers_too_large()
            if end >= 0:
                self._head_bytes = 0
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # a request's headers are all in
            self._cancel_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_deadline()
        super().connection_lost(exc)

    def _arm_header_deadline(self) -> None:
        if self._header_deadline is None:
            self._header_deadline = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _cancel_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_large(self) -> None:
        self._cancel_header_deadline()
        body = b'{"error":"request headers too large","detail":[]}'
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
            b"connection: close\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        self.transport.close()

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


class SessionRedacted(logging.Filter):
    """Keeps chat sessions' ids out of the access log: a Gradio session id is the key of a
    visitor's conversation (its server-side history), and uvicorn logs every request's path and
    query (``/gradio_api/queue/data?session_hash=...``, ``/gradio_api/heartbeat/<id>``)."""

    SESSION = re.compile(r"(session_hash=|/heartbeat/)[^&\s]*")

    def filter(self, record: logging.LogRecord) -> bool:
        # uvicorn.access records: (client, method, path with query, HTTP version, status).
        if isinstance(record.args, tuple) and len(record.args) >= 3 and isinstance(record.args[2], str):
            args = list(record.args)
            args[2] = self.SESSION.sub(r"\1<redacted>", args[2])
            record.args = tuple(args)
        return True


def redact_sessions_in_access_log() -> None:
    """Add ``SessionRedacted`` to uvicorn's access logger (once; after ``uvicorn.Config``
    has configured logging, which replaces the logger's handlers but not its filters)."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, SessionRedacted) for f in access.filters):
        access.addFilter(SessionRedacted())


def server_config(app: Any, settings: Settings, *, host: str | None = None, port: int | None = None, **extra: Any):
    """A ``uvicorn.Config`` for ``app`` with the limits of ``settings``."""
    protocol = type(
        "BoundedH11Protocol",
        (HeaderDeadlineH11Protocol,),
        {"header_timeout": settings.header_timeout_seconds, "max_header_bytes": settings.max_header_bytes},
    )
    config = uvicorn.Config(
        app,
        host=settings.host if host is None else host,
        port=settings.port if port is None else port,
        http=protocol,
        h11_max_incomplete_event_size=settings.max_header_bytes,
        # uvicorn would otherwise believe X-Forwarded-For from any loopback peer and rewrite the
        # client address before the app's own trusted_proxies check (the rate limiter's identity).
        proxy_headers=False,
        **extra,
    )
    redact_sessions_in_access_log()
    return config
