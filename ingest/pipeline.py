"""Incremental ingestion: sources -> cleaned documents -> chunks -> vectors + tokens -> store.

Like simonw/llm's embedding store, work is keyed by content hashes: a document whose hash
(over its cleaned text, metadata and the chunking settings) matches the manifest is skipped,
and a chunk whose embedding input (``index_text``) hashes to one already in the store, or
earlier in the same batch, reuses that vector: unchanged chunks of an edited document, and the
repeated articles news corpora are full of, cost no embedding.

Ids. A document's id is readable and relative (a file's path under the folder given, a lone
file's name, a corpus line's ``id``, a URL), so two sources can produce one id. The manifest
records each document's origin (``DocRecord.origin``), and a document whose id is already held
by another origin (compared with symlinks resolved: ``same_origin``) is never written over: it
gets an id that says where it came from, its folder's name before its own id
(``site2/index.html`` ingested as folder ``site2`` after ``site1``'s ``index.html``:
``site2:index.html``; a corpus line: ``second.jsonl:d1``), with more of the path above when
that is taken too (``qualified_ids``). The id already stored keeps working unchanged, and the
same source ingested again finds its own qualified id and is skipped or updated as usual. Only
when every such id is held elsewhere (or for a URL) is the document refused, as a failure naming
both. An entry stored without an origin is taken to be the same source, and gets the origin
recorded.

Reliability. A run holds the store's ingest lock (``kbcore.locks.ingest_lock``) from start to
end, so two ingests into one store take turns. It writes in batches of about
``write_batch_chunks`` chunks through ``ChunkStore.write_documents``, whose step order leaves
every interruption repairable, and it first finishes whatever an interrupted run left behind:
removals marked ``deleting`` are completed; documents marked ``writing`` are redone like
changed ones (keeping the vectors already stored) or, when this run covers their source but
no longer gets them from it, removed. So an ingest killed at any point and run again leaves
exactly the store an uninterrupted run leaves, re-embedding only what wasn't finished.

Events. ``on_event(name, info)`` is called as the run goes, for progress reporting, logging
and (in the tests) killing the process at a precise point:

    lock_waiting        {"holder": str | None, "timeout": s}   another ingest holds the lock
    lock_acquired       {"store": str}
    document_parsed     {"doc_id", "origin", "chunks", "status": new|changed|unchanged|failed}
    batch_embedded      {"doc_ids", "chunks", "embedded"}
    manifest_pending, chunks_written, stale_deleted, manifest_written    {"doc_ids", "chunks"}
    removal_marked, chunks_deleted, documents_removed                     {"doc_ids"}

The last two rows are the steps of ``ChunkStore.write_documents`` / ``delete_documents``.
"""

from __future__ import annotations

import logging
import os
import shlex
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path, PurePath, PurePosixPath
from typing import Any

from ingest.chunking import chunk_document
from ingest.cleaning import clean_document
from ingest.loaders import ParseLimits, is_url, iter_documents
from ingest.records import LoadFailure, SourceDocument
from ingest.regions import recognise_regions
from kbcore.embeddings import Embedder
from kbcore.locks import IngestLock, ingest_lock
from kbcore.store_layout import begin_reindex, end_reindex
from kbcore.store import ChunkStore, IndexedChunk
from kbcore.text import index_text, tokenize
from kbcore.types import (
    STATE_DELETING,
    STATE_OK,
    STATE_WRITING,
    Chunk,
    DocRecord,
    IngestReport,
    content_hash,
)

log = logging.getLogger(__name__)

# Bump when chunking, index_text or region recognition (ingest/regions.py) changes meaning,
# so every document is re-indexed.
PIPELINE_VERSION = "1"
# Manifest entries per origin-recording write (see IngestPipeline._record_origins).
_ORIGINS_PER_WRITE = 500

EventHook = Callable[[str, dict[str, Any]], None]


@dataclass
class _Pending:
    record: DocRecord
    chunks: list[Chunk]
    is_update: bool


@dataclass
class _Batch:
    """A write batch whose missing vectors are being embedded (``IngestPipeline._index``)."""

    items: list[_Pending]
    chunks: list[Chunk]
    texts: list[str]  # index_text of each chunk
    hashes: list[str]  # content hash of each text
    vectors: dict[str, Any]  # by hash: those the store held, then those embedded here
    embed_order: list[str]  # the hashes being embedded, in the embedder's order
    previous: _Batch | None  # the batch in flight before this one, for the repeats it embeds
    embedded: Future  # -> (vectors in embed_order, seconds inside the embedder)

    @property
    def embed_hashes(self) -> set[str]:
        return set(self.embed_order)


def _utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _covers(inputs: Sequence[str], origin: str) -> bool:
    """Whether a run over ``inputs`` would read ``origin`` (the file, a folder above it, the URL)."""
    if is_url(origin):
        return origin in {i.strip() for i in inputs if is_url(i)}
    path = Path(origin)
    for item in inputs:
        if is_url(item):
            continue
        given = Path(item).expanduser()
        # Loaders record absolute (unresolved) paths; compare resolved too, for symlinked roots.
        for root, target in ((given.absolute(), path), (given.resolve(), path.resolve())):
            if target == root or root in target.parents:
                return True
    return False


def same_origin(stored: str, incoming: str) -> bool:
    """Whether two recorded origins name one source: the same URL, or paths to the same file
    (symlinks and ``..`` resolved, so a folder reached another way is still the same source)."""
    if stored == incoming:
        return True
    if is_url(stored) or is_url(incoming):
        return False
    return os.path.realpath(stored) == os.path.realpath(incoming)


def qualified_ids(item: SourceDocument) -> list[str]:
    """Ids for ``item`` that say where it came from, shortest first, for when another source
    holds its own id: the name of the folder its id is relative to (or of its corpus file)
    before a ":", then more of the path above. None for a URL (a URL is its own id)."""
    if is_url(item.origin):
        return []
    parts = PurePath(item.origin).parts
    # A file's id is its path under the folder given: the folders above are what name it. A
    # corpus line's is its own: the corpus file and the folders above it name it.
    above = parts if item.kind == "jsonl" else parts[: len(parts) - len(PurePosixPath(item.doc_id).parts)]
    above = [part for part in above if part not in ("/", "")]
    return [f"{'/'.join(above[-n:])}:{item.doc_id}" for n in range(1, len(above) + 1)]


def _placed(item: SourceDocument, known: dict[str, DocRecord], seen: dict[str, str]) -> SourceDocument:
    """``item`` under the id it is stored by (module docstring, "Ids"): its own unless another
    source holds it (``known``: the manifest; ``seen``: this run), else the qualified id this
    source already holds or the first one free. Unchanged when none is: the caller refuses it."""

    def holder(doc_id: str) -> str | None:
        record = known.get(doc_id)
        return seen.get(doc_id) or (record.origin if record is not None else None)

    def elsewhere(doc_id: str) -> bool:
        held = holder(doc_id)
        return bool(held) and not same_origin(held, item.origin)  # no origin recorded: the same source

    if not elsewhere(item.doc_id):
        return item
    candidates = qualified_ids(item)
    ours = [c for c in candidates if holder(c) is not None and not elsewhere(c)]
    free = [c for c in candidates if holder(c) is None]
    chosen = (ours or free or [None])[0]
    if chosen is None:
        return item
    # A file's source (what citations show) is its id: it says where it came from too.
    source = chosen if item.source == item.doc_id else item.source
    return replace(item, doc_id=chosen, source=source)


def _held_elsewhere(item: SourceDocument, held_by: str) -> str:
    """Why ``item`` is refused: its id belongs to a document from another source."""
    if item.kind == "jsonl":
        keep_both = "give this line another id"
    elif is_url(item.origin):
        keep_both = "ingest the URL into another store"
    else:
        keep_both = "ingest it from a folder in which its relative path (its id) differs"
    gone = ""
    if not is_url(held_by) and not os.path.exists(held_by):
        gone = " (now gone: if it moved here, --prune on its old folder removes it)"
    return (
        f"document id {item.doc_id!r} is already held by {held_by}{gone}, a different source; not replaced. "
        f"To replace it, remove that one first (python -m ingest --remove {shlex.quote(item.doc_id)}); "
        f"to keep both, {keep_both}"
    )


def _acquire(lock: IngestLock, timeout: float, emit: EventHook) -> None:
    def waiting(holder) -> None:
        emit("lock_waiting", {"holder": holder.describe() if holder else None, "timeout": timeout})

    lock.acquire(timeout, on_wait=waiting)
    emit("lock_acquired", {"store": lock.location})


class IngestPipeline:
    def __init__(
        self,
        store: ChunkStore,
        embedder: Embedder,
        *,
        chunk_size: int,
        chunk_overlap: int = 0,
        write_batch_chunks: int = 256,
        max_bytes: int = 20_000_000,
        lock_timeout: float = 0.0,
        allow_private_urls: bool = False,
        follow_symlinks: bool = False,
        parse_limits: ParseLimits = ParseLimits(),
        max_chunks: int = 4000,
        on_event: EventHook | None = None,
    ):
        if chunk_overlap >= chunk_size:
            raise ValueError("chunk_overlap must be smaller than chunk_size")
        if write_batch_chunks < 1:
            raise ValueError("write_batch_chunks must be positive")
        if lock_timeout < 0:
            raise ValueError("lock_timeout must be non-negative")
        self.store = store
        self.embedder = embedder
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap
        self.write_batch_chunks = write_batch_chunks
        self.max_bytes = max_bytes
        self.lock_timeout = lock_timeout
        self.allow_private_urls = allow_private_urls
        self.follow_symlinks = follow_symlinks
        self.parse_limits = parse_limits  # what parsing one document may cost (ingest.loaders)
        self.max_chunks = max_chunks  # chunks one document may make (each is embedded)
        self.on_event = on_event
        self._lock: IngestLock | None = None  # held while a run writes

    def _emit(self, event: str, info: dict[str, Any]) -> None:
        log.debug("%s %s", event, info)
        if self.on_event is not None:
            self.on_event(event, info)

    @contextmanager
    def _holding(self, lock: IngestLock | None) -> Iterator[None]:
        """Hold the store's ingest lock for one run: ``lock`` when the caller already holds it
        (``reindex`` holds it across its steps; it is checked, not released, here), else the
        store's lock, taken (waiting up to ``lock_timeout``) and released here."""
        taken = lock is None
        if taken:
            lock = self.store.ingest_lock()
            _acquire(lock, self.lock_timeout, self._emit)
        # Catch up with what other processes wrote before this one took the lock: an embedded
        # store's vector index, loaded earlier in this process, would be written back over
        # their vectors (kbcore.store, "Other processes' writes").
        self.store.revision()
        self._lock = lock
        try:
            yield
        finally:
            self._lock = None
            if taken:
                lock.release()

    def run(
        self, inputs: Sequence[str], *, prune: bool = False, progress: bool = False, lock: IngestLock | None = None
    ) -> IngestReport:
        """Ingest ``inputs`` (see the module docstring) under the ingest lock (``_holding``)."""
        t0 = time.perf_counter()
        with self._holding(lock):
            report = self._run(inputs, prune=prune, progress=progress)
        report.seconds = time.perf_counter() - t0
        return report

    def remove(self, doc_ids: Sequence[str], *, lock: IngestLock | None = None) -> IngestReport:
        """Remove documents (and their chunks) under the ingest lock (``_holding``); an id the
        store does not hold is a failure of the report ("no such document"), not a removal."""
        report = IngestReport()
        with self._holding(lock):
            known = self.store.doc_records()
            wanted = list(dict.fromkeys(doc_ids))
            report.failed.extend((doc_id, "no such document") for doc_id in wanted if doc_id not in known)
            self._remove([doc_id for doc_id in wanted if doc_id in known], report)
        return report

    def _run(self, inputs: Sequence[str], *, prune: bool, progress: bool) -> IngestReport:
        report = IngestReport()
        known = self.store.doc_records()
        # A removal was decided before the crash: finish it first, so the document can't pass
        # for unchanged below (its chunks may already be gone) and is re-added if still wanted.
        interrupted = sorted(doc_id for doc_id, r in known.items() if r.state == STATE_DELETING)
        if interrupted:
            log.info("finishing %d interrupted removal(s)", len(interrupted))
            self._remove(interrupted, report)
            known = {doc_id: r for doc_id, r in known.items() if r.state != STATE_DELETING}
        # Documents stream through in write batches: memory stays flat on a corpus of any size,
        # and the embedder starts on the first batch instead of after the last parse.
        yielded: dict[str, set[str]] = {}
        self._index(self._collect(inputs, known, report, yielded), report, progress)
        rewritten = {*report.added, *report.updated}
        # Half-written by an interrupted run, and this run, which reads their source, could not
        # produce them again (gone, or no longer parses): neither old nor new version survives
        # in full, so keeping them would serve a mix.
        doomed = [
            doc_id
            for doc_id, r in known.items()
            if r.state == STATE_WRITING and doc_id not in rewritten and _covers(inputs, r.origin)
        ]
        if prune:
            doomed += [d for d in self._pruned(inputs, known, yielded) if d not in doomed]
        self._remove(sorted(doomed), report)
        return report

    def _collect(
        self, inputs: Sequence[str], known: dict[str, DocRecord], report: IngestReport, yielded: dict[str, set[str]]
    ) -> Iterator[_Pending]:
        """Documents that need (re)indexing, one by one; fills ``yielded`` with the doc ids each
        origin file yielded."""
        settings_hash = f"{PIPELINE_VERSION}:{self.chunk_size}:{self.chunk_overlap}"
        seen: dict[str, str] = {}  # doc id -> the origin it was read from in this run
        unrecorded: dict[str, str] = {}  # unchanged documents stored without an origin -> theirs

        def parsed(doc_id: str | None, origin: str, chunks: int, status: str) -> None:
            self._emit("document_parsed", {"doc_id": doc_id, "origin": origin, "chunks": chunks, "status": status})

        documents = iter_documents(inputs, max_bytes=self.max_bytes, allow_private_urls=self.allow_private_urls,
                                   follow_symlinks=self.follow_symlinks, limits=self.parse_limits)
        for item in documents:
            if isinstance(item, LoadFailure):
                report.failed.append((item.origin, item.reason))
                parsed(None, item.origin, 0, "failed")
                continue
            item = _placed(item, known, seen)
            yielded.setdefault(item.origin, set()).add(item.doc_id)
            if item.doc_id in seen:
                report.failed.append(
                    (item.origin, f"duplicate document id {item.doc_id!r} in this run (already read from {seen[item.doc_id]})")
                )
                parsed(item.doc_id, item.origin, 0, "failed")
                continue
            seen[item.doc_id] = item.origin
            old = known.get(item.doc_id)
            if old is not None and old.origin and not same_origin(old.origin, item.origin):
                report.failed.append((item.origin, _held_elsewhere(item, old.origin)))
                parsed(item.doc_id, item.origin, 0, "failed")
                continue
            doc = clean_document(item)
            if doc is None:
                report.failed.append((item.origin, "no content left after removing site chrome"))
                parsed(item.doc_id, item.origin, 0, "failed")
                continue
            chunks = chunk_document(doc, chunk_size=self.chunk_size, overlap=self.chunk_overlap)
            if not chunks:
                report.failed.append((item.origin, "no text to index"))
                parsed(item.doc_id, item.origin, 0, "failed")
                continue
            if len(chunks) > self.max_chunks:
                reason = f"refused: {len(chunks):,} chunks (limit {self.max_chunks:,}: KB_MAX_DOCUMENT_CHUNKS)"
                report.failed.append((item.origin, reason))
                parsed(item.doc_id, item.origin, 0, "failed")
                continue
            record = DocRecord(
                doc_id=doc.doc_id,
                content_hash=content_hash(doc.content_hash, settings_hash),
                origin=item.origin,
                title=doc.title,
                source=doc.source,
                date=doc.date,
                chunk_count=len(chunks),
            )
            if old is not None and old.content_hash == record.content_hash and old.state == STATE_OK:
                if not old.origin:
                    unrecorded[doc.doc_id] = item.origin
                    if len(unrecorded) >= _ORIGINS_PER_WRITE:
                        self._record_origins(unrecorded)
                report.unchanged.append(doc.doc_id)
                parsed(doc.doc_id, item.origin, len(chunks), "unchanged")
                continue
            parsed(doc.doc_id, item.origin, len(chunks), "changed" if old is not None else "new")
            # Regions only for what is written: an unchanged document keeps its own (they follow
            # from its title and text, which the hash covers).
            regions = recognise_regions(f"{doc.title}\n{doc.text}")
            record = replace(record, regions=regions, ingested_at=_utc_now())
            yield _Pending(record, chunks, is_update=old is not None)
        self._record_origins(unrecorded)

    def _record_origins(self, origins: dict[str, str]) -> None:
        """Write the origin of unchanged documents stored before origins were compared, so the
        next run can tell their source from another one under the same id; empties ``origins``."""
        if origins:
            self._check_lock()
            self.store.record_origins(origins)
            origins.clear()

    def _index(self, pending: Iterable[_Pending], report: IngestReport, progress: bool) -> None:
        """Write the documents in batches of about ``write_batch_chunks`` chunks.

        The embedder works one batch ahead on its own thread (ONNX Runtime and torch release the
        GIL): while it embeds batch k, this thread parses and chunks the documents of batch k+1
        and tokenizes and writes batch k-1. Every store read and write stays on this thread and
        in order, so an interruption leaves what the serial order left: batches written
        whole, in order, and at most the batch in flight lost (a rerun embeds it again).
        """
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(unit="chunk", desc="indexing", dynamic_ncols=True)
        embedding = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-embed")
        in_flight: _Batch | None = None
        try:
            for batch in self._batches(pending):
                started = self._start_embedding(batch, embedding, in_flight)
                if in_flight is not None:
                    self._write(in_flight, report, bar)
                in_flight = started
            if in_flight is not None:
                self._write(in_flight, report, bar)
        finally:
            # On an error the queued batch is dropped; one already running is waited for, so no
            # embedding outlives the run (and its lock).
            embedding.shutdown(wait=True, cancel_futures=True)
            if bar is not None:
                bar.close()

    def _batches(self, pending: Iterable[_Pending]) -> Iterator[list[_Pending]]:
        batch: list[_Pending] = []
        size = 0
        for item in pending:
            batch.append(item)
            size += len(item.chunks)
            if size >= self.write_batch_chunks:
                yield batch
                batch, size = [], 0
        if batch:
            yield batch

    def _check_lock(self) -> None:
        if self._lock is not None:
            self._lock.check()

    def _start_embedding(self, items: list[_Pending], embedding: ThreadPoolExecutor, previous: _Batch | None) -> _Batch:
        """Look up the vectors the store already holds and queue the rest for the embedder."""
        self._check_lock()
        chunks = [c for p in items for c in p.chunks]
        texts = [index_text(c) for c in chunks]
        hashes = [content_hash(t) for t in texts]
        # Also what an interrupted run already stored: a rerun re-embeds only what the crash cut off.
        vectors = self.store.vectors_by_input_hash(hashes)
        # A repeat of an input the batch still in flight embeds takes its vector from there.
        from_previous = previous.embed_hashes if previous is not None else set()
        first_of_hash: dict[str, int] = {}
        for i, h in enumerate(hashes):
            if h not in vectors and h not in from_previous:
                first_of_hash.setdefault(h, i)
        to_embed = list(first_of_hash.values())
        embed_texts = [texts[i] for i in to_embed]

        def embed() -> tuple[Any, float]:
            t0 = time.perf_counter()
            embedded = self.embedder.embed_passages(embed_texts) if embed_texts else []
            return embedded, time.perf_counter() - t0

        return _Batch(items, chunks, texts, hashes, vectors, [hashes[i] for i in to_embed], previous,
                      embedding.submit(embed))

    def _write(self, batch: _Batch, report: IngestReport, bar) -> None:
        self._check_lock()
        tokens = [tokenize(t) for t in batch.texts]  # jieba, while the embedder still works
        embedded, seconds = batch.embedded.result()
        report.embed_seconds += seconds
        vectors = batch.vectors
        vectors.update(zip(batch.embed_order, embedded, strict=True))
        if batch.previous is not None:
            vectors.update((h, batch.previous.vectors[h]) for h in batch.hashes if h not in vectors)
            batch.previous = None  # its vectors are no longer needed: let them go
        items = [
            IndexedChunk(chunk=c, vector=vectors[h], tokens=t, input_hash=h)
            for c, t, h in zip(batch.chunks, tokens, batch.hashes)
        ]
        info = {"doc_ids": [p.record.doc_id for p in batch.items], "chunks": len(batch.chunks)}
        self._emit("batch_embedded", info | {"embedded": len(batch.embed_order)})
        items_by_doc = []
        for p in batch.items:
            items_by_doc.append((p.record, items[: len(p.chunks)]))
            items = items[len(p.chunks) :]
        self._check_lock()
        self.store.write_documents(items_by_doc, on_step=lambda step: self._emit(step, info))
        for p in batch.items:
            (report.updated if p.is_update else report.added).append(p.record.doc_id)
        report.chunks_written += len(batch.chunks)
        report.chunks_embedded += len(batch.embed_order)
        if bar is not None:
            bar.update(len(batch.chunks))

    def _remove(self, doc_ids: list[str], report: IngestReport) -> None:
        if not doc_ids:
            return
        self._check_lock()
        self.store.delete_documents(doc_ids, on_step=lambda step: self._emit(step, {"doc_ids": doc_ids}))
        report.removed.extend(d for d in doc_ids if d not in report.removed)

    @staticmethod
    def _pruned(inputs: Sequence[str], known: dict[str, DocRecord], yielded: dict[str, set[str]]) -> list[str]:
        """Documents whose file is gone, or whose file no longer yields them."""
        doomed = []
        for doc_id, record in known.items():
            origin = record.origin
            if is_url(origin) or not _covers(inputs, origin):
                continue
            if not Path(origin).exists() or (origin in yielded and doc_id not in yielded[origin]):
                doomed.append(doc_id)
        return doomed


def source_inputs(records: Iterable[DocRecord]) -> list[str]:
    """Inputs that yield these documents under the same ids again: URLs and .jsonl corpora as
    they are, a file by itself when its id is its name, else the folder its id is relative to
    (which also picks up files added to that folder since)."""
    folders: set[str] = set()
    files: set[str] = set()
    for r in records:
        origin = r.origin
        if not origin:
            continue
        if is_url(origin) or origin.lower().endswith((".jsonl", ".jsonl.gz")) or Path(origin).name == r.doc_id:
            files.add(origin)
        elif origin.endswith("/" + r.doc_id):
            folders.add(origin[: -len(r.doc_id) - 1])
        else:
            files.add(origin)
    roots = [Path(f) for f in folders]

    def read_by_a_folder(item: str) -> bool:
        # The same document twice in one run is an error; a folder reads corpora at any depth
        # and plain files right inside it under the same id.
        path = Path(item)
        if item.lower().endswith((".jsonl", ".jsonl.gz")):
            return any(root in path.parents for root in roots)
        return path.parent in roots

    files = {f for f in files if is_url(f) or not read_by_a_folder(f)}
    return sorted(folders) + sorted(files)


def reindex(
    client,
    embedder: Embedder,
    *,
    collection_prefix: str,
    inputs: Sequence[str] = (),
    lock_timeout: float = 0.0,
    on_event: EventHook | None = None,
    progress: bool = False,
    **options: Any,
) -> IngestReport:
    """Drop this embedder's collections and rebuild them, at the current schema, from the
    documents' sources (``source_inputs`` of the old manifest) plus ``inputs``.

    Interrupted, it is resumed by running it again: the old manifest survives until the end
    (``kbcore.store_layout.begin_reindex``). ``options`` go to ``IngestPipeline``.
    """
    t0 = time.perf_counter()

    def emit(event: str, info: dict[str, Any]) -> None:
        log.debug("%s %s", event, info)
        if on_event is not None:
            on_event(event, info)

    lock = ingest_lock(client, collection_prefix=collection_prefix, embedder_name=embedder.name)
    _acquire(lock, lock_timeout, emit)
    try:
        planned = begin_reindex(client, collection_prefix=collection_prefix, embedder_name=embedder.name)
        store = ChunkStore(client, collection_prefix=collection_prefix, embedder_name=embedder.name, dim=embedder.dim)
        pipeline = IngestPipeline(store, embedder, lock_timeout=lock_timeout, on_event=on_event, **options)
        sources = list(dict.fromkeys([*inputs, *source_inputs(planned)]))
        log.info("reindexing %d documents from %s", len(planned), sources)
        report = pipeline.run(sources, prune=False, progress=progress, lock=lock)
        end_reindex(client, collection_prefix=collection_prefix, embedder_name=embedder.name)
    finally:
        lock.release()
    report.seconds = time.perf_counter() - t0
    return report
