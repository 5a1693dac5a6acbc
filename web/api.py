"""The JSON/SSE API's routes: ``api_router(kbs)``.

Handlers are thin: validate the request, call the ``KnowledgeBase`` its ``kb`` names (from
``KnowledgeBases``; an unknown name is a 404), return its ``to_dict()``.
Blocking KB calls (embedding, Chroma, answering) run in Starlette's threadpool so the
event loop keeps serving other requests and the chat UI's queue.

No ``from __future__ import annotations`` here: the request models are defined per router
(their length limit is that KB's setting), and FastAPI must resolve endpoint annotations that
refer to these local classes as real objects, not strings.
"""

import itertools
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, StrictStr
from sse_starlette import EventSourceResponse, JSONServerSentEvent
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from kbcore.types import Answer
from kbqa.knowledge_base import DEFAULT_KB, KnowledgeBases
from web.errors import JSONErrorRoute, error_response
from web.schemas import (
    ERROR_RESPONSES,
    AnswerOut,
    DocumentsOut,
    ErrorOut,
    FiltersIn,
    HealthOut,
    K,
    KbName,
    KbQuery,
    KbsOut,
    SearchOut,
    filters_of,
    history_field,
    question_text,
)


log = logging.getLogger(__name__)

EXAMPLE_QUESTION = "锦州的“三个开放”是什么？"  # the demo knowledge base answers it
EXAMPLE_FILTERS = {"region": "锦州", "date_from": "2023-01-01", "date_to": "2024-12-31"}
ASK_EXAMPLE = {"question": EXAMPLE_QUESTION, "k": 5, "history": [], "kb": DEFAULT_KB, "filters": EXAMPLE_FILTERS}
SEARCH_EXAMPLE = {"query": EXAMPLE_QUESTION, "k": 5, "kb": DEFAULT_KB, "filters": EXAMPLE_FILTERS}



def api_router(kbs: KnowledgeBases, failing: Callable[[], str | None] = lambda: None) -> APIRouter:
    """``/api/ask``, ``/api/ask/stream``, ``/api/search``, ``/api/health``, ``/api/documents``, ``/api/kbs``.
    ``failing()`` names a part of the app that stopped working, or is None: /api/health then
    answers 503, so an orchestrator restarts the app."""
    settings = kbs.settings
    limit = settings.max_question_chars
    History = history_field(settings.max_history_messages, settings.max_history_chars)

    # Request bodies: strict types (no "5" -> 5 coercion), unknown fields refused.
    # Each request's example is what /docs' "Try it out" sends unedited: it must succeed as it is
    # (tests/web/test_api_docs.py posts every one).
    class AskRequest(BaseModel):
        model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [ASK_EXAMPLE]})
        question: Annotated[StrictStr, question_text(limit)]
        k: K | None = None
        history: History = Field(default_factory=list)  # type: ignore[valid-type]
        kb: KbName = DEFAULT_KB
        filters: FiltersIn | None = None

        def messages(self) -> list[dict]:
            return [m.model_dump() for m in self.history]

    class SearchRequest(BaseModel):
        model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [SEARCH_EXAMPLE]})
        query: Annotated[StrictStr, question_text(limit)]
        k: K | None = None
        kb: KbName = DEFAULT_KB
        filters: FiltersIn | None = None

    router = APIRouter(route_class=JSONErrorRoute)

    @router.post("/api/ask", response_model=AnswerOut, responses=ERROR_RESPONSES)
    def ask(req: AskRequest) -> dict:
        kb = kbs.get(req.kb)
        return kb.ask(req.question, req.k, history=req.messages(), filters=filters_of(req.filters)).to_dict()

    @router.post("/api/ask/stream", responses=ERROR_RESPONSES | {200: {"content": {"text/event-stream": {}}}})
    async def ask_stream(req: AskRequest) -> EventSourceResponse:
        """Server-Sent Events: ``delta`` {"text"} ... then ``answer`` (as /api/ask) and ``done``."""
        kb = await run_in_threadpool(kbs.get, req.kb)
        answers = kb.ask_stream(req.question, req.k, history=req.messages(), filters=filters_of(req.filters))
        # Pull the first answer before responding, so a QuestionError (or any failure in
        # retrieval) becomes a proper error status instead of a broken event stream.
        first = await run_in_threadpool(next, answers)
        return EventSourceResponse(_sse_events(first, answers))

    @router.post("/api/search", response_model=SearchOut, responses=ERROR_RESPONSES)
    def search(req: SearchRequest) -> dict:
        return kbs.get(req.kb).search(req.query, req.k, filters=filters_of(req.filters)).to_dict()

    @router.get(
        "/api/health",
        response_model=HealthOut,
        responses={404: ERROR_RESPONSES[404], 503: {"model": ErrorOut, "description": "a part of the app has stopped: restart it"}},
    )
    def health(kb: KbQuery = DEFAULT_KB) -> Any:
        problem = failing()
        if problem is not None:
            log.error("health check failing: %s", problem)
            return error_response(503, f"unhealthy: {problem}")
        stats = kbs.get(kb).stats()
        return {"status": "ok"} | {key: stats[key] for key in ("documents", "chunks", "lexical_chunks", "embedder")}

    @router.get("/api/kbs", response_model=KbsOut)
    def knowledge_bases() -> dict:
        """The store's knowledge bases with their counts, ``default`` first."""
        return {"kbs": kbs.describe()}

    @router.get("/api/documents", response_model=DocumentsOut, responses={404: ERROR_RESPONSES[404]})
    def documents(kb: KbQuery = DEFAULT_KB) -> dict:
        fields = ("doc_id", "title", "source", "date", "regions", "chunk_count", "ingested_at")
        return {"kb": kb, "documents": [{key: getattr(d, key) for key in fields} for d in kbs.get(kb).documents()]}

    return router


async def text_deltas(first: Answer, rest: Iterator[Answer]) -> AsyncIterator[tuple[str, Answer]]:
    """Each partial answer of ``ask_stream`` with the text it adds ("" when none), the final
    answer last. Partial answers are prefixes of the final text, so a delta is the suffix.
    The stream's work (retrieval, answering) runs in the threadpool."""
    sent = ""
    async for answer in iterate_in_threadpool(itertools.chain([first], rest)):
        delta = answer.text[len(sent) :]  # "" unless the answer grew
        if delta:
            sent = answer.text
        yield delta, answer


async def _sse_events(first: Answer, rest: Iterator[Answer]) -> AsyncIterator[JSONServerSentEvent]:
    """``delta`` events with the new text of each partial answer, then ``answer``, then ``done``."""
    last = first
    async for delta, last in text_deltas(first, rest):
        if delta:
            yield JSONServerSentEvent({"text": delta}, event="delta")
    yield JSONServerSentEvent(last.to_dict(), event="answer")
    yield JSONServerSentEvent({}, event="done")
