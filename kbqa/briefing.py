"""Briefings for sales staff: a topic in, a briefing with footnoted sources out — a short
summary, the key figures, then the points by source — as Markdown here and, from the same
structure, as a Word file (web/docx_export.py).

Extractive like the answerer (no language model, nothing invented): every point is a sentence
of a retrieved passage quoted verbatim (clipped at a clause with "…" when it is longer than
``max_chars_per_point``) with a footnote naming its source (``title · date · section ·
source``). A ``Briefing`` keeps the structure — its lead lines, sections of points (each with
its footnote number ``n``), the footnotes' plain text — and its GitHub-flavoured Markdown
(``[^n]`` footnotes).

How points are chosen from the passages retrieved for the topic:

1. every sentence is scored like the answerer scores it (``kbcore.evidence.score_sentences``:
   idf-weighted coverage of the topic's key terms, terms only in the title/section counting
   half, discounted by the passage's rank);
2. refusal as in the answerer: confidence = mean of the best sentence's coverage and its
   passage's; below ``refusal_threshold`` the briefing says the knowledge base holds nothing
   on the topic (``found=False``);
3. key figures (关键数据, at most ``max_figures``): sentences carrying a figure — an amount, a
   count, a percentage, a date (``figures``: 46家, 100多个, 1.2亿元, 百余, 2017年, 35%) — of
   passages on the topic (their coverage with title and section >= ``min_coverage``; a figure
   sentence rarely repeats the topic's words), the most relevant first: by the cosine of the
   sentence's and the topic's vectors when there is an embedder, else by the sentence's score;
4. summary (摘要, ``summary_points``): the most central of the on-topic sentences (coverage >=
   ``min_coverage``, a topic term in the sentence itself; no headings, no questions) —
   topic-biased LexRank (``central``): PageRank over the sentences' similarity graph (the
   embedder's cosines, else character-bigram overlap), restarting at each sentence in
   proportion to its score — at most one per passage;
5. points (at most ``max_points``) are taken best first among the remaining on-topic
   sentences, at most ``max_per_document`` per source document (per section when all come
   from one document), and grouped under a heading per document (most relevant document
   first) or, when they all come from one document, per section (in document order); within a
   group they follow document order.

Nothing is said twice: a sentence that overlaps one already taken, or is a near-copy of one
(character-bigram Jaccard >= ``near_duplicate``), is skipped, across the three parts. Footnotes
are one per passage, numbered in order of first appearance (summary, figures, sections) and
reused by every later point from the same passage.

Document text is untrusted: in the Markdown (kbcore/markdown.py) everything taken from a
document (and the topic) is escaped so it renders as the literal text it is: it cannot open
links, images, HTML, headings, lists, code or tables in the briefing. The structure
(``kbcore.types.Briefing``) keeps the plain text.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import numpy as np

from kbcore.embeddings import Embedder, SentenceVectors
from kbcore.evidence import (
    SentenceCandidate,
    cite,
    confidence_of,
    coverage,
    score_sentences,
)
from kbcore.markdown import briefing_markdown, briefing_text, note_fields
from kbcore.text import cut_question, is_heading_line
from kbcore.types import BRIEFING_TITLES, BriefPoint, BriefSection, Briefing, Chunk, Citation, Passage, QueryTerms

__all__ = ["LANGS", "NOTHING_FOUND_TEXT", "WORDING", "Briefer", "central", "figures", "trim"]

# Everything the briefer itself writes, in the briefing's language (the quoted sentences, titles
# and sections are the documents' own). "lead": the part of a document above its first heading.
WORDING = {
    "zh": {
        "nothing": "知识库中没有关于“{topic}”的内容，无法生成简报。",
        "stamp": "生成时间：{time}",
        "basis": "{stamp} · 依据：知识库中 {documents} 篇文档的 {passages} 段原文；每条要点均为原文摘录，脚注注明出处。",
        "source": "来源文档：{document}",
        "summary": "摘要",
        "figures": "关键数据",
        "lead": "导语",
        "notes": "来源",
    },
    "en": {
        "nothing": "The knowledge base holds nothing on “{topic}”; no briefing was made.",
        "stamp": "Generated: {time}",
        "basis": "{stamp} · Basis: {passages} passage(s) of {documents} document(s) in the knowledge base; "
                 "every point is quoted from a source, named in its footnote.",
        "source": "Source document: {document}",
        "summary": "Summary",
        "figures": "Key figures",
        "lead": "Introduction",
        "notes": "Sources",
    },
}
LANGS = tuple(WORDING)
NOTHING_FOUND_TEXT = WORDING["zh"]["nothing"]

# MEAD's length cut-off, in characters: a short sentence like "以此对照锦州数字政府的建设模式。"
# (16) points at others rather than saying something, yet is central to them all.
MIN_SUMMARY_CHARS = 20
FUSION_K = 10  # reciprocal rank fusion's constant, as retrieval's (HybridSearcher.rrf_k)

_ELLIPSIS = "…"
_CLAUSE_ENDS = "，,；;：:、"
_QUESTION_ENDS = ("？", "?")


# --- figures and centrality -------------------------------------------------------------------

_CN_NUMERAL = "零〇一二两三四五六七八九十百千万亿"
_MEASURES = (
    "个|家|条|座|位|名|人|户|项|所|台|套|部|件|次|批|届|支|种|类|间|栋|辆|架|艘|张|份|篇|本|场|期|"
    "元|美元|吨|亩|公顷|平方米|平方公里|公里|千米|米|倍|年|月|日|天|周|小时|岁"
)
# An amount, a count, a percentage or a date. Not inside a word or a longer number (e5, 5G,
# v1.2) and not an ordinal (第13个). Chinese numerals count only with a magnitude (百余家,
# 三十余年, 近百座): "一把手", "三个开放", "六小步" are names, not figures; a bare number
# (a hotline's 8890) needs a measure word after it.
_FIGURE = re.compile(
    rf"""
    (?<![A-Za-z0-9.第])
    (?:
        \d+(?:\.\d+)?\s*[%％‰]                                            # 35%
      | 百分之[{_CN_NUMERAL}点]+                                           # 百分之三十
      | \d{{4}}-\d{{1,2}}-\d{{1,2}}                                        # 2023-08-05
      | \d+(?:[.,]\d+)*\s*[余多]?\s*[十百千万亿]*\s*[余多]?\s*(?:{_MEASURES})  # 46家 100多个 1.2亿元 2017年
      | [{_CN_NUMERAL}]*[十百千万亿][{_CN_NUMERAL}]*(?:[余多](?:{_MEASURES})?|(?:{_MEASURES}))  # 百余家 三十余年
    )
    """,
    re.VERBOSE,
)


def figures(text: str) -> list[str]:
    """The figures ``text`` states: amounts, counts, percentages, dates (46家, 100多个, 1.2亿元,
    百余家, 2017年, 35%, 2023-08-05), in order."""
    return [m.group() for m in _FIGURE.finditer(text)]


def central(similarity: np.ndarray, relevance: np.ndarray, *, damping: float = 0.85, iterations: int = 100) -> np.ndarray:
    """Topic-biased LexRank (Otterbacher et al. 2005; a personalised PageRank): how often a walk
    over the sentences' similarity graph visits each sentence when at every step it follows an
    edge (in proportion to its weight) with probability ``damping``, else restarts at a sentence
    in proportion to its ``relevance``. Sums to 1.

    Edge weights are the similarities above their median: e5's cosines crowd into 0.7-0.9, so
    taken raw they would make every sentence about equally central.

    A few lines of numpy, not networkx.pagerank: networkx is no dependency of the app (only
    torch pulls it in, in the ``st`` extra), and the graph is a small dense matrix (at most
    ``Briefer.max_embedded`` sentences).
    """
    n = len(relevance)
    weights = np.array(similarity, dtype=np.float64).reshape(n, n)
    off_diagonal = ~np.eye(n, dtype=bool)
    if n > 1:
        weights = np.maximum(weights - np.median(weights[off_diagonal]), 0.0)
    weights[~off_diagonal] = 0.0
    total = float(np.sum(relevance))
    restart = np.asarray(relevance, np.float64) / total if total > 0 else np.full(n, 1.0 / max(n, 1))
    out = weights.sum(axis=1, keepdims=True)
    step = np.divide(weights, out, out=np.zeros_like(weights), where=out > 0)
    dangling = out[:, 0] == 0  # a sentence like no other: the walk restarts from it
    rank = restart
    for _ in range(iterations):
        new = damping * (rank @ step + rank[dangling].sum() * restart) + (1.0 - damping) * restart
        converged = np.abs(new - rank).sum() < 1e-10
        rank = new
        if converged:
            break
    return rank


# --- trimming --------------------------------------------------------------------------------

# Discourse fillers that open a spoken or essay sentence and say nothing to a client reading a
# bullet ("言归正传,", "举例说明,", "最后说一句,"), when a comma follows them: the point starts
# after them. Connectives that carry meaning (因此, 但是, 目前) stay.
_FILLERS = (
    "言归正传|举例说明|这就是说|举个例子|打个比方|最后说一句|最后|首先|其次|再次|其三|另外|此外|同时|与此同时|当然|其实|"
    "事实上|实际上|总之|总而言之|综上所述|换句话说|换言之|也就是说|可以说|值得一提的是|不仅如此|那么|例如|比如|"
    "比如说|具体来看|具体来说|一言以蔽之"
)
_LEADING_FILLER = re.compile(rf"^(?:(?:{_FILLERS})\s*[,，:：]\s*)+")
# A point ends as a sentence or not at all: a list item's ";" or "," (the source's list
# continues, the bullet does not) goes, and a doubled full stop ("等。。") is one.
_TRAILING_CLAUSE = re.compile(r"[\s,，;；:：、]+$")
_REPEATED_END = re.compile(r"([。．.！!？?])\1+$")


def trim(cand: SentenceCandidate) -> SentenceCandidate:
    """``cand`` without a leading filler and trailing clause punctuation, its offsets moved
    with the text (the citation's span still covers exactly what the point quotes)."""
    text = cand.text
    head = _LEADING_FILLER.match(text)
    cut_start = head.end() if head and head.end() < len(text) else 0
    text = text[cut_start:]
    text = _REPEATED_END.sub(r"\1", _TRAILING_CLAUSE.sub("", text)) or text
    if text == cand.text:
        return cand
    start = cand.start + cut_start
    return replace(cand, text=text, start=start, end=start + len(text))


# Rhetoric, not fact: "与其说……不如说……", rhetorical questions, exclamations. A summary of
# such sentences tells a client nothing they could check.
_RHETORIC = re.compile(r"与其说|不如说|难道|岂不|何尝|何尝不|试想|[！!]")


# What a briefing on "锦州数字经济发展经验" or "深圳智慧城市建设" asks for, not what it is about:
# a rare word like 经验 weighs most of such a topic, yet hardly a sentence of the article on
# 锦州's digital economy says it.
_TOPIC_FRAMING = frozenset(
    "经验 做法 情况 现状 进展 成效 成果 概况 介绍 简介 举措 措施 发展 建设 总结 案例 分析 研究 简报".split()
)


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


class _Said:
    """What a briefing says so far, across its parts: a sentence overlapping one of them (the
    same sentence reached through two overlapping chunks) or a near-copy of one is not said
    again."""

    def __init__(self, near_duplicate: float, limit: int):
        self.near_duplicate = near_duplicate
        self.limit = limit
        self.spans: list[tuple[str, int, int]] = []
        self.shingles: list[set[str]] = []

    def take(self, cand: SentenceCandidate, passage: Passage, keep: Callable[[str], object] = bool) -> _Point | None:
        """The point for ``cand`` (clipped to the limit), unless it was said already or its
        clipped text fails ``keep``."""
        doc_id = passage.chunk.doc_id
        if any(d == doc_id and s < cand.end and cand.start < e for d, s, e in self.spans):
            return None
        grams = _bigrams(cand.text)
        if any(jaccard(grams, other) >= self.near_duplicate for other in self.shingles):
            return None
        text, end = _clip(cand, self.limit)
        if not keep(text):
            return None
        self.spans.append((doc_id, cand.start, cand.end))
        self.shingles.append(grams)
        return _Point(cand, passage, text, end)


@dataclass(frozen=True)
class _Parts:
    summary: list[_Point]
    figures: list[_Point]
    points: list[_Point]

    def __bool__(self) -> bool:
        return bool(self.summary or self.figures or self.points)


class Briefer:
    """Composes a ``Briefing`` from passages retrieved for a topic (see module docstring).

    ``embedder`` compares sentences by meaning (the summary's similarity graph, the figures'
    relevance); without one, the summary's graph is character-bigram overlap and figures rank
    by their sentence's score. The candidate sentences' vectors are kept by text
    (``SentenceVectors``), so a topic briefed again embeds nothing new.
    """

    def __init__(
        self,
        *,
        embedder: Embedder | None = None,
        summary_points: int = 3,
        max_figures: int = 5,
        max_points: int = 8,
        max_per_document: int = 2,
        max_chars_per_point: int = 160,
        max_embedded: int = 64,
        refusal_threshold: float = 0.8,
        min_coverage: float = 0.6,
        near_duplicate: float = 0.6,
        clock: Callable[[], datetime] = lambda: datetime.now().astimezone(),
    ):
        if not 2 <= summary_points <= 4:
            raise ValueError("summary_points must be between 2 and 4")
        if not 0 <= max_figures <= 20:
            raise ValueError("max_figures must be between 0 and 20")
        if not 1 <= max_points <= 100:
            raise ValueError("max_points must be between 1 and 100")
        if not 1 <= max_per_document <= max_points:
            raise ValueError("max_per_document must be between 1 and max_points")
        if max_chars_per_point < 20:
            raise ValueError("max_chars_per_point must be at least 20")
        if max_embedded < summary_points:
            raise ValueError("max_embedded must be at least summary_points")
        for name, value in (
            ("refusal_threshold", refusal_threshold),
            ("min_coverage", min_coverage),
            ("near_duplicate", near_duplicate),
        ):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1]")
        self.embedder = embedder
        self.summary_points = summary_points
        self.max_figures = max_figures
        self.max_points = max_points
        self.max_per_document = max_per_document
        self.max_chars_per_point = max_chars_per_point
        self.max_embedded = max_embedded
        self.refusal_threshold = refusal_threshold
        self.min_coverage = min_coverage
        self.near_duplicate = near_duplicate
        self.clock = clock
        self._vectors = SentenceVectors(embedder) if embedder is not None else None

    def run(
        self,
        topic: str,
        passages: Sequence[Passage],
        terms: QueryTerms | Callable[[str], float],
        *,
        lang: str = "zh",
    ) -> Briefing:
        """The briefing on ``topic`` from ``passages`` (best first), judged by ``terms``: the
        topic's ``QueryTerms`` as the search weighed them (``SearchResult.terms``), or, for
        passages from elsewhere, a function weighing each of the topic's key words. What the
        briefer writes itself (title, lead, headings, notes' heading) is in ``lang``."""
        if lang not in WORDING:
            raise ValueError(f"lang must be one of {', '.join(LANGS)}")
        words = WORDING[lang]
        t0 = time.perf_counter()
        timings: dict[str, float] = {}
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
        parts = _Parts([], [], [])
        if confidence >= self.refusal_threshold:
            parts = self._choose(topic, candidates, passages, weights, timings)
        stamp = words["stamp"].format(time=f"{self.clock():%Y-%m-%d %H:%M}")
        if parts:
            lead, sections, sources = self._compose(parts, stamp, words)
        else:
            lead, sections, sources = (stamp, words["nothing"].format(topic=topic)), (), ()
        notes = tuple(" · ".join(note_fields(c.passage.chunk)) for c in sources)
        title = BRIEFING_TITLES[lang].format(topic=topic)
        timings["brief_ms"] = (time.perf_counter() - t0) * 1000
        return Briefing(
            topic=topic,
            markdown=briefing_markdown(title, lead, sections, sources),
            sources=sources,
            found=bool(parts),
            timings_ms=timings,
            confidence=confidence,
            lead=lead,
            sections=sections,
            notes=notes,
            lang=lang,
            text=briefing_text(title, lead, sections, notes, words["notes"]),
        )

    # --- choosing ----------------------------------------------------------------------------
    def _choose(
        self,
        topic: str,
        candidates: list[SentenceCandidate],
        passages: list[Passage],
        weights: dict[str, float],
        timings: dict[str, float],
    ) -> _Parts:
        statements = [trim(c) for c in candidates if self._is_statement(c, passages)]
        # Best first; among equals (coverage saturates at 1.0 often) the sentence that says
        # more, up to what fits in a point: "以此对照……的建设模式。" says little.
        limit = self.max_chars_per_point
        statements.sort(key=lambda c: (-round(c.score, 9), -min(len(c.text), limit), c.passage_index, c.position))
        # About the topic: the sentence read under its title and section (a sentence leaves its
        # city or program to them: "将全市46家单位的……" under 数字锦州的味道) holds at least
        # ``min_coverage`` of the weight of the topic's subject words (its framing words
        # aside). The score's half weight for context words let a 锦州 sentence naming 城市
        # into a briefing on 杭州城市大脑.
        subject = {t: w for t, w in weights.items() if t not in _TOPIC_FRAMING} or weights
        def context(c: SentenceCandidate) -> str:
            chunk = passages[c.passage_index].chunk
            return f"{chunk.title} {chunk.section} {c.text}"

        held = {id(c): coverage(subject, context(c)) for c in statements}
        # A topic the knowledge base covers has a sentence on all of it, not only on its parts
        # (杭州 in one news item, 城市大脑 in another): else the briefing says it holds nothing.
        if not any(v >= self.refusal_threshold for v in held.values()):
            return _Parts([], [], [])
        about = [c for c in statements if held[id(c)] >= self.min_coverage]
        # Summary and points name a topic word themselves; a figure sentence rarely does.
        on_topic = [c for c in about if coverage(weights, c.text) > 0]
        # A figure sentence rarely names the topic's rarest word ("将全市46家单位的……政务系统"
        # under 数字锦州的味道, for 锦州 数字政府): it may count the subject's words alike.
        even = dict.fromkeys(subject, 1.0)
        figure_pool = [
            c for c in statements
            if figures(c.text) and max(held[id(c)], coverage(even, context(c))) >= self.min_coverage
        ][: self.max_embedded]
        summary_pool = [
            c for c in on_topic if len(c.text) >= MIN_SUMMARY_CHARS and not _RHETORIC.search(c.text)
        ][: self.max_embedded]
        said = _Said(self.near_duplicate, limit)
        t0 = time.perf_counter()
        figure_points = self._figures(topic, figure_pool, passages, said) if self.max_figures else []
        summary = self._summary(summary_pool, passages, said)
        if self._vectors is not None:
            timings["sentence_embed_ms"] = (time.perf_counter() - t0) * 1000
        return _balanced(_Parts(summary, figure_points, self._points(on_topic, passages, said)))

    def _figures(
        self, topic: str, pool: list[SentenceCandidate], passages: list[Passage], said: _Said
    ) -> list[_Point]:
        """Key figures, by reciprocal rank fusion (as retrieval fuses its two legs) of two
        orders: relevance to the topic, and how many figures the sentence states. A sentence
        of four counts ("46家单位的100多个业务系统……机房50个……104条") matters more than a
        distance ("出关200公里"), and e5's cosines alone hardly tell them apart (0.91 and 0.92
        for 数字锦州 on the seed). Relevance is the cosine of the topic and the sentence read
        with its title and section (what it leaves to them, as chunks are embedded), else the
        sentence's score."""
        if not pool:
            return []
        if self._vectors is not None and self.embedder is not None:
            chunks = [passages[c.passage_index].chunk for c in pool]
            vectors, _ = self._vectors([f"{chunk.title} {chunk.section} {c.text}" for chunk, c in zip(chunks, pool)])
            relevance = vectors @ self.embedder.embed_queries([topic])[0]
        else:
            relevance = np.array([c.score for c in pool])
        counts = np.array([len(set(figures(c.text))) for c in pool])
        by_relevance = np.empty(len(pool))
        by_relevance[np.argsort(-relevance, kind="stable")] = np.arange(len(pool))
        by_count = np.array([np.sum(counts > n) for n in counts])  # ties share the better rank
        fused = 1.0 / (FUSION_K + 1 + by_relevance) + 1.0 / (FUSION_K + 1 + by_count)
        taken: list[_Point] = []
        for i in np.argsort(-fused, kind="stable"):
            if len(taken) >= self.max_figures:
                break
            cand = pool[i]
            point = said.take(cand, passages[cand.passage_index], keep=figures)  # a figure survives the clipping
            if point is not None:
                taken.append(point)
        return taken

    def _summary(self, pool: list[SentenceCandidate], passages: list[Passage], said: _Said) -> list[_Point]:
        """The most central sentences (``central``: the embedder's cosines, else character-
        bigram overlap; restarts in proportion to their scores, doubled for a sentence stating
        a figure: a summary of facts), one per passage while other passages have some, then
        a second from one passage rather than a summary of one sentence."""
        if not pool:
            return []
        if self._vectors is not None:
            vectors, _ = self._vectors([c.text for c in pool])
            similarity = vectors @ vectors.T
        else:
            grams = [_bigrams(c.text) for c in pool]
            similarity = np.array([[jaccard(a, b) for b in grams] for a in grams])
        rank = central(similarity, np.array([c.score * (2.0 if figures(c.text) else 1.0) for c in pool]))
        order = np.argsort(-rank, kind="stable")
        taken: list[_Point] = []
        used: set[int] = set()
        for one_per_passage in (True, False):
            for i in order:
                if len(taken) >= self.summary_points or (not one_per_passage and len(taken) >= 2):
                    break
                cand = pool[i]
                if one_per_passage and cand.passage_index in used:
                    continue
                point = said.take(cand, passages[cand.passage_index])
                if point is not None:
                    taken.append(point)
                    used.add(cand.passage_index)
        return taken

    def _points(self, on_topic: list[SentenceCandidate], passages: list[Passage], said: _Said) -> list[_Point]:
        """The sections' points: best first, capped per document (per section when all come
        from one document)."""
        by_section = len({passages[c.passage_index].chunk.doc_id for c in on_topic}) == 1
        taken: list[_Point] = []
        per_group: dict[object, int] = {}
        for cand in on_topic:
            if len(taken) >= self.max_points:
                break
            passage = passages[cand.passage_index]
            group = (passage.chunk.doc_id, passage.chunk.section) if by_section else passage.chunk.doc_id
            if per_group.get(group, 0) >= self.max_per_document:
                continue
            point = said.take(cand, passage)
            if point is not None:
                taken.append(point)
                per_group[group] = per_group.get(group, 0) + 1
        return taken

    @staticmethod
    def _is_statement(cand: SentenceCandidate, passages: list[Passage]) -> bool:
        """No heading or title line, no question."""
        chunk = passages[cand.passage_index].chunk
        return (
            not cand.text.endswith(_QUESTION_ENDS)
            and not is_heading_line(cand.text)
            and cand.text != chunk.title.strip()
        )

    # --- composing ---------------------------------------------------------------------------
    @staticmethod
    def _compose(
        parts: _Parts, stamp: str, words: dict[str, str]
    ) -> tuple[tuple[str, ...], tuple[BriefSection, ...], tuple[Citation, ...]]:
        """The lead (``stamp`` and the basis; the source document when there is one), the
        sections in reading order, and the footnotes' citations."""
        points = parts.points
        documents = list(dict.fromkeys(p.passage.chunk.doc_id for p in points))  # most relevant first
        in_document_order = sorted(points, key=lambda p: p.candidate.start)
        groups: dict[object, list[_Point]] = {}
        if len(documents) == 1:  # sections in document order
            for p in in_document_order:
                groups.setdefault(p.passage.chunk.section, []).append(p)
        else:  # documents by relevance, points in document order
            for doc_id in documents:
                groups[doc_id] = [p for p in in_document_order if p.passage.chunk.doc_id == doc_id]
        named: list[tuple[str, list[_Point]]] = [(words["summary"], parts.summary), (words["figures"], parts.figures)]
        for group in groups.values():
            chunk = group[0].passage.chunk
            if len(documents) == 1:
                heading = " ".join(chunk.section.split()) or words["lead"]
            else:
                heading = _title_with_date(chunk)
            named.append((heading, group))
        named = [(heading, group) for heading, group in named if group]

        # Footnotes: one per source as a reader names it (title, date, section), numbered in
        # order of first appearance; two passages that would read alike share one.
        said = [p for _, group in named for p in group]
        merged = _merged_passages([p.passage for p in said])
        numbers, citations = cite(
            (merged[p.passage.chunk.chunk_id].chunk.chunk_id, merged[p.passage.chunk.chunk_id], (p.candidate.start, p.end))
            for p in said
        )
        sections = tuple(
            BriefSection(
                heading, tuple(BriefPoint(p.text, numbers[merged[p.passage.chunk.chunk_id].chunk.chunk_id]) for p in group)
            )
            for heading, group in named
        )
        cited_documents = list(dict.fromkeys(p.passage.chunk.doc_id for p in said))
        lead = [words["basis"].format(stamp=stamp, documents=len(cited_documents), passages=len(numbers))]
        if len(cited_documents) == 1:
            lead.append(words["source"].format(document=_title_with_date(said[0].passage.chunk)))
        return tuple(lead), sections, citations


def _balanced(parts: _Parts) -> _Parts:
    """Every part present when there is enough to say: points by source, and a summary, even
    when the other parts took every sentence on the topic (a briefing of one document whose
    sentences all went to the summary and the figures had no points). A figure or summary
    point beyond the first moves to the points; a lone point moves to the summary only when
    there is more to show beside it."""
    summary, figure_points, points = list(parts.summary), list(parts.figures), list(parts.points)
    if not points:
        donor = figure_points if len(figure_points) > 1 else summary if len(summary) > 1 else None
        if donor is not None:
            points.append(donor.pop())
    if not summary and len(points) > 1:
        summary.append(points.pop(0))
    return _Parts(summary, figure_points, points)


def _merged_passages(passages: list[Passage]) -> dict[str, Passage]:
    """Each cited passage's footnote passage, by chunk id. Passages of one document and section
    whose footnotes would read the same are one footnote when they are consecutive chunks
    (the chunker cuts a document at whitespace only, so the gap between two consecutive chunks
    is whitespace: kept as line breaks); the merged passage spans them all, so every point's
    span lies in its footnote's passage."""
    by_note: dict[tuple[str, str, str], dict[int, Passage]] = {}
    for p in passages:
        c = p.chunk
        by_note.setdefault((c.doc_id, " · ".join(note_fields(c)), c.section), {})[c.ordinal] = p
    out: dict[str, Passage] = {}
    for chunks in by_note.values():
        run: list[Passage] = []
        for ordinal in sorted(chunks):
            if run and ordinal != run[-1].chunk.ordinal + 1:
                out |= _joined(run)
                run = []
            run.append(chunks[ordinal])
        out |= _joined(run)
    return out


def _joined(run: list[Passage]) -> dict[str, Passage]:
    first = run[0]
    if len(run) == 1:
        return {first.chunk.chunk_id: first}
    text = first.chunk.text
    for p in run[1:]:
        text += "\n" * (p.chunk.start - first.chunk.start - len(text)) + p.chunk.text
    joined = replace(first, chunk=replace(first.chunk, text=text, end=run[-1].chunk.end))
    return {p.chunk.chunk_id: joined for p in run}


def _title_with_date(chunk: Chunk) -> str:
    title = " ".join((chunk.title.strip() or chunk.doc_id).split())
    return f"{title}（{chunk.date.strip()}）" if chunk.date and chunk.date.strip() else title
