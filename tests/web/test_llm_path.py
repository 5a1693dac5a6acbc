"""The LLM path through real parts: LangChain's ChatOpenAI streaming over HTTP from an
OpenAI-compatible server on loopback, the app's API on top, and a server that is not there.

The server is a scripted one (``scripted_llm``): it streams OpenAI chunks of a fixed reply, so
the test knows which sentences a model "wrote" — one the passages support under a wrong [n],
one with an invented number. A real model on llama.cpp's server, whose sentences no test can
script, is tests/web/test_llm_server.py.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest

pytest.importorskip("langchain_openai")

SEED_QUESTION = "锦州的“三个开放”是什么？"
SEED_DOC = "000_d3d8b424e3677781.txt"
# What the scripted model answers: the first sentence is the seed's, under a mark [3] naming another
# passage (the third retrieved), the second invents a number.
REPLY = "锦州坚持“三个开放”，即开放业务系统、开放数据资源、开放市场应用[3]。锦州已有300家企业参与了三个开放[1]。"
REWRITTEN = "锦州“三个开放”中的开放数据资源是什么？"


def scripted_llm(requests: list[dict]):
    """An OpenAI-compatible chat server (Starlette) that streams REPLY, or REWRITTEN when asked
    to rewrite a follow-up; ``requests`` collects the bodies it received."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    async def completions(request: Request):
        body = await request.json()
        requests.append(body)
        prompt = "".join(str(m.get("content")) for m in body["messages"])
        reply = REWRITTEN if "<conversation>" in prompt else REPLY
        base = {"id": "chatcmpl-1", "created": int(time.time()), "model": body["model"]}
        if not body.get("stream"):
            return JSONResponse(base | {"object": "chat.completion", "choices": [
                {"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}]})

        def chunks():
            for i in range(0, len(reply), 7):  # pieces that cut sentences and marks apart
                delta = {"content": reply[i : i + 7]}
                yield "data: " + json.dumps(base | {"object": "chat.completion.chunk", "choices": [
                    {"index": 0, "delta": delta, "finish_reason": None}]}, ensure_ascii=False) + "\n\n"
            yield "data: " + json.dumps(base | {"object": "chat.completion.chunk", "choices": [
                {"index": 0, "delta": {}, "finish_reason": "stop"}]}) + "\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(chunks(), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])


def llm_kb(seed_kb, embedder, base_url: str, timeout: float = 30):
    """A second knowledge base on the seed's store, answering with a chat model at ``base_url``."""
    from kbqa.knowledge_base import KnowledgeBase

    settings = seed_kb.settings.model_copy(
        update={"llm_base_url": base_url, "llm_model": "default", "llm_timeout_seconds": timeout,
                "rate_limit_per_minute": 0}
    )
    return KnowledgeBase(settings, embedder=embedder)


@pytest.fixture(scope="module")
def llm_requests() -> list[dict]:
    return []


@pytest.fixture(scope="module")
def llm_url(seed_kb, embedder, start_app, llm_requests) -> str:
    from tests.web.conftest import serve

    with serve(scripted_llm(llm_requests)) as model_url:
        kb = llm_kb(seed_kb, embedder, model_url + "/v1")
        yield start_app(kb, kb.settings)


def test_the_chat_models_reply_is_verified_and_cited(llm_url, llm_requests):
    with httpx.Client(base_url=llm_url, timeout=60) as client:
        data = client.post("/api/ask", json={"question": SEED_QUESTION}).json()
    # The supported sentence, its mark corrected; the invented number gone.
    assert data["found"] is True, data
    assert data["answer"] == "锦州坚持“三个开放”，即开放业务系统、开放数据资源、开放市场应用[1]。"
    assert data["verification"] == {"sentences": 2, "verified": 1, "corrected": 1, "removed": 1}
    citation = data["citations"][0]
    assert citation["doc_id"] == SEED_DOC and citation["quote"].startswith("目前,锦州坚持“三个开放”")
    assert citation["end"] - citation["start"] < 60  # the supporting sentence, not the passage
    assert "notice" not in data
    request = llm_requests[-1]
    assert request["stream"] is True and request["temperature"] == 0
    assert request["max_tokens"] == 512  # as max_tokens: llama.cpp's server ignores max_completion_tokens
    assert "<documents>" in request["messages"][1]["content"]


def test_the_chat_models_reply_streams_through_the_api(llm_url):
    with httpx.Client(base_url=llm_url, timeout=60) as client:
        expected = client.post("/api/ask", json={"question": SEED_QUESTION}).json()
        with client.stream("POST", "/api/ask/stream", json={"question": SEED_QUESTION}) as response:
            from tests.web.test_api import sse_events

            events = sse_events(response)
    assert [name for name, _ in events][-2:] == ["answer", "done"]
    assert "".join(d["text"] for name, d in events if name == "delta") == expected["answer"]
    assert events[-2][1]["verification"] == expected["verification"]


def test_a_follow_up_is_rewritten_by_the_chat_model(llm_url, llm_requests):
    history = [{"role": "user", "content": SEED_QUESTION}, {"role": "assistant", "content": "开放业务系统、开放数据资源、开放市场应用。[1]"}]
    with httpx.Client(base_url=llm_url, timeout=60) as client:
        data = client.post("/api/ask", json={"question": "其中第二个开放是什么？", "history": history}).json()
    assert data["standalone_question"] == REWRITTEN, data
    rewrite_request = llm_requests[-2]
    assert "<user>锦州的“三个开放”是什么？</user>" in rewrite_request["messages"][1]["content"]
    assert "锦州“三个开放”中的开放数据资源是什么？" in llm_requests[-1]["messages"][1]["content"]


def test_a_question_the_knowledge_base_does_not_answer_is_refused_before_the_model_is_asked(llm_url, llm_requests):
    # The scripted model would answer anything with the seed's sentence (verified, so shown): the
    # extractive answerer's presence model gates the call, as the 1.5B answered 8 of 10 dev
    # questions whose documents were removed (bench/results/llm.md).
    asked = len(llm_requests)
    with httpx.Client(base_url=llm_url, timeout=60) as client:
        data = client.post("/api/ask", json={"question": "北京的地铁票价是多少？"}).json()
    assert data["found"] is False and data["answer"] == "抱歉，知识库中没有找到能回答这个问题的内容。", data
    assert data["related"] and data.get("verification") is None
    assert len(llm_requests) == asked  # the model was not asked


def test_an_unreachable_chat_model_falls_back_to_the_extractive_answer(seed_kb, embedder):
    from bench.servers import free_port

    kb = llm_kb(seed_kb, embedder, f"http://127.0.0.1:{free_port()}/v1", timeout=5)  # nothing listens there
    answer = kb.ask(SEED_QUESTION)
    expected = seed_kb.ask(SEED_QUESTION)
    assert answer.found and answer.text == expected.text
    assert "ConnectionError" in answer.notice and answer.to_dict()["notice"] == answer.notice
    assert answer.verification is None
