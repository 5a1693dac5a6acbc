"""``python -m bench.load``: concurrent clients against the real app on loopback, bounded in time.

Starts ``app.py`` on a bench store (the dev store that ``python -m bench`` built, by default),
then runs C client threads for T seconds each, mixing ``/api/ask``, ``/api/search`` and the
chat page's own Gradio endpoint, and reports throughput, latency percentiles, errors and the
app's memory (RSS) sampled over the run. ``--with-ingest`` runs a ``python -m ingest`` of a
scratch corpus into the same store meanwhile (errors on either side are counted).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench import evalset
from bench.__main__ import REPO, RESULTS, running_app

DEFAULT_STORE = REPO / ".kbdata" / "bench" / "e5-small-2000d-320c-0o" / "chroma"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def client_loop(base: str, questions: list[str], stop_at: float, seed: int, out: list, errors: list) -> None:
    import httpx
    from gradio_client import Client

    rng = random.Random(seed)
    chat = None
    with httpx.Client(base_url=base, timeout=60) as http:
        while time.monotonic() < stop_at:
            question = rng.choice(questions)
            kind = rng.choices(["ask", "search", "chat"], weights=[5, 4, 1])[0]
            t0 = time.perf_counter()
            try:
                if kind == "chat":
                    chat = chat or Client(base + "/", verbose=False)
                    chat.predict(question, [], api_name="/ask")
                else:
                    field = "question" if kind == "ask" else "query"
                    r = http.post(f"/api/{kind}", json={field: question})
                    if r.status_code >= 400:
                        errors.append((kind, r.status_code, r.text[:200]))
                        continue
            except Exception as exc:  # counted, reported, never hidden
                errors.append((kind, type(exc).__name__, str(exc)[:200]))
                continue
            out.append((kind, (time.perf_counter() - t0) * 1000))


def scratch_corpus(path: Path, n: int) -> None:
    rows = [
        {"id": f"load-{i}", "title": f"压测文档{i}", "source": "bench.load",
         "text": f"第{i}号压测文档。锦州市推进数字政府建设第{i}项措施，开放数据资源，发展云计算产业。" * 3}
        for i in range(n)
    ]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def run(clients: int, seconds: float, store: Path, with_ingest: bool) -> dict:
    questions = [q.question for q in evalset.load_questions()] if evalset.available() else ["锦州的“三个开放”是什么？"]
    with running_app(["--store", str(store)]) as (base, pid):
        samples, errors, memory = [], [], []
        stop_at = time.monotonic() + seconds
        threads = [
            threading.Thread(target=client_loop, args=(base, questions, stop_at, i, samples, errors))
            for i in range(clients)
        ]
        ingest = None
        with tempfile.TemporaryDirectory() as tmp:
            if with_ingest:
                corpus = Path(tmp) / "load.jsonl"
                scratch_corpus(corpus, 200)
                ingest = subprocess.Popen(
                    [sys.executable, "-m", "ingest", str(corpus), "--store", str(store), "--no-progress"],
                    cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                )
            t0 = time.monotonic()
            for t in threads:
                t.start()
            while any(t.is_alive() for t in threads):
                memory.append((round(time.monotonic() - t0, 1), round(rss_mb(pid), 1)))
                time.sleep(2)
            ingest_result = None
            if ingest is not None:
                out, err = ingest.communicate(timeout=600)
                ingest_result = {"exit": ingest.returncode, "summary": out.strip().splitlines()[-1:], "stderr": err[-500:]}
                subprocess.run([sys.executable, "-m", "ingest", "--store", str(store), "--remove",
                                *[f"load-{i}" for i in range(200)]], cwd=REPO, capture_output=True)
    elapsed = seconds
    lat = [ms for _, ms in samples]
    by_kind = {k: [ms for kind, ms in samples if kind == k] for k in ("ask", "search", "chat")}
    return {
        "clients": clients,
        "seconds": seconds,
        "requests": len(samples),
        "throughput_rps": len(samples) / elapsed,
        "errors": len(errors),
        "error_samples": errors[:5],
        "p50_ms": evalset.percentile(lat, 50),
        "p95_ms": evalset.percentile(lat, 95),
        "p99_ms": evalset.percentile(lat, 99),
        "by_kind_p50_ms": {k: evalset.percentile(v, 50) for k, v in by_kind.items() if v},
        "rss_mb_first_last_max": [memory[0][1], memory[-1][1], max(m for _, m in memory)] if memory else None,
        "ingest_meanwhile": ingest_result,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, nargs="+", default=[16, 32])
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--store", type=Path, default=DEFAULT_STORE)
    p.add_argument("--with-ingest", action="store_true")
    args = p.parse_args(argv)
    if not args.store.exists():
        print(f"bench.load: {args.store} not found; run `python -m bench` first (skipped)")
        return 0
    results = [run(c, args.seconds, args.store, args.with_ingest) for c in args.clients]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "load.json").write_text(json.dumps(results, ensure_ascii=False, indent=2), encoding="utf-8")
    for r in results:
        print(json.dumps({k: v for k, v in r.items() if k != "error_samples"}, ensure_ascii=False))
    return 0 if all(r["errors"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
