"""``python -m bench.scale``: ingest the 66,788-document scale corpus through a `chroma run`
server for a fixed time budget, then measure the app at the size reached.

Resumable: the server's data lives in ``--workdir``, and a second run's ingest skips every
document already stored (the pipeline's content hashes) and continues. The run reports the
sustained rate (documents stored per second over the run, from the server's own counts,
sampled every ``--sample-seconds``), the extrapolated time for the whole corpus, and then, with
``app.py`` started on the server: HTTP latency p50/p95/p99 (dev questions), the app's memory,
and its start-up time cold (BM25 built from the store) and warm (its saved index mapped back).
Writes ``bench/results/scale.md`` and ``.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from bench import evalset
from bench.__main__ import REPO, RESULTS, http_latency, running_app
from bench.load import DEFAULT_STORE as DEV_STORE
from bench.load import rss_mb
from bench.servers import chroma_server

SCALE_DOCS = 66_788  # ../shared/eval/README.md


def open_store(url: str):
    from kbcore.embeddings import make_embedder
    from kbqa.knowledge_base import KnowledgeBase
    from kbcore.settings import Settings

    settings = Settings(chroma_url=url)
    return KnowledgeBase(settings, embedder=make_embedder(settings)).store


def sustained_rate(samples: list[tuple[float, int, int]]) -> tuple[float, float]:
    """(docs/s, chunks/s): least-squares slope of the counts over the samples after the first
    new document (a resumed run first re-reads the documents it already has)."""
    start = next((i for i, s in enumerate(samples) if s[1] > samples[0][1]), None)
    if start is None or len(samples) - start < 3:
        return 0.0, 0.0
    import numpy as np

    t = np.array([s[0] for s in samples[start - 1 :]])
    return tuple(float(np.polyfit(t, np.array([s[k] for s in samples[start - 1 :]]), 1)[0]) for k in (1, 2))


def ingest_for(url: str, budget: float, sample_every: float, write_batch: int = 256) -> dict:
    store = open_store(url)
    docs0, chunks0 = store.doc_count(), store.chunk_count()
    cmd = [sys.executable, "-m", "ingest", str(evalset.SCALE_CORPUS), "--chroma-url", url, "--no-progress",
           "--write-batch", str(write_batch)]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    samples = [(0.0, docs0, chunks0)]
    peak_rss = 0.0
    while proc.poll() is None and time.monotonic() - t0 < budget:
        time.sleep(min(sample_every, max(budget - (time.monotonic() - t0), 0.1)))
        try:
            peak_rss = max(peak_rss, rss_mb(proc.pid))
        except OSError:
            pass
        samples.append((round(time.monotonic() - t0, 1), store.doc_count(), store.chunk_count()))
    finished = proc.poll() is not None
    if not finished:
        proc.send_signal(signal.SIGTERM)  # the budget is spent: the next run resumes from here
    out, err = proc.communicate(timeout=120)
    seconds = time.monotonic() - t0
    samples.append((round(seconds, 1), store.doc_count(), store.chunk_count()))
    docs_per_s, chunks_per_s = sustained_rate(samples)
    docs1 = samples[-1][1]
    return {
        "budget_seconds": budget,
        "seconds": round(seconds, 1),
        "finished": finished,
        "exit_code": proc.returncode,
        "summary": (out.strip().splitlines() or [""])[-1],
        "stderr_tail": err[-1500:] if finished and proc.returncode not in (0, 1) else "",
        "docs_before": docs0,
        "docs_after": docs1,
        "chunks_after": samples[-1][2],
        "sustained_docs_per_s": docs_per_s,
        "sustained_chunks_per_s": chunks_per_s,
        "extrapolated_full_hours": (SCALE_DOCS - docs1) / docs_per_s / 3600 if docs_per_s and docs1 < SCALE_DOCS else 0.0,
        "ingest_peak_rss_mb": round(peak_rss, 1),
        "samples": samples,
    }


def bm25_snapshot(url: str) -> Path:
    """Where the app keeps its BM25 copy of the server's store (``ChunkStore.lexical_snapshot_path``)."""
    from kbcore.settings import Settings

    return open_store(url).lexical_snapshot_path(Settings().lexical_cache)


def app_at_size(url: str, queries: int) -> dict:
    questions = evalset.load_questions()
    result = {}
    for start in ("cold", "warm"):  # warm: the second start loads the BM25 snapshot the first saved
        if start == "cold":
            from kbcore.lexical import LexicalCorpus

            snapshot = bm25_snapshot(url)
            snapshot.unlink(missing_ok=True)
            shutil.rmtree(LexicalCorpus.index_dir(snapshot), ignore_errors=True)
        t0 = time.monotonic()
        with running_app(["--chroma-url", url]) as (base, pid):
            import httpx

            httpx.post(f"{base}/api/search", json={"query": questions[0].question}, timeout=300)
            result[f"first_answer_seconds_{start}"] = round(time.monotonic() - t0, 1)
            if start == "warm":
                result["latency"] = http_latency(base, questions, queries)
                result["app_rss_mb"] = round(rss_mb(pid), 1)
    return result


def megabytes(path: Path) -> float:
    """Bytes on disk under ``path`` (a file or a folder; nothing when it is missing), in MB."""
    files = [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file()]
    return round(sum(f.stat().st_size for f in files) / 1e6, 1)


def store_size(url: str, server_data: Path) -> dict:
    """The server's data folder, and the app's BM25 copy beside it (its corpus and saved index)."""
    from kbcore.lexical import LexicalCorpus

    snapshot = bm25_snapshot(url)
    return {"chroma_data_mb": megabytes(server_data),
            "bm25_snapshot_mb": round(megabytes(snapshot) + megabytes(LexicalCorpus.index_dir(snapshot)), 1)}


def dev_latency_via_server(queries: int) -> dict | None:
    """The same latency at the dev set's size, through a server too, for a like-for-like ratio:
    `chroma run` serves the embedded dev store that ``python -m bench`` built (same on-disk format)."""
    if not DEV_STORE.exists():
        return None
    questions = evalset.load_questions()
    with chroma_server(DEV_STORE, timeout=60) as (url, _), running_app(["--chroma-url", url]) as (base, _pid):
        import httpx

        httpx.post(f"{base}/api/search", json={"query": questions[0].question}, timeout=300)
        return {"docs": open_store(url).doc_count(), "latency": http_latency(base, questions, queries)}


def write(results: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, ensure_ascii=False, indent=2), encoding="utf-8")
    ing = results["ingest"]
    lines = [
        f"Measured {results['date']} on {results['machine']} (load average at start {results['load_average_at_start']:.1f}); "
        f"embedder {results['embedder']}; `chroma run` on loopback; budget {ing['budget_seconds'] / 60:.0f} min"
        + (f" (the ingest ran {results['ingest_date']}; this run re-measured the app)." if "ingest_date" in results else "."),
        "",
        "| scale ingest | value |",
        "|---|---|",
        f"| documents stored before / after this run (of {SCALE_DOCS:,}) | {ing['docs_before']:,} / {ing['docs_after']:,} |",
        f"| chunks stored after | {ing['chunks_after']:,} |",
        f"| run time; finished the corpus | {ing['seconds'] / 60:.1f} min; {'yes' if ing['finished'] else 'no (stopped at the budget)'} |",
        f"| sustained rate | {ing['sustained_docs_per_s']:.2f} docs/s, {ing['sustained_chunks_per_s']:.1f} chunks/s |",
        f"| extrapolated time for the rest of the corpus | {ing['extrapolated_full_hours']:.1f} h |",
        f"| ingest process peak RSS | {ing['ingest_peak_rss_mb']:.0f} MB |",
    ]
    app = results.get("app")
    if app:
        lines += [
            "",
            f"| app at {ing['docs_after']:,} docs / {ing['chunks_after']:,} chunks | value |",
            "|---|---|",
            f"| start to first answer, BM25 built from the store | {app['first_answer_seconds_cold']} s |",
            f"| start to first answer, BM25 from its saved copy beside the store | {app['first_answer_seconds_warm']} s |",
            f"| app RSS after the latency run | {app['app_rss_mb']:.0f} MB |",
            f"| `chroma run` server RSS | {results['chroma_server_rss_mb']:.0f} MB |",
            *([(f"| store on disk: the server's data; the app's BM25 copy | {size['chroma_data_mb']:,.0f} MB; "
                f"{size['bm25_snapshot_mb']:,.0f} MB |")] if (size := results.get("store_size")) else []),
            "",
            "| HTTP latency through `chroma run` (warm, sequential) | documents | p50 ms | p95 ms | p99 ms |",
            "|---|---|---|---|---|",
        ]
        dev = results.get("dev_via_server")
        for endpoint, m in app["latency"].items():
            if dev:
                d = dev["latency"][endpoint]
                lines.append(f"| `POST {endpoint}` | {dev['docs']:,} (dev) | {d['p50_ms']:.1f} | {d['p95_ms']:.1f} "
                             f"| {d['p99_ms']:.1f} |")
            lines.append(f"| `POST {endpoint}` | {ing['docs_after']:,} (scale) | {m['p50_ms']:.1f} | {m['p95_ms']:.1f} "
                         f"| {m['p99_ms']:.1f} |")
        if dev:
            growth = ", ".join(
                f"`{e}` {m['p50_ms'] / dev['latency'][e]['p50_ms']:.2f}×" for e, m in app["latency"].items()
            )
            lines += ["", f"p50 at the scale size over p50 at the dev size: {growth}."]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.splitlines()[0])
    p.add_argument("--budget-minutes", type=float, default=45,
                   help="0: ingest nothing, re-measure the app at the stored size (keeps the last ingest numbers)")
    p.add_argument("--workdir", type=Path, default=REPO / ".kbdata" / "bench" / "scale")
    p.add_argument("--sample-seconds", type=float, default=15)
    p.add_argument("--latency-queries", type=int, default=250)
    p.add_argument("--fresh", action="store_true", help="delete the server's data first instead of resuming")
    p.add_argument("--skip-app", action="store_true", help="ingest only; no latency measurement")
    p.add_argument("--write-batch", type=int, default=256,
                   help="chunks per write batch of the ingest (a short budget needs small ones to store anything)")
    p.add_argument("--out", type=Path, default=RESULTS / "scale")
    args = p.parse_args(argv)
    if not evalset.SCALE_CORPUS.is_file() or not evalset.available():
        print(f"bench.scale: {evalset.SCALE_CORPUS} or the dev questions not found (skipped)")
        return 0
    if args.fresh:
        shutil.rmtree(args.workdir, ignore_errors=True)
    args.workdir.mkdir(parents=True, exist_ok=True)
    from kbcore.settings import Settings

    results = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.platform()}",
        "load_average_at_start": os.getloadavg()[0],
        "embedder": Settings().embedder,
    }
    with chroma_server(args.workdir / "chroma", timeout=60) as (url, server_pid):
        if args.budget_minutes > 0:
            print(f"ingesting {evalset.SCALE_CORPUS} into {url} for up to {args.budget_minutes:g} min ...", flush=True)
            results["ingest"] = ingest_for(url, args.budget_minutes * 60, args.sample_seconds, args.write_batch)
            print(results["ingest"]["summary"] or "(stopped at the budget)", flush=True)
        elif args.out.with_suffix(".json").exists():
            previous = json.loads(args.out.with_suffix(".json").read_text(encoding="utf-8"))
            results["ingest"] = previous["ingest"]
            results["ingest_date"] = previous.get("ingest_date", previous["date"])
        else:
            print(f"bench.scale: --budget-minutes 0 re-measures a store an earlier run built; no {args.out}.json")
            return 2
        if results["ingest"]["docs_after"] and not args.skip_app:
            results["app"] = app_at_size(url, args.latency_queries)
        results["chroma_server_rss_mb"] = round(rss_mb(server_pid), 1)
        results["store_size"] = store_size(url, args.workdir / "chroma")
    if "app" in results:
        results["dev_via_server"] = dev_latency_via_server(args.latency_queries)
    write(results, args.out)
    print(args.out.with_suffix(".md").read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
