"""``python -m bench``: retrieval quality, answers, ingest speed and latency on ../shared/eval/dev.

``--corpus FILE.jsonl --qa FILE.jsonl`` measures the same on your own documents and questions
(the formats of ../shared/eval/README.md: ``{"id", "title", "text", "source"}`` documents and
``{"id", "question", "answer", "doc_ids"}`` questions); the answers are written one JSON line
per question to ``--answers-out`` (verdict, answer, citations, probability, the answer with
the gold documents removed) for reading. ``--answers-only`` skips the baselines and latency.

Every number is measured beside plain baselines in the same run:
* BM25 over jieba tokens of whole documents (rank_bm25);
* LangChain's default RecursiveCharacterTextSplitter + the same embedder + Chroma top-k.

Writes ``bench/results/latest.json`` and ``latest.md``. Stores are kept under ``--workdir``
keyed by their settings, so a re-run re-embeds nothing (incremental ingest does the caching).
Exits 0 with a note when ../shared/eval is absent.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench import evalset  # noqa: E402
from bench.answers import ANSWER_HEADER, answer_rows  # noqa: E402
from bench.servers import free_port  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="10 questions over their gold docs + 20 others (CI keeps the bench working)")
    p.add_argument("--questions", type=int, help="use only the first N questions")
    p.add_argument("--embedder", help="default: the app's (Settings.embedder)")
    p.add_argument("--chunk-size", type=int, default=None)
    p.add_argument("--chunk-overlap", type=int, default=None)
    p.add_argument("--workdir", type=Path, default=REPO / ".kbdata" / "bench")
    p.add_argument("--skip-langchain", action="store_true", help="skip the LangChain-splitter baseline")
    p.add_argument("--skip-latency", action="store_true")
    p.add_argument("--latency-queries", type=int, default=250)
    p.add_argument("--out", type=Path, default=RESULTS / "latest")
    p.add_argument("--corpus", type=Path, help="documents, JSON lines (default: ../shared/eval/dev/corpus.jsonl)")
    p.add_argument("--qa", type=Path, help="questions with gold answers and doc ids, JSON lines (default: the dev set's)")
    p.add_argument("--answers-only", action="store_true", help="only the answer table: no baselines, no ablations, no latency")
    p.add_argument("--answers-out", type=Path, help="where the answers go, one JSON line each (default: --out + .answers.jsonl)")
    args = p.parse_args(argv)
    if args.answers_only:
        args.skip_langchain = args.skip_latency = True
    return args


def subset_corpus(questions: list[evalset.Question], distractors: int, seed: int = 7,
                  path: Path = evalset.DEV_CORPUS) -> list[dict]:
    """Gold documents of these questions plus a seeded sample of other documents."""
    corpus = evalset.load_corpus(path)
    gold = {d for q in questions for d in q.gold}
    others = [d for d in corpus if d["id"] not in gold]
    random.Random(seed).shuffle(others)
    return [d for d in corpus if d["id"] in gold] + others[:distractors]


def run_ingest(corpus_path: Path, settings_args: list[str]) -> dict:
    import resource

    cmd = [sys.executable, "-m", "ingest", str(corpus_path), "--no-progress", *settings_args]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode not in (0, 1):
        raise SystemExit(f"ingest failed: {done.stderr[-2000:]}")
    summary = done.stdout.strip().splitlines()[-1]
    timing = re.search(r"in ([\d.]+) s \(([\d.]+) s embedding\)", summary)
    return {
        "summary": summary,
        "wall_seconds": seconds,  # the whole process: imports, model load, pipeline
        "cpu_seconds": cpu,  # its CPU time, user + system: less sensitive than wall to other processes
        "pipeline_seconds": float(timing.group(1)),
        "embed_seconds": float(timing.group(2)),
        "docs_added": int(re.search(r"added (\d+)", summary).group(1)),
        "chunks_embedded": int(re.search(r"\((\d+) embedded\)", summary).group(1)),
        "chunks_written": int(re.search(r"(\d+) chunks written", summary).group(1)),
    }


def rank_ours(kb, questions, **overrides: float) -> list[list[str]]:
    """Doc rankings from our searcher, with some of its weights overridden (ablations)."""
    searcher = kb.searcher
    saved = {name: getattr(searcher, name) for name in overrides}
    for name, value in overrides.items():
        setattr(searcher, name, value)
    try:
        return [
            evalset.unique_in_order(p.chunk.doc_id for p in searcher.retrieve(q.question, 40).passages)
            for q in questions
        ]
    finally:
        for name, value in saved.items():
            setattr(searcher, name, value)


def rank_bm25_docs(corpus: list[dict], questions) -> list[list[str]]:
    from rank_bm25 import BM25Okapi

    from kbcore.text import query_terms, tokenize

    bm25 = BM25Okapi([tokenize(d["text"]) for d in corpus])
    ids = [d["id"] for d in corpus]
    rankings = []
    for q in questions:
        scores = bm25.get_scores(query_terms(q.question))
        top = sorted(range(len(ids)), key=lambda i: scores[i], reverse=True)[:10]
        rankings.append([ids[i] for i in top])
    return rankings


def rank_langchain_default(corpus: list[dict], questions, embedder, persist: Path) -> tuple[list[list[str]], dict]:
    """The plain LangChain recipe: default splitter, same embedder, Chroma similarity top-k."""
    from langchain_chroma import Chroma
    from langchain_core.documents import Document
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    from kbqa.langchain_adapters import LangChainEmbeddings

    store = Chroma(
        collection_name="lc-default",
        embedding_function=LangChainEmbeddings(embedder),
        persist_directory=str(persist),
    )
    info = {"chunks": store._collection.count(), "ingest_seconds": None}
    if info["chunks"] == 0:
        splitter = RecursiveCharacterTextSplitter()  # defaults: 4000 chars, 200 overlap
        docs = splitter.split_documents(
            [Document(page_content=d["text"], metadata={"doc_id": d["id"]}) for d in corpus]
        )
        t0 = time.perf_counter()
        for i in range(0, len(docs), 256):
            store.add_documents(docs[i : i + 256])
        info = {"chunks": len(docs), "ingest_seconds": time.perf_counter() - t0}
    rankings = [
        evalset.unique_in_order(d.metadata["doc_id"] for d in store.similarity_search(q.question, k=30))
        for q in questions
    ]
    return rankings, info


def answer_metrics(kb, questions, answers_out: Path | None) -> dict:
    """Answer-bearing passages @5, then correct / wrong / refused with the gold documents present
    and refused with them removed (bench/answers.py), beside the char-F1 of the answers."""
    from bench.answers import evaluate

    bearing = sum(
        any(q.answer in p.chunk.text for p in kb.searcher.retrieve(q.question, 5).passages) for q in questions
    )
    return {"answer_bearing@5": bearing / len(questions)} | evaluate(kb, questions, out=answers_out)


@contextmanager
def running_app(settings_args: list[str]):
    import httpx

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "app.py", *settings_args, "--port", str(port)],
        cwd=REPO,
        env=os.environ | {"KB_RATE_LIMIT_PER_MINUTE": "0"},  # one client on purpose hammering it
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/api/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
            if proc.poll() is not None:
                raise SystemExit(f"app exited: {proc.stderr.read().decode()[-2000:]}")
        yield base, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def embedder_ceiling(embedder: str) -> dict | None:
    """The passages/s this CPU's matrix-multiply rate allows the embedder's arithmetic, from the
    last ``python -m bench.embedders`` run (at that run's mean passage length)."""
    path = RESULTS / "embedders.json"
    arithmetic = {"e5-small-onnx": "int8", "e5-small": "fp32"}.get(embedder)
    if arithmetic is None or not path.exists():
        return None
    measured = json.loads(path.read_text(encoding="utf-8"))
    gflops = measured["ceiling_gflops"][arithmetic]
    return {"arithmetic": arithmetic, "gflops": gflops, "passages_per_s": gflops / measured["gflop_per_passage"]}


# Issue 13's yardstick: this machine's fp32 GEMM rate (numpy, one 512x384 @ 384x1536 matmul)
# in e5-small passages/s, a passage being 2 x 21.3 M matmul weights x 190 tokens of FLOPs.
# Ingest docs/s divided by it travels between machines of this kind (0.34-0.35 on two of them).
GEMM_SHAPE = (512, 384, 1536)
E5_FLOP_PER_PASSAGE = 2 * 21.3e6 * 190


def gemm_passages_per_s(calls: int = 200) -> float:
    """Best of ``calls`` timed fp32 matmuls (others' bursts only slow a matmul down)."""
    import numpy as np

    m, k, n = GEMM_SHAPE
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((m, k), np.float32), rng.standard_normal((k, n), np.float32)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(calls):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * m * k * n / best / E5_FLOP_PER_PASSAGE


def http_latency(base: str, questions, n: int) -> dict:
    import httpx

    out = {}
    with httpx.Client(base_url=base, timeout=60) as client:
        sample = [questions[i % len(questions)].question for i in range(n)]
        for endpoint, field in (("/api/search", "query"), ("/api/ask", "question")):
            client.post(endpoint, json={field: sample[0]})  # warm-up
            times = []
            for text in sample:
                t0 = time.perf_counter()
                r = client.post(endpoint, json={field: text})
                times.append((time.perf_counter() - t0) * 1000)
                r.raise_for_status()
            out[endpoint] = {
                "p50_ms": evalset.percentile(times, 50),
                "p95_ms": evalset.percentile(times, 95),
                "p99_ms": evalset.percentile(times, 99),
                "n": n,
            }
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not evalset.available():
        print(f"bench: {evalset.EVAL_DIR} not found; nothing to measure (skipped)")
        return 0
    from kbqa.knowledge_base import KnowledgeBase
    from kbcore.settings import Settings

    limit = 10 if args.quick else args.questions
    corpus_file = args.corpus or evalset.DEV_CORPUS
    questions = evalset.load_questions(limit, args.qa or evalset.DEV_QA)
    folder = corpus_file.is_dir()  # a folder of files, ingested as they are (answers only)
    if folder:
        args.answers_only = args.skip_langchain = args.skip_latency = True
        corpus = sorted(str(p.relative_to(corpus_file)) for p in corpus_file.rglob("*") if p.is_file())
    else:
        corpus = (subset_corpus(questions, distractors=2 * limit, path=corpus_file) if limit
                  else evalset.load_corpus(corpus_file))
    defaults = Settings()
    args.embedder = args.embedder or defaults.embedder
    chunk_size = args.chunk_size or defaults.chunk_size
    overlap = defaults.chunk_overlap if args.chunk_overlap is None else args.chunk_overlap
    tag = f"{args.embedder.replace(':', '_').replace('/', '_')}-{len(corpus)}d-{chunk_size}c-{overlap}o"
    if args.corpus:  # another corpus of the same size must not share the dev set's store
        tag = f"{args.corpus.stem}-{evalset.corpus_digest(corpus)}-{tag}"
    workdir = args.workdir / tag
    workdir.mkdir(parents=True, exist_ok=True)
    corpus_path = corpus_file if folder else workdir / "corpus.jsonl"
    if not folder:
        corpus_path.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in corpus), encoding="utf-8")
    store_args = [
        "--store", str(workdir / "chroma"), "--embedder", args.embedder,
    ]
    ingest_args = store_args + ["--chunk-size", str(chunk_size), "--chunk-overlap", str(overlap)]

    results: dict = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.processor() or platform.platform()}",
        "corpus_docs": len(corpus),
        "questions": len(questions),
        "embedder": args.embedder,
        "chunk_size": chunk_size,
        "chunk_overlap": overlap,
    }
    print(f"ingesting {len(corpus)} docs ({tag}) ...", flush=True)
    gemm_before, load_before = gemm_passages_per_s(), os.getloadavg()[0]
    ingest = run_ingest(corpus_path, ingest_args)
    gemm_after, load_after = gemm_passages_per_s(), os.getloadavg()[0]
    print(ingest["summary"], flush=True)
    # A re-run embeds nothing; the cold ingest measured when this store was built is the number.
    cold = workdir / "cold-ingest.json"
    if ingest["docs_added"] == len(corpus):
        ingest |= {
            "gemm_fp32_passages_per_s": (gemm_before + gemm_after) / 2,
            "gemm_fp32_passages_per_s_before_after": [gemm_before, gemm_after],
            "load_average_before_after": [load_before, load_after],
            "embed_sessions": os.environ.get("KB_EMBED_SESSIONS", "default (one per core)"),
        }
        cold.write_text(json.dumps(ingest | {"date": results["date"]}), encoding="utf-8")
    results["ingest"] = json.loads(cold.read_text(encoding="utf-8")) if cold.exists() else ingest
    results["ceiling"] = embedder_ceiling(args.embedder)

    kb = KnowledgeBase(Settings(store=workdir / "chroma", embedder=args.embedder, chunk_size=chunk_size,
                                chunk_overlap=overlap))
    answers_out = args.answers_out or args.out.with_suffix(".answers.jsonl")
    if args.answers_only:
        results["answers"] = answer_metrics(kb, questions, answers_out)
        write_results(results, args.out)
        print(args.out.with_suffix(".md").read_text(encoding="utf-8"))
        print(f"answers: {answers_out}")
        return 0
    systems = {
        "ours: hybrid + coverage rerank": rank_ours(kb, questions),
        "ablation: hybrid RRF, no rerank": rank_ours(kb, questions, coverage_weight=0.0),
        "ablation: dense leg only, no rerank": rank_ours(kb, questions, lexical_weight=0.0, coverage_weight=0.0),
        "ablation: BM25 leg only, no rerank": rank_ours(kb, questions, dense_weight=0.0, coverage_weight=0.0),
        "baseline: BM25-jieba whole docs": rank_bm25_docs(corpus, questions),
    }
    if not args.skip_langchain:
        print("LangChain default-splitter baseline ...", flush=True)
        rankings, info = rank_langchain_default(corpus, questions, kb.embedder, workdir / "lc-chroma")
        systems["baseline: LangChain default splitter + same embedder + Chroma"] = rankings
        results["langchain_baseline"] = info
    results["retrieval"] = {name: evalset.retrieval_metrics(r, questions) for name, r in systems.items()}
    results["answers"] = answer_metrics(kb, questions, answers_out)
    if not args.skip_latency:
        with running_app(store_args) as (base, _):
            results["latency"] = http_latency(base, questions, args.latency_queries)
    write_results(results, args.out)
    print(args.out.with_suffix(".md").read_text(encoding="utf-8"))
    return 0


def write_results(results: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, ensure_ascii=False, indent=2), encoding="utf-8")
    lines = [
        f"Measured {results['date']} on {results['machine']}; {results['corpus_docs']} docs, "
        f"{results['questions']} questions; embedder {results['embedder']}, "
        f"chunks ≤ {results['chunk_size']} chars, overlap {results['chunk_overlap']}.",
        "",
    ]
    if "retrieval" in results:
        lines += ["| retrieval (doc level) | R@1 | R@5 | MRR@10 |", "|---|---|---|---|"]
        for name, m in results["retrieval"].items():
            lines.append(f"| {name} | {m['recall@1']:.3f} | {m['recall@5']:.3f} | {m['mrr@10']:.3f} |")
        lines.append("")
    a = results["answers"]
    lines += [*ANSWER_HEADER, *answer_rows("ours: extractive answerer", a), "",
              f"Top-5 passages contain the gold answer for {a['answer_bearing@5']:.3f} of the questions; "
              f"search + answer p50 {a['search_and_answer_ms_p50']:.1f} ms in process."]
    ing = results["ingest"]
    # A rerun reuses the store, so its ingest figures are those of the run that built it.
    built = ing.get("date")
    heading = f"ingest (cold, {built}, when this store was built)" if built and built != results["date"] else "ingest (cold)"
    lines += ["", f"| {heading} | value |", "|---|---|",
              f"| `python -m ingest` process wall time (with imports and model load) | {ing['wall_seconds']:.1f} s |",
              *([f"| its CPU time, user + system | {ing['cpu_seconds']:.1f} s |"] if "cpu_seconds" in ing else []),
              f"| chunks written / embedded (the rest repeat an input already embedded) | "
              f"{ing['chunks_written']} / {ing['chunks_embedded']} |"]
    if ing["chunks_embedded"] and "pipeline_seconds" in ing:
        pipeline, embed = ing["pipeline_seconds"], ing["embed_seconds"]
        lines += [
            f"| pipeline time; of it inside the embedder | {pipeline:.1f} s; {embed:.1f} s |",
            f"| pipeline time the embedder does not cover (parse, clean, chunk, jieba, Chroma writes) | "
            f"{1 - embed / pipeline:.1%} |",
            f"| docs/s, chunks written/s (pipeline time) | {results['corpus_docs'] / pipeline:.1f}, "
            f"{ing['chunks_written'] / pipeline:.1f} |",
            f"| embedder passages/s | {ing['chunks_embedded'] / embed:.1f} |",
        ]
        if "gemm_fp32_passages_per_s" in ing:
            gemm = ing["gemm_fp32_passages_per_s"]
            before, after = ing["gemm_fp32_passages_per_s_before_after"]
            loads = ing["load_average_before_after"]
            lines += [
                f"| fp32 GEMM rate in e5-small passages/s, same run (before / after the ingest; load average "
                f"{loads[0]:.1f} / {loads[1]:.1f}) | {gemm:.1f} ({before:.1f} / {after:.1f}) |",
                f"| docs/s per fp32-GEMM passage/s (issue 13: 0.34-0.35 before, goal 0.70) | "
                f"{results['corpus_docs'] / pipeline / gemm:.2f} |",
            ]
        ceiling = results.get("ceiling")
        if ceiling:
            lines.append(
                f"| share of the CPU's {ceiling['arithmetic']} ceiling ({ceiling['passages_per_s']:.1f} passages/s, "
                f"bench/results/embedders.md) | {ing['chunks_embedded'] / embed / ceiling['passages_per_s']:.0%} |"
            )
    lc = results.get("langchain_baseline")
    if lc and lc.get("ingest_seconds"):
        lines.append(f"| LangChain baseline: {lc['chunks']} chunks embedded in | {lc['ingest_seconds']:.1f} s |")
    if "latency" in results:
        lines += ["", "| HTTP latency (warm, sequential) | p50 ms | p95 ms | p99 ms |", "|---|---|---|---|"]
        for endpoint, m in results["latency"].items():
            lines.append(f"| `POST {endpoint}` | {m['p50_ms']:.1f} | {m['p95_ms']:.1f} | {m.get('p99_ms', float('nan')):.1f} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
