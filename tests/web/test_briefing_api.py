"""The briefing endpoints over real HTTP: a FastAPI app holding only ``briefing_router(seed_kb)``,
served by uvicorn on a free loopback port (the ``serve`` helper of tests/web/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI

from web.briefing import briefing_router

TOPIC = "锦州数字政府建设"


def _web_conftest(config: pytest.Config):
    """The module pytest loaded tests/web/conftest.py as (conftest files are not importable
    by name: every directory's is called ``conftest``)."""
    path = Path(__file__).resolve().with_name("conftest.py")
    for plugin in config.pluginmanager.get_plugins():
        if getattr(plugin, "__file__", None) and Path(plugin.__file__).resolve() == path:
            return plugin
    raise LookupError(path)


@pytest.fixture(scope="module")
def brief_url(request, seed_kb) -> Iterator[str]:
    app = FastAPI()
    app.include_router(briefing_router(seed_kb))
    with _web_conftest(request.config).serve(app) as url:
        yield url


@pytest.fixture(scope="module")
def client(brief_url) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=brief_url, timeout=60) as c:
        yield c


def test_post_brief(client):
    r = client.post("/api/brief", json={"topic": TOPIC})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    data = r.json()
    assert set(data) == {"topic", "found", "markdown", "sources", "timings_ms"}
    assert data["topic"] == TOPIC and data["found"] is True
    assert data["markdown"].startswith(f"# 简报：{TOPIC}\n")
    assert [s["n"] for s in data["sources"]] == list(range(1, len(data["sources"]) + 1))
    for source in data["sources"]:
        assert f"[^{source['n']}]: 数字锦州的味道 · 2023-08-05" in data["markdown"]
        assert source["title"] == "数字锦州的味道" and source["quote"]
        assert all(source["passage_start"] <= s < e <= source["passage_end"] for s, e in source["spans"])
    assert data["markdown"].count("\n- ") >= 3
    assert data["timings_ms"]["total_ms"] > 0


def test_post_brief_with_k_and_nothing_found(client):
    r = client.post("/api/brief", json={"topic": "  火星殖民计划  ", "k": 5})
    assert r.status_code == 200
    data = r.json()
    assert data["found"] is False and data["sources"] == [] and data["topic"] == "火星殖民计划"
    assert "没有关于“火星殖民计划”的内容" in data["markdown"]


@pytest.mark.parametrize(
    "body",
    [
        {"topic": ""},
        {"topic": "   "},
        {"topic": 5},
        {"topic": None},
        {"topic": ["锦州"]},
        {},
        {"topic": TOPIC, "extra": 1},
        {"topic": TOPIC, "k": 0},
        {"topic": TOPIC, "k": 51},
        {"topic": TOPIC, "k": "5"},
        {"topic": TOPIC, "k": 2.5},
        {"topic": "x" * 2001},
        [TOPIC],
        "锦州",
    ],
    ids=lambda body: repr(body)[:40],
)
def test_post_bad_requests_are_4xx_json(client, body):
    r = client.post("/api/brief", json=body)
    assert r.status_code == 422, r.text
    error = r.json()
    assert isinstance(error["error"], str) and error["error"] and isinstance(error["detail"], list)


@pytest.mark.parametrize("raw", [b"{", b"", b"\xff\xfe", b'{"topic": "\\ud800"}'])
def test_post_undecodable_bodies_are_4xx_json(client, raw):
    r = client.post("/api/brief", content=raw, headers={"content-type": "application/json"})
    assert 400 <= r.status_code < 500, r.text
    assert isinstance(r.json()["error"], str)


def test_get_markdown_download(client):
    r = client.get("/api/brief.md", params={"topic": TOPIC})
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/markdown; charset=utf-8"
    disposition = r.headers["content-disposition"]
    assert disposition.startswith("attachment;")
    assert f"filename*=UTF-8''{quote(TOPIC + '.md', safe='')}" in disposition
    assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-briefing-found"] == "true"
    body = r.content.decode("utf-8")
    assert body.startswith(f"# 简报：{TOPIC}\n") and "\n- " in body and "\n[^1]: 数字锦州的味道 · 2023-08-05" in body
    # The same briefing as the JSON endpoint gives (but for the minute it was generated in).
    as_json = client.post("/api/brief", json={"topic": TOPIC}).json()["markdown"]
    assert body.split("\n", 3)[3] == as_json.split("\n", 3)[3]


def test_get_markdown_filename_is_safe(client):
    r = client.get("/api/brief.md", params={"topic": '火星/殖民:"计划"?'})
    assert r.status_code == 200 and r.headers["x-briefing-found"] == "false"
    assert "filename*=UTF-8''" + quote("火星_殖民_计划.md", safe="") in r.headers["content-disposition"]
    assert "没有关于" in r.text


@pytest.mark.parametrize(
    "params",
    [{}, {"topic": ""}, {"topic": "  "}, {"topic": TOPIC, "k": "0"}, {"topic": TOPIC, "k": "abc"},
     {"topic": TOPIC, "unknown": "1"}, {"topic": "x" * 2001}],
    ids=lambda p: repr(p)[:40],
)
def test_get_bad_requests_are_4xx_json(client, params):
    r = client.get("/api/brief.md", params=params)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/json" and r.json()["error"]
