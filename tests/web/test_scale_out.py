"""Two app processes on one `chroma run` server, answering while a third process ingests into it
(issue 13: more app processes when one is not enough, by configuration alone)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from bench.__main__ import running_app

REPO = Path(__file__).resolve().parents[2]
SEED_QUESTION = "锦州的“三个开放”是什么？"
NEW_FACT = "丹东的市花是杜鹃花。丹东位于辽宁省东南部，是中国海岸线北端的起点城市。"

pytestmark = pytest.mark.server


def ask(base: str, question: str) -> dict:
    response = httpx.post(f"{base}/api/ask", json={"question": question}, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def test_two_app_processes_answer_from_one_server_while_a_third_ingests(chroma_server, tmp_path, monkeypatch):
    monkeypatch.setenv("KB_COLLECTION", f"scale{uuid.uuid4().hex[:8]}")  # the server is shared across tests
    flags = ["--chroma-url", chroma_server]
    seeded = subprocess.run([sys.executable, "-m", "ingest", "kb", *flags], cwd=REPO, capture_output=True, text=True,
                            timeout=300, check=False)
    assert seeded.returncode == 0, seeded.stderr[-3000:]
    # Enough documents that the ingest is still running while both apps are asked.
    rows = [{"id": f"filler{i}", "title": f"辽宁城市简讯{i}",
             "text": f"第{i}期：辽宁省各市推进政务数据共享，第{i}批{i * 7}个业务系统完成迁移。" * 6, "source": "test"}
            for i in range(150)]
    rows.append({"id": "dandong", "title": "丹东简介", "text": NEW_FACT, "source": "test"})
    corpus = tmp_path / "news.jsonl"
    corpus.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")

    with ExitStack() as stack:
        bases = [stack.enter_context(running_app(flags))[0] for _ in range(2)]
        for base in bases:
            assert "开放数据资源" in ask(base, SEED_QUESTION)["answer"]
        ingest = subprocess.Popen([sys.executable, "-m", "ingest", str(corpus), *flags, "--write-batch", "16"],
                                  cwd=REPO, env=os.environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        answered_during = 0
        try:
            while ingest.poll() is None:
                for base in bases:
                    reply = ask(base, SEED_QUESTION)
                    assert reply["found"] and "开放数据资源" in reply["answer"], reply
                    answered_during += ingest.poll() is None
            out, err = ingest.communicate(timeout=60)
        finally:
            if ingest.poll() is None:
                ingest.kill()
        assert ingest.returncode == 0, err[-3000:]
        assert "added 151" in out
        assert answered_during >= 2  # both were asked while the ingest was writing
        # Each app sees what the other process wrote (its BM25 follows the store's revision).
        for base in bases:
            deadline = time.monotonic() + 60
            while "杜鹃花" not in (reply := ask(base, "丹东的市花是什么？"))["answer"]:
                assert time.monotonic() < deadline, reply
                time.sleep(1)
            assert {c["doc_id"] for c in reply["citations"]} == {"dandong"}
