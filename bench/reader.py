"""The trained reader on the dev set and the held-out questions: ``python -m bench.reader``.

For each question the dev store is searched as ``KnowledgeBase.ask`` searches it, with the gold
documents present and with them removed, and the reader reads the top passages once; every
figure below is then computed from those readings:

* **correct / wrong / refused** at an operating point (the minimum margin of the best span over
  the reader's "no answer" score), judged as ``bench/answers.py`` judges (the quoted answer holds
  ≥ 80% of the gold answer's characters and cites a gold document);
* **refused with gold removed**: the same question with its gold documents left out;
* **the curve** of both over operating points, and the operating point chosen as the lowest
  whose refusal rate with gold removed reaches 95%: on all dev questions (in-sample) and by
  5-fold cross-validation (each fold's point chosen on the other four: the held-out figure);
* **R@1** of the top passage, in retrieval's order and in the reader's;
* **read time** per question (p50/p95), the reader alone, and search + read.

The held-out sets (bench/heldout/: dev questions reworded and in English, over the dev store;
the seed article's questions reworded and in English, over ``kb/``) are read at the
operating point chosen on dev, never tuned on. The reader's weights must not have been trained
on the dev-eval questions (training/reader.py keeps them out unless told otherwise).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from bench import evalset
from bench.answers import CITATION_MARK, char_recall
from bench.evalset import Question, percentile

REPO = Path(__file__).resolve().parent.parent
HELDOUT = REPO / "bench" / "heldout"
RESULTS = REPO / "bench" / "results"
TARGET_REFUSED = 0.95


def read_all(kb, answerer, questions: list[Question], k: int, removed: bool = True) -> list[dict]:
    """One record per question: the reader's spans over its top ``k`` passages (gold present),
    and the best margin with the gold documents removed."""
    from kbqa.reader.answerer import quote

    rows = []
    for q in questions:
        t0 = time.perf_counter()
        found = kb.searcher.retrieve(q.question, k)
        t1 = time.perf_counter()
        readings = answerer.read(q.question, found.passages)
        t2 = time.perf_counter()
        spans = []
        for r in readings:
            passage = found.passages[r.index]
            text, _ = quote(passage, r.span.start, r.span.end)
            text = CITATION_MARK.sub("", text)
            spans.append({"doc": passage.chunk.doc_id, "margin": r.span.margin,
                          "span": passage.chunk.text[r.span.start:r.span.end], "answer": text,
                          "correct": passage.chunk.doc_id in q.gold and char_recall(text, q.answer) >= 0.8})
        row = {"id": q.qid, "question": q.question, "gold": list(q.gold), "gold_answer": q.answer,
               "retrieval_top_doc": found.passages[0].chunk.doc_id if found.passages else None,
               "gold_in_top_k": any(p.chunk.doc_id in q.gold for p in found.passages),
               "readings": spans, "search_ms": (t1 - t0) * 1000, "read_ms": (t2 - t1) * 1000}
        if removed:
            away = kb.searcher.retrieve(q.question, k, exclude_docs=q.gold)
            rest = answerer.read(q.question, away.passages)
            row["removed_margin"] = rest[0].span.margin if rest else -1e9
        rows.append(row)
    return rows


def verdicts(rows: list[dict], point: float) -> dict:
    n = len(rows) or 1
    correct = sum(1 for r in rows if r["readings"] and r["readings"][0]["margin"] >= point and r["readings"][0]["correct"])
    answered = sum(1 for r in rows if r["readings"] and r["readings"][0]["margin"] >= point)
    out = {"questions": len(rows), "correct": correct / n, "wrong": (answered - correct) / n,
           "refused": 1 - answered / n}
    if rows and "removed_margin" in rows[0]:
        out["refused_gold_removed"] = sum(1 for r in rows if r["removed_margin"] < point) / n
    return out


def choose_point(rows: list[dict], target: float = TARGET_REFUSED) -> float:
    """The lowest operating point whose refusal rate with gold removed reaches ``target``."""
    margins = sorted(r["removed_margin"] for r in rows)
    # refused(point) = share of removed margins < point: the point just above the target quantile
    need = int(np.ceil(target * len(margins)))
    return float(margins[need - 1] + 1e-3) if need else -50.0


def cross_validated(rows: list[dict], folds: int = 5, seed: int = 7) -> dict:
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    parts = [order[i::folds] for i in range(folds)]
    totals = {"correct": 0.0, "wrong": 0.0, "refused": 0.0, "refused_gold_removed": 0.0}
    points = []
    for part in parts:
        held = [rows[i] for i in part]
        fit = [rows[i] for i in order if i not in set(part)]
        point = choose_point(fit)
        points.append(point)
        v = verdicts(held, point)
        for key in totals:
            totals[key] += v[key] * len(held)
    return {k: v / len(rows) for k, v in totals.items()} | {"questions": len(rows), "points": points}


def recall_at_1(rows: list[dict]) -> dict:
    n = len(rows) or 1
    return {
        "retrieval_order": sum(r["retrieval_top_doc"] in r["gold"] for r in rows) / n,
        "reader_order": sum(bool(r["readings"]) and r["readings"][0]["doc"] in r["gold"] for r in rows) / n,
        "gold_in_top_k": sum(r["gold_in_top_k"] for r in rows) / n,
    }


def curve(rows: list[dict], points: list[float]) -> list[dict]:
    return [{"point": p} | verdicts(rows, p) for p in points]


def timing(rows: list[dict]) -> dict:
    read = [r["read_ms"] for r in rows]
    total = [r["read_ms"] + r["search_ms"] for r in rows]
    return {"read_ms_p50": percentile(read, 50), "read_ms_p95": percentile(read, 95),
            "search_and_read_ms_p50": percentile(total, 50), "search_and_read_ms_p95": percentile(total, 95)}


def seed_kb(workdir: Path, settings_kwargs: dict):
    """A knowledge base of the demo folder ``kb/`` in ``workdir`` (ingested once)."""
    from kbqa.knowledge_base import KnowledgeBase
    from kbcore.settings import Settings

    kb = KnowledgeBase(Settings(store=workdir / "seed-chroma", **settings_kwargs))
    kb.ingest([REPO / "kb"])
    return kb


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.reader", description=__doc__.split("\n")[0])
    p.add_argument("--store", type=Path, default=REPO / ".kbdata" / "bench" / "e5-small-onnx-2000d-320c-0o" / "chroma",
                   help="the dev store `python -m bench` builds")
    p.add_argument("--weights", type=Path, default=None, help="reader weights (default: the shipped ones)")
    p.add_argument("--k", type=int, default=5, help="passages retrieved and read")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--out", type=Path, default=RESULTS / "reader")
    p.add_argument("--skip-heldout", action="store_true")
    args = p.parse_args(argv)
    if not evalset.available() or not args.store.exists():
        print(f"bench.reader: no dev data or store ({args.store}); run `python -m bench` first (skipped)")
        return 0
    from kbqa.knowledge_base import KnowledgeBase
    from kbqa.reader.answerer import ReaderAnswerer
    from kbqa.reader.model import load_reader
    from kbcore.settings import Settings

    settings = Settings(store=args.store)
    kb = KnowledgeBase(settings)
    reader = load_reader(settings.model_cache, args.weights)
    answerer = ReaderAnswerer(reader, min_margin=0.0, passages_read=args.k)
    questions = evalset.load_questions(args.limit)
    t0 = time.time()
    rows = read_all(kb, answerer, questions, args.k)
    print(f"dev: {len(rows)} questions read in {time.time() - t0:.0f} s", flush=True)
    point = choose_point(rows)
    grid = sorted({round(x, 1) for x in np.arange(-6.0, 6.01, 0.5)} | {round(point, 2)})
    result: dict = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "weights": str(args.weights or "shipped"),
        "k": args.k,
        "operating_point": point,
        "dev_in_sample": verdicts(rows, point),
        "dev_cross_validated": cross_validated(rows),
        "dev_forced": verdicts(rows, -1e9),
        "recall_at_1": recall_at_1(rows),
        "timing": timing(rows),
        "curve": curve(rows, grid),
    }
    sets: dict[str, list[dict]] = {"dev": rows}
    if not args.skip_heldout:
        for name in ("dev_paraphrases", "dev_english"):
            held = read_all(kb, answerer, evalset.load_questions(None, HELDOUT / f"{name}.jsonl"), args.k)
            sets[name] = held
            result[name] = verdicts(held, point) | {"forced": verdicts(held, -1e9)["correct"]}
        with tempfile.TemporaryDirectory() as tmp:
            skb = seed_kb(Path(tmp), {"model_cache": settings.model_cache})
            for name in ("seed_paraphrases", "seed_english"):
                held = read_all(skb, answerer, evalset.load_questions(None, HELDOUT / f"{name}.jsonl"), args.k,
                                removed=False)
                sets[name] = held
                result[name] = verdicts(held, point) | {"forced": verdicts(held, -1e9)["correct"]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    with open(args.out.with_suffix(".readings.jsonl"), "w", encoding="utf-8") as f:
        for name, rs in sets.items():
            for r in rs:
                f.write(json.dumps({"set": name} | r, ensure_ascii=False) + "\n")
    args.out.with_suffix(".md").write_text(render(result), encoding="utf-8")
    print(render(result))
    return 0


def render(r: dict) -> str:
    def row(name: str, v: dict) -> str:
        removed = f"{v['refused_gold_removed']:.3f}" if "refused_gold_removed" in v else "—"
        forced = f"{v['forced']:.3f}" if "forced" in v else "—"
        return f"| {name} | {v['questions']} | {v['correct']:.3f} | {v['wrong']:.3f} | {v['refused']:.3f} | {removed} | {forced} |"

    lines = [
        f"# The trained reader ({r['date']}, weights: {r['weights']}, top {r['k']} passages read)",
        "",
        f"Operating point (lowest margin refusing ≥ {TARGET_REFUSED:.0%} of dev questions with gold removed): "
        f"**{r['operating_point']:.2f}**; cross-validated points: "
        + ", ".join(f"{x:.2f}" for x in r["dev_cross_validated"]["points"]),
        "",
        "| set | questions | correct | wrong | refused | refused, gold removed | correct with nothing refused |",
        "|---|---|---|---|---|---|---|",
        row("dev, 5-fold cross-validated (held-out figure)", r["dev_cross_validated"] | {"forced": r["dev_forced"]["correct"]}),
        row("dev, in-sample operating point", r["dev_in_sample"] | {"forced": r["dev_forced"]["correct"]}),
    ]
    for name in ("dev_paraphrases", "dev_english", "seed_paraphrases", "seed_english"):
        if name in r:
            lines.append(row(f"held-out: {name.replace('_', ' ')}", r[name]))
    a, t = r["recall_at_1"], r["timing"]
    lines += [
        "",
        f"R@1 (top passage's document is gold): retrieval order {a['retrieval_order']:.3f}, "
        f"reader order {a['reader_order']:.3f}; gold in the top {r['k']}: {a['gold_in_top_k']:.3f}.",
        "",
        f"Read time per question: p50 {t['read_ms_p50']:.0f} ms, p95 {t['read_ms_p95']:.0f} ms; "
        f"search + read p50 {t['search_and_read_ms_p50']:.0f} ms, p95 {t['search_and_read_ms_p95']:.0f} ms "
        "(in process, this machine, whatever else ran).",
        "",
        "## The curve (dev, in-sample)",
        "",
        "| operating point | correct | wrong | refused | refused, gold removed |",
        "|---|---|---|---|---|",
    ]
    for c in r["curve"]:
        lines.append(f"| {c['point']:.2f} | {c['correct']:.3f} | {c['wrong']:.3f} | {c['refused']:.3f} | "
                     f"{c['refused_gold_removed']:.3f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
