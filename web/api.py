"""One FastAPI app serving the JSON/SSE API, the embeddable widget and the Gradio chat UI.

Handlers are thin: validate the request, call ``KnowledgeBase``, return its ``to_dict()``.
Blocking KB calls (embedding, Chroma, answering) run in Starlette's threadpool so the
event loop keeps serving other requests and the chat UI's queue.

No ``from __future__ import annotations`` here: the request models are defined per app (their
length limit is that KB's setting), and FastAPI must resolve endpoint annotations that refer
to these local classes as real objects, not strings.
"""

import ipaddress
import itertools
import math
import re
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import gradio as gr
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    StringConstraints,
)
from sse_starlette import EventSourceResponse, JSONServerSentEvent
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kbqa.knowledge_base import KnowledgeBase, QuestionError
from kbqa.settings import Settings
from kbqa.types import Answer
from web.briefing import briefing_router
from web.chat import build_chat

STATIC_DIR = Path(__file__).resolve().parent / "static"

# k is bounded like KnowledgeBase._k; checking it here turns a bad k into a 422 before any work.
K = Annotated[StrictInt, Field(ge=1, le=50, description="number of passages to retrieve (default: settings.top_k)")]


# --- response schemas (documentation at /docs; extra fields from kbqa's to_dict pass through) ---
class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class CitationOut(_Open):
    n: int
    doc_id: str
    title: str
    source: str
    section: str
    text: str = Field(description="the cited passage")
    start: int = Field(description="offset of the cited span in the cleaned document text")
    end: int
    score: float


class AnswerOut(_Open):
    answer: str = Field(description="answer text with [n] citation marks, or the refusal text")
    found: bool
    citations: list[CitationOut]
    timings_ms: dict[str, float]


class PassageOut(_Open):
    doc_id: str
    title: str
    source: str
    section: str
    text: str
    start: int
    end: int
    score: float


class SearchOut(_Open):
    passages: list[PassageOut]
    timings_ms: dict[str, float]


class HealthOut(BaseModel):
    status: Literal["ok"]
    documents: int
    chunks: int
    lexical_chunks: int  # in the BM25 index; equals chunks once it caught up with the store
    embedder: str


class DocumentOut(BaseModel):
    doc_id: str
    title: str
    source: str
    date: str | None
    chunk_count: int


class DocumentsOut(BaseModel):
    documents: list[DocumentOut]


class ErrorOut(BaseModel):
    error: str
    detail: list[dict[str, Any]]


def _text(max_chars: int) -> StringConstraints:
    """A question or query: 1..max_chars characters once surrounding whitespace is stripped."""
    return StringConstraints(strip_whitespace=True, min_length=1, max_length=max_chars)


def _error(status: int, message: str, detail: list[dict[str, Any]] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "detail": detail or []}, status_code=status)


async def _on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    # Only loc/msg/type go back: "input" could echo a 50,000-character body, and "ctx" may
    # hold exception objects that are not JSON.
    detail = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()]
    summary = "; ".join(f"{'.'.join(map(str, d['loc']))}: {d['msg']}" for d in detail)
    return _error(422, f"invalid request: {summary}", detail)


async def _on_question_error(request: Request, exc: QuestionError) -> JSONResponse:
    return _error(422, str(exc))


# --- closed doors: request body size, open endpoints, request rate per client IP -----------


class BodyLimitMiddleware:
    """413 with a JSON error for a request body over ``max_bytes``, decided while it arrives.

    A declared Content-Length over the limit is refused before any of the body is read. Any
    other body (chunked uploads declare no length) is read here chunk by chunk and refused as
    soon as the count passes the limit, so no more than ``max_bytes`` is ever held; a body
    within the limit is handed on to the app unchanged. It covers every path, the mounted
    Gradio app included.

    Not FastAPI's own ``max_body_size``: for a declared Content-Length over the limit it swaps
    whatever the app answers for a plain-text 413, which breaks the API's JSON error contract.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.max_bytes
        response = _error(413, f"请求内容太大，上限是 {limit} 字节（request body is larger than {limit} bytes）")
        response.headers["Connection"] = "close"  # the rest of the body is never read
        await response(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        if declared is None and "transfer-encoding" not in headers:
            return await self.app(scope, receive, send)  # no body
        if declared is not None and declared.strip().isdigit() and int(declared) > self.max_bytes:
            return await self.too_large(scope, receive, send)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # http.disconnect: the client is gone
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return await self.too_large(scope, receive, send)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body, pending = b"".join(chunks), True

        async def replay() -> Message:
            nonlocal pending
            if pending:  # the body once, then the server's own messages (http.disconnect)
                pending = False
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


RATE_LIMITED_PATHS = frozenset({"/api/ask", "/api/ask/stream", "/api/search", "/api/brief", "/api/brief.md"})
GRADIO_API_PREFIX = "/gradio_api/"  # every POST under it: queue/join, run/, call/, api/, upload ...

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


class RateLimitMiddleware:
    """429 + ``Retry-After`` once a client IP has used its tokens on a query endpoint.

    Limited: /api/ask, /api/ask/stream, /api/search (any method, so probing them costs too)
    and every POST to Gradio's own API (its queue and predict endpoints, and the closed ones).
    Pages, static files, /api/health and /api/documents are cheap reads and are not limited.
    Checked before the request body is read.
    """

    def __init__(self, app: ASGIApp, *, per_minute: int, burst: int, trusted_proxies: Sequence[str] = ()) -> None:
        self.app = app
        self.limiter = TokenBucketLimiter(per_minute, burst)
        self.trusted_proxies = [ipaddress.ip_network(p, strict=False) for p in trusted_proxies]

    @staticmethod
    def limited(scope: Scope) -> bool:
        path = scope.get("path", "")
        return path in RATE_LIMITED_PATHS or (scope.get("method") == "POST" and path.startswith(GRADIO_API_PREFIX))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.limited(scope):
            wait = self.limiter.acquire(_bucket_key(client_ip(scope, self.trusted_proxies)))
            if wait > 0:
                retry_after = max(1, math.ceil(wait))
                response = _error(
                    429, f"请求过于频繁，请 {retry_after} 秒后再试（too many requests: retry in {retry_after} s）"
                )
                response.headers["Retry-After"] = str(retry_after)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


# Gradio's writing endpoints the chat page never uses (file upload into Gradio's cache,
# recordings, component servers, login, its vibe editor): closed. What stays open is what the
# page and gradio_client use to ask: the queue, the predict endpoints of the events
# (run/, call/, api/: "ask" and the examples' loader), cancel and reset.
GRADIO_OPEN_WRITES = re.compile(r"^/gradio_api/(?:queue/join|cancel|reset|(?:run|call|call/v2|api)/[A-Za-z0-9_-]+/?)$")


class ReadOnlySurfaceMiddleware:
    """404 for every state-changing request outside /api (whose routes answer for themselves)
    and Gradio's open list above: uploads and the like never reach Gradio."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in ("GET", "HEAD", "OPTIONS"):
            path = scope.get("path", "")
            if not (path.startswith("/api/") or GRADIO_OPEN_WRITES.match(path)):
                response = _error(404, f"no such endpoint: {scope['method']} {path}")
                return await response(scope, receive, send)
        await self.app(scope, receive, send)


async def _sse_events(first: Answer, rest: Iterator[Answer]) -> AsyncIterator[JSONServerSentEvent]:
    """``delta`` events with the new text of each partial answer, then ``answer``, then ``done``.

    ask_stream's partial answers are prefixes of the final text, so a delta is the suffix.
    """
    sent, last = "", first
    async for last in iterate_in_threadpool(itertools.chain([first], rest)):
        if len(last.text) > len(sent):
            yield JSONServerSentEvent({"text": last.text[len(sent) :]}, event="delta")
            sent = last.text
    yield JSONServerSentEvent(last.to_dict(), event="answer")
    yield JSONServerSentEvent({}, event="done")


_WIDGET_DEMO = """<!doctype html>
<html lang="zh-CN">
<head><meta charset="utf-8"><title>问答小部件示例</title>
<style>body{font-family:system-ui,sans-serif;max-width:42rem;margin:3rem auto;line-height:1.6;padding:0 1rem}
code,pre{background:#f4f4f5;border-radius:4px;padding:.1rem .3rem}</style></head>
<body>
<h1>问答小部件示例</h1>
<p>把下面这一行放进任意网页，右下角就会出现“问答”按钮；问题发送到脚本所在服务器的
<code>/api/ask</code>，答案中的 [n] 可点击展开引用原文。</p>
<pre>&lt;script src="http://HOST:PORT/widget.js" defer&gt;&lt;/script&gt;</pre>
<p>Add the line above to any page: a “问答” button opens a panel that asks this server's
<code>POST /api/ask</code>. API documentation: <a href="/docs">/docs</a>.</p>
<script src="/widget.js" defer></script>
</body>
</html>
"""


def create_app(kb: KnowledgeBase, settings: Settings | None = None) -> FastAPI:
    """The app over ``kb``. Web limits (rate, body size, trusted proxies) come from
    ``settings``, by default ``kb.settings``."""
    settings = settings or kb.settings
    limit = kb.settings.max_question_chars

    # Request bodies: strict types (no "5" -> 5 coercion), unknown fields refused. Defined
    # here because the length limit is this KB's setting.
    class AskRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        question: Annotated[StrictStr, _text(limit)]
        k: K | None = None

    class SearchRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        query: Annotated[StrictStr, _text(limit)]
        k: K | None = None

    errors: dict[int | str, dict[str, Any]] = {
        413: {"model": ErrorOut, "description": "request body too large (settings.max_body_bytes)"},
        422: {"model": ErrorOut, "description": "invalid request"},
        429: {"model": ErrorOut, "description": "too many requests from this client; see the Retry-After header"},
    }

    app = FastAPI(
        title="知识库问答 API",
        description="Ask questions of the knowledge base; every answer sentence cites its source passage.",
        version="1.0",
        exception_handlers={RequestValidationError: _on_validation_error, QuestionError: _on_question_error},
    )
    # add_middleware puts each new one outside the last: the rate limit is checked first,
    # then whether the endpoint is open at all, then the body size (while it arrives).
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(ReadOnlySurfaceMiddleware)
    if settings.rate_limit_per_minute > 0 and settings.rate_limit_burst > 0:
        app.add_middleware(
            RateLimitMiddleware,
            per_minute=settings.rate_limit_per_minute,
            burst=settings.rate_limit_burst,
            trusted_proxies=settings.trusted_proxies,
        )

    @app.post("/api/ask", response_model=AnswerOut, responses=errors)
    def ask(req: AskRequest) -> dict:
        return kb.ask(req.question, req.k).to_dict()

    @app.post("/api/ask/stream", responses=errors | {200: {"content": {"text/event-stream": {}}}})
    async def ask_stream(req: AskRequest) -> EventSourceResponse:
        """Server-Sent Events: ``delta`` {"text"} ... then ``answer`` (as /api/ask) and ``done``."""
        answers = kb.ask_stream(req.question, req.k)
        # Pull the first answer before responding, so a QuestionError (or any failure in
        # retrieval) becomes a proper error status instead of a broken event stream.
        first = await run_in_threadpool(next, answers)
        return EventSourceResponse(_sse_events(first, answers))

    @app.post("/api/search", response_model=SearchOut, responses=errors)
    def search(req: SearchRequest) -> dict:
        return kb.search(req.query, req.k).to_dict()

    @app.get("/api/health", response_model=HealthOut)
    def health() -> dict:
        stats = kb.stats()
        return {"status": "ok"} | {key: stats[key] for key in ("documents", "chunks", "lexical_chunks", "embedder")}

    @app.get("/api/documents", response_model=DocumentsOut)
    def documents() -> dict:
        return {
            "documents": [
                {"doc_id": d.doc_id, "title": d.title, "source": d.source, "date": d.date, "chunk_count": d.chunk_count}
                for d in kb.documents()
            ]
        }

    app.include_router(briefing_router(kb))

    # Without this, unknown /api paths would fall through to the Gradio mount and get its
    # non-JSON-contract 404; API clients always get {"error": ...}.
    @app.api_route("/api/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
    def no_such_endpoint(request: Request, path: str) -> JSONResponse:
        return _error(404, f"no such endpoint: {request.method} {request.url.path} (see /docs)")

    @app.get("/widget.js", include_in_schema=False)
    def widget_js() -> FileResponse:
        return FileResponse(STATIC_DIR / "widget.js", media_type="text/javascript; charset=utf-8")

    @app.get("/widget", response_class=HTMLResponse, include_in_schema=False)
    def widget_demo() -> str:
        return _WIDGET_DEMO

    # Mounted last: a mount at "/" matches every path, so the API routes must come first.
    # run_history=False: Gradio would otherwise keep every question in the browser and offer
    # to sync them to a Hugging Face bucket.
    return gr.mount_gradio_app(app, build_chat(kb), path="/", run_history=False)
