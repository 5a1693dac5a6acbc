"""One FastAPI app serving the JSON/SSE API, the embeddable widget and the Gradio chat UI.

Handlers are thin: validate the request, call ``KnowledgeBase``, return its ``to_dict()``.
Blocking KB calls (embedding, Chroma, answering) run in Starlette's threadpool so the
event loop keeps serving other requests and the chat UI's queue.

No ``from __future__ import annotations`` here: the request models are defined per app (their
length limit is that KB's setting), and FastAPI must resolve endpoint annotations that refer
to these local classes as real objects, not strings.
"""

import itertools
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import gradio as gr
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
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
from starlette.middleware.trustedhost import TrustedHostMiddleware

from kbqa.knowledge_base import KnowledgeBase, QuestionError
from kbqa.settings import Settings
from kbqa.types import Answer
from web.briefing import briefing_router
from web.chat import build_chat
from web.errors import error_response, on_validation_error
from web.gradio_guard import GradioGuard, mark_launched, own_cache
from web.middleware import (
    BodyLimitMiddleware,
    RateLimitMiddleware,
    SecurityHeadersMiddleware,
    UntrustedForwardedHeaders,
)

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


async def _on_question_error(request: Request, exc: QuestionError) -> JSONResponse:
    return error_response(422, str(exc))


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
        exception_handlers={RequestValidationError: on_validation_error, QuestionError: _on_question_error},
    )
    demo = build_chat(kb)
    own_cache(demo)
    # add_middleware puts each new one outside the last. From the outside in: security headers
    # on every response; the Host header checked; forwarded headers dropped unless a trusted
    # proxy sent them; CORS (preflights answered before they cost a rate-limit token, and the
    # limiter's 429 still readable by an allowed page); the rate limit; the body's size and
    # time while it arrives; then what Gradio's half accepts.
    app.add_middleware(GradioGuard, demo=demo)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes, timeout=settings.body_timeout_seconds)
    if settings.rate_limit_per_minute > 0 and settings.rate_limit_burst > 0:
        app.add_middleware(
            RateLimitMiddleware,
            per_minute=settings.rate_limit_per_minute,
            burst=settings.rate_limit_burst,
            trusted_proxies=settings.trusted_proxies,
        )
    # One CORS policy for the whole app: with this middleware on the parent app, Gradio adds
    # none of its own (its default allowed any origin, with credentials, for a non-local Host).
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.allowed_origins,
        allow_methods=["GET", "POST"],
        allow_headers=["Content-Type"],
        allow_credentials=False,
        max_age=600,
    )
    app.add_middleware(UntrustedForwardedHeaders, trusted_proxies=settings.trusted_proxies)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=_served_hosts(settings), www_redirect=False)
    app.add_middleware(SecurityHeadersMiddleware, frame_ancestors=settings.allowed_origins)

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
        return error_response(404, f"no such endpoint: {request.method} {request.url.path} (see /docs)")

    @app.get("/widget.js", include_in_schema=False)
    def widget_js() -> FileResponse:
        return FileResponse(STATIC_DIR / "widget.js", media_type="text/javascript; charset=utf-8")

    @app.get("/widget", response_class=HTMLResponse, include_in_schema=False)
    def widget_demo() -> str:
        return _WIDGET_DEMO

    # Mounted last: a mount at "/" matches every path, so the API routes must come first.
    # run_history=False: Gradio would otherwise keep every question in the browser and offer
    # to sync them to a Hugging Face bucket. show_error=False: an exception's text (internals)
    # never reaches the page; the chat turns the errors a visitor can cause into messages.
    # No allowed_paths: Gradio serves no file of the host's.
    app = gr.mount_gradio_app(app, demo, path="/", run_history=False, show_error=False, allowed_paths=[])
    mark_launched(demo)
    return app


def _served_hosts(settings: Settings) -> list[str]:
    """``trusted_hosts``, and the address the app is bound to when it names one."""
    hosts = list(settings.trusted_hosts)
    if settings.host not in ("0.0.0.0", "::", "") and settings.host not in hosts:
        hosts.append(settings.host)
    return hosts
