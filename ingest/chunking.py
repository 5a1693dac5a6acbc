"""Sentence-aware chunking of cleaned documents with exact character offsets.

Sentences and heading lines are those of ``kbcore.text`` (``split_sentences``,
``is_heading_line``), which the answerer and the briefer cut by too. ``chunk_document``
packs whole sentences greedily into chunks of at most ``chunk_size`` characters; short
standalone heading lines open a new chunk and become the ``section`` of the chunks below
them.

The packer is hand-written rather than langchain-text-splitters' RecursiveCharacterTextSplitter
because that splitter (a) locates chunks back in the source with ``str.find`` (wrong
offsets when a passage repeats) and strips/merges separators, so ``text == doc.text[start:end]``
cannot be guaranteed, (b) knows nothing of headings/sections or "start a new chunk at a
paragraph once half full", and (c) measures overlap in characters, not whole sentences.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kbcore.text import is_heading_line, split_sentences
from kbcore.types import Chunk, Document

__all__ = ["chunk_document"]

_CLAUSE_BREAK = re.compile(r"[，、,：:；;）)》」』”]+\s*|\s+")


@dataclass(frozen=True)
class _Unit:
    start: int
    end: int
    new_para: bool = False  # first unit of a paragraph (line)
    heading: bool = False

    @property
    def length(self) -> int:
        return self.end - self.start


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _split_long(text: str, start: int, end: int, size: int) -> list[tuple[int, int]]:
    """Cut one over-long sentence at clause punctuation (hard cut when a clause is too long)."""
    breaks = [start + m.end() for m in _CLAUSE_BREAK.finditer(text, start, end)]
    pieces: list[tuple[int, int]] = []
    pos = start
    while pos < end:
        pos, _ = _trim(text, pos, end)
        if pos >= end:
            break
        if end - pos <= size:
            pieces.append(_trim(text, pos, end))
            break
        limit = pos + size
        candidates = [b for b in breaks if pos < b <= limit]
        cut = None
        for b in reversed(candidates):
            s, e = _trim(text, pos, b)
            if e > s and e - s <= size:
                cut = b
                break
        if cut is None:
            cut = limit  # hard cut
        s, e = _trim(text, pos, cut)
        if e > s:
            pieces.append((s, e))
        pos = cut
    return pieces


def _units(text: str, chunk_size: int) -> list[_Unit]:
    units: list[_Unit] = []
    line_spans: list[tuple[int, int]] = []
    pos = 0
    for line in text.split("\n"):
        s, e = _trim(text, pos, pos + len(line))
        if e > s:
            line_spans.append((s, e))
        pos += len(line) + 1
    for idx, (ls, le) in enumerate(line_spans):
        is_last = idx == len(line_spans) - 1
        if not is_last and le - ls <= chunk_size and is_heading_line(text[ls:le]):
            units.append(_Unit(ls, le, new_para=True, heading=True))
            continue
        first = True
        for ss, se in split_sentences(text[ls:le]):
            s, e = _trim(text, ls + ss, ls + se)
            if e <= s:
                continue
            pieces = [(s, e)] if e - s <= chunk_size else _split_long(text, s, e, chunk_size)
            for ps, pe in pieces:
                units.append(_Unit(ps, pe, new_para=first))
                first = False
    return units


def chunk_document(doc: Document, *, chunk_size: int, overlap: int = 0) -> list[Chunk]:
    """Split ``doc.text`` into chunks of whole sentences, each at most ``chunk_size`` chars.

    * a paragraph (line) starts a new chunk when the current one is at least half full;
    * a heading line always starts a new chunk, is its first line, and is the ``section``
      of every chunk until the next heading;
    * with ``overlap`` > 0 a chunk (other than one opened by a heading) starts with whole
      trailing sentences of the previous chunk totalling at most ``overlap`` characters.
    """
    if chunk_size < 1:
        raise ValueError("chunk_size must be positive")
    if overlap < 0 or overlap >= chunk_size:
        raise ValueError("overlap must be >= 0 and smaller than chunk_size")
    text = doc.text
    units = _units(text, chunk_size)
    spans: list[tuple[int, int, str]] = []
    section = ""
    current: list[_Unit] = []
    current_section = ""
    previous: list[_Unit] = []

    def flush() -> None:
        nonlocal current, previous
        if current:
            spans.append((current[0].start, current[-1].end, current_section))
            previous = current
        current = []

    def carry_over(next_unit: _Unit) -> list[_Unit]:
        if overlap <= 0:
            return []
        carried: list[_Unit] = []
        # Never the whole previous chunk: the next one must start later, or it would repeat it.
        for unit in reversed(previous[1:]):
            if unit.heading:
                break
            if previous[-1].end - unit.start > overlap or next_unit.end - unit.start > chunk_size:
                break
            carried.insert(0, unit)
        return carried

    half = chunk_size / 2
    for unit in units:
        if unit.heading:
            flush()
            section = text[unit.start:unit.end]
            current, current_section = [unit], section
            continue
        if current:
            length = current[-1].end - current[0].start
            only_heading = len(current) == 1 and current[0].heading
            too_long = unit.end - current[0].start > chunk_size
            new_paragraph = unit.new_para and length >= half and not only_heading
            if too_long or new_paragraph:
                flush()
                current = carry_over(unit)  # never crosses a heading: same section
                current_section = section
        else:
            current_section = section
        current.append(unit)
    flush()

    return [
        Chunk(
            doc_id=doc.doc_id,
            ordinal=i,
            text=text[s:e],
            start=s,
            end=e,
            title=doc.title,
            section=sec,
            date=doc.date,
            source=doc.source,
        )
        for i, (s, e, sec) in enumerate(spans)
    ]
