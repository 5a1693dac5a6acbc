"""The JSON API's schemas: response models (documented at /docs; extra fields from kbqa's
``to_dict`` pass through), the bounded request fields, and the error responses every route
may give. Request bodies are built per router (``AskRequest`` etc. in web/api.py), as their
length limit is the knowledge base's setting."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Query
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    StringConstraints,
)

from kbqa.knowledge_base import KB_NAME_PATTERN

# k is bounded like KnowledgeBase._k; checking it here turns a bad k into a 422 before any work.
K = Annotated[StrictInt, Field(ge=1, le=50, description="number of passages to retrieve (default: settings.top_k)")]
KB_DESCRIPTION = "the knowledge base to ask (GET /api/kbs lists them); an unknown name is a 404"
KbName = Annotated[StrictStr, Field(pattern=KB_NAME_PATTERN, description=KB_DESCRIPTION)]
# The same in a query string (?kb=NAME).
KbQuery = Annotated[str, Query(pattern=KB_NAME_PATTERN, description=KB_DESCRIPTION)]
IsoDate = Annotated[StrictStr, Field(pattern=r"^\d{4}-\d{2}-\d{2}$", description="YYYY-MM-DD", examples=["2023-08-05"])]


class FiltersIn(BaseModel):
    """Which documents to draw on, applied inside retrieval (kbcore.types.Filters)."""

    model_config = ConfigDict(extra="forbid")
    region: Annotated[StrictStr, Field(max_length=100)] | None = Field(
        None, description="a province, city or county the document names, at any level: 锦州 matches 锦州市's documents"
    )
    date_from: IsoDate | None = Field(None, description="documents dated on or after this day (undated ones are left out)")
    date_to: IsoDate | None = Field(None, description="documents dated on or before this day")
    source: Annotated[StrictStr, Field(max_length=2048)] | None = Field(
        None, description="the document's source exactly, or the host (or a parent domain) of a URL source"
    )


def filters_of(filters: FiltersIn | None) -> dict | None:
    """What KnowledgeBase.search/ask/brief take as ``filters``."""
    return None if filters is None else filters.model_dump()


# --- response schemas (documentation at /docs; extra fields from kbqa's to_dict pass through) ---
class OpenModel(BaseModel):
    """A response schema whose extra fields (from kbqa's ``to_dict``) pass through."""

    model_config = ConfigDict(extra="allow")


class CitationOut(OpenModel):
    n: int
    doc_id: str
    title: str
    source: str
    section: str
    text: str = Field(description="the cited passage")
    start: int = Field(description="offset of the cited span in the cleaned document text")
    end: int
    score: float
    answer_span: list[int] | None = Field(
        None, description="[start, end) of the answer's own words inside the cited span (document offsets), "
        "when the trained reader found them there",
    )


class PassageOut(OpenModel):
    doc_id: str
    title: str
    source: str
    section: str
    text: str
    start: int
    end: int
    score: float


class AnswerOut(OpenModel):
    answer: str = Field(description="answer text with [n] citation marks, or the refusal text (in the question's language)")
    found: bool
    standalone_question: str = Field(
        description="the question searched and answered: the question itself, or a follow-up rewritten with the history"
    )
    confidence: float = Field(0.0, description="fitted probability that the answer is right; below the operating point: a refusal")
    citations: list[CitationOut]
    related: list[PassageOut] = Field(
        default_factory=list, description="with a refusal: the closest passages, as reading, not as an answer"
    )
    timings_ms: dict[str, float]


class SearchOut(OpenModel):
    passages: list[PassageOut]
    timings_ms: dict[str, float]


class HealthOut(BaseModel):
    status: Literal["ok"]
    documents: int
    chunks: int
    lexical_chunks: int  # in the BM25 index; equals chunks once it caught up with the store
    embedder: str


class DocumentOut(BaseModel):
    doc_id: str
    title: str
    source: str
    date: str | None
    regions: list[str] = Field(description="provinces, cities and counties the document names (full names, most mentioned first)")
    chunk_count: int
    ingested_at: str | None = Field(description="when this version of the document was ingested (UTC, ISO 8601)")


class DocumentsOut(BaseModel):
    kb: str
    documents: list[DocumentOut]


class KbOut(BaseModel):
    name: str
    documents: int
    chunks: int


class KbsOut(BaseModel):
    kbs: list[KbOut]


class ErrorOut(BaseModel):
    error: str
    detail: list[dict[str, Any]]


class HistoryMessage(BaseModel):
    """One earlier message of the conversation, plain text (not the rendered HTML)."""

    model_config = ConfigDict(extra="forbid")
    role: Literal["user", "assistant"]
    content: StrictStr


def history_field(max_messages: int, max_chars: int) -> Any:
    """The ``history`` of a question: at most ``max_messages`` messages of at most
    ``max_chars`` characters in all (settings.max_history_messages / max_history_chars)."""

    def total_chars(messages: list[HistoryMessage]) -> list[HistoryMessage]:
        chars = sum(len(m.content) for m in messages)
        if chars > max_chars:
            raise ValueError(f"history is {chars} characters; the limit is {max_chars}")
        return messages

    return Annotated[
        list[HistoryMessage],
        Field(
            max_length=max_messages,
            description=f"earlier messages, oldest first (at most {max_messages}, {max_chars} characters in all)",
        ),
        AfterValidator(total_chars),
    ]


def question_text(max_chars: int) -> StringConstraints:
    """A question or query: 1..max_chars characters once surrounding whitespace is stripped."""
    return StringConstraints(strip_whitespace=True, min_length=1, max_length=max_chars)


# The error answers of the query routes, for the OpenAPI document.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "no such knowledge base (kb)"},
    413: {"model": ErrorOut, "description": "request body too large (settings.max_body_bytes)"},
    422: {"model": ErrorOut, "description": "invalid request"},
    429: {"model": ErrorOut, "description": "too many requests from this client; see the Retry-After header"},
    503: {"model": ErrorOut, "description": "the store (a Chroma server) cannot be reached; see the Retry-After header"},
}
