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


def test_the_earlier_messages_are_the_conversation_a_follow_up_continues(client):
    first = client.chat.completions.create(model="default", messages=[{"role": "user", "content": SEED_QUESTION}])
    conversation = [
        {"role": "system", "content": "你是助手"},  # not part of the history
        {"role": "user", "content": SEED_QUESTION},
        {"role": "assistant", "content": first.choices[0].message.content},
        {"role": "user", "content": "其中第二个开放是什么？"},
    ]
    completion = client.chat.completions.create(model="default", messages=conversation)
    extra = completion.model_extra
    assert extra["standalone_question"] == "锦州的开放数据资源是什么？"
    assert extra["found"] is True and completion.choices[0].message.content.startswith("开放数据资源,鼓励企业")
    chunks = list(client.chat.completions.create(model="default", messages=conversation, stream=True))
    assert chunks[-1].model_extra["standalone_question"] == "锦州的开放数据资源是什么？"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == completion.choices[0].message.content
    # Only the last user message alone: nothing to lean on, refused.
    alone = client.chat.completions.create(model="default", messages=conversation[-1:])
    assert alone.model_extra["found"] is False


def test_a_long_conversation_keeps_its_newest_messages(client, seed_kb):
    """OpenAI clients resend the whole conversation: beyond the history bounds the oldest
    messages are dropped, not refused."""
    filler = [{"role": "user", "content": "问" * 400}, {"role": "assistant", "content": "答" * 400}] * 16
    first = client.chat.completions.create(model="default", messages=[{"role": "user", "content": SEED_QUESTION}])
    messages = [*filler, {"role": "user", "content": SEED_QUESTION},
                {"role": "assistant", "content": first.choices[0].message.content},
                {"role": "user", "content": "其中第二个开放是什么？"}]
    assert sum(len(m["content"]) for m in messages) > seed_kb.settings.max_history_chars
    completion = client.chat.completions.create(model="default", messages=messages)
    assert completion.model_extra["standalone_question"] == "锦州的开放数据资源是什么？"


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
def test_bad_requests_get_openais_error_object(app_url, body, status):
    response = httpx.post(app_url + "/v1/chat/completions", json=body, timeout=30)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert error["type"] == {404: "not_found_error", 422: "invalid_request_error"}[status]


def test_unknown_v1_paths_are_json_404s(app_url):
    response = httpx.get(app_url + "/v1/embeddings", timeout=30)
    assert response.status_code == 404 and response.json()["error"]["message"].startswith("no such endpoint")


def test_the_openai_client_shows_the_servers_message(client):
    # Issue 21: with {"error": "<string>"} the client said only "Error code: 404".
    with pytest.raises(openai.NotFoundError) as exc:
        client.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": SEED_QUESTION}])
    assert "no such model" in exc.value.message
    assert exc.value.code == "model_not_found" and exc.value.param == "model"
    with pytest.raises(openai.UnprocessableEntityError) as exc:
        client.chat.completions.create(model="default", messages=[{"role": "user", "content": "   "}])
    assert "empty" in exc.value.message


def test_usage_counts_tokens_and_the_stream_reports_it_when_asked(client):
    from kbqa.knowledge_base import count_tokens

    messages = [{"role": "system", "content": "你是助手"}, {"role": "user", "content": SEED_QUESTION}]
    whole = client.chat.completions.create(model="default", messages=messages)
    usage = whole.usage
    assert usage.prompt_tokens == count_tokens("你是助手") + count_tokens(SEED_QUESTION) > 0
    assert usage.completion_tokens == count_tokens(whole.choices[0].message.content) > 10
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    chunks = list(client.chat.completions.create(model="default", messages=messages, stream=True,
                                                 stream_options={"include_usage": True}))
    assert chunks[-1].choices == [] and chunks[-1].usage == usage
    assert all(c.usage is None for c in chunks[:-1])
    plain = list(client.chat.completions.create(model="default", messages=messages, stream=True))
    assert all(c.usage is None for c in plain)


@pytest.mark.parametrize("stream", [False, True])
def test_langchain_chat_openai_keeps_the_references(app_url, stream):
    # Issue 21: ChatOpenAI keeps no extra response field; a choice's logprobs it carries through.
    from langchain_openai import ChatOpenAI

    chat = ChatOpenAI(base_url=app_url + "/v1", api_key="not-needed", model="default", max_retries=0)
    if stream:
        message = None
        for chunk in chat.stream(SEED_QUESTION):
            message = chunk if message is None else message + chunk
    else:
        message = chat.invoke(SEED_QUESTION)
    assert "开放数据资源" in message.content and "[1]" in message.content
    carried = message.response_metadata["logprobs"]
    assert carried["found"] is True
    assert carried["references"][0]["n"] == 1 and carried["references"][0]["title"] == "数字锦州的味道"
