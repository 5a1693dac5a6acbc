"""Read inputs into :class:`~ingest.records.SourceDocument`s (or :class:`~ingest.records.LoadFailure`s).

Inputs are files, folders (searched recursively: ``ingest.discovery``), ``.jsonl``/``.jsonl.gz``
corpora (``ingest.jsonl``) and http(s) URLs (``ingest.fetch``, the SSRF-safe fetcher). This
module decides what each input is and which reader reads it: text through
``ingest.decoding``, HTML, PDF and DOCX through ``ingest.formats``. Nothing here raises for a
bad input: every problem becomes a ``LoadFailure`` and iteration goes on with the next document.

What one document may cost is bounded (``ParseLimits``; the pipeline always passes them): a
document author controls how long a PDF's, a DOCX's or an HTML page's parse takes and how much
memory it needs (one 5 MB content stream drawn by 40 pages: 18 s a page; a 400 KB DOCX of 94 MB
of XML: 24 s and 600 MB), so those formats are parsed in a worker process (``ParseWorker``) that
is killed when it runs over its time or memory, and every document's text has a length limit.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from ingest.decoding import DecodeError, decode_bytes, decode_text, normalize_newlines, too_many_chars
from ingest.discovery import kind_of, readable_size, walk_folder
from ingest.fetch import AllowPrivate, fetch_url
from ingest.formats.docx import DOCX_MAX_UNCOMPRESSED, docx_text
from ingest.formats.html import html_to_text, meta_charset
from ingest.formats.pdf import pdf_text
from ingest.jsonl import iter_jsonl
from ingest.records import LoadFailure, SourceDocument

log = logging.getLogger(__name__)

__all__ = ["ParseLimits", "ParseWorker", "iter_documents", "is_url"]


def is_url(value: str) -> bool:
    """Whether an input names a URL rather than a path: any ``scheme://``, so that ``file://``,
    ``ftp://`` ... are refused as URLs (only http and https are fetched) instead of being looked
    up as local paths."""
    return bool(re.match(r"^[a-z][a-z0-9+.-]+://", value.strip(), re.IGNORECASE))


# --------------------------------------------------------------------------- what a document may cost

@dataclass(frozen=True)
class ParseLimits:
    """What parsing one document may cost (settings ``parse_timeout_seconds``,
    ``parse_memory_mb``, ``max_document_chars``): PDF, DOCX and HTML are parsed in a worker
    process killed after ``seconds`` or when it needs ``memory_bytes`` more address space than
    it started with; any document's text may have ``max_chars`` characters."""

    seconds: float = 60.0
    memory_bytes: int = 1024 << 20
    max_chars: int = 1_000_000


# Formats whose parse a document's author can make slow or huge; plain text is decoded in
# this process (linear in its bytes, which max_bytes bounds).
WORKER_KINDS = frozenset({"pdf", "docx", "html"})


class ParseWorker:
    """One child process that parses documents' bytes, reused from one document to the next
    (a process started per document would cost ~1 s each), replaced when it is killed.

    The child is a new interpreter (``python -c``; not a fork: the parent may hold threads, an
    ONNX session and a Chroma client; not multiprocessing's spawn, which imports the parent's
    main script again) with this process's ``sys.path``. It raises its own address-space limit
    (``RLIMIT_AS``) to what it uses at start plus ``limits.memory_bytes`` (an allocation past it
    is a MemoryError there, or the end of the child) and answers one request at a time over a
    socket pair; the parent waits at most ``limits.seconds`` for an answer, then kills it.
    """

    def __init__(self, limits: ParseLimits) -> None:
        self.limits = limits
        self._process: subprocess.Popen | None = None
        self._conn: Connection | None = None

    def parse(self, data: bytes, kind: str, **meta: Any) -> SourceDocument:
        """``_document_from_bytes(data, kind, **meta)`` in the child (raises DecodeError, with
        the limit's reason when it ran over one)."""
        try:
            conn = self._conn or self._start()
            conn.send((data, kind, meta))
            answered = conn.poll(self.limits.seconds)
            status, value = conn.recv() if answered else ("timeout", None)
        except (EOFError, OSError):
            status, value = "died", None
        if status == "ok":
            return value
        if status == "error":
            raise DecodeError(value)
        self.close()  # it ran over (or died): the next document gets a new one
        memory = f"{self.limits.memory_bytes >> 20} MB of memory (limit: KB_PARSE_MEMORY_MB)"
        if status == "timeout":
            raise DecodeError(f"refused: parsing took over {self.limits.seconds:g} s (limit: KB_PARSE_TIMEOUT_SECONDS)")
        if status == "memory":
            raise DecodeError(f"refused: parsing needed over {memory}")
        raise DecodeError(f"refused: the parser process ended while parsing it (over {memory}, or a crash)")

    def _start(self) -> Connection:
        ours, theirs = socket.socketpair()
        code = f"from ingest.loaders import _serve_parses; _serve_parses({theirs.fileno()}, {self.limits.memory_bytes})"
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-c", code], pass_fds=(theirs.fileno(),), env=env, stdin=subprocess.DEVNULL
            )
        finally:
            theirs.close()
        self._conn = Connection(ours.detach())
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._process is not None:
            self._process.kill()
            self._process.wait(5)
            self._process = None


def _serve_parses(fd: int, memory_bytes: int) -> None:
    """The worker's loop (in the child): limit memory, then parse what the parent sends."""
    import resource

    conn = Connection(fd)
    # The parsers' own imports first: a module loaded under the limit (OpenSSL's hashes, under
    # python-docx) failed to load, for want of address space rather than of a document's.
    import docx  # noqa: F401
    import pypdf  # noqa: F401

    try:
        import trafilatura  # noqa: F401
    except ImportError:  # optional (ingest.formats.html falls back to its own scan)
        pass
    with open("/proc/self/statm") as statm:  # the address space in use now, in pages
        in_use = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    cap = in_use + memory_bytes
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    while True:
        try:
            data, kind, meta = conn.recv()
        except (EOFError, OSError):
            return
        try:
            answer: tuple[str, Any] = ("ok", _document_from_bytes(data, kind, **meta))
        except DecodeError as exc:
            answer = ("error", str(exc))
        except MemoryError:
            answer = ("memory", None)
        except Exception as exc:  # noqa: BLE001 - one bad document never ends the worker
            answer = ("error", f"unexpected error ({type(exc).__name__}: {exc})")
        del data
        try:
            conn.send(answer)
        except MemoryError:
            conn.send(("memory", None))
        if answer[0] == "memory":
            return  # the heap may be in any state: the parent starts a new worker


# --------------------------------------------------------------------------- bytes -> document

def _document_from_bytes(
    data: bytes, kind: str, *, doc_id: str, origin: str, source: str, max_bytes: int,
    declared_charset: str | None = None, max_chars: int | None = None,
) -> SourceDocument:
    """Build a SourceDocument from the raw bytes of one non-jsonl document (raises DecodeError,
    also for text over ``max_chars`` characters)."""
    title: str | None = None
    date: str | None = None
    if kind == "pdf":
        text, title, date = pdf_text(data, max_chars)
    elif kind == "docx":
        text, title, date = docx_text(data, min(DOCX_MAX_UNCOMPRESSED, 10 * max_bytes), max_chars)
    elif kind == "html":
        html = decode_bytes(data, declared_charset or meta_charset(data))
        text, title, date = html_to_text(html)
    else:
        text = decode_text(data, declared_charset)
    text = normalize_newlines(text)
    if not text.strip():
        raise DecodeError("empty (no text)")
    if max_chars is not None and len(text) > max_chars:
        raise DecodeError(too_many_chars(len(text), max_chars))
    return SourceDocument(doc_id=doc_id, origin=origin, source=source, raw_text=text, kind=kind,
                          title=title, date=date)


def _parse(data: bytes, kind: str, worker: ParseWorker | None, **meta: Any) -> SourceDocument:
    """``_document_from_bytes``, in ``worker`` for the formats it takes (WORKER_KINDS)."""
    if worker is not None:
        meta["max_chars"] = worker.limits.max_chars
        if kind in WORKER_KINDS:
            return worker.parse(data, kind, **meta)
    return _document_from_bytes(data, kind, **meta)


def _load_file(
    path: Path, doc_id: str, kind: str, max_bytes: int, worker: ParseWorker | None = None
) -> SourceDocument | LoadFailure:
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
        return _parse(data, kind, worker, doc_id=doc_id, origin=origin, source=doc_id, max_bytes=max_bytes)
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
    url: str, max_bytes: int, timeout: float, allow_private: AllowPrivate = False, worker: ParseWorker | None = None
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
        return _parse(data, kind, worker, doc_id=url, origin=url, source=url, max_bytes=max_bytes,
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


def _iter_one_file(
    path: Path, doc_id: str, max_bytes: int, worker: ParseWorker | None
) -> Iterator[SourceDocument | LoadFailure]:
    kind = kind_of(path.name)
    if kind is None:
        yield LoadFailure(str(path.absolute()), f"unsupported file type {path.suffix or path.name!r}")
    elif kind == "jsonl":
        for item in iter_jsonl(path, max_bytes):
            if worker is not None and isinstance(item, SourceDocument) and len(item.raw_text) > worker.limits.max_chars:
                item = LoadFailure(item.origin, f"id {item.doc_id!r}: {too_many_chars(len(item.raw_text), worker.limits.max_chars)}")
            yield item
    else:
        yield _load_file(path, doc_id, kind, max_bytes, worker)


def iter_documents(
    inputs: Sequence[str],
    *,
    max_bytes: int = 20_000_000,
    url_timeout: float = 15.0,
    allow_private_urls: bool | Iterable[str] = False,
    follow_symlinks: bool = False,
    limits: ParseLimits | None = None,
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

    ``limits`` bound what one document may cost (``ParseLimits``; the ingest pipeline always
    passes the settings'): PDF, DOCX and HTML are parsed in one worker process for the whole
    iteration, killed when it runs over; a document over its limits is a LoadFailure saying
    which. None parses in this process, unbounded.
    """
    worker = ParseWorker(limits) if limits is not None else None
    try:
        yield from _iter_inputs(inputs, max_bytes, url_timeout, allow_private_urls, follow_symlinks, worker)
    finally:
        if worker is not None:
            worker.close()


def _iter_inputs(
    inputs: Sequence[str],
    max_bytes: int,
    url_timeout: float,
    allow_private_urls: bool | Iterable[str],
    follow_symlinks: bool,
    worker: ParseWorker | None,
) -> Iterator[SourceDocument | LoadFailure]:
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]  # type: ignore[list-item]
    if not isinstance(allow_private_urls, bool):
        allow_private_urls = tuple(allow_private_urls)  # used once per URL: not a one-shot iterator
    for item in inputs:
        item = os.fspath(item)
        if is_url(item):
            try:
                yield _load_url(item.strip(), max_bytes, url_timeout, allow_private_urls, worker)
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
                yield from _iter_one_file(file_path, doc_id, max_bytes, worker)
            except Exception as exc:
                log.exception("unexpected error loading %s", file_path)
                yield LoadFailure(str(file_path.absolute()), f"unexpected error ({type(exc).__name__}: {exc})")
