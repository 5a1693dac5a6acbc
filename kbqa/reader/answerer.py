"""The reader answerer (``KB_ANSWERER=reader``): the trained reader finds the answer span; the
answer quotes the sentence(s) holding it.

1. The reader reads the top ``passages_read`` passages (kbqa/reader/model.py): each gets its
   best span and that span's margin over the reader's "no answer" score.
2. The passages are re-ranked by that margin (the reader's judgement of which passage
   answers); the best span decides the answer.
3. Below ``min_margin`` the answer is a refusal, in the question's language, listing the
   closest passages (in the reader's order) as related reading. The operating point is
   calibrated so that questions whose documents are absent are refused (bench/reader.py).
4. Otherwise the answer is the verbatim sentence, or run of sentences, holding the span, with
   its ``[n]`` mark; a short span ("减免租金") is given first, and the citation carries the span
   (``Citation.answer_span``) for the page to highlight.

Nothing is invented: every character of the answer is a character of the cited passage.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

from kbcore.evidence import cite
from kbcore.types import Answer, Citation, Passage, QueryTerms
from kbqa.answer_model import is_foreign
from kbqa.answering import (
    EMPTY_QUESTION_TEXT,
    QuotingAnswerer,
    not_found_text,
    passage_sentences,
    related_passages,
)
from kbqa.reader.model import Reading

SHORT_SPAN = 24  # characters: a span this short is given before the sentence that holds it
MAX_SENTENCES = 4  # a span running over more sentences (a long list) is quoted up to here


class ReaderAnswerer(QuotingAnswerer):
    """``invoke({"question", "passages", "terms"})`` -> Answer, as ``ExtractiveAnswerer``; its
    streamed answer grows a sentence at a time (QuotingAnswerer)."""

    def __init__(self, reader: Callable[[str, Sequence[str]], list[Reading]], *, min_margin: float,
                 passages_read: int = 5):
        if passages_read < 1:
            raise ValueError("passages_read must be at least 1")
        self.reader = reader
        self.min_margin = min_margin
        self.passages_read = passages_read

    def read(self, question: str, passages: Sequence[Passage]) -> list[Reading]:
        """The reader's best span of each of the top passages, best margin first."""
        considered = list(passages[: self.passages_read])
        readings = self.reader(question, [p.chunk.text for p in considered])
        return sorted(readings, key=lambda r: -r.span.margin)

    def answer(self, question: str, passages: Sequence[Passage], terms: QueryTerms) -> Answer:
        t0 = time.perf_counter()
        if not terms.weights and not is_foreign(question):  # "？？": nothing to ask about
            return self._answer(question, EMPTY_QUESTION_TEXT, passages, t0, found=False, confidence=0.0)
        readings = self.read(question, passages)
        timings = {"read_ms": (time.perf_counter() - t0) * 1000}
        # The reader's order first, then what it did not read, as retrieval ranked it.
        ranked = tuple([passages[r.index] for r in readings] + list(passages[len(readings):]))
        if not readings or readings[0].span.margin < self.min_margin:
            margin = readings[0].span.margin if readings else -math.inf
            return self._answer(question, not_found_text(question), ranked, t0, found=False,
                                confidence=self.confidence(margin), timings=timings,
                                related=related_passages(ranked))
        best = readings[0]
        text, citation = quote(passages[best.index], best.span.start, best.span.end)
        return self._answer(question, text, ranked, t0, found=True, confidence=self.confidence(best.span.margin),
                            timings=timings, citations=(citation,))

    def confidence(self, margin: float) -> float:
        """The margin as a number in (0, 1): 0.5 at the refusal threshold, not a probability."""
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, margin - self.min_margin))))

    def _answer(self, question: str, text: str, passages: Sequence[Passage], t0: float, *, found: bool,
                confidence: float, timings: dict[str, float] | None = None, citations: tuple[Citation, ...] = (),
                related: tuple[Passage, ...] = ()) -> Answer:
        timings = (timings or {}) | {"answer_ms": (time.perf_counter() - t0) * 1000}
        return Answer(question=question, text=text, found=found, citations=citations, passages=tuple(passages),
                      confidence=confidence, timings_ms=timings, related=related)


def quote(passage: Passage, start: int, end: int) -> tuple[str, Citation]:
    """The answer text for the span ``[start, end)`` of ``passage.chunk.text``, and its citation.

    The sentences that overlap the span are quoted (a dateline or run-on title trimmed, as the
    extractive answerer does); a short span that is not a whole sentence is given first.
    """
    chunk = passage.chunk
    lo, hi = chunk.start + start, chunk.start + end  # document offsets
    sentences = [s for s in passage_sentences(0, passage) if s.start < hi and s.end > lo]
    if not sentences:  # the span sits in a fragment too short to be a sentence: quote the span
        sentences_spans = [(lo, hi)]
        body = chunk.text[start:end].strip()
    else:
        sentences = sentences[:MAX_SENTENCES]
        sentences_spans = [(s.start, s.end) for s in sentences]
        body = ""
    numbers, citations = cite((0, passage, span) for span in sentences_spans)
    n = numbers[0]
    span_text = chunk.text[start:end].strip()
    if sentences:
        body = "".join(f"{s.text}[{n}]" for s in sentences)
        whole = "".join(s.text for s in sentences)
        if len(span_text) <= SHORT_SPAN and span_text and span_text.rstrip("。；;，,") != whole.rstrip("。；;，,"):
            body = f"{span_text}：{body}"
    else:
        body = f"{body}[{n}]"
    citation = citations[0]
    return body, Citation(citation.n, citation.passage, citation.start, citation.end, citation.spans,
                          answer_span=(lo, hi))
