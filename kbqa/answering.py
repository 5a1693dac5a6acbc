"""Extractive answering: compose a short answer from the retrieved passages' own sentences.

No language model is needed, and nothing can be invented: every answer sentence is a
sentence of a cited passage, quoted verbatim with its ``[n]`` mark. When the evidence does
not cover the question's content terms well enough, the answer is a refusal (found=False).

Sentences are scored against the question's ``QueryTerms``, cut and weighed once by the
search (``SearchResult.terms``): the answerer does no segmentation or idf lookup of its own.

The answerer is a LangChain ``Runnable``: ``invoke({"question": ..., "passages": [...],
"terms": QueryTerms})``, where passages are ``Passage`` objects or the LangChain Documents
``HybridRetriever`` returns. Without ``terms`` (passages from some other retriever) the
question is cut here and its words weigh alike.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

from langchain_core.documents import Document as LCDocument
from langchain_core.runnables import Runnable, RunnableConfig

from kbqa.evidence import SentenceCandidate, cite, confidence_of, score_sentences
from kbqa.langchain_adapters import passage_from_langchain
from kbqa.text import cut_question
from kbqa.types import Answer, Citation, Passage, QueryTerms

NOT_FOUND_TEXT = "抱歉，知识库中没有找到能回答这个问题的内容。"
EMPTY_QUESTION_TEXT = "请提出一个具体的问题，例如：锦州的“三个开放”是什么？"

_NEIGHBOUR_MIN_SCORE = 0.25  # a following sentence joins the answer only if it is on topic


class ExtractiveAnswerer(Runnable[dict, Answer]):
    def __init__(
        self,
        *,
        refusal_threshold: float = 0.5,
        max_sentences: int = 3,
        max_chars: int = 240,
        passages_considered: int = 5,
    ):
        if not 0.0 <= refusal_threshold <= 1.0:
            raise ValueError("refusal_threshold must be within [0, 1]")
        if max_sentences < 1 or max_chars < 20 or passages_considered < 1:
            raise ValueError("max_sentences, max_chars and passages_considered are too small")
        self.refusal_threshold = refusal_threshold
        self.max_sentences = max_sentences
        self.max_chars = max_chars
        self.passages_considered = passages_considered

    # --- Runnable ------------------------------------------------------------------------
    def invoke(self, input: dict, config: RunnableConfig | None = None, **kwargs: Any) -> Answer:
        question = input["question"]
        terms = input.get("terms") or cut_question(question)
        return self.answer(question, as_passages(input.get("passages", ())), terms)

    def stream(self, input: dict, config: RunnableConfig | None = None, **kwargs: Any) -> Iterator[Answer]:
        """Yields the answer growing sentence by sentence; the last item is the full answer."""
        final = self.invoke(input, config)
        if not final.found:
            yield final
            return
        pieces = _sentence_pieces(final.text)
        for i in range(1, len(pieces)):
            yield Answer(
                question=final.question,
                text="".join(pieces[:i]),
                found=True,
                citations=final.citations,
                passages=final.passages,
                confidence=final.confidence,
            )
        yield final

    # --- the work ------------------------------------------------------------------------
    def answer(self, question: str, passages: Sequence[Passage], terms: QueryTerms) -> Answer:
        """The answer to ``question`` from ``passages`` (best first), judged by ``terms``."""
        t0 = time.perf_counter()
        weights = terms.weights
        if not weights:
            return self._refusal(question, passages, EMPTY_QUESTION_TEXT, 0.0, t0)
        total = terms.total
        considered = list(passages[: self.passages_considered])
        candidates = [c for i, p in enumerate(considered) for c in score_sentences(i, p, weights, total)]
        if not candidates:
            return self._refusal(question, passages, NOT_FOUND_TEXT, 0.0, t0)
        best = max(candidates, key=lambda c: c.score)
        confidence = confidence_of(best, considered[best.passage_index], weights)
        if confidence < self.refusal_threshold:
            return self._refusal(question, passages, NOT_FOUND_TEXT, confidence, t0)
        chosen = self._choose(candidates, best)
        text, citations = _compose(chosen, considered)
        return Answer(
            question=question,
            text=text,
            found=True,
            citations=citations,
            passages=tuple(passages),
            confidence=confidence,
            timings_ms={"answer_ms": (time.perf_counter() - t0) * 1000},
        )

    def _choose(self, candidates: list[SentenceCandidate], best: SentenceCandidate) -> list[SentenceCandidate]:
        """The best sentence, strong runners-up, and on-topic neighbours of what was chosen.

        Neighbours matter because a definition often follows the sentence that names the
        thing asked about ("……分“三大步、六小步”。其中,“三大步”指……").
        """
        chosen = [best]
        length = len(best.text)

        def take(cand: SentenceCandidate) -> bool:
            nonlocal length
            if len(chosen) >= self.max_sentences or length + len(cand.text) > self.max_chars:
                return False
            if any(cand.passage_index == c.passage_index and cand.position == c.position for c in chosen):
                return False
            if any(cand.text == c.text for c in chosen):
                return False
            chosen.append(cand)
            length += len(cand.text)
            return True

        for cand in sorted(candidates, key=lambda c: c.score, reverse=True):
            if cand.score >= 0.75 * best.score:
                take(cand)
        by_place = {(c.passage_index, c.position): c for c in candidates}
        for anchor in list(chosen):
            neighbour = by_place.get((anchor.passage_index, anchor.position + 1))
            if neighbour is not None and neighbour.score >= _NEIGHBOUR_MIN_SCORE:
                take(neighbour)
        return chosen

    @staticmethod
    def _refusal(question: str, passages: Sequence[Passage], text: str, confidence: float, t0: float) -> Answer:
        return Answer(
            question=question,
            text=text,
            found=False,
            passages=tuple(passages),
            confidence=confidence,
            timings_ms={"answer_ms": (time.perf_counter() - t0) * 1000},
        )


def as_passages(items: Sequence[Passage | LCDocument]) -> list[Passage]:
    return [p if isinstance(p, Passage) else passage_from_langchain(p) for p in items]


def _compose(chosen: list[SentenceCandidate], passages: Sequence[Passage]) -> tuple[str, tuple[Citation, ...]]:
    """Answer text with [n] marks; citations numbered by first use, one per passage."""
    first_use: dict[int, int] = {}
    for rank, cand in enumerate(chosen):
        first_use.setdefault(cand.passage_index, rank)
    # Passages in the order the answer first needs them; sentences in document order.
    ordered = sorted(chosen, key=lambda c: (first_use[c.passage_index], c.start))
    numbers, citations = cite((c.passage_index, passages[c.passage_index], (c.start, c.end)) for c in ordered)
    return "".join(f"{c.text}[{numbers[c.passage_index]}]" for c in ordered), citations


def _sentence_pieces(text: str) -> list[str]:
    """Split a composed answer after each citation mark (the streaming unit)."""
    pieces, start = [], 0
    for i, ch in enumerate(text):
        if ch == "]" and (i + 1 == len(text) or text[i + 1] != "["):
            pieces.append(text[start : i + 1])
            start = i + 1
    if start < len(text):
        pieces.append(text[start:])
    return pieces
