"""The typed records that cross every boundary of the system.

Data flows one way: a source file or URL is read into a ``Document`` (cleaned text plus
metadata), split into ``Chunk``s with character offsets into that cleaned text, indexed,
retrieved as ``Passage``s (a chunk plus its score), and turned into an ``Answer`` whose
``Citation``s point back at exact character spans. A question is cut and weighed once, into
``QueryTerms`` that the ``SearchResult`` carries to the answerer and the briefer.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields, replace


def content_hash(*parts: str) -> str:
    """Stable hash used to decide whether something changed (documents, chunks, vectors)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8"))
        digest.update(b"\x1f")  # separator so ("ab", "c") != ("a", "bc")
    return digest.hexdigest()


def chunk_doc_id(chunk_id: str) -> str:
    """The document id inside a chunk id (``doc_id#ordinal``; doc ids may contain '#')."""
    return chunk_id.rsplit("#", 1)[0]


def chunk_ordinal(chunk_id: str) -> int:
    """The chunk's position in its document, from its id (``doc_id#ordinal``)."""
    return int(chunk_id.rsplit("#", 1)[1])


@dataclass(frozen=True)
class Document:
    """A cleaned source document. ``text`` is what every offset refers to."""

    doc_id: str
    title: str
    text: str
    source: str
    date: str | None = None  # ISO 8601 date (YYYY-MM-DD) when known

    @property
    def content_hash(self) -> str:
        return content_hash(self.doc_id, self.title, self.text, self.source, self.date or "")


@dataclass(frozen=True)
class Chunk:
    """A contiguous span ``text == document.text[start:end]`` of a cleaned document."""

    doc_id: str
    ordinal: int  # position of the chunk within its document, from 0
    text: str
    start: int
    end: int
    title: str = ""
    section: str = ""  # nearest heading line above the chunk ("" before the first heading)
    date: str | None = None
    source: str = ""

    @property
    def with_context(self) -> str:
        """Title, section and text: what a passage is judged on (a sentence deep in a policy
        often leaves the city or program it concerns to the title)."""
        return f"{self.title} {self.section} {self.text}"

    @property
    def chunk_id(self) -> str:
        return f"{self.doc_id}#{self.ordinal}"


# Manifest entry states (see ``kbcore.store``'s docstring on crash safety).
STATE_OK = "ok"
STATE_WRITING = "writing"
STATE_DELETING = "deleting"


@dataclass(frozen=True)
class DocRecord:
    """One document's entry in a store's manifest (the ``-docs`` collection)."""

    doc_id: str
    content_hash: str
    origin: str
    title: str
    source: str
    date: str | None
    chunk_count: int
    state: str = STATE_OK  # "writing"/"deleting": an interrupted write the next ingest finishes
    # Full gazetteer names of the provinces, cities and counties the document names, each with
    # the levels above it ("辽宁省", "锦州市"), most mentioned first (ingest/regions.py).
    regions: tuple[str, ...] = ()
    ingested_at: str | None = None  # UTC, ISO 8601 to the second: when this version was written

    def to_metadata(self) -> dict:
        # Chroma's upsert merges metadata into an existing record; None deletes a key, so a
        # document that lost its date (or its regions: Chroma refuses an empty list) doesn't
        # keep the old one.
        return {
            "content_hash": self.content_hash,
            "origin": self.origin,
            "title": self.title,
            "source": self.source,
            "chunk_count": self.chunk_count,
            "date": self.date or None,
            "state": self.state,
            "regions": list(self.regions) or None,
            "ingested_at": self.ingested_at,
        }

    @classmethod
    def from_metadata(cls, doc_id: str, meta: dict) -> DocRecord:
        return cls(
            doc_id=doc_id,
            content_hash=meta["content_hash"],
            origin=meta.get("origin", ""),
            title=meta.get("title", ""),
            source=meta.get("source", ""),
            date=meta.get("date"),
            chunk_count=int(meta.get("chunk_count", 0)),
            state=meta.get("state", STATE_OK),
            regions=tuple(meta.get("regions") or ()),
            ingested_at=meta.get("ingested_at"),
        )

    @property
    def signature(self) -> str:
        """Changes whenever the document's chunks may have changed (the BM25 sync's key)."""
        return f"{self.state}:{self.content_hash}"


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def date_number(iso_date: str) -> int:
    """An ISO date as the number Chroma compares (``$gte``/``$lte`` take numbers only):
    2023-08-05 -> 20230805."""
    return int(iso_date.replace("-", ""))


@dataclass(frozen=True)
class Filters:
    """Which documents a search may draw on; a field left None does not restrict.

    ``region``: a province, city or county the document names, by its full gazetteer name
    (the facade resolves "锦州" to "锦州市"); ``date_from``/``date_to``: the document's date,
    ISO ``YYYY-MM-DD``, both ends included (a document without a date is left out by either);
    ``source``: the document's source exactly, or the host (or a parent domain) of a URL source.
    """

    region: str | None = None
    date_from: str | None = None
    date_to: str | None = None
    source: str | None = None

    def __post_init__(self) -> None:
        for name in ("date_from", "date_to"):
            value = getattr(self, name)
            if value is None:
                continue
            try:
                if not _ISO_DATE.fullmatch(value):
                    raise ValueError
                _dt.date.fromisoformat(value)
            except (TypeError, ValueError):
                raise ValueError(f"{name} must be a date written YYYY-MM-DD, not {value!r:.40}") from None
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise ValueError(f"date_from {self.date_from} is after date_to {self.date_to}")

    def __bool__(self) -> bool:
        return any(getattr(self, f.name) is not None for f in fields(self))


@dataclass(frozen=True)
class Passage:
    """A retrieved chunk with the scores that ranked it."""

    chunk: Chunk
    score: float  # fused score used for ranking (higher is better)
    dense_score: float | None = None  # cosine similarity, when the dense leg found it
    lexical_score: float | None = None  # BM25 score, when the lexical leg found it
    coverage: float | None = None  # idf-weighted share of the question's terms in the passage

    def to_dict(self) -> dict:
        c = self.chunk
        return {
            "doc_id": c.doc_id,
            "chunk_id": c.chunk_id,
            "title": c.title,
            "source": c.source,
            "section": c.section,
            "date": c.date,
            "text": c.text,
            "start": c.start,
            "end": c.end,
            "score": round(self.score, 6),
        }


@dataclass(frozen=True)
class Citation:
    """Citation ``[n]`` of an answer: the passage and the exact span(s) the answer used.

    ``start``/``end`` are offsets into the cleaned document text covering the cited
    sentences; ``spans`` lists each cited sentence separately (the UI highlights them).
    """

    n: int
    passage: Passage
    start: int
    end: int
    spans: tuple[tuple[int, int], ...] = ()
    # The reader's answer span inside the cited sentences (document offsets), when a reader
    # chose them: the page highlights it within the quote.
    answer_span: tuple[int, int] | None = None

    @classmethod
    def from_spans(cls, n: int, passage: Passage, spans: Iterable[tuple[int, int]]) -> Citation:
        """Citation ``[n]`` of ``passage`` for the cited sentences at ``spans`` (document
        offsets): ``start``/``end`` cover them all, ``spans`` lists them in document order.
        The one way every answerer and the briefer make a citation."""
        ordered = tuple(sorted(spans))
        if not ordered:
            raise ValueError("a citation needs at least one span")
        return cls(n=n, passage=passage, start=ordered[0][0], end=max(e for _, e in ordered), spans=ordered)

    @property
    def quote(self) -> str:
        """The cited sentences, in document order."""
        c = self.passage.chunk
        return "".join(c.text[s - c.start : e - c.start] for s, e in self.spans)

    def to_dict(self) -> dict:
        c = self.passage.chunk
        return {
            "n": self.n,
            "doc_id": c.doc_id,
            "title": c.title,
            "source": c.source,
            "section": c.section,
            "date": c.date,
            "text": c.text,
            "start": self.start,
            "end": self.end,
            "passage_start": c.start,
            "passage_end": c.end,
            "spans": [list(s) for s in self.spans],
            "answer_span": list(self.answer_span) if self.answer_span else None,
            "quote": self.quote,
            "score": round(self.passage.score, 6),
        }


@dataclass(frozen=True)
class Answer:
    question: str
    text: str
    found: bool
    citations: tuple[Citation, ...] = ()
    passages: tuple[Passage, ...] = ()
    timings_ms: dict[str, float] = field(default_factory=dict)
    # The probability that the answer is right (the extractive answerer's presence model),
    # which the refusal's operating point (Settings.answer_min_probability) was applied to.
    confidence: float = 0.0
    # With a refusal: the closest passages, one per document, as reading — not an answer
    # (no [n] marks refer to them).
    related: tuple[Passage, ...] = ()
    # The question retrieval and answering used: ``question`` rewritten with the conversation's
    # earlier turns (kbqa/conversation.py); "" when no rewrite ran (then it is ``question``).
    standalone_question: str = ""
    # A chat model's answer (kbqa/llm_answering.py): how many of its sentences were checked
    # against the passages — {"sentences", "verified", "corrected", "removed"}; None when the
    # answer is extractive (every sentence a quotation).
    verification: dict[str, int] | None = None
    notice: str = ""  # e.g. the chat model could not be reached and the answer is extractive

    def to_dict(self) -> dict:
        data = {
            "answer": self.text,
            "found": self.found,
            "standalone_question": self.standalone_question or self.question,
            "confidence": round(self.confidence, 4),
            "citations": [c.to_dict() for c in self.citations],
            "related": [p.to_dict() for p in self.related],
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
        }
        if self.verification is not None:
            data["verification"] = dict(self.verification)
        if self.notice:
            data["notice"] = self.notice
        return data


@dataclass(frozen=True)
class QueryTerms:
    """A question cut once (``kbcore.text.cut_question``) and weighed once (by the BM25 index's
    idf, when the search runs): what BM25 looks up, and what coverage is measured by."""

    text: str
    search: tuple[str, ...] = ()  # BM25 terms: jieba search mode (words and their parts), distinct
    weights: dict[str, float] = field(default_factory=dict)  # key words (precise mode) -> weight

    @property
    def total(self) -> float:
        return sum(self.weights.values())

    def weighted(self, weigh: Callable[[str], float]) -> QueryTerms:
        """The same terms with each key word weighed by ``weigh(word)``."""
        return replace(self, weights={t: weigh(t) for t in self.weights})


@dataclass(frozen=True)
class SearchResult:
    query: str
    passages: tuple[Passage, ...]
    terms: QueryTerms  # the query's terms, weighed by the index the passages came from
    timings_ms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "passages": [p.to_dict() for p in self.passages],
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
        }


@dataclass
class IngestReport:
    """Summary of one ingest run (what the CLI prints at the end)."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (source, reason)
    chunks_written: int = 0
    chunks_embedded: int = 0  # fewer than written when unchanged or repeated chunks reused a vector
    seconds: float = 0.0
    embed_seconds: float = 0.0  # inside the embedder; the rest of ``seconds`` is pipeline overhead

    def to_dict(self) -> dict:
        return asdict(self)


# --- briefings (kbqa/briefing.py makes them; kbcore/markdown.py renders them) ----------------

BRIEFING_TITLE = "简报：{topic}"
BRIEFING_TITLES = {"zh": BRIEFING_TITLE, "en": "Briefing: {topic}"}  # by the briefing's language


@dataclass(frozen=True)
class BriefPoint:
    text: str  # the sentence as quoted (or its clipped head ending in "…"), plain text
    n: int  # its footnote: Briefing.sources[n - 1], Briefing.notes[n - 1]


@dataclass(frozen=True)
class BriefSection:
    heading: str  # plain text
    points: tuple[BriefPoint, ...]


@dataclass(frozen=True)
class Briefing:
    topic: str
    markdown: str
    sources: tuple[Citation, ...]  # footnote n is sources[n - 1]
    found: bool
    timings_ms: dict[str, float] = field(default_factory=dict)
    confidence: float = 0.0  # evidence score the refusal threshold was applied to
    # The same briefing as structure, plain text (what the Markdown escapes): the paragraphs
    # under the title (generation time and basis, the source document; or the refusal), the
    # sections (摘要, 关键数据, then by source or section) and the footnotes' text.
    lead: tuple[str, ...] = ()
    sections: tuple[BriefSection, ...] = ()
    notes: tuple[str, ...] = ()  # footnote n is notes[n - 1]: "title · date · section"
    lang: str = "zh"  # the language of what the briefer writes (title, lead, headings), "zh" or "en"
    text: str = ""  # the briefing as plain text: what pastes where Markdown does not render

    @property
    def title(self) -> str:
        return BRIEFING_TITLES.get(self.lang, BRIEFING_TITLE).format(topic=self.topic)

    def to_dict(self) -> dict:
        return {
            "topic": self.topic,
            "found": self.found,
            "markdown": self.markdown,
            "text": self.text,
            "lang": self.lang,
            "sources": [c.to_dict() for c in self.sources],
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
        }
