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
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench import evalset
from bench.__main__ import REPO, RESULTS, running_app

DEFAULT_STORE = REPO / ".kbdata" / "bench" / "e5-small-onnx-2000d-320c-0o" / "chroma"  # python -m bench's


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rss_slope(memory: list[tuple[float, float]]) -> float | None:
    """Least-squares growth of the app's RSS over the measured run, MB per minute."""
    if len(memory) < 3:
        return None
    import numpy as np

    t, mb = np.array(memory).T
    return round(float(np.polyfit(t, mb, 1)[0]) * 60, 2)


def client_loop(
    base: str, questions: list[str], mix: dict[str, float], stop_at: float, seed: int, out: list, errors: list
) -> None:
    import httpx
    from gradio_client import Client

    rng = random.Random(seed)
    chat = None
    with httpx.Client(base_url=base, timeout=60) as http:
        while time.monotonic() < stop_at:
            question = rng.choice(questions)
            kind = rng.choices(list(mix), weights=list(mix.values()))[0]
            t0 = time.perf_counter()
            try:
                if kind == "chat":
                    chat = chat or Client(base + "/", verbose=False)
                    chat.predict(question, api_name="/ask")  # the history is server-side state
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


def run(clients: int, seconds: float, store: Path, with_ingest: bool, warmup: float, mix: dict[str, float]) -> dict:
    questions = [q.question for q in evalset.load_questions()] if evalset.available() else ["锦州的“三个开放”是什么？"]
    with running_app(["--store", str(store)]) as (base, pid):
        # Warm-up with the same mix: thread pools, allocator arenas, Gradio sessions and the BM25 index
        # reach their working size before memory is watched, so growth after it means a leak.
        warm = [threading.Thread(target=client_loop, args=(base, questions, mix, time.monotonic() + warmup, -1 - i, [], []))
                for i in range(clients)]
        for t in warm:
            t.start()
        for t in warm:
            t.join()
        samples, errors, memory = [], [], []
        stop_at = time.monotonic() + seconds
        threads = [
            threading.Thread(target=client_loop, args=(base, questions, mix, stop_at, i, samples, errors))
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
        "warmup_seconds": warmup,
        "mix": mix,
        "rss_mb_first_last_max": [memory[0][1], memory[-1][1], max(m for _, m in memory)] if memory else None,
        "rss_mb_per_minute": rss_slope(memory),
        "rss_mb_series": memory,
        "ingest_meanwhile": ingest_result,
    }


def write(results: list[dict], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, ensure_ascii=False, indent=2), encoding="utf-8")
    lines = [
        "| clients × s (after warm-up) | ingest meanwhile | requests | req/s | errors | p50 ms | p95 ms | p99 ms "
        "| app RSS first → last MB | RSS slope MB/min |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        ingest = r["ingest_meanwhile"]
        first, last, _ = r["rss_mb_first_last_max"]
        lines.append(
            f"| {r['clients']} × {r['seconds']:.0f} | {'exit ' + str(ingest['exit']) if ingest else '—'} "
            f"| {r['requests']} | {r['throughput_rps']:.1f} | {r['errors']} | {r['p50_ms']:.0f} | {r['p95_ms']:.0f} "
            f"| {r['p99_ms']:.0f} | {first:.0f} → {last:.0f} | {r['rss_mb_per_minute']} |"
        )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def parse_mix(text: str) -> dict[str, float]:
    mix = {}
    for part in text.split(","):
        kind, _, weight = part.partition("=")
        if kind.strip() not in ("ask", "search", "chat") or not weight:
            raise argparse.ArgumentTypeError(f"{part!r}: use kind=weight with kind ask, search or chat")
        mix[kind.strip()] = float(weight)
    return mix


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, nargs="+", default=[16, 32])
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--store", type=Path, default=DEFAULT_STORE)
    p.add_argument("--with-ingest", action="store_true")
    p.add_argument("--warmup", type=float, default=20, help="seconds of the same load before measuring")
    p.add_argument("--mix", type=parse_mix, default=parse_mix("ask=5,search=4,chat=1"),
                   help="request kinds and their weights (default ask=5,search=4,chat=1)")
    p.add_argument("--memory-seconds", type=float, default=0,
                   help="then one longer run at the most clients, without ingest, to watch memory (0: skip)")
    p.add_argument("--out", type=Path, default=RESULTS / "load")
    args = p.parse_args(argv)
    if not args.store.exists():
        print(f"bench.load: {args.store} not found; run `python -m bench` first (skipped)")
        return 0
    results = [run(c, args.seconds, args.store, args.with_ingest, args.warmup, args.mix) for c in args.clients]
    if args.memory_seconds:
        results.append(run(max(args.clients), args.memory_seconds, args.store, False, args.warmup, args.mix))
    write(results, args.out)
    for r in results:
        print(json.dumps({k: v for k, v in r.items() if k not in ("error_samples", "rss_mb_series")}, ensure_ascii=False))
    return 0 if all(r["errors"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
