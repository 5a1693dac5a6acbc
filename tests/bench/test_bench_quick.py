"""The benchmark's quick mode end to end, so `python -m bench` keeps working (numbers are not
asserted against targets here: that is the full run's job, by hand, see docs/benchmarks.md)."""

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
    ingest = results["ingest"]
    assert ingest["docs_added"] == results["corpus_docs"] and 0 < ingest["chunks_embedded"] <= ingest["chunks_written"]
    assert 0 < ingest["embed_seconds"] < ingest["pipeline_seconds"] < ingest["wall_seconds"]
    assert {"/api/search", "/api/ask"} <= set(results["latency"])
    assert "| ours: hybrid + coverage rerank |" in out.with_suffix(".md").read_text(encoding="utf-8")


def test_bench_skips_cleanly_without_eval_data(tmp_path, monkeypatch):
    import bench.__main__ as bench_main

    monkeypatch.setattr(evalset, "DEV_CORPUS", tmp_path / "missing.jsonl")
    assert bench_main.main(["--out", str(tmp_path / "x")]) == 0
    assert not (tmp_path / "x.json").exists()


@pytest.mark.server
@pytest.mark.skipif(not (evalset.SCALE_CORPUS.is_file() and evalset.available()), reason="no ../shared/eval scale corpus")
def test_scale_run_resumes_and_measures_the_app(tmp_path):
    """Two short budgets: the second run continues where the first stopped."""
    work, out = tmp_path / "scale", tmp_path / "results" / "scale"

    def run(*extra: str) -> dict:
        done = subprocess.run(
            [sys.executable, "-m", "bench.scale", "--budget-minutes", "0.4", "--sample-seconds", "3",
             "--workdir", str(work), "--out", str(out), "--latency-queries", "5",
             "--write-batch", "32",  # the default 256 chunks take a loaded 2-core machine most of the 24 s
             *extra],
            cwd=REPO, capture_output=True, text=True, timeout=600,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))

    first = run("--skip-app")["ingest"]
    assert first["docs_before"] == 0 and first["docs_after"] > 0 and not first["finished"]
    second = run()
    assert second["ingest"]["docs_before"] == first["docs_after"]
    assert second["ingest"]["docs_after"] > first["docs_after"]
    app = second["app"]
    assert {"/api/search", "/api/ask"} <= set(app["latency"]) and app["app_rss_mb"] > 0
    assert app["first_answer_seconds_cold"] > 0 and app["first_answer_seconds_warm"] > 0
    assert second["store_size"]["chroma_data_mb"] > 0 and second["store_size"]["bm25_snapshot_mb"] > 0
    assert "| sustained rate |" in out.with_suffix(".md").read_text(encoding="utf-8")


def test_own_corpus_and_questions_measure_the_answers_and_write_them(tmp_path):
    # An operator's own documents (a folder here: the seed article) and questions.
    out = tmp_path / "results" / "seed"
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--corpus", "kb", "--qa", "bench/heldout/seed_paraphrases.jsonl",
         "--workdir", str(tmp_path / "work"), "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    answers = results["answers"]
    assert answers["questions"] == 15 and "retrieval" not in results
    assert answers["correct"] + answers["wrong"] + answers["refused"] == pytest.approx(1.0)
    rows = [json.loads(line) for line in out.with_suffix(".answers.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 15 and {r["verdict"] for r in rows} <= {"correct", "wrong", "refused"}
    assert all(r["gold_removed"]["found"] is False for r in rows)  # nothing else to answer from
    assert "| ours: extractive answerer | 15 |" in out.with_suffix(".md").read_text(encoding="utf-8")


def test_an_answer_is_judged_by_the_gold_answers_characters_and_documents():
    from bench.answers import char_recall, judge
    from kbcore.types import Answer, Chunk, Citation, Passage

    q = evalset.Question("q1", "福建全省口罩日产量目标为多少？", "2000万个", ("doc-a", "doc-b"))
    chunk = Chunk(doc_id="doc-b", ordinal=0, text="全省口罩日产量目标为2000万个。", start=0, end=16)
    cited = (Citation.from_spans(1, Passage(chunk=chunk, score=1.0), [(0, 16)]),)
    assert char_recall("目标2000万个[1]", q.answer) == 1.0 and char_recall("2000个", q.answer) == pytest.approx(5 / 6)
    assert judge(Answer(q.question, "全省口罩日产量目标为2000万个。[1]", True, cited), q) == "correct"
    assert judge(Answer(q.question, "日产量目标为1000个。[1]", True, cited), q) == "wrong"  # 4 of 6 characters
    elsewhere = Chunk(doc_id="news", ordinal=0, text="2000万个", start=0, end=6)
    other = (Citation.from_spans(1, Passage(chunk=elsewhere, score=1.0), [(0, 6)]),)
    assert judge(Answer(q.question, "2000万个[1]", True, other), q) == "wrong"  # not a gold document
    assert judge(Answer(q.question, "抱歉", False), q) == "refused"


@pytest.mark.skipif(not evalset.available(), reason="no ../shared/eval")
def test_embedder_profile_accounts_for_the_time_and_bounds_the_ingest_rate(tmp_path):
    from bench import embedder_profile

    out = tmp_path / "profile"
    assert embedder_profile.main(["--passages", "4", "--out", str(out)]) == 0
    r = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert r["dev_docs"] > 1000 and r["chunks_per_doc"] > 1 and r["passages"] == 4
    assert abs(sum(r["share_by_op_type"].values()) - 1) < 0.01
    assert 0 < r["int8_gemm_ms_per_passage"] < r["cpu_ms_per_passage"]  # profiled ops, not a constant
    assert 0 < r["ratio_if_only_the_embedder"] < r["ratio_if_only_int8_gemms"]
    assert "| goal 0.70 needs, a passage a core |" in out.with_suffix(".md").read_text(encoding="utf-8")


def test_embedder_profile_skips_cleanly_without_eval_data(tmp_path, monkeypatch):
    from bench import embedder_profile

    monkeypatch.setattr(evalset, "DEV_CORPUS", tmp_path / "missing.jsonl")
    assert embedder_profile.main(["--out", str(tmp_path / "x")]) == 0
    assert not (tmp_path / "x.json").exists()
