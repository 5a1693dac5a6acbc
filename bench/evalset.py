"""The third-party eval data in ``../shared/eval`` (never copied into this repo) and metrics."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

EVAL_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "eval"
DEV_CORPUS = EVAL_DIR / "dev" / "corpus.jsonl"
DEV_QA = EVAL_DIR / "dev" / "qa.jsonl"
SCALE_CORPUS = EVAL_DIR / "scale" / "corpus.jsonl.gz"


@dataclass(frozen=True)
class Question:
    qid: str
    question: str
    answer: str
    gold: tuple[str, ...]  # alternatives: any of them counts as a hit


def available() -> bool:
    return DEV_CORPUS.is_file() and DEV_QA.is_file()


def load_questions(limit: int | None = None, path: Path = DEV_QA) -> list[Question]:
    """Questions of a ``qa.jsonl`` (``id``, ``question``, ``answer``, ``doc_ids``): the dev set's by default.

    A row with only ``id`` and ``question`` asks a dev question in other words (bench/heldout/):
    its answer and gold documents are the dev set's, read here, never copied into the repo."""
    rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    if any("answer" not in r for r in rows):
        dev = {r["id"]: r for r in (json.loads(line) for line in DEV_QA.read_text(encoding="utf-8").splitlines() if line.strip())}
        rows = [r if "answer" in r else dev[r["id"]] | {"question": r["question"]} for r in rows]
    questions = [Question(r["id"], r["question"], r["answer"], tuple(r["doc_ids"])) for r in rows]
    return questions[:limit] if limit else questions


def load_corpus(path: Path = DEV_CORPUS) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def corpus_digest(corpus: Sequence[dict | str]) -> str:
    """A short digest of a corpus (its documents, or its file names) for naming its store."""
    import hashlib

    digest = hashlib.sha256()
    for d in corpus:
        digest.update(json.dumps(d, ensure_ascii=False, sort_keys=True).encode("utf-8"))
    return digest.hexdigest()[:10]


def unique_in_order(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def retrieval_metrics(rankings: Sequence[Sequence[str]], questions: Sequence[Question]) -> dict[str, float]:
    """Doc-level recall@1/@5 and MRR@10; a hit is any of a question's gold alternatives."""
    r1 = r5 = mrr = 0.0
    for ranking, q in zip(rankings, questions, strict=True):
        ranks = [i for i, doc_id in enumerate(ranking[:10]) if doc_id in q.gold]
        if ranks:
            first = ranks[0]
            r1 += first < 1
            r5 += first < 5
            mrr += 1.0 / (first + 1)
    n = len(questions)
    return {"recall@1": r1 / n, "recall@5": r5 / n, "mrr@10": mrr / n}


def char_f1(prediction: str, gold: str) -> float:
    """Character-level F1 (bag of characters), the usual score for Chinese extractive QA."""
    from collections import Counter

    strip = set(" \n\t，。、；：？！,.;:?!“”\"'（）()[]")
    p = Counter(c for c in prediction if c not in strip)
    g = Counter(c for c in gold if c not in strip)
    common = sum((p & g).values())
    if not common:
        return 0.0
    precision, recall = common / sum(p.values()), common / sum(g.values())
    return 2 * precision * recall / (precision + recall)


def percentile(values: Sequence[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]
