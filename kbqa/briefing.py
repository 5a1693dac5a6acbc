"""Briefings for sales staff: a topic in, a structured Markdown briefing with footnoted sources out.

Extractive like the answerer (no language model, nothing invented): every bullet point is a
sentence of a retrieved passage quoted verbatim (clipped at a clause with "…" when it is
longer than ``max_chars_per_point``), followed by a GitHub-flavoured Markdown footnote
``[^n]`` whose definition names the source: ``[^n]: title · date · section · source``.

How points are chosen from the passages retrieved for the topic:

1. every sentence is scored like the answerer scores it (``kbqa.evidence.score_sentences``:
   idf-weighted coverage of the topic's key terms, terms only in the title/section counting
   half, discounted by the passage's rank);
2. refusal as in the answerer: confidence = mean of the best sentence's coverage and its
   passage's; below ``refusal_threshold`` the briefing says the knowledge base holds nothing
   on the topic (``found=False``);
3. points are taken best first among on-topic sentences (coverage >= ``min_coverage``, a
   topic term in the sentence itself; no headings, no questions), at most
   ``max_per_document`` per source document (per section when all come from one document),
   skipping near-duplicates (character-bigram Jaccard >= ``near_duplicate``) of points
   already taken;
4. points are grouped under a heading per document (most relevant document first) or, when
   they all come from one document, per section (in document order); within a group they
   follow document order.

Document text is untrusted: everything taken from a document (and the topic) is escaped so it
renders as the literal text it is: it cannot open links, images, HTML, headings, lists, code
or tables in the briefing.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from kbqa.evidence import (
    SentenceCandidate,
    cite,
    confidence_of,
    coverage,
    score_sentences,
)
from kbqa.text import cut_question, is_heading_line
from kbqa.types import Chunk, Citation, Passage, QueryTerms

__all__ = ["Briefer", "Briefing", "escape_markdown", "NOTHING_FOUND_TEXT"]

NOTHING_FOUND_TEXT = "知识库中没有关于“{topic}”的内容，无法生成简报。"
LEAD_SECTION = "导语"  # heading for the part of a document above its first section heading

_ELLIPSIS = "…"
_CLAUSE_ENDS = "，,；;：:、"
_QUESTION_ENDS = ("？", "?")


@dataclass(frozen=True)
class Briefing:
    topic: str
    markdown: str
    sources: tuple[Citation, ...]  # footnote n is sources[n - 1]
    found: bool
    timings_ms: dict[str, float] = field(default_factory=dict)
    confidence: float = 0.0  # evidence score the refusal threshold was applied to

    def to_dict(self) -> dict:
        return {
            "topic": self.topic,
            "found": self.found,
            "markdown": self.markdown,
            "sources": [c.to_dict() for c in self.sources],
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
        }


# --- Markdown escaping ----------------------------------------------------------------------

# Every ASCII character with a meaning in CommonMark/GFM inline syntax: emphasis, code, links,
# images, raw HTML, entities, tables, strikethrough, math ($ for renderers with LaTeX), e-mail
# autolinks. A backslash before ASCII punctuation always renders as the character itself.
_INLINE_SPECIAL = re.compile(r"([\\`*_\[\]()<>#!|~&$@])")
_AUTOLINK = re.compile(r"(?i)(?<=[a-z])(:)(?=//)|(?<=www)(\.)")  # GFM's bare-URL links
_LINE_START = re.compile(r"^([-+=])|^(\d+)([.)])")  # list items, setext underlines


def escape_markdown(text: str) -> str:
    """``text`` as one line of Markdown that renders as exactly this text.

    Whitespace runs (newlines included) become one space, so nothing can start a block
    (heading, list item, quote, code block, table) or end the line it is put on.
    """
    text = " ".join(text.split())
    text = _INLINE_SPECIAL.sub(r"\\\1", text)
    text = _AUTOLINK.sub(lambda m: "\\" + (m.group(1) or m.group(2)), text)
    return _LINE_START.sub(lambda m: f"\\{m.group(1)}" if m.group(1) else f"{m.group(2)}\\{m.group(3)}", text)


_SAFE_URL = re.compile(r"https?://[^\s<>\\\x00-\x1f\x7f]+", re.I)


def _source_markdown(source: str) -> str:
    """http(s) sources become autolinks (as in the chat's source panel); anything else,
    a ``javascript:`` URL included, is plain escaped text."""
    if _SAFE_URL.fullmatch(source):
        return f"<{source}>"
    return escape_markdown(source)


# --- choosing points --------------------------------------------------------------------------


def _bigrams(text: str) -> set[str]:
    s = "".join(text.lower().split())
    return {s[i : i + 2] for i in range(len(s) - 1)} or {s}


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


@dataclass(frozen=True)
class _Point:
    candidate: SentenceCandidate
    passage: Passage
    text: str  # the sentence, or its clipped head ending in "…"
    end: int  # document offset where ``text`` (without the "…") ends


def _clip(cand: SentenceCandidate, limit: int) -> tuple[str, int]:
    """The sentence, or its head up to the last clause break within ``limit`` characters
    (a hard cut when there is none in the second half) followed by "…"."""
    if len(cand.text) <= limit:
        return cand.text, cand.end
    head = cand.text[: limit - 1]
    cut = max(head.rfind(ch) for ch in _CLAUSE_ENDS)
    if cut >= limit // 2:
        head = head[:cut]
    head = head.rstrip()
    return head + _ELLIPSIS, cand.start + len(head)


class Briefer:
    """Composes a ``Briefing`` from passages retrieved for a topic (see module docstring)."""

    def __init__(
        self,
        *,
        max_points: int = 8,
        max_per_document: int = 2,
        max_chars_per_point: int = 160,
        refusal_threshold: float = 0.8,
        min_coverage: float = 0.5,
        near_duplicate: float = 0.6,
        clock: Callable[[], datetime] = lambda: datetime.now().astimezone(),
    ):
        if not 1 <= max_points <= 100:
            raise ValueError("max_points must be between 1 and 100")
        if not 1 <= max_per_document <= max_points:
            raise ValueError("max_per_document must be between 1 and max_points")
        if max_chars_per_point < 20:
            raise ValueError("max_chars_per_point must be at least 20")
        for name, value in (
            ("refusal_threshold", refusal_threshold),
            ("min_coverage", min_coverage),
            ("near_duplicate", near_duplicate),
        ):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1]")
        self.max_points = max_points
        self.max_per_document = max_per_document
        self.max_chars_per_point = max_chars_per_point
        self.refusal_threshold = refusal_threshold
        self.min_coverage = min_coverage
        self.near_duplicate = near_duplicate
        self.clock = clock

    def run(
        self, topic: str, passages: Sequence[Passage], terms: QueryTerms | Callable[[str], float]
    ) -> Briefing:
        """The briefing on ``topic`` from ``passages`` (best first), judged by ``terms``: the
        topic's ``QueryTerms`` as the search weighed them (``SearchResult.terms``), or, for
        passages from elsewhere, a function weighing each of the topic's key words."""
        t0 = time.perf_counter()
        topic = topic.strip()
        passages = list(passages)
        if not isinstance(terms, QueryTerms):
            terms = cut_question(topic).weighted(terms)
        weights = terms.weights
        total = terms.total
        candidates = (
            [c for i, p in enumerate(passages) for c in score_sentences(i, p, weights, total)] if total > 0 else []
        )
        confidence = 0.0
        if candidates:
            best = max(candidates, key=lambda c: c.score)
            confidence = confidence_of(best, passages[best.passage_index], weights)
        points = self._choose(candidates, passages, weights) if confidence >= self.refusal_threshold else []
        if points:
            markdown, sources = self._compose(topic, points)
        else:
            markdown, sources = self._nothing(topic), ()
        return Briefing(
            topic=topic,
            markdown=markdown,
            sources=sources,
            found=bool(points),
            timings_ms={"brief_ms": (time.perf_counter() - t0) * 1000},
            confidence=confidence,
        )

    def _choose(
        self, candidates: list[SentenceCandidate], passages: list[Passage], weights: dict[str, float]
    ) -> list[_Point]:
        eligible = [c for c in candidates if c.coverage >= self.min_coverage and self._is_point(c, passages, weights)]
        # Best first; among equals (coverage saturates at 1.0 often) the sentence that says
        # more, up to what fits in a point: "以此对照……的建设模式。" says little.
        limit = self.max_chars_per_point
        eligible.sort(key=lambda c: (-round(c.score, 9), -min(len(c.text), limit), c.passage_index, c.position))
        # One document: its sections are the groups, and the per-document cap applies to them.
        by_section = len({passages[c.passage_index].chunk.doc_id for c in eligible}) == 1
        taken: list[_Point] = []
        shingles: list[set[str]] = []
        per_group: dict[object, int] = {}
        for cand in eligible:
            if len(taken) >= self.max_points:
                break
            passage = passages[cand.passage_index]
            doc_id = passage.chunk.doc_id
            group = (doc_id, passage.chunk.section) if by_section else doc_id
            if per_group.get(group, 0) >= self.max_per_document:
                continue
            # The same sentence reached through two overlapping chunks, or a near-copy of it.
            if any(p.passage.chunk.doc_id == doc_id and p.candidate.start < cand.end and cand.start < p.candidate.end
                   for p in taken):
                continue
            grams = _bigrams(cand.text)
            if any(jaccard(grams, other) >= self.near_duplicate for other in shingles):
                continue
            text, end = _clip(cand, self.max_chars_per_point)
            taken.append(_Point(cand, passage, text, end))
            shingles.append(grams)
            per_group[group] = per_group.get(group, 0) + 1
        return taken

    @staticmethod
    def _is_point(cand: SentenceCandidate, passages: list[Passage], weights: dict[str, float]) -> bool:
        """A statement that itself names part of the topic: no heading or title line, no
        question, not a sentence on topic only through the heading it sits under."""
        chunk = passages[cand.passage_index].chunk
        return (
            not cand.text.endswith(_QUESTION_ENDS)
            and not is_heading_line(cand.text)
            and cand.text != chunk.title.strip()
            and coverage(weights, cand.text) > 0
        )

    def _header(self, topic: str) -> list[str]:
        return [f"# 简报：{escape_markdown(topic)}", "", f"生成时间：{self.clock():%Y-%m-%d %H:%M}"]

    def _nothing(self, topic: str) -> str:
        lines = self._header(topic) + ["", escape_markdown(NOTHING_FOUND_TEXT.format(topic=topic)), ""]
        return "\n".join(lines)

    def _compose(self, topic: str, points: list[_Point]) -> tuple[str, tuple[Citation, ...]]:
        documents = list(dict.fromkeys(p.passage.chunk.doc_id for p in points))  # most relevant first
        one_document = len(documents) == 1
        in_document_order = sorted(points, key=lambda p: p.candidate.start)
        groups: dict[object, list[_Point]] = {}
        if one_document:  # sections in document order
            for p in in_document_order:
                groups.setdefault(p.passage.chunk.section, []).append(p)
        else:  # documents by relevance, points in document order
            for doc_id in documents:
                groups[doc_id] = [p for p in in_document_order if p.passage.chunk.doc_id == doc_id]

        # Footnotes: one per passage, numbered in order of first appearance.
        numbers, citations = cite(
            (p.passage.chunk.chunk_id, p.passage, (p.candidate.start, p.end)) for group in groups.values() for p in group
        )

        lines = self._header(topic)
        basis = f"依据：知识库中 {len(documents)} 篇文档的 {len(numbers)} 段原文；每条要点均为原文摘录，脚注注明出处。"
        lines[-1] += f" · {basis}"
        if one_document:
            chunk = points[0].passage.chunk
            lines += ["", f"来源文档：{_title_with_date(chunk)}"]
        for group in groups.values():
            chunk = group[0].passage.chunk
            if one_document:
                heading = escape_markdown(chunk.section) if chunk.section.strip() else LEAD_SECTION
            else:
                heading = _title_with_date(chunk)
            lines += ["", f"## {heading}", ""]
            lines += [f"- {escape_markdown(p.text)}[^{numbers[p.passage.chunk.chunk_id]}]" for p in group]
        lines.append("")
        lines += [f"[^{c.n}]: {_footnote(c.passage.chunk)}" for c in citations]
        lines.append("")
        return "\n".join(lines), citations


def _title_with_date(chunk: Chunk) -> str:
    title = escape_markdown(chunk.title.strip() or chunk.doc_id)
    return f"{title}（{escape_markdown(chunk.date)}）" if chunk.date and chunk.date.strip() else title


def _footnote(chunk: Chunk) -> str:
    """``title · date · section · source``, the empty ones left out. The source (or, without
    one, the document id) is always there: a definition of a single word would read as a link
    reference definition ("[^1]: target") to Markdown renderers that know no footnotes."""
    fields = [escape_markdown(chunk.title.strip() or chunk.doc_id)]
    fields += [escape_markdown(part) for part in (chunk.date or "", chunk.section) if part.strip()]
    source = chunk.source.strip()
    fields.append(_source_markdown(source) if source else escape_markdown(chunk.doc_id))
    return " · ".join(fields)
