"""Evidence scoring on the ground floor: how well a passage, or one of its sentences, covers
a question's weighted terms, and the citations of the spans an answer uses.

Retrieval reranks passages by ``coverage``; the answerer and the briefer score sentences with
``score_sentences``, refuse below a threshold on ``confidence_of`` and number their
citations with ``cite``, so all three judge and cite evidence alike.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from kbcore.text import split_sentences
from kbcore.types import Citation, Passage

K = TypeVar("K", bound=Hashable)

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


def cite(uses: Iterable[tuple[K, Passage, tuple[int, int]]]) -> tuple[dict[K, int], tuple[Citation, ...]]:
    """Citations for spans in the order an answer uses them: ``uses`` are (passage key,
    passage, (start, end)); each passage is numbered [1], [2], … at its first use and cited
    once, over all of its spans (``Citation.from_spans``). Returns each key's number and the
    citations in number order."""
    numbers: dict[K, int] = {}
    spans: dict[K, list[tuple[int, int]]] = {}
    passages: dict[K, Passage] = {}
    for key, passage, span in uses:
        numbers.setdefault(key, len(numbers) + 1)
        passages.setdefault(key, passage)
        spans.setdefault(key, []).append(span)
    return numbers, tuple(Citation.from_spans(n, passages[key], spans[key]) for key, n in numbers.items())
