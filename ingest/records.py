"""What loading yields: a :class:`SourceDocument` per readable document, a :class:`LoadFailure`
per problem (errors as values: one bad input never stops a run)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SourceDocument:
    """One document as read, before cleaning."""

    doc_id: str  # files: path relative to the input folder (posix) or the file name; jsonl: "id"; URL: the URL
    origin: str  # absolute file path (the .jsonl for corpora) or the URL
    source: str  # what citations show
    raw_text: str  # decoded text (HTML converted to text, PDF/DOCX extracted)
    kind: str  # "text" | "markdown" | "html" | "pdf" | "docx" | "jsonl"
    title: str | None = None
    date: str | None = None  # ISO YYYY-MM-DD


@dataclass(frozen=True)
class LoadFailure:
    origin: str
    reason: str
