"""Read inputs into :class:`~ingest.records.SourceDocument`s (or :class:`~ingest.records.LoadFailure`s).

Inputs are files, folders (searched recursively: ``ingest.discovery``), ``.jsonl``/``.jsonl.gz``
corpora (``ingest.jsonl``) and http(s) URLs (``ingest.fetch``, the SSRF-safe fetcher). This
module decides what each input is and which reader reads it: text through
``ingest.decoding``, HTML, PDF and DOCX through ``ingest.formats``. Nothing here raises for a
bad input: every problem becomes a ``LoadFailure`` and iteration goes on with the next document.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from ingest.decoding import DecodeError, decode_bytes, decode_text, normalize_newlines
from ingest.discovery import kind_of, readable_size, walk_folder
from ingest.fetch import AllowPrivate, fetch_url
from ingest.formats.docx import DOCX_MAX_UNCOMPRESSED, docx_text
from ingest.formats.html import html_to_text, meta_charset
from ingest.formats.pdf import pdf_text
from ingest.jsonl import iter_jsonl
from ingest.records import LoadFailure, SourceDocument

log = logging.getLogger(__name__)

__all__ = ["iter_documents", "is_url"]


def is_url(value: str) -> bool:
    """Whether an input names a URL rather than a path: any ``scheme://``, so that ``file://``,
    ``ftp://`` ... are refused as URLs (only http and https are fetched) instead of being looked
    up as local paths."""
    return bool(re.match(r"^[a-z][a-z0-9+.-]+://", value.strip(), re.IGNORECASE))


# --------------------------------------------------------------------------- bytes -> document

def _document_from_bytes(
    data: bytes, kind: str, *, doc_id: str, origin: str, source: str, max_bytes: int,
    declared_charset: str | None = None,
) -> SourceDocument:
    """Build a SourceDocument from the raw bytes of one non-jsonl document (raises DecodeError)."""
    title: str | None = None
    date: str | None = None
    if kind == "pdf":
        text, title, date = pdf_text(data)
    elif kind == "docx":
        text, title, date = docx_text(data, min(DOCX_MAX_UNCOMPRESSED, 10 * max_bytes))
    elif kind == "html":
        html = decode_bytes(data, declared_charset or meta_charset(data))
        text, title, date = html_to_text(html)
    else:
        text = decode_text(data, declared_charset)
    text = normalize_newlines(text)
    if not text.strip():
        raise DecodeError("empty (no text)")
    return SourceDocument(doc_id=doc_id, origin=origin, source=source, raw_text=text, kind=kind,
                          title=title, date=date)


def _load_file(path: Path, doc_id: str, kind: str, max_bytes: int) -> SourceDocument | LoadFailure:
    origin = str(path.absolute())
    size = readable_size(path)
    if isinstance(size, LoadFailure):
        return size
    if size > max_bytes:
        return LoadFailure(origin, f"file too large ({size:,} bytes > limit {max_bytes:,})")
    try:
        data = path.read_bytes()
    except OSError as exc:
        return LoadFailure(origin, f"cannot read file ({exc.strerror or exc})")
    if len(data) > max_bytes:  # grew between stat and read
        return LoadFailure(origin, f"file too large ({len(data):,} bytes > limit {max_bytes:,})")
    try:
        return _document_from_bytes(data, kind, doc_id=doc_id, origin=origin, source=doc_id, max_bytes=max_bytes)
    except DecodeError as exc:
        return LoadFailure(origin, str(exc))


# --------------------------------------------------------------------------- URLs

_CONTENT_TYPES = {
    "text/html": "html",
    "application/xhtml+xml": "html",
    "text/plain": "text",
    "text/markdown": "markdown",
    "text/x-markdown": "markdown",
    "application/pdf": "pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
}


def _kind_for_response(content_type: str, url: str, head: bytes) -> str | None:
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime:
        return _CONTENT_TYPES.get(mime)
    # No Content-Type: go by the URL's extension, then sniff.
    path = url.split("?", 1)[0].split("#", 1)[0]
    kind = kind_of(path)
    if kind and kind != "jsonl":
        return kind
    sniff = head[:512].lstrip().lower()
    if sniff.startswith((b"<!doctype html", b"<html")) or b"<body" in sniff:
        return "html"
    if sniff.startswith(b"%pdf-"):
        return "pdf"
    return "text"


def _charset_of(content_type: str) -> str | None:
    m = re.search(r"charset\s*=\s*\"?([^\s;\"]+)", content_type, re.I)
    return m.group(1) if m else None


def _load_url(
    url: str, max_bytes: int, timeout: float, allow_private: AllowPrivate = False
) -> SourceDocument | LoadFailure:
    fetched = fetch_url(url, max_bytes=max_bytes, timeout=timeout, allow_private=allow_private,
                        content_types=_CONTENT_TYPES)
    if isinstance(fetched, LoadFailure):
        return fetched
    content_type, data = fetched
    if not data.strip():
        return LoadFailure(url, "empty response")
    kind = _kind_for_response(content_type, url, data)
    if kind is None:
        return LoadFailure(url, f"unsupported content type {content_type!r}")
    try:
        return _document_from_bytes(data, kind, doc_id=url, origin=url, source=url, max_bytes=max_bytes,
                                    declared_charset=_charset_of(content_type))
    except DecodeError as exc:
        return LoadFailure(url, str(exc))


# --------------------------------------------------------------------------- entry point

def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _iter_one_file(path: Path, doc_id: str, max_bytes: int) -> Iterator[SourceDocument | LoadFailure]:
    kind = kind_of(path.name)
    if kind is None:
        yield LoadFailure(str(path.absolute()), f"unsupported file type {path.suffix or path.name!r}")
    elif kind == "jsonl":
        yield from iter_jsonl(path, max_bytes)
    else:
        yield _load_file(path, doc_id, kind, max_bytes)


def iter_documents(
    inputs: Sequence[str],
    *,
    max_bytes: int = 20_000_000,
    url_timeout: float = 15.0,
    allow_private_urls: bool | Iterable[str] = False,
    follow_symlinks: bool = False,
) -> Iterator[SourceDocument | LoadFailure]:
    """Yield one SourceDocument per readable document and one LoadFailure per problem.

    ``max_bytes`` bounds each file / HTTP response; for ``.jsonl`` corpora (streamed) it
    bounds each line instead, so large corpora are fine. ``url_timeout`` bounds the whole of
    each URL fetch (DNS, connect, redirects, body), not each read.

    URLs (SSRF guard, see :func:`ingest.fetch.vet_url`): only http(s); every hop, redirects
    included, is resolved here and refused if any of its addresses is loopback, private, link-local
    (169.254.169.254), multicast, unspecified or reserved, and the connection goes to the
    vetted address. ``allow_private_urls`` (``settings.allow_private_urls``) lifts that:
    True for any address, or a list of networks (``["10.1.0.0/16"]``) for just those.

    Folders: a symlink inside one is followed only while its target stays inside the folder,
    unless ``follow_symlinks`` (``settings.follow_symlinks``); the others are LoadFailures
    (see :func:`ingest.discovery.walk_folder`). A symlink given as an input itself is followed:
    the operator named it.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]  # type: ignore[list-item]
    if not isinstance(allow_private_urls, bool):
        allow_private_urls = tuple(allow_private_urls)  # used once per URL: not a one-shot iterator
    for item in inputs:
        item = os.fspath(item)
        if is_url(item):
            try:
                yield _load_url(item.strip(), max_bytes, url_timeout, allow_private_urls)
            except Exception as exc:  # never let one input stop the run
                log.exception("unexpected error loading %s", item)
                yield LoadFailure(item, f"unexpected error ({type(exc).__name__}: {exc})")
            continue
        path = Path(item).expanduser()
        if path.is_dir():
            jobs = walk_folder(path, follow_symlinks)
        elif path.is_file():
            jobs = [(path.name, path)]
        else:
            yield LoadFailure(str(path.absolute()), "no such file or folder")
            continue
        for doc_id, file_path in jobs:
            if isinstance(file_path, LoadFailure):
                yield file_path
                continue
            if not _is_utf8(doc_id) or not _is_utf8(str(file_path.absolute())):
                # Undecodable bytes in a name (kept as lone surrogates) can't be an id or an origin.
                yield LoadFailure(str(file_path.absolute()), "file name is not valid UTF-8: rename it")
                continue
            try:
                yield from _iter_one_file(file_path, doc_id, max_bytes)
            except Exception as exc:
                log.exception("unexpected error loading %s", file_path)
                yield LoadFailure(str(file_path.absolute()), f"unexpected error ({type(exc).__name__}: {exc})")
