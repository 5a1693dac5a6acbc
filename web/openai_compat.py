"""An OpenAI-compatible face of the same answers: ``GET /v1/models`` and
``POST /v1/chat/completions`` (``stream`` false or true), so any OpenAI client or tool can ask
the knowledge bases: each is a model, by its name (``default`` among them).

The user's last message is the question; the user and assistant messages before it are the
conversation's history (``KnowledgeBase.ask_stream(..., history=...)``), so a follow-up is
rewritten into a standalone question first. OpenAI clients resend the whole conversation each
time, so the oldest messages beyond the history bounds (settings.max_history_messages /
max_history_chars) are dropped rather than refused; system and developer messages are not
part of it (the knowledge base has its own instructions). The reply's text carries the ``[n]`` marks; the
response adds ``references`` (the API's citation objects, ``references[n - 1]`` for ``[n]``)
and ``found``, which OpenAI clients keep as extra fields. Sampling parameters
(``temperature`` ...) are accepted and ignored: the answers are extractive, or from the configured
chat model at temperature 0 with every sentence verified. Errors
keep the API's one shape (``{"error": message, "detail": [...]}``).

No ``from __future__ import annotations``: the request model is local (its length limit is
the KB's setting) and FastAPI must resolve the endpoint annotations as real objects.
"""

import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from kbcore.types import Answer
from kbqa.knowledge_base import KnowledgeBases, QuestionError, UnknownKnowledgeBase
from web.api import text_deltas
from web.errors import JSONErrorRoute, error_response
from web.schemas import ERROR_RESPONSES, CitationOut, OpenModel

MAX_MESSAGES = 50


class TextPart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["text"]
    text: StrictStr


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "developer", "user", "assistant"]
    content: StrictStr | list[TextPart]
    name: StrictStr | None = None

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(part.text for part in self.content)


class ChatRequest(BaseModel):
    """OpenAI's chat completion request: what this server reads, and the sampling parameters
    clients send that it accepts and ignores. Anything else is a 422."""

    model_config = ConfigDict(extra="forbid")
    model: StrictStr
    messages: Annotated[list[ChatMessage], Field(min_length=1, max_length=MAX_MESSAGES)]
    stream: StrictBool = False
    # Accepted, ignored: the answer is extractive.
    temperature: float | None = None
    top_p: float | None = None
    n: Literal[1] | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    seed: int | None = None
    stop: StrictStr | list[StrictStr] | None = None
    user: StrictStr | None = None
    stream_options: dict | None = None


class ModelOut(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelsOut(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelOut]


class CompletionMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: CompletionMessage
    finish_reason: Literal["stop"] = "stop"


class CompletionOut(OpenModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: dict[str, int]
    found: bool = Field(description="false when the knowledge base does not hold the answer (the reply says so)")
    references: list[CitationOut] = Field(description="references[n - 1] is the passage [n] cites")


def openai_router(kbs: KnowledgeBases) -> APIRouter:
    router = APIRouter(route_class=JSONErrorRoute, tags=["OpenAI-compatible"])
    created = int(time.time())

    @router.get("/v1/models", response_model=ModelsOut)
    def models() -> dict:
        """Each knowledge base of the store, as a model named after it."""
        data = [{"id": name, "object": "model", "created": created, "owned_by": "kbqa"} for name in kbs.names()]
        return {"object": "list", "data": data}

    @router.post(
        "/v1/chat/completions",
        response_model=CompletionOut,
        responses=ERROR_RESPONSES | {404: ERROR_RESPONSES[422] | {"description": "no such model"}}
        | {200: {"content": {"text/event-stream": {}}}},
    )
    async def chat_completions(req: ChatRequest):
        try:
            kb = await run_in_threadpool(kbs.get, req.model)
        except UnknownKnowledgeBase:
            return error_response(404, f"no such model: {req.model!r:.60} (GET /v1/models lists them)")
        question = _question(req.messages)
        history = _history(req.messages[:-1], kbs.settings.max_history_messages, kbs.settings.max_history_chars)
        answers = kb.ask_stream(question, history=history)
        # The first answer before responding, so a refused question is a 422, not a broken stream.
        first = await run_in_threadpool(next, answers)
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        if req.stream:
            return EventSourceResponse(_chunks(completion_id, kb.name, first, answers), ping=15)
        final = await run_in_threadpool(_last, first, answers)
        return _completion(completion_id, kb.name, final)

    return router


def _question(messages: list[ChatMessage]) -> str:
    user = [message for message in messages if message.role == "user"]
    if not user or messages[-1].role != "user":
        raise QuestionError("the last message must be the user's question")
    return user[-1].text()


def _history(messages: list[ChatMessage], max_messages: int, max_chars: int) -> list[dict]:
    """The user and assistant messages before the question, the newest that fit the bounds."""
    kept: list[dict] = []
    chars = 0
    for message in reversed(messages):
        if message.role not in ("user", "assistant"):
            continue
        text = message.text()
        if len(kept) >= max_messages or chars + len(text) > max_chars:
            break
        kept.append({"role": message.role, "content": text})
        chars += len(text)
    return kept[::-1]


def _last(first: Answer, rest: Iterator[Answer]) -> Answer:
    final = first
    for final in rest:
        pass
    return final


def _completion(completion_id: str, model: str, answer: Answer) -> dict:
    data = answer.to_dict()
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        "found": data["found"],
        "standalone_question": data["standalone_question"],
        "references": data["citations"],
    } | {key: data[key] for key in ("verification", "notice") if key in data}


async def _chunks(
    completion_id: str, model: str, first: Answer, rest: Iterator[Answer]
) -> AsyncIterator[ServerSentEvent]:
    """OpenAI's stream: ``chat.completion.chunk`` objects whose deltas add up to the reply, the
    last with ``finish_reason`` and the references, then ``[DONE]``."""

    def chunk(delta: dict, finish: str | None = None, **extra) -> ServerSentEvent:
        body = {"id": completion_id, "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]} | extra
        return ServerSentEvent(json.dumps(body, ensure_ascii=False))

    yield chunk({"role": "assistant", "content": ""})
    last = first
    async for delta, last in text_deltas(first, rest):
        if delta:
            yield chunk({"content": delta})
    final = last.to_dict()
    extra = {key: final[key] for key in ("verification", "notice") if key in final}
    yield chunk({}, "stop", found=final["found"], standalone_question=final["standalone_question"],
                references=final["citations"], **extra)
    yield ServerSentEvent("[DONE]")
