"""Evidence scoring on the ground floor: how well a passage, or one of its sentences, covers
a question's weighted terms.

Retrieval reranks passages by ``coverage``; the answerer and the briefer score sentences with
``score_sentences`` and refuse below a threshold on ``confidence_of``, so all three judge
evidence alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from kbqa.text import split_sentences
from kbqa.types import Passage

MIN_SENTENCE_CHARS = 6  # headings and fragments like "具体来看。" are no answer


def coverage(weights: dict[str, float], text: str) -> float:
    """Share of the question's term weight whose terms occur in ``text`` (0..1).

    Substring tests rather than token matches, so segmentation differences between the
    question and the passage ("云计算" vs "云 计算") don't hide a match.
    """
    total = sum(weights.values())
    if not total:
        return 0.0
    lowered = text.lower()
    return sum(w for term, w in weights.items() if term in lowered) / total


@dataclass(frozen=True)
class SentenceCandidate:
    passage_index: int
    position: int  # sentence number within the passage
    start: int  # offsets into the cleaned document text
    end: int
    text: str
    coverage: float  # share of the question's term weight in the sentence (context half)
    score: float  # coverage discounted by the passage's rank


def score_sentences(
    index: int, passage: Passage, weights: dict[str, float], total: float
) -> Iterator[SentenceCandidate]:
    """The sentences of ``passage`` (the ``index``-th retrieved) scored against term ``weights``
    (``total`` is their sum): coverage, and coverage discounted by the passage's rank."""
    chunk = passage.chunk
    context = f"{chunk.title} {chunk.section}".lower()
    rank_prior = 1.0 / (1.0 + 0.15 * index)
    for position, (start, end) in enumerate(split_sentences(chunk.text)):
        raw = chunk.text[start:end]
        text = raw.strip()
        if len(text) < MIN_SENTENCE_CHARS:
            continue
        lowered = text.lower()
        # Terms in the sentence count fully; terms only in the title/section count half:
        # "它们" in a sentence often stands for the subject named in the heading.
        covered = sum(w if t in lowered else 0.5 * w if t in context else 0.0 for t, w in weights.items())
        begin = chunk.start + start + len(raw) - len(raw.lstrip())
        yield SentenceCandidate(
            passage_index=index,
            position=position,
            start=begin,
            end=begin + len(text),
            text=text,
            coverage=covered / total,
            score=(covered / total) * rank_prior,
        )


def confidence_of(best: SentenceCandidate, passage: Passage, weights: dict[str, float]) -> float:
    """How well the evidence covers the question, 0..1: the mean of the best sentence's
    coverage of the question's content words and its passage's (with title and section).

    The sentence alone misses subjects named only in the heading; the passage alone
    accepts a passage that mentions everything but answers nothing. The refusal
    threshold is calibrated on this score (bench/, README "Refusals").
    """
    return 0.5 * best.coverage + 0.5 * coverage(weights, passage.chunk.with_context)
