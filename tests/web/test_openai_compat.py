"""``/v1/models`` and ``/v1/chat/completions`` through the official ``openai`` client against
the real app (uvicorn on loopback, the seed knowledge base), both modes."""

from __future__ import annotations

import httpx
import pytest

openai = pytest.importorskip("openai")

SEED_QUESTION = "锦州的“三个开放”是什么？"


@pytest.fixture(scope="module")
def client(app_url):
    return openai.OpenAI(base_url=app_url + "/v1", api_key="not-needed", max_retries=0)


def test_models_lists_the_knowledge_base(client):
    assert [m.id for m in client.models.list()] == ["default"]


def test_a_cited_answer_without_streaming(client):
    completion = client.chat.completions.create(
        model="default", temperature=0, messages=[{"role": "system", "content": "你是助手"},
                                                  {"role": "user", "content": SEED_QUESTION}])
    reply = completion.choices[0].message.content
    assert "开放数据资源" in reply and "[1]" in reply and completion.choices[0].finish_reason == "stop"
    extra = completion.model_extra
    assert extra["found"] is True
    first = extra["references"][0]
    assert first["n"] == 1 and first["title"] == "数字锦州的味道" and first["doc_id"]


def test_the_stream_adds_up_to_the_same_answer(client):
    whole = client.chat.completions.create(model="default", messages=[{"role": "user", "content": SEED_QUESTION}])
    stream = client.chat.completions.create(
        model="default", stream=True, messages=[{"role": "user", "content": [{"type": "text", "text": SEED_QUESTION}]}])
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == whole.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].model_extra["references"] == whole.model_extra["references"]


def test_a_question_the_knowledge_base_cannot_answer_is_refused(client):
    completion = client.chat.completions.create(model="default", messages=[{"role": "user", "content": "锦州2024年的GDP是多少？"}])
    assert completion.model_extra["found"] is False and completion.model_extra["references"] == []


@pytest.mark.parametrize(
    "body, status",
    [
        ({"model": "gpt-4", "messages": [{"role": "user", "content": "x"}]}, 404),
        ({"model": "default", "messages": []}, 422),
        ({"model": "default", "messages": [{"role": "assistant", "content": "x"}]}, 422),
        ({"model": "default", "messages": [{"role": "user", "content": "   "}]}, 422),
        ({"model": "default", "messages": [{"role": "user", "content": "问" * 3000}]}, 422),
        ({"model": "default", "messages": [{"role": "tool", "content": "x"}]}, 422),
        ({"model": "default", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}]}]}, 422),
        ({"model": "default", "messages": [{"role": "user", "content": "x"}], "functions": []}, 422),
        ({"model": "default", "messages": [{"role": "user", "content": "x"}], "n": 2}, 422),
    ],
)
def test_bad_requests_get_the_apis_error_shape(app_url, body, status):
    response = httpx.post(app_url + "/v1/chat/completions", json=body, timeout=30)
    assert response.status_code == status, response.text
    assert response.json()["error"]


def test_unknown_v1_paths_are_json_404s(app_url):
    response = httpx.get(app_url + "/v1/embeddings", timeout=30)
    assert response.status_code == 404 and response.json()["error"].startswith("no such endpoint")
