"""``.jsonl`` / ``.jsonl.gz`` corpora, streamed: one ``{"id", "text", "title"?, "source"?, "date"?}``
object per line becomes a SourceDocument; a bad line is a LoadFailure naming its number."""

from __future__ import annotations

import codecs
import gzip
import io
import json
import zlib
from collections.abc import Iterator
from pathlib import Path

from ingest.dates import parse_date
from ingest.decoding import normalize_newlines
from ingest.discovery import readable_size
from ingest.records import LoadFailure, SourceDocument


def _iter_raw_lines(fh: io.BufferedIOBase, limit: int) -> Iterator[tuple[int, bytes | None]]:
    """(line number, bytes) per line; bytes is None for a line longer than ``limit``."""
    lineno = 0
    while True:
        line = fh.readline(limit + 1)
        if not line:
            return
        lineno += 1
        if len(line) > limit and not line.endswith(b"\n"):
            while True:  # drain the rest of the over-long line
                rest = fh.readline(1 << 20)
                if not rest or rest.endswith(b"\n"):
                    break
            yield lineno, None
            continue
        yield lineno, line


def iter_jsonl(path: Path, max_bytes: int) -> Iterator[SourceDocument | LoadFailure]:
    """One result per non-blank line; ``max_bytes`` bounds each line, not the file."""
    origin = str(path.absolute())
    size = readable_size(path)
    if isinstance(size, LoadFailure):
        yield size
        return
    seen: set[str] = set()
    produced = 0
    try:
        opener = gzip.open if path.name.lower().endswith(".gz") else open
        with opener(path, "rb") as fh:  # type: ignore[operator]
            for lineno, raw in _iter_raw_lines(fh, max_bytes):
                if raw is None:
                    yield LoadFailure(origin, f"line {lineno}: line too large (> {max_bytes:,} bytes)")
                    continue
                if lineno == 1 and raw.startswith(codecs.BOM_UTF8):
                    raw = raw[len(codecs.BOM_UTF8):]
                if not raw.strip():
                    continue
                produced += 1
                result = _parse_jsonl_line(raw, lineno, origin, seen)
                yield result
    except (OSError, EOFError, zlib.error) as exc:
        yield LoadFailure(origin, f"cannot read corpus ({type(exc).__name__}: {exc})")
        return
    if produced == 0:
        yield LoadFailure(origin, "empty corpus (no JSON lines)")


def _parse_jsonl_line(raw: bytes, lineno: int, origin: str, seen: set[str]) -> SourceDocument | LoadFailure:
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError:
        try:
            line = raw.decode("gb18030")
        except UnicodeDecodeError:
            return LoadFailure(origin, f"line {lineno}: not UTF-8 text")
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        return LoadFailure(origin, f"line {lineno}: invalid JSON ({exc})")
    except RecursionError:
        return LoadFailure(origin, f"line {lineno}: invalid JSON (nested too deeply)")
    if not isinstance(obj, dict):
        return LoadFailure(origin, f"line {lineno}: not a JSON object")
    raw_id = obj.get("id")
    if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)) or not str(raw_id).strip():
        return LoadFailure(origin, f"line {lineno}: missing or invalid 'id'")
    doc_id = str(raw_id).strip()
    text = obj.get("text")
    if not isinstance(text, str):
        return LoadFailure(origin, f"line {lineno}: missing 'text' (id {doc_id!r})")
    if not text.strip():
        return LoadFailure(origin, f"line {lineno}: empty 'text' (id {doc_id!r})")
    if doc_id in seen:
        return LoadFailure(origin, f"line {lineno}: duplicate id {doc_id!r} (kept the earlier line)")
    seen.add(doc_id)
    title = obj.get("title")
    title = title.strip() if isinstance(title, str) and title.strip() else None
    source = obj.get("source")
    source = source.strip() if isinstance(source, str) and source.strip() else doc_id
    date = parse_date(obj.get("date")) if obj.get("date") else None
    return SourceDocument(doc_id=doc_id, origin=origin, source=source, raw_text=normalize_newlines(text),
                          kind="jsonl", title=title, date=date)
