"""The benchmark's quick mode end to end, so `python -m bench` keeps working (numbers are not
asserted against targets here: that is the full run's job, by hand, see README)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import evalset

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(not evalset.available(), reason="../shared/eval is not beside the repo")
def test_quick_bench_runs_every_stage(tmp_path):
    out = tmp_path / "results" / "quick"
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--workdir", str(tmp_path / "work"), "--out", str(out),
         "--latency-queries", "5"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert results["questions"] == 10
    assert set(results["retrieval"]) >= {
        "ours: hybrid + coverage rerank",
        "baseline: BM25-jieba whole docs",
        "baseline: LangChain default splitter + same embedder + Chroma",
    }
    for metrics in results["retrieval"].values():
        assert 0.0 <= metrics["recall@1"] <= metrics["recall@5"] <= 1.0
    # On 30 documents with every gold document present, ours must find nearly all of them.
    assert results["retrieval"]["ours: hybrid + coverage rerank"]["recall@5"] >= 0.9
    assert results["ingest"]["chunks_embedded"] == results["ingest"]["chunks_written"] > 0
    assert {"/api/search", "/api/ask"} <= set(results["latency"])
    assert "| ours: hybrid + coverage rerank |" in out.with_suffix(".md").read_text(encoding="utf-8")


def test_bench_skips_cleanly_without_eval_data(tmp_path, monkeypatch):
    import bench.__main__ as bench_main

    monkeypatch.setattr(evalset, "DEV_CORPUS", tmp_path / "missing.jsonl")
    assert bench_main.main(["--out", str(tmp_path / "x")]) == 0
    assert not (tmp_path / "x.json").exists()
