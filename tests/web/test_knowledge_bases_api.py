"""Named knowledge bases and filters over real HTTP (uvicorn on loopback, embedded Chroma, the
e5 embedder): ``kb`` and ``filters`` on the query endpoints, ``GET /api/kbs``, ``?kb=`` on the
reads, the OpenAI face's models, and the errors (404 for an unknown name, 422 for a bad one)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import REGION_QUESTION
from tests.web.test_api import sse_events

openai = pytest.importorskip("openai")

JINZHOU, GUIYANG = "jinzhou.txt", "guiyang.txt"


@pytest.fixture(scope="module")
def kbs_url(region_kbs, start_app) -> str:
    return start_app(region_kbs, region_kbs.settings.model_copy(update={"rate_limit_per_minute": 0}))


@pytest.fixture(scope="module")
def client(kbs_url) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=kbs_url, timeout=60) as client:
        yield client


def passages_of(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [p["doc_id"] for p in response.json()["passages"]]


def cited(answer: dict) -> set[str]:
    return {c["doc_id"] for c in answer["citations"]} | {p["doc_id"] for p in answer["related"]}


def test_the_knowledge_bases_are_listed_with_their_counts(client):
    assert client.get("/api/kbs").json() == {"kbs": [{"name": "default", "documents": 0, "chunks": 0},
                                                     {"name": "regions", "documents": 2, "chunks": 2}]}


def test_kb_chooses_the_knowledge_base_and_default_is_the_default(client):
    assert passages_of(client.post("/api/search", json={"query": REGION_QUESTION})) == []
    assert passages_of(client.post("/api/search", json={"query": REGION_QUESTION, "kb": "default"})) == []
    assert passages_of(client.post("/api/search", json={"query": REGION_QUESTION, "kb": "regions"}))[0] == GUIYANG


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"region": "锦州"}, [JINZHOU]),
        ({"region": "贵州"}, [GUIYANG]),
        ({"date_to": "2023-12-31"}, [JINZHOU]),
        ({"date_from": "2024-03-01"}, [GUIYANG]),
        ({"source": JINZHOU}, [JINZHOU]),
        ({"region": "海南"}, []),
    ],
)
def test_search_filters(client, filters, expected):
    response = client.post("/api/search", json={"query": REGION_QUESTION, "kb": "regions", "filters": filters})
    assert passages_of(response) == expected


def test_ask_its_stream_and_briefings_take_the_filters(client):
    body = {"question": REGION_QUESTION, "kb": "regions"}
    assert cited(client.post("/api/ask", json=body).json()) == {GUIYANG}
    filtered = body | {"filters": {"region": "锦州"}}
    answer = client.post("/api/ask", json=filtered).json()
    assert cited(answer) == {JINZHOU}  # cited, or offered as related reading with a refusal
    with client.stream("POST", "/api/ask/stream", json=filtered) as response:
        events = sse_events(response)
    final = next(data for name, data in events if name == "answer")
    assert cited(final) == {JINZHOU} and final["answer"] == answer["answer"]
    brief = client.post("/api/brief", json={"topic": "数据中心", "kb": "regions", "filters": {"region": "贵阳"}}).json()
    assert brief["found"] is True and {s["doc_id"] for s in brief["sources"]} == {GUIYANG}
    download = client.get("/api/brief.md", params={"topic": "数据中心", "kb": "regions"})
    assert download.status_code == 200 and "数据中心" in download.text


def test_the_document_list_shows_regions_dates_and_ingest_times(client):
    listed = client.get("/api/documents", params={"kb": "regions"}).json()
    assert listed["kb"] == "regions"
    by_id = {d["doc_id"]: d for d in listed["documents"]}
    assert by_id[JINZHOU]["regions"] == ["辽宁省", "锦州市", "凌海市"] and by_id[JINZHOU]["date"] == "2023-08-05"
    assert by_id[GUIYANG]["chunk_count"] == 1 and by_id[GUIYANG]["ingested_at"].endswith("Z")
    assert client.get("/api/documents").json() == {"kb": "default", "documents": []}
    assert client.get("/api/health", params={"kb": "regions"}).json()["documents"] == 2


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("POST", "/api/ask", {"json": {"question": REGION_QUESTION, "kb": "nope"}}),
        ("POST", "/api/ask/stream", {"json": {"question": REGION_QUESTION, "kb": "nope"}}),
        ("POST", "/api/search", {"json": {"query": REGION_QUESTION, "kb": "nope"}}),
        ("POST", "/api/brief", {"json": {"topic": "数据中心", "kb": "nope"}}),
        ("GET", "/api/brief.md", {"params": {"topic": "数据中心", "kb": "nope"}}),
        ("GET", "/api/documents", {"params": {"kb": "nope"}}),
        ("GET", "/api/health", {"params": {"kb": "nope"}}),
    ],
)
def test_an_unknown_knowledge_base_is_a_404(client, method, path, kwargs):
    response = client.request(method, path, **kwargs)
    assert response.status_code == 404, response.text
    assert "no such knowledge base: 'nope'" in response.json()["error"] and response.json()["detail"] == []
    assert client.get("/api/kbs").json()["kbs"][-1]["name"] == "regions"  # reading created nothing


@pytest.mark.parametrize(
    "extra",
    [
        {"kb": "a.b"},
        {"kb": "锦州"},
        {"kb": ""},
        {"kb": 5},
        {"filters": {"date_from": "2023/01/01"}},
        {"filters": {"date_from": "2023-02-30"}},  # the right shape, no such day
        {"filters": {"date_from": "2024-01-01", "date_to": "2023-01-01"}},
        {"filters": {"city": "锦州"}},  # unknown fields are refused, as everywhere
        {"filters": {"region": 7}},
        {"filters": "锦州"},
    ],
)
def test_a_bad_kb_or_filter_is_a_422(client, extra):
    for path, body in (("/api/search", {"query": REGION_QUESTION}), ("/api/ask", {"question": REGION_QUESTION})):
        response = client.post(path, json=body | {"kb": "regions"} | extra)
        assert response.status_code == 422, (path, extra, response.text)
        assert response.json()["error"]
    assert client.get("/api/documents", params={"kb": "a.b"}).status_code == 422


def test_the_openai_face_lists_each_knowledge_base_as_a_model(kbs_url):
    client = openai.OpenAI(base_url=kbs_url + "/v1", api_key="not-needed", max_retries=0)
    assert [m.id for m in client.models.list()] == ["default", "regions"]
    completion = client.chat.completions.create(model="regions", messages=[{"role": "user", "content": REGION_QUESTION}])
    assert completion.model == "regions" and completion.model_extra["found"] is True
    assert {r["doc_id"] for r in completion.model_extra["references"]} == {GUIYANG}
    chunks = list(client.chat.completions.create(
        model="regions", stream=True, messages=[{"role": "user", "content": REGION_QUESTION}]))
    assert {c.model for c in chunks} == {"regions"}
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == completion.choices[0].message.content
    empty = client.chat.completions.create(model="default", messages=[{"role": "user", "content": REGION_QUESTION}])
    assert empty.model_extra["found"] is False
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": REGION_QUESTION}])
