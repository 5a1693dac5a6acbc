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
from bench.answers import CITATION_MARK, char_recall, judge
from bench.evalset import Question, percentile

REPO = Path(__file__).resolve().parent.parent
HELDOUT = REPO / "bench" / "heldout"
RESULTS = REPO / "bench" / "results"
TARGET_REFUSED = 0.95


def read_all(kb, answerer, chooser, questions: list[Question], k: int, removed: bool = True) -> list[dict]:
    """One record per question: the reader's spans over its top ``k`` passages (gold present),
    and the best margin with the gold documents removed; beside them the sentence chooser's
    pick on the same passages (``chooser``: no refusal threshold), its probability and verdict."""
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
        picked = chooser.answer(q.question, found.passages, found.terms)
        row = {"id": q.qid, "question": q.question, "gold": list(q.gold), "gold_answer": q.answer,
               "retrieval_top_doc": found.passages[0].chunk.doc_id if found.passages else None,
               "gold_in_top_k": any(p.chunk.doc_id in q.gold for p in found.passages),
               "readings": spans, "search_ms": (t1 - t0) * 1000, "read_ms": (t2 - t1) * 1000,
               "chooser_p": picked.confidence, "chooser_correct": picked.found and judge(picked, q) == "correct"}
        if removed:
            away = kb.searcher.retrieve(q.question, k, exclude_docs=q.gold)
            rest = answerer.read(q.question, away.passages)
            row["removed_margin"] = rest[0].span.margin if rest else -1e9
            row["removed_chooser_p"] = chooser.answer(q.question, away.passages, away.terms).confidence
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


# --- the reader as the chooser's second judge --------------------------------------------
# A logistic regression over (logit of the chooser's probability, the reader's best margin),
# fitted on dev with each question asked with its gold documents present and removed, the
# chooser's probabilities cross-validated (--chooser-oof). English questions stay with the
# chooser (the reader learned from Chinese questions). Measured, not shipped: at the same
# refusal rate with gold removed it answered no more dev questions right than the chooser alone
# at a lower point, and exactly as many held-out ones (bench/results/reader.md).
MARGIN_CLIP = 20.0  # margins beyond ±20 all mean "certain": one outlier cannot carry the fit
PROBABILITY_CLIP = 1e-4


def gate_features(probability: float, margin: float) -> tuple[float, float]:
    """(logit of the chooser's probability, the reader's clipped best margin)."""
    p = min(max(probability, PROBABILITY_CLIP), 1.0 - PROBABILITY_CLIP)
    return float(np.log(p / (1.0 - p))), max(-MARGIN_CLIP, min(MARGIN_CLIP, margin))


def best_margin(row: dict) -> float:
    """The reader's best margin over the question's passages (gold present)."""
    return row["readings"][0]["margin"] if row["readings"] else -1e9


def gate_data(rows: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features with gold present, features with gold removed, the chooser's pick correct)."""
    present = np.array([gate_features(r["chooser_p"], best_margin(r)) for r in rows])
    removed = np.array([gate_features(r["removed_chooser_p"], r["removed_margin"]) for r in rows])
    return present, removed, np.array([r["chooser_correct"] for r in rows])


def gate_probability(gate: dict, features: np.ndarray) -> np.ndarray:
    """The gate's probability that the chooser's pick answers, for rows of ``gate_features``."""
    return 1 / (1 + np.exp(-(features @ np.array(gate["weights"]) + gate["bias"])))


def fit_gate(rows: list[dict], target: float = TARGET_REFUSED) -> dict:
    """A logistic regression: is the chooser's pick a correct answer (gold present: as judged;
    gold removed: never)? Its operating point: the lowest probability refusing ``target`` of
    the gold-removed questions."""
    from sklearn.linear_model import LogisticRegression

    present, removed, correct = gate_data(rows)
    model = LogisticRegression(C=1.0).fit(np.vstack([present, removed]),
                                          np.concatenate([correct, np.zeros(len(removed), bool)]))
    gate = {"weights": [float(w) for w in model.coef_[0]], "bias": float(model.intercept_[0])}
    removed_p = sorted(gate_probability(gate, removed))
    need = int(np.ceil(target * len(removed_p)))
    return gate | {"min_probability": float(removed_p[need - 1]) + 1e-6}


def tally(rows: list[dict], kept: list[bool], kept_removed: list[bool] | None) -> dict:
    """Correct / wrong / refused when the chooser's pick is kept for the questions in ``kept``,
    and refused with gold removed when ``kept_removed`` says what was kept then."""
    n = len(rows) or 1
    out = {"questions": len(rows),
           "correct": sum(k and r["chooser_correct"] for k, r in zip(kept, rows, strict=True)) / n,
           "wrong": sum(k and not r["chooser_correct"] for k, r in zip(kept, rows, strict=True)) / n,
           "refused": 1 - sum(kept) / n}
    if kept_removed is not None:
        out["refused_gold_removed"] = 1 - sum(kept_removed) / n
    return out


def gate_verdicts(rows: list[dict], gate: dict, chooser_point: float) -> dict:
    """Correct / wrong / refused of the chooser's picks kept by ``gate`` (and refused with
    gold removed, when the rows have it). An English question is left to the chooser at its
    own point."""
    from kbqa.answer_model import is_foreign

    def kept(p: float, margin: float, question: str) -> bool:
        if is_foreign(question):
            return p >= chooser_point
        return bool(gate_probability(gate, np.array(gate_features(p, margin))) >= gate["min_probability"])

    removed = None
    if rows and "removed_margin" in rows[0]:
        removed = [kept(r["removed_chooser_p"], r["removed_margin"], r["question"]) for r in rows]
    return tally(rows, [kept(r["chooser_p"], best_margin(r), r["question"]) for r in rows], removed)


def chooser_verdicts(rows: list[dict], point: float) -> dict:
    """The chooser alone at its own operating point (Settings.answer_min_probability)."""
    removed = [r["removed_chooser_p"] >= point for r in rows] if rows and "removed_chooser_p" in rows[0] else None
    return tally(rows, [r["chooser_p"] >= point for r in rows], removed)


def gate_cross_validated(rows: list[dict], chooser_point: float, folds: int = 5, seed: int = 7) -> dict:
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    parts = [order[i::folds] for i in range(folds)]
    totals = {"correct": 0.0, "wrong": 0.0, "refused": 0.0, "refused_gold_removed": 0.0}
    for part in parts:
        inside = set(part)
        gate = fit_gate([rows[i] for i in order if i not in inside])
        v = gate_verdicts([rows[i] for i in part], gate, chooser_point)
        for key in totals:
            totals[key] += v[key] * len(part)
    return {k: v / len(rows) for k, v in totals.items()} | {"questions": len(rows)}


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


def answerer_latency(store: Path, questions: list[Question], n: int) -> dict:
    """``/api/search`` and ``/api/ask`` p50/p95 through the real app (``python -m bench``'s
    launcher and timer), once for each answerer, one after the other in this run."""
    import os

    from bench.__main__ import http_latency, running_app

    out = {}
    for name in ("chooser", "reader"):
        os.environ["KB_ANSWERER"] = name
        try:
            with running_app(["--store", str(store)]) as (base, _):
                out[name] = http_latency(base, questions, n)
        finally:
            del os.environ["KB_ANSWERER"]
    return out


def read_sets(args, settings) -> dict[str, list[dict]]:
    """The dev questions and the held-out sets, searched, read by the reader and answered by
    the chooser (``read_all``)."""
    from kbqa.answering import ExtractiveAnswerer
    from kbqa.knowledge_base import KnowledgeBase
    from kbqa.reader.answerer import ReaderAnswerer
    from kbqa.reader.model import load_reader

    kb = KnowledgeBase(settings)
    reader = load_reader(settings.model_cache, args.weights)
    answerer = ReaderAnswerer(reader, min_margin=0.0, passages_read=args.k)
    chooser = ExtractiveAnswerer(min_probability=0.0, embedder=kb.embedder)
    t0 = time.time()
    sets = {"dev": read_all(kb, answerer, chooser, evalset.load_questions(args.limit), args.k)}
    print(f"dev: {len(sets['dev'])} questions read in {time.time() - t0:.0f} s", flush=True)
    if args.skip_heldout:
        return sets
    for name in ("dev_paraphrases", "dev_english"):
        sets[name] = read_all(kb, answerer, chooser, evalset.load_questions(None, HELDOUT / f"{name}.jsonl"), args.k)
    with tempfile.TemporaryDirectory() as tmp:
        skb = seed_kb(Path(tmp), {"model_cache": settings.model_cache})
        for name in ("seed_paraphrases", "seed_english"):
            sets[name] = read_all(skb, answerer, chooser, evalset.load_questions(None, HELDOUT / f"{name}.jsonl"),
                                  args.k, removed=False)
    return sets


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.reader", description=__doc__.split("\n")[0])
    p.add_argument("--store", type=Path, default=REPO / ".kbdata" / "bench" / "e5-small-onnx-2000d-320c-0o" / "chroma",
                   help="the dev store `python -m bench` builds")
    p.add_argument("--weights", type=Path, default=None, help="reader weights (default: the shipped ones)")
    p.add_argument("--k", type=int, default=5, help="passages retrieved and read")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--out", type=Path, default=RESULTS / "reader")
    p.add_argument("--skip-heldout", action="store_true")
    p.add_argument("--readings", type=Path, help="an earlier run's .readings.jsonl: re-fit and report without reading")
    p.add_argument("--chooser-oof", type=Path,
                   help="the chooser's cross-validated outcomes on dev (python -m bench.fit_answers --oof-out): "
                        "the gate is fitted and judged on those, as unseen questions get them, not on the shipped "
                        "chooser's in-sample ones")
    p.add_argument("--latency", type=int, default=0, metavar="N",
                   help="also time POST /api/ask and /api/search over N dev questions through the real app, "
                        "once per answerer, in this run")
    args = p.parse_args(argv)
    if not evalset.available() or not args.store.exists():
        print(f"bench.reader: no dev data or store ({args.store}); run `python -m bench` first (skipped)")
        return 0
    from kbcore.settings import Settings

    settings = Settings(store=args.store)
    if args.readings:  # a re-fit from an earlier run's readings: no reading, no search
        sets: dict[str, list[dict]] = {}
        for line in open(args.readings, encoding="utf-8"):
            row = json.loads(line)
            sets.setdefault(row.pop("set"), []).append(row)
    else:
        sets = read_sets(args, settings)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        # Saved before anything is computed from them: --readings re-fits from this file.
        with open(args.out.with_suffix(".readings.jsonl"), "w", encoding="utf-8") as f:
            for name, rs in sets.items():
                for r in rs:
                    f.write(json.dumps({"set": name} | r, ensure_ascii=False) + "\n")
    chooser_point = settings.answer_min_probability
    rows = sets["dev"]
    if args.chooser_oof:
        unseen = {r["id"]: r for r in map(json.loads, open(args.chooser_oof, encoding="utf-8"))}
        rows = sets["dev"] = [r | {k: unseen[r["id"]][k] for k in ("chooser_p", "chooser_correct", "removed_chooser_p")}
                              for r in rows]
    point = choose_point(rows)
    grid = sorted({round(x, 1) for x in np.arange(-6.0, 6.01, 0.5)} | {round(point, 2)})
    result: dict = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "weights": str(args.weights or "shipped"),
        "chooser_on_dev": "cross-validated (fit_answers --oof-out)" if args.chooser_oof else "the shipped models (in-sample)",
        "k": args.k,
        "operating_point": point,
        "dev_in_sample": verdicts(rows, point),
        "dev_cross_validated": cross_validated(rows),
        "dev_forced": verdicts(rows, -1e9),
        "recall_at_1": recall_at_1(rows),
        "timing": timing(rows),
        "curve": curve(rows, grid),
        "chooser_point": chooser_point,
        "chooser_dev": chooser_verdicts(rows, chooser_point),
        "gate": fit_gate(rows),
        "gate_dev_cross_validated": gate_cross_validated(rows, chooser_point),
    }
    result["gate_dev_in_sample"] = gate_verdicts(rows, result["gate"], chooser_point)
    for name, held in sets.items():
        if name != "dev":
            result[name] = verdicts(held, point) | {"forced": verdicts(held, -1e9)["correct"]}
            result["gate_" + name] = gate_verdicts(held, result["gate"], chooser_point)
            result["chooser_" + name] = chooser_verdicts(held, chooser_point)
    if args.latency:
        result["latency"] = answerer_latency(args.store, evalset.load_questions(None), args.latency)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
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
    g = r["gate"]
    lines += [
        "",
        "## The answerers side by side",
        "",
        "`chooser+reader` (measured, not shipped): the chooser's sentences kept when a logistic regression over "
        "(logit of the chooser's probability, the reader's best margin) says they answer "
        f"(weights {g['weights'][0]:.3f}, {g['weights'][1]:.3f}, bias {g['bias']:.3f}; operating point "
        f"{g['min_probability']:.3f}, the lowest refusing ≥ {TARGET_REFUSED:.0%} of dev questions with gold removed). "
        f"`chooser`: the chooser alone at its shipped point {r['chooser_point']:.2f}. The chooser's figures on "
        f"dev (alone and inside the gate) are {r['chooser_on_dev']}. English questions are left to the chooser "
        "alone (the reader learned from Chinese questions). `reader`: the reader alone (the table above).",
        "",
        "| answerer | set | questions | correct | wrong | refused | refused, gold removed | — |",
        "|---|---|---|---|---|---|---|---|",
        row("chooser+reader | dev, 5-fold cross-validated", r["gate_dev_cross_validated"]),
        row("chooser+reader | dev, fitted on all", r["gate_dev_in_sample"]),
        row("chooser | dev", r["chooser_dev"]),
        row("reader | dev, 5-fold cross-validated", r["dev_cross_validated"]),
    ]
    for name in ("dev_paraphrases", "dev_english", "seed_paraphrases", "seed_english"):
        for who, key in (("chooser+reader", "gate_"), ("chooser", "chooser_"), ("reader", "")):
            if key + name in r:
                lines.append(row(f"{who} | held-out: {name.replace('_', ' ')}", r[key + name]))
    if "latency" in r:
        lines += ["", "| answerer (real app, sequential, warm) | `/api/search` p50 / p95 ms | `/api/ask` p50 / p95 ms |",
                  "|---|---|---|"]
        for name, v in r["latency"].items():
            lines.append(f"| {name} | {v['/api/search']['p50_ms']:.0f} / {v['/api/search']['p95_ms']:.0f} | "
                         f"{v['/api/ask']['p50_ms']:.0f} / {v['/api/ask']['p95_ms']:.0f} |")
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
