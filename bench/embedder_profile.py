"""``python -m bench.embedder_profile``: where the default embedder's time goes, op type by op
type, and the ingest rate that bounds (issue 13, goal 3).

The dev corpus is cleaned and chunked as ingest does it; ``--passages`` of its chunks (seeded
sample, embedded as ``index_text``) run one text a run on a one-thread ONNX Runtime session,
which is how ingest runs the default embedder (one such session per core), with ONNX Runtime's
profiler on. Reported:

* each op type's share of the kernel time, and the int8 GEMM rate inside the model: the
  quantized MatMuls' multiply-adds (2 x 21.2 M weights x tokens a passage) over their kernel time;
* bounds in issue 13's yardstick, docs/s per fp32-GEMM passage/s with the GEMM rate measured in
  the same run (``bench.__main__.gemm_passages_per_s``) and the corpus's chunks per document:
  the whole model on every core with nothing else in ingest, and the int8 GEMMs alone (every
  other op free). The goal (0.70) is reachable only below the second.

Writes ``bench/results/embedder_profile.json`` and ``.md``. Exits 0 with a note when
../shared/eval is absent.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench import evalset  # noqa: E402  (after the environment default above)
from bench.__main__ import RESULTS, gemm_passages_per_s  # noqa: E402

GOAL = 0.70  # issue 13, goal 3
# What ONNX Runtime runs the quantized MatMuls as, after its graph optimizations.
INT8_GEMM_OPS = ("DynamicQuantizeMatMul", "MatMulIntegerToFloat", "MatMulInteger")


def dev_chunks(corpus: Path) -> tuple[list[str], int]:
    """Every chunk's embedding input (``index_text``) and the number of documents, as ingest makes them."""
    from ingest.chunking import chunk_document
    from ingest.cleaning import clean_document
    from ingest.loaders import iter_documents
    from ingest.records import SourceDocument
    from kbcore.settings import Settings
    from kbcore.text import index_text

    size, overlap = Settings().chunk_size, Settings().chunk_overlap
    texts, docs = [], 0
    for item in iter_documents([str(corpus)]):
        if not isinstance(item, SourceDocument) or (doc := clean_document(item)) is None:
            continue
        chunks = chunk_document(doc, chunk_size=size, overlap=overlap)
        docs += bool(chunks)
        texts += [index_text(c) for c in chunks]
    return texts, docs


def profile(folder: Path, texts: list[str]) -> dict:
    import numpy as np
    import onnxruntime as ort

    from kbcore.embeddings import E5_PASSAGE_PREFIX, onnx_tokenizer

    tokenizer = onnx_tokenizer(folder)  # the model loads once, below, in the profiled session
    ids = [e.ids for e in tokenizer.encode_batch([E5_PASSAGE_PREFIX + t for t in texts])]
    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "ort")
        session = ort.InferenceSession(str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"])

        def run(row: list[int]) -> None:
            x = np.array([row], np.int64)
            session.run(None, {"input_ids": x, "attention_mask": np.ones_like(x)})

        run(ids[0])  # warm-up, profiled too: left out below by its run count
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for row in ids:
            run(row)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        events = json.loads(Path(session.end_profiling()).read_text(encoding="utf-8"))
    runs = [e for e in events if e.get("cat") == "Session" and e["name"] == "model_run"][1:]
    first = runs[0]["ts"] if runs else 0
    by_op: Counter[str] = Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time") and e["ts"] >= first:
            by_op[e["args"]["op_name"]] += e["dur"]
    kernel_us = sum(by_op.values())
    tokens = float(np.mean([len(r) for r in ids]))
    # Kernel durations are wall time (a busy machine stretches them); their shares are taken of
    # the process's CPU time.
    cpu_ms = cpu * 1000 / len(ids)
    gemm_ms = sum(by_op[op] for op in INT8_GEMM_OPS) / kernel_us * cpu_ms
    weights = 12 * (4 * 384 * 384 + 2 * 384 * 1536)  # e5-small's encoder matmul weights
    return {
        "passages": len(ids),
        "mean_tokens": round(tokens, 1),
        "cpu_ms_per_passage": round(cpu_ms, 2),
        "wall_ms_per_passage": round(wall * 1000 / len(ids), 2),
        "int8_gemm_ms_per_passage": round(gemm_ms, 2),
        "int8_gemm_gops_in_model": round(2 * weights * tokens / gemm_ms / 1e6, 1),
        "share_by_op_type": {op: round(us / kernel_us, 4) for op, us in by_op.most_common()},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.embedder_profile", description=__doc__.splitlines()[0])
    p.add_argument("--passages", type=int, default=200)
    p.add_argument("--out", type=Path, default=RESULTS / "embedder_profile")
    args = p.parse_args(argv)
    if not evalset.available():
        print("bench.embedder_profile: ../shared/eval not found (skipped)")
        return 0
    from kbcore.model_build import ensure_e5_onnx_folder
    from kbcore.settings import Settings

    texts, docs = dev_chunks(evalset.DEV_CORPUS)
    sample = random.Random(0).sample(texts, min(args.passages, len(texts)))
    cores = len(os.sched_getaffinity(0))
    gemm_before = gemm_passages_per_s()
    measured = profile(ensure_e5_onnx_folder(Settings().model_cache), sample)
    gemm = (gemm_before + gemm_passages_per_s()) / 2
    chunks_per_doc = len(texts) / docs

    def ratio(ms_per_passage: float) -> float:
        """docs/s per fp32-GEMM passage/s with one session a core, each at ``ms_per_passage``."""
        return cores * 1000 / ms_per_passage / chunks_per_doc / gemm

    results = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {cores} cores, {platform.platform()}",
        "load_average_at_start": os.getloadavg()[0],
        "dev_docs": docs,
        "dev_chunks": len(texts),
        "chunks_per_doc": round(chunks_per_doc, 3),
        "gemm_fp32_passages_per_s": round(gemm, 2),
        **measured,
        "ratio_if_only_the_embedder": round(ratio(measured["cpu_ms_per_passage"]), 3),
        "ratio_if_only_int8_gemms": round(ratio(measured["int8_gemm_ms_per_passage"]), 3),
        "goal": GOAL,
        "goal_ms_per_passage": round(cores * 1000 / (GOAL * gemm * chunks_per_doc), 2),
    }
    write(results, args.out)
    print(args.out.with_suffix(".md").read_text(encoding="utf-8"))
    return 0


def write(r: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(r, ensure_ascii=False, indent=2), encoding="utf-8")
    others = r["cpu_ms_per_passage"] - r["int8_gemm_ms_per_passage"]
    lines = [
        (f"Measured {r['date']} on {r['machine']} (load average at start {r['load_average_at_start']:.1f}); "
         f"the default int8 ONNX e5-small, one text a run, one thread; {r['passages']} dev chunks "
         f"({r['mean_tokens']:.0f} tokens mean) of {r['dev_chunks']:,} from {r['dev_docs']:,} documents."),
        "",
        "| op type | share of kernel time |",
        "|---|---|",
        *(f"| {op} | {share:.1%} |" for op, share in r["share_by_op_type"].items() if share >= 0.005),
        "",
        "| figure | value |",
        "|---|---|",
        f"| CPU ms a passage (wall: {r['wall_ms_per_passage']:.1f}) | {r['cpu_ms_per_passage']:.1f} |",
        f"| of it in the int8 GEMMs ({', '.join(INT8_GEMM_OPS[:2])}) | {r['int8_gemm_ms_per_passage']:.1f} |",
        f"| int8 GEMM rate inside the model, one core | {r['int8_gemm_gops_in_model']:.0f} GOP/s |",
        f"| fp32 GEMM yardstick, same run | {r['gemm_fp32_passages_per_s']:.1f} passages/s |",
        f"| docs/s per GEMM passage/s if ingest were only this model on every core | {r['ratio_if_only_the_embedder']:.2f} |",
        f"| the same if every op but the int8 GEMMs took no time | {r['ratio_if_only_int8_gemms']:.2f} |",
        f"| goal {r['goal']:.2f} needs, a passage a core | {r['goal_ms_per_passage']:.1f} ms |",
        "",
        (f"The goal leaves {r['goal_ms_per_passage'] - r['int8_gemm_ms_per_passage']:.1f} ms a passage for everything "
         f"but the int8 GEMMs, which take {others:.1f} ms now (with nothing else of ingest counted)."),
    ]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    raise SystemExit(main())
