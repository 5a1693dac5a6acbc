"""The web app's middleware: request rate per client IP, request body size and time, the
security headers of every response, and which forwarded headers are believed.

All of it plain ASGI, applied to every route, the mounted Gradio app's included.
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from web.errors import error_response


class BodyLimitMiddleware:
    """413 with a JSON error for a request body over ``max_bytes``, decided while it arrives.

    A declared Content-Length over the limit is refused before any of the body is read. Any
    other body (chunked uploads declare no length) is read here chunk by chunk and refused as
    soon as the count passes the limit, so no more than ``max_bytes`` is ever held; a body
    within the limit is handed on to the app unchanged. It covers every path, the mounted
    Gradio app included.

    Not FastAPI's own ``max_body_size``: for a declared Content-Length over the limit it swaps
    whatever the app answers for a plain-text 413, which breaks the API's JSON error contract.

    A body must also arrive within ``timeout`` seconds in all (408 otherwise): a client that
    sends a byte now and then would otherwise hold a connection and a buffer for ever.
    """

    def __init__(
        self, app: ASGIApp, *, max_bytes: int, timeout: float, larger: Callable[[Scope], int | None] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout
        # A request that may carry more than max_bytes (an admin's upload): its own limit, or
        # None. Decided from the request line and headers, before any of the body is read, so
        # only a request that already shows the admin key gets the larger allowance.
        self.larger = larger

    async def too_large(self, scope: Scope, receive: Receive, send: Send, limit: int | None = None) -> None:
        limit = limit or self.max_bytes
        response = error_response(413, f"请求内容太大，上限是 {limit} 字节（request body is larger than {limit} bytes）")
        response.headers["Connection"] = "close"  # the rest of the body is never read
        await response(scope, receive, send)

    async def too_slow(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(408, f"请求内容发送太慢（the request body took over {self.timeout:g} s）")
        response.headers["Connection"] = "close"
        await response(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        if declared is None and "transfer-encoding" not in headers:
            return await self.app(scope, receive, send)  # no body
        larger = self.larger(scope) if self.larger is not None else None
        if larger is not None:
            return await self._streamed(scope, receive, send, larger, declared)
        if declared is not None and declared.strip().isdigit() and int(declared) > self.max_bytes:
            return await self.too_large(scope, receive, send)
        chunks: list[bytes] = []
        size = 0
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                return await self.too_slow(scope, receive, send)
            if message["type"] != "http.request":  # http.disconnect: the client is gone
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return await self.too_large(scope, receive, send)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, replaying(b"".join(chunks), receive), send)

    async def _streamed(self, scope: Scope, receive: Receive, send: Send, limit: int, declared: str | None) -> None:
        """A body under a larger limit, handed on as it arrives instead of held here (an upload
        of ``limit`` bytes is spooled to disk by the app's multipart parser, not buffered in
        memory twice); counted, and cut off with a 413 (408 when too slow) at the limit. The
        app sees the cut as an exception from ``receive`` and has answered nothing yet."""
        if declared is not None and declared.strip().isdigit() and int(declared) > limit:
            return await self.too_large(scope, receive, send, limit)
        size = 0
        complete = False
        started = False
        deadline = time.monotonic() + self.timeout

        async def counted() -> Message:
            nonlocal size, complete
            if complete:
                return await receive()  # after the body: the server's http.disconnect, unbounded
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                raise _BodyRefused(408) from None
            if message["type"] == "http.request":
                size += len(message.get("body", b""))
                if size > limit:
                    raise _BodyRefused(413)
                complete = not message.get("more_body", False)
            return message

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, sending)
        except _BodyRefused as refused:
            if started:
                raise
            if refused.status == 413:
                return await self.too_large(scope, receive, send, limit)
            await self.too_slow(scope, receive, send)


class _BodyRefused(Exception):
    """Raised from a counted ``receive`` when a streamed body passes its limit or deadline."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def replaying(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` once, whole, then the server's own messages
    (``http.disconnect``): for an app behind a middleware that has read the body already."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


RATE_LIMITED_PATHS = frozenset(
    {"/api/ask", "/api/ask/stream", "/api/search", "/api/brief", "/api/brief.md", "/api/brief.docx",
     "/v1/chat/completions"}
)
GRADIO_API_PREFIX = "/gradio_api/"  # every POST under it: queue/join, run/, call/, api/, upload ...


def admin_request(scope: Scope) -> bool:
    """A request to an admin endpoint (web/admin/), with or without a key. Each one spends a
    token of the general buckets; one that does not show the key also spends one of the far
    smaller admin buckets (settings.admin_rate_limit_*; web/asgi.py), so guessing is slow.
    ``GET /api/documents`` is the public list, not one of them."""
    path, method = scope.get("path", ""), scope.get("method", "")
    if path == "/api/documents":
        return method not in ("GET", "HEAD", "OPTIONS")
    return path in ("/api/reindex", "/api/jobs", "/api/feedback.csv") or path.startswith(("/api/documents/", "/api/jobs/"))

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class TokenBucketLimiter:
    """Token buckets by key: ``burst`` requests at once, refilled at ``per_minute`` a minute.

    A small in-memory bucket rather than a library: ``limits`` (and ``pyrate-limiter``) count
    fixed, moving or sliding windows, which have no separate sustained rate and burst size,
    and this app runs as one process, so there is no shared storage to reach for (with
    several worker processes each keeps its own buckets). Not thread-safe: it is only called
    from the event loop. Memory is bounded: past ``max_keys`` clients the least recently
    seen is forgotten, and a forgotten client starts again with a full bucket, just as one
    idle that long would.
    """

    def __init__(
        self, per_minute: int, burst: int, *, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if per_minute <= 0 or burst <= 0:
            raise ValueError("per_minute and burst must be positive")
        self.rate = per_minute / 60.0  # tokens a second
        self.burst = float(burst)
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, when)

    def acquire(self, key: str) -> float:
        """Take a token: 0.0 when the request may go ahead, else the seconds until one is free."""
        now = self._clock()
        tokens, then = self._buckets.pop(key, (self.burst, now))  # pop + set: most recent last
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return wait


def _parse_ip(value: str) -> IPAddress | None:
    """An address as peers and proxies write it: ``1.2.3.4``, ``1.2.3.4:80``, ``::1``, ``[::1]:80``."""
    value = value.strip()
    if value.startswith("["):
        value = value[1:].split("]", 1)[0]
    elif value.count(":") == 1:  # IPv4 with a port
        value = value.split(":", 1)[0]
    try:
        return ipaddress.ip_address(value.split("%", 1)[0])  # no IPv6 zone ids in keys
    except ValueError:
        return None


def client_ip(scope: Scope, trusted_proxies: Sequence[IPNetwork] = ()) -> str:
    """The client's address: the TCP peer, or, when the peer is a trusted proxy, the address
    that proxy saw (X-Forwarded-For read from the right, past every trusted hop).

    The header is only believed from a trusted proxy: anyone else can write any address in it.
    """
    peer = (scope.get("client") or ("", 0))[0] or ""
    current = _parse_ip(peer)
    if current is None:
        return peer or "unknown"

    def trusted(ip: IPAddress) -> bool:
        return any(ip.version == net.version and ip in net for net in trusted_proxies)

    if trusted_proxies and trusted(current):
        hops = [hop for value in Headers(scope=scope).getlist("x-forwarded-for") for hop in value.split(",")]
        for hop in reversed(hops):
            ip = _parse_ip(hop)
            if ip is None:  # junk in the header: stop at the last proxy we trust
                break
            current = ip
            if not trusted(ip):
                break
    return str(current)


def _bucket_key(ip: str) -> str:
    # An IPv6 client usually holds a whole /64; keyed by address it would have 2**64 buckets.
    parsed = _parse_ip(ip)
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is None:
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return ip


def client_key(scope: Scope, trusted_proxies: Sequence[IPNetwork] = ()) -> str:
    """Who a request counts against in a per-client limit: its client address (``client_ip``),
    an IPv6 one by its /64."""
    return _bucket_key(client_ip(scope, trusted_proxies))


class RateLimitMiddleware:
    """429 + ``Retry-After`` once a client IP has used its tokens on a query endpoint.

    Limited: the query endpoints (RATE_LIMITED_PATHS, any method, so probing them costs too)
    and every POST to Gradio's own API (its queue and predict endpoints, and the closed ones);
    or what ``limited`` says (web/asgi.py adds the admin endpoints, and a second instance with
    buckets of its own for admin requests without the key).
    Pages, static files, /api/health and /api/documents are cheap reads and are not limited.
    Checked before the request body is read.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        per_minute: int,
        burst: int,
        trusted_proxies: Sequence[str] = (),
        limited: Callable[[Scope], bool] | None = None,
    ) -> None:
        self.app = app
        self.limiter = TokenBucketLimiter(per_minute, burst)
        self.trusted_proxies = [ipaddress.ip_network(p, strict=False) for p in trusted_proxies]
        if limited is not None:  # another set of paths with buckets of its own (admin_request)
            self.limited = limited

    @staticmethod
    def limited(scope: Scope) -> bool:
        path = scope.get("path", "")
        return path in RATE_LIMITED_PATHS or (scope.get("method") == "POST" and path.startswith(GRADIO_API_PREFIX))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.limited(scope):
            wait = self.limiter.acquire(client_key(scope, self.trusted_proxies))
            if wait > 0:
                retry_after = max(1, math.ceil(wait))
                response = error_response(
                    429, f"请求过于频繁，请 {retry_after} 秒后再试（too many requests: retry in {retry_after} s）"
                )
                response.headers["Retry-After"] = str(retry_after)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)




class UntrustedForwardedHeaders:
    """Drops ``X-Forwarded-Host``/``-Proto``/``-Port``/``Forwarded``/``X-Gradio-Server`` unless
    the TCP peer is a trusted proxy. Gradio builds the page's root URL from them (``route_utils.get_root_url``),
    so anyone could otherwise write their host into ``/config`` and the page's inline script.
    ``X-Forwarded-For`` stays: ``client_ip`` already believes it only from a trusted proxy."""

    # X-Gradio-Server too: Gradio takes the page's root URL from it as it stands (issue 18:
    # "http://evil.example" became /config's root and was written into the page).
    DROPPED = frozenset({b"x-forwarded-host", b"x-forwarded-proto", b"x-forwarded-port", b"forwarded", b"x-gradio-server"})

    def __init__(self, app: ASGIApp, *, trusted_proxies: Sequence[str] = ()) -> None:
        self.app = app
        self.trusted_proxies = [ipaddress.ip_network(p, strict=False) for p in trusted_proxies]

    def _from_trusted_proxy(self, scope: Scope) -> bool:
        peer = _parse_ip((scope.get("client") or ("", 0))[0] or "")
        return peer is not None and any(peer.version == n.version and peer in n for n in self.trusted_proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and not self._from_trusted_proxy(scope):
            headers = scope.get("headers", [])
            if any(name in self.DROPPED for name, _ in headers):
                scope = dict(scope, headers=[(n, v) for n, v in headers if n not in self.DROPPED])
        await self.app(scope, receive, send)


class SecurityHeadersMiddleware:
    """The same security headers on every response, the API's, the widget's and Gradio's.

    The CSP keeps scripts, styles, fonts and connections to this origin. Gradio's page needs
    ``'unsafe-inline'`` (its inline config script and styles) and ``'unsafe-eval'`` (the HTML
    component evaluates its template as JavaScript: "Error rendering HTML" without it, in
    Chromium), so the CSP's worth here is in what it closes: no script, frame, form target or
    connection to another origin, no plugins, no ``<base>``. ``frame-ancestors`` lets this origin and the allowed origins (the
    widget's hosts, ``allowed_origins``) frame the pages. The API docs' Swagger UI and Redoc
    are served from this origin too (web/asgi.py).
    """

    def __init__(self, app: ASGIApp, *, frame_ancestors: Sequence[str] = ()) -> None:
        self.app = app
        ancestors = " ".join(["'self'", *frame_ancestors])
        common = f"object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors {ancestors}"
        self.csp = (
            "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data: blob:; font-src 'self' data:; media-src 'self' data: blob:; "
            f"connect-src 'self'; worker-src 'self' blob:; {common}"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        csp = self.csp

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                # A page (and Gradio's config) is built for the request that asked for it: a
                # shared cache must not serve one visitor's to another.
                if "cache-control" not in headers and (
                    headers.get("content-type", "").startswith("text/html") or scope.get("path") == "/config"
                ):
                    headers["Cache-Control"] = "no-store"
                headers["Content-Security-Policy"] = csp
                headers["X-Content-Type-Options"] = "nosniff"
                headers["Referrer-Policy"] = "same-origin"
                headers["Cross-Origin-Opener-Policy"] = "same-origin"
            await send(message)

        await self.app(scope, receive, send_with_headers)
