"""Answer quality as a visitor meets it: correct, wrong or refused, with the gold documents
present and with them removed, and the answers themselves written to a JSONL file to read.

* **correct**: found, the answer (its ``[n]`` marks removed) holds ≥ 80% of the gold answer's
  characters (bag of characters, punctuation aside), and it cites a gold document;
* **wrong**: found and not correct; **refused**: found=False;
* **refused with gold removed**: the same question asked as if its gold documents had never
  been ingested (they are excluded from retrieval: ``search(exclude_docs=gold)``).

Used by ``python -m bench`` (its answer table) and ``python -m bench.fit_answers``.
"""

from __future__ import annotations

import json
import re
import statistics
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from bench.evalset import Question, percentile

CITATION_MARK = re.compile(r"\[\d+\]")
_STRIP = set(" \n\t，。、；：？！,.;:?!“”\"'（）()[]《》【】")
HOLDS = 0.8  # share of the gold answer's characters a correct answer must hold


def char_recall(prediction: str, gold: str) -> float:
    """Share of the gold answer's characters (bag, punctuation aside) found in ``prediction``."""
    p = Counter(c for c in prediction if c not in _STRIP)
    g = Counter(c for c in gold if c not in _STRIP)
    if not g:
        return 0.0
    return sum((p & g).values()) / sum(g.values())


def holds(text: str, doc_id: str, q: Question) -> bool:
    """Whether ``text`` from document ``doc_id`` is a correct answer to ``q``."""
    return doc_id in q.gold and char_recall(text, q.answer) >= HOLDS


def judge(answer, q: Question) -> str:
    """"correct", "wrong" or "refused"."""
    if not answer.found:
        return "refused"
    text = CITATION_MARK.sub("", answer.text)
    cited = {c.passage.chunk.doc_id for c in answer.citations}
    correct = char_recall(text, q.answer) >= HOLDS and bool(cited & set(q.gold))
    return "correct" if correct else "wrong"


def evaluate(
    kb,
    questions: Sequence[Question],
    *,
    k: int = 5,
    out: Path | None = None,
    removed: bool = True,
    present: bool = True,
    answerer=None,
    deadline: float | None = None,
) -> dict:
    """Ask each question through ``kb``'s searcher and ``answerer`` (default ``kb.answerer``: the
    extractive one, or the chat model's when ``kb`` has one), as ``KnowledgeBase.ask`` does, with
    the gold documents ``present`` and/or ``removed`` (left out of retrieval); write one JSON line
    per question to ``out``. Seconds per answer count search and answer, both ways. Past
    ``deadline`` (``time.monotonic()``) no further question is asked: the result counts the
    questions asked."""
    answerer = answerer or kb.answerer
    verdicts: Counter[str] = Counter()
    removed_refused = 0
    lengths, ms, seconds = [], [], []
    notices, verification = 0, Counter()
    lines = []

    def ask(q: Question, exclude: Sequence[str] = ()):
        nonlocal notices
        t0 = time.perf_counter()
        found = kb.searcher.retrieve(q.question, k, exclude_docs=exclude)
        answer = answerer.invoke({"question": q.question, "passages": found.passages, "terms": found.terms})
        seconds.append(time.perf_counter() - t0)
        notices += bool(answer.notice)
        verification.update(answer.verification or {})
        extra = {"notice": answer.notice} if answer.notice else {}
        return found, answer, extra | ({"verification": answer.verification} if answer.verification else {})

    asked = []
    for q in questions:
        if deadline is not None and time.monotonic() > deadline:
            break
        asked.append(q)
        row = {"id": q.qid, "question": q.question, "gold_answer": q.answer, "gold_docs": list(q.gold)}
        if present:
            found, answer, extra = ask(q)
            ms.append(seconds[-1] * 1000)
            verdict = judge(answer, q)
            verdicts[verdict] += 1
            if answer.found:
                lengths.append(len(CITATION_MARK.sub("", answer.text)))
            row |= {
                "verdict": verdict,
                "answer": answer.text,
                "probability": round(answer.confidence, 4),
                "cited": [c.passage.chunk.doc_id for c in answer.citations],
                "gold_in_top_k": any(p.chunk.doc_id in q.gold for p in found.passages),
                "related": [p.chunk.doc_id for p in answer.related],
            } | extra
        if removed:
            _, refusal, extra = ask(q, q.gold)
            removed_refused += not refusal.found
            row["gold_removed"] = {"found": refusal.found, "answer": refusal.text,
                                   "probability": round(refusal.confidence, 4)} | extra
        lines.append(json.dumps(row, ensure_ascii=False))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    questions = asked
    n = len(questions) or 1
    result = {"questions": len(questions), "seconds_per_answer_mean": statistics.fmean(seconds) if seconds else None}
    if present:
        result |= {
            "correct": verdicts["correct"] / n,
            "wrong": verdicts["wrong"] / n,
            "refused": verdicts["refused"] / n,
            "answer_chars_median": statistics.median(lengths) if lengths else None,
            "gold_answer_chars_median": statistics.median(len(q.answer) for q in questions) if questions else None,
            "search_and_answer_ms_p50": percentile(ms, 50),
        }
    if removed:
        result["refused_gold_removed"] = removed_refused / n
    if notices:  # the chat model unavailable (the extractive answer stood in) or cut off
        result["notices"] = notices
    if verification:
        result["verification"] = dict(verification)
    return result


def answer_rows(name: str, m: dict) -> list[str]:
    """Markdown table rows of one ``evaluate`` result."""
    removed = f"{m['refused_gold_removed']:.3f}" if "refused_gold_removed" in m else "—"
    length = f"{m['answer_chars_median']:.0f} / {m['gold_answer_chars_median']:.0f}" if m["answer_chars_median"] else "—"
    return [f"| {name} | {m['questions']} | {m['correct']:.3f} | {m['wrong']:.3f} | {m['refused']:.3f} | {removed} | {length} |"]


ANSWER_HEADER = [
    "| answers | questions | correct | wrong | refused | refused, gold removed | answer / gold chars (median) |",
    "|---|---|---|---|---|---|---|",
]
