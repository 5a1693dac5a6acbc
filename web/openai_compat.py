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
chat model at temperature 0 with every sentence verified.

LangChain's ``ChatOpenAI`` keeps none of a response's extra fields, streamed or not; of what
OpenAI defines, a choice's ``logprobs`` is the one object it carries through, into the
message's ``response_metadata["logprobs"]`` in both modes. So the choice's ``logprobs`` holds
``content: null`` (no token log-probabilities: the reply is not sampled) and the same
``references`` and ``found``.

``usage`` counts tokens with the default embedder's tokenizer (``count_tokens``): the prompt is
every message's text, the completion the reply's; a stream reports it in a last chunk when
asked (``stream_options: {"include_usage": true}``), as OpenAI does.

Errors under ``/v1/`` are OpenAI's error object, ``{"error": {"message", "type", "param",
"code"}}`` (``OpenAIErrors``), so OpenAI clients show the message, whichever layer refused the
request (validation, the rate limit, the body limit, an unknown path or model).

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
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kbcore.types import Answer
from kbqa.knowledge_base import KnowledgeBases, QuestionError, UnknownKnowledgeBase, count_tokens
from web.api import text_deltas
from web.errors import JSONErrorRoute
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


class StreamOptions(BaseModel):
    include_usage: StrictBool = False  # a last chunk with the usage, and "usage": null on the others
    include_obfuscation: StrictBool | None = None  # accepted, ignored


class ChatRequest(BaseModel):
    """OpenAI's chat completion request: what this server reads, and the sampling parameters
    clients send that it accepts and ignores. Anything else is a 422."""

    # What /docs' "Try it out" sends unedited (tests/web/test_api_docs.py).
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "model": "default", "messages": [{"role": "user", "content": "锦州的“三个开放”是什么？"}], "stream": False,
    }]})
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
    stream_options: StreamOptions | None = None


class OpenAIErrorBody(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class OpenAIErrorOut(BaseModel):
    """OpenAI's error object: what every /v1/ error answers (``OpenAIErrors``)."""

    error: OpenAIErrorBody


OPENAI_ERRORS = {status: spec | {"model": OpenAIErrorOut} for status, spec in ERROR_RESPONSES.items()}


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


class ReferencesLogprobs(BaseModel):
    content: None = None
    references: list[CitationOut] = Field(description="as the response's references (for LangChain's ChatOpenAI)")
    found: bool


class Choice(BaseModel):
    index: int = 0
    message: CompletionMessage
    finish_reason: Literal["stop"] = "stop"
    logprobs: ReferencesLogprobs


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

    @router.get("/v1/models", response_model=ModelsOut, responses={429: OPENAI_ERRORS[429]})
    def models() -> dict:
        """Each knowledge base of the store, as a model named after it."""
        data = [{"id": name, "object": "model", "created": created, "owned_by": "kbqa"} for name in kbs.names()]
        return {"object": "list", "data": data}

    @router.post(
        "/v1/chat/completions",
        response_model=CompletionOut,
        responses=OPENAI_ERRORS | {404: OPENAI_ERRORS[422] | {"description": "no such model"}}
        | {200: {"content": {"text/event-stream": {}}}},
    )
    async def chat_completions(req: ChatRequest):
        try:
            kb = await run_in_threadpool(kbs.get, req.model)
        except UnknownKnowledgeBase:
            message = f"no such model: {req.model!r:.60} (GET /v1/models lists them)"
            return openai_error(404, message, param="model", code="model_not_found")
        question = _question(req.messages)
        history = _history(req.messages[:-1], kbs.settings.max_history_messages, kbs.settings.max_history_chars)
        answers = kb.ask_stream(question, history=history)
        # The first answer before responding, so a refused question is a 422, not a broken stream.
        first = await run_in_threadpool(next, answers)
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        prompt_tokens = await run_in_threadpool(lambda: sum(count_tokens(m.text()) for m in req.messages))
        if req.stream:
            usage = prompt_tokens if req.stream_options and req.stream_options.include_usage else None
            return EventSourceResponse(_chunks(completion_id, kb.name, first, answers, usage), ping=15)
        final = await run_in_threadpool(_last, first, answers)
        return _completion(completion_id, kb.name, final, prompt_tokens)

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


def _usage(prompt_tokens: int, answer: Answer) -> dict[str, int]:
    completion_tokens = count_tokens(answer.text)
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def _logprobs(data: dict) -> dict:
    """The references where LangChain's ChatOpenAI keeps them (module docstring)."""
    return {"content": None, "refusal": None, "references": data["citations"], "found": data["found"]}


def _completion(completion_id: str, model: str, answer: Answer, prompt_tokens: int) -> dict:
    data = answer.to_dict()
    message = {"role": "assistant", "content": answer.text}
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop", "logprobs": _logprobs(data)}],
        "usage": _usage(prompt_tokens, answer),
        "found": data["found"],
        "standalone_question": data["standalone_question"],
        "references": data["citations"],
    } | {key: data[key] for key in ("verification", "notice") if key in data}


async def _chunks(
    completion_id: str, model: str, first: Answer, rest: Iterator[Answer], prompt_tokens: int | None
) -> AsyncIterator[ServerSentEvent]:
    """OpenAI's stream: ``chat.completion.chunk`` objects whose deltas add up to the reply, the
    last with ``finish_reason`` and the references; with ``prompt_tokens`` (the client asked
    for the usage) a chunk without choices carrying it; then ``[DONE]``."""
    with_usage = {"usage": None} if prompt_tokens is not None else {}

    def chunk(delta: dict | None, finish: str | None = None, logprobs: dict | None = None, **extra) -> ServerSentEvent:
        choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": logprobs}]
        body = {"id": completion_id, "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
                "choices": choices} | with_usage | extra
        return ServerSentEvent(json.dumps(body, ensure_ascii=False))

    yield chunk({"role": "assistant", "content": ""})
    last = first
    async for delta, last in text_deltas(first, rest):
        if delta:
            yield chunk({"content": delta})
    final = last.to_dict()
    extra = {key: final[key] for key in ("verification", "notice") if key in final}
    yield chunk({}, "stop", _logprobs(final), found=final["found"], standalone_question=final["standalone_question"],
                references=final["citations"], **extra)
    if prompt_tokens is not None:
        yield chunk(None, usage=await run_in_threadpool(_usage, prompt_tokens, last))
    yield ServerSentEvent("[DONE]")


# OpenAI's error types by status (its API reference, "Error codes").
_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 408: "timeout_error", 409: "conflict_error", 413: "invalid_request_error",
                415: "invalid_request_error", 422: "invalid_request_error", 429: "rate_limit_error"}


def openai_error(status: int, message: str, *, param: str | None = None, code: str | None = None) -> JSONResponse:
    kind = _ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": code}}, status_code=status)


def _as_openai_error(status: int, body: dict) -> dict:
    """The API's one error shape (web/errors.py) as OpenAI's: the first invalid field is the
    ``param`` (``messages.0.content``) and its error type the ``code``."""
    detail = body.get("detail") or []
    first = detail[0] if detail and isinstance(detail[0], dict) else {}
    loc = [str(part) for part in first.get("loc", []) if part != "body"]
    code = first.get("type") or {404: "not_found", 413: "request_too_large", 429: "rate_limit_exceeded"}.get(status)
    return json.loads(openai_error(status, str(body["error"]), param=".".join(loc) or None, code=code).body)


class OpenAIErrors:
    """Every error answered under ``/v1/`` in OpenAI's shape: whichever layer refused the
    request (this router, FastAPI's validation, the rate and body limits outside it, the
    unknown-path catch-all) wrote the API's one shape, rewritten here on its way out."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        body = b""

        async def rewrite(message: Message) -> None:
            nonlocal start, body
            if message["type"] == "http.response.start":
                headers = MutableHeaders(raw=message["headers"])
                if message["status"] < 400 or not headers.get("content-type", "").startswith("application/json"):
                    await send(message)
                    return
                start = message
                return
            if start is None:
                await send(message)
                return
            body += message.get("body", b"")
            if message.get("more_body"):
                return
            try:
                parsed = json.loads(body)
                if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
                    body = json.dumps(_as_openai_error(start["status"], parsed), ensure_ascii=False).encode()
            except ValueError:
                pass  # not the API's shape: passed on as it is
            headers = MutableHeaders(raw=start["headers"])
            headers["content-length"] = str(len(body))
            await send(start)
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, rewrite)
