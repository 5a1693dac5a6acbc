"""``GET /metrics`` (issue 21): Prometheus' text format from prometheus_client, read back with
its own parser; behind the admin key unless KB_METRICS_PUBLIC opens it."""

from __future__ import annotations

import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

KEY = "metrics-test-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
SEED_QUESTION = "锦州的“三个开放”是什么？"


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.fixture(scope="module")
def metrics_kb(make_settings, embedder):
    from kbqa.knowledge_base import KnowledgeBase

    kb = KnowledgeBase(make_settings(admin_key=KEY, rate_limit_per_minute=0, admin_rate_limit_per_minute=0),
                       embedder=embedder)
    kb.ensure_seeded()
    return kb


def test_metrics_count_requests_answers_documents_and_jobs(metrics_kb, start_app, tmp_path):
    base = start_app(metrics_kb)
    with httpx.Client(base_url=base, timeout=120) as http:
        assert http.post("/api/ask", json={"question": SEED_QUESTION}).json()["found"]
        assert not http.post("/api/ask", json={"question": "火星上的天气怎么样？"}).json()["found"]
        http.get("/api/nothing-here")
        job = http.post("/api/documents", files=[("files", ("m.txt", "沈阳的市花是玫瑰。".encode()))], headers=AUTH).json()
        deadline = time.monotonic() + 120
        while http.get(f"/api/jobs/{job['job_id']}", headers=AUTH).json()["state"] not in ("done", "failed"):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        response = http.get("/metrics", headers=AUTH)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    got = samples(response.text)
    asks = got[("kbqa_http_requests_total", (("method", "POST"), ("route", "/api/ask"), ("status", "200")))]
    assert asks == 2
    assert got[("kbqa_http_request_duration_seconds_count", (("method", "POST"), ("route", "/api/ask")))] == 2
    # an unknown path is labelled by the catch-all's template, not by what the client sent
    assert ("kbqa_http_requests_total", (("method", "GET"), ("route", "/api/{path:path}"), ("status", "404"))) in got
    assert got[("kbqa_answers_total", (("kb", "default"), ("outcome", "found")))] == 1
    assert got[("kbqa_answers_total", (("kb", "default"), ("outcome", "refused")))] == 1
    assert got[("kbqa_documents", (("kb", "default"),))] == 2
    assert got[("kbqa_chunks", (("kb", "default"),))] >= 2
    assert got[("kbqa_ingest_jobs_total", (("state", "done"),))] == 1
    assert got[("kbqa_ingest_jobs_active", (("state", "running"),))] == 0


def test_metrics_are_off_the_public_surface_unless_configured(make_settings, embedder, start_app):
    from kbqa.knowledge_base import KnowledgeBase

    closed = start_app(KnowledgeBase(make_settings(), embedder=embedder))  # no admin key: no one
    assert httpx.get(f"{closed}/metrics", timeout=30).status_code == 403
    keyed = start_app(KnowledgeBase(make_settings(admin_key=KEY), embedder=embedder))
    assert httpx.get(f"{keyed}/metrics", timeout=30).status_code == 401
    assert httpx.get(f"{keyed}/metrics", headers={"Authorization": "Bearer " + "x" * 30}, timeout=30).status_code == 403
    assert httpx.get(f"{keyed}/metrics", headers=AUTH, timeout=30).status_code == 200
    public = start_app(KnowledgeBase(make_settings(metrics_public=True), embedder=embedder))
    assert "kbqa_documents" in httpx.get(f"{public}/metrics", timeout=30).text
