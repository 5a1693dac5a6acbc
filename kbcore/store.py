"""The index: chunks, their vectors and a document manifest, all kept in Chroma.

Chroma is the single source of truth so that several app processes sharing one Chroma
server agree on what the knowledge base holds:

* ``<prefix>-<embedder>-chunks``: one record per chunk (id ``doc_id#ordinal``), its vector, its
  text, and metadata (offsets, title, section, date, source, the jieba tokens the BM25 index
  is built from, and the hash of the chunk's embedding input, so a chunk whose input was
  embedded before, in this document or any other, reuses that vector). Its
  collection metadata carries the layout's ``schema_version`` (``kbcore.store_layout``).
* ``<prefix>-<embedder>-docs``: one record per document (content hash, origin, chunk count,
  regions, when it was ingested and a ``state``). Chroma needs a vector per record; these carry
  a constant 1-d placeholder. The origin (absolute file path, the ``.jsonl`` file of a corpus
  line, or the URL) is what the ingest checks before replacing a document: an id held by
  another origin is never overwritten.
* Both carry the document's filter keys (``filter_keys``: regions, the date as a number, the
  source and its hosts), so one Chroma ``where`` (``filter_where``) selects chunks for the
  dense leg and documents for the BM25 leg alike.
* ``<prefix>-<embedder>-lock`` (Chroma server only): the lease that keeps two ingests apart;
  an embedded store uses a file lock in its directory instead (``kbcore.locks``).

Both data collections are named after the embedder, so vectors of different models never mix
and switching models re-embeds into a fresh collection instead of corrupting the old one.

Crash safety. Chroma has no transactions across calls, so every write is a sequence of
idempotent steps whose every prefix leaves a state the next ingest repairs to exactly what an
uninterrupted run would have written:

* writing documents: manifest entries marked ``writing`` (with the new hash) -> chunks upserted
  under deterministic ids -> chunks beyond the new chunk count deleted -> revision bumped ->
  manifest entries marked ``ok``. A document is only ever skipped as unchanged when its entry
  is ``ok`` with the same hash, and that is written last; until then the ``writing`` entry owns
  whatever chunks the crash left, so none are orphaned and the next run redoes the document
  (reusing the vectors already written) or, when its source is gone, removes it.
* removing documents: manifest entries marked ``deleting`` -> chunks deleted -> revision bumped
  -> entries deleted. The next ingest finishes any ``deleting`` entry before doing anything
  else, so a half-removed document never passes for an unchanged one.

The revision is bumped after the chunks change and before the manifest says the write is
done, so a crash can't leave other processes' BM25 indexes on a stale revision.

Other processes' writes. Any number of processes may write the store while others read it
(taking turns by the ingest lock). A reader notices a write by the revision (``revision``,
which the searcher polls about once a second): on an embedded store it then reopens the
store (``kbcore.chroma.fresh_client``), as Chroma's vector index in this process's memory never
sees another process's writes. Until it has, a read that catches the store mid-change (a
chunk deleted since the vector index was loaded, a collection dropped by ``--reindex``, an
embedded filter meeting ids its index lacks) is answered from what is there: a deleted chunk
is left out, and a read that fails on a stale view reopens the store and is tried once more.
A writer catches up the same way once it holds the ingest lock, before it writes, so an
embedded store's stale index is never written back over another process's vectors.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlparse

import numpy as np

from kbcore import store_layout
from kbcore.chroma import (
    PAGE,
    PLACEHOLDER_VECTOR,
    collection_base,
    describe_location,
    fresh_client,
    is_embedded,
    is_stale_view,
    slug,
)
from kbcore.locks import IngestLock, ingest_lock
from kbcore.types import (
    STATE_DELETING,
    STATE_OK,
    STATE_WRITING,
    Chunk,
    DocRecord,
    Filters,
    date_number,
)

log = logging.getLogger(__name__)

_DOCS_PER_GET = 200  # documents per get() by doc id: a few hundred chunks a page

StepHook = Callable[[str], None]
T = TypeVar("T")
# A reopened embedded store's previous client is stopped this long after: no read lasts that long.
_STOP_AFTER_SECONDS = 60.0


@dataclass(frozen=True)
class IndexedChunk:
    """What the ingest pipeline hands the store for one chunk."""

    chunk: Chunk
    vector: np.ndarray
    tokens: Sequence[str]
    input_hash: str  # of the exact text the vector embeds


def source_keys(source: str) -> list[str]:
    """What a ``source`` filter matches a document by: its source, and for a URL its host and the
    host's parent domains ("https://www.gov.cn/a.html" -> that, "www.gov.cn", "gov.cn")."""
    if not source:
        return []
    keys = [source]
    host = urlparse(source).hostname if source.startswith(("http://", "https://")) else None
    if host:
        labels = host.split(".")
        keys += [".".join(labels[i:]) for i in range(len(labels) - 1)] or [host]
    return list(dict.fromkeys(keys))


def filter_keys(record: DocRecord) -> dict:
    """The metadata ``filter_where`` reads, for a document's manifest entry and each of its
    chunks alike. None (not an empty list, which Chroma refuses) deletes a key on upsert."""
    return {
        "regions": list(record.regions) or None,
        "date_number": date_number(record.date) if record.date else None,
        "source_keys": source_keys(record.source) or None,
    }


def filter_where(filters: Filters | None) -> dict | None:
    """``filters`` as a Chroma ``where`` over ``filter_keys`` (None: no restriction). The region
    is matched as given: the caller resolves it to a full gazetteer name first."""
    if not filters:
        return None
    clauses: list[dict] = []
    if filters.region:
        clauses.append({"regions": {"$contains": filters.region}})
    if filters.date_from:
        clauses.append({"date_number": {"$gte": date_number(filters.date_from)}})
    if filters.date_to:
        clauses.append({"date_number": {"$lte": date_number(filters.date_to)}})
    if filters.source:
        clauses.append({"source_keys": {"$contains": filters.source}})
    return _all_of(clauses)


def _all_of(clauses: list[dict]) -> dict | None:
    """Chroma's ``$and`` needs two clauses or more."""
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def _chunk_metadata(item: IndexedChunk, record: DocRecord) -> dict:
    c = item.chunk
    meta = {
        "doc_id": c.doc_id,
        "ordinal": c.ordinal,
        "start": c.start,
        "end": c.end,
        "title": c.title,
        "section": c.section,
        "source": c.source,
        "input_hash": item.input_hash,
        "tokens": " ".join(item.tokens),
        # Always present: upsert merges metadata, and None is how a stale date gets deleted.
        "date": c.date or None,
    }
    return meta | filter_keys(record)


def chunk_from_record(text: str, meta: dict) -> Chunk:
    """The chunk a Chroma record holds (``_chunks_of`` leaves out records deleted meanwhile)."""
    return Chunk(
        doc_id=meta["doc_id"],
        ordinal=int(meta["ordinal"]),
        text=text,
        start=int(meta["start"]),
        end=int(meta["end"]),
        title=meta.get("title", ""),
        section=meta.get("section", ""),
        date=meta.get("date"),
        source=meta.get("source", ""),
    )


def _chunks_of(ids: Sequence[str], texts: Sequence, metas: Sequence) -> Iterator[tuple[str, Chunk]]:
    """(chunk id, chunk) of records read from Chroma, without those deleted since the reader's
    vector index was loaded: an embedded store's stale index still returns their ids, with no
    text or metadata (module docstring, "Other processes' writes")."""
    for chunk_id, text, meta in zip(ids, texts, metas):
        if text is not None and meta is not None:
            yield chunk_id, chunk_from_record(text, meta)


class ChunkStore:
    def __init__(self, client, *, collection_prefix: str, embedder_name: str, dim: int):
        self.embedder_name = embedder_name
        self.dim = dim
        self.collection_prefix = collection_prefix
        self.location = describe_location(client)
        self._stop_client: Callable[[], None] | None = None  # of the client _reopen last opened
        self._reopen_lock = threading.Lock()
        self._open(client)
        self._seen_revision = self._read(self._current_revision)

    def _open(self, client) -> None:
        base = collection_base(self.collection_prefix, self.embedder_name)
        embedder_name, dim = self.embedder_name, self.dim
        # embedding_function=None: we always pass vectors, and Chroma's default function
        # would try to download a model the first time something forgot to.
        chunks = client.get_or_create_collection(
            f"{base}-chunks",
            configuration={"hnsw": {"space": "cosine"}},
            metadata=store_layout.stamp(embedder_name, dim),
            embedding_function=None,
        )
        stored = dict(chunks.metadata or {})
        if stored.get("embedder") != embedder_name or int(stored.get("dim", dim)) != dim:
            raise RuntimeError(
                f"collection {base}-chunks was built by {stored.get('embedder')!r} "
                f"(dim {stored.get('dim')}), not {embedder_name!r} (dim {dim})"
            )
        store_layout.check(chunks, stored, client=client, location=self.location, collection_prefix=self.collection_prefix)
        docs = client.get_or_create_collection(f"{base}-docs", metadata={"revision": "new"}, embedding_function=None)
        # Swapped in together: reads running meanwhile finish on the previous view.
        self._chunks, self._docs, self._client, self._docs_name = chunks, docs, client, f"{base}-docs"

    def _reopen(self) -> None:
        """Read the store as it is now (module docstring, "Other processes' writes"): an
        embedded store through a fresh client, and on either kind the collections looked up
        again by name (``--reindex`` drops and recreates them). A client this store opened
        before is stopped once the reads still running on it are long done."""
        # One at a time: two requests noticing one change must not each install a client and
        # schedule the stop of the one the other installed.
        with self._reopen_lock:
            if not is_embedded(self._client):
                self._open(self._client)
                return
            client, stop = fresh_client(self._client)
            self._open(client)
            previous, self._stop_client = self._stop_client, stop
        if previous is not None:  # never the client the store was given: others share that one
            timer = threading.Timer(_STOP_AFTER_SECONDS, previous)
            timer.daemon = True
            timer.start()

    def _read(self, read: Callable[[], T], *, meanwhile: Callable[[], T] | None = None) -> T:
        """``read()``, tried once more on a reopened store when it failed on a stale view; when
        that fails too (another process is still writing a collection it just created:
        ``--reindex``), ``meanwhile()`` if given."""
        try:
            return read()
        except Exception as exc:
            if not is_stale_view(exc):
                raise
            log.info("%s changed under this process (%s); reopening it", self.location, exc)
        self._reopen()
        try:
            return read()
        except Exception as exc:
            if meanwhile is None or not is_stale_view(exc):
                raise
            log.warning("%s is being rewritten by another process (%s); reading around it", self.location, exc)
            return meanwhile()

    # --- reading -------------------------------------------------------------------------
    def _current_revision(self) -> str:
        docs = self._client.get_collection(self._docs_name, embedding_function=None)
        return f"{docs.id}:{docs.metadata['revision']}"

    def revision(self) -> str:
        """Changes whenever the content changes; lets other processes notice writes. It names
        the collection too: a store dropped and rebuilt never repeats an old revision. A change
        this process did not write reopens an embedded store (module docstring), so what is
        read next, vectors included, is the store the revision names."""
        revision = self._read(self._current_revision)
        if revision != self._seen_revision:
            if is_embedded(self._client):
                self._reopen()
            self._seen_revision = revision
        return revision

    def chunk_count(self) -> int:
        return self._read(lambda: self._chunks.count())

    def doc_count(self) -> int:
        return self._read(lambda: self._docs.count())

    def doc_records(self) -> dict[str, DocRecord]:
        return self._read(self._doc_records)

    def _doc_records(self) -> dict[str, DocRecord]:
        records: dict[str, DocRecord] = {}
        for offset in range(0, self._docs.count(), PAGE):
            page = self._docs.get(include=["metadatas"], limit=PAGE, offset=offset)
            for doc_id, meta in zip(page["ids"], page["metadatas"]):
                records[doc_id] = DocRecord.from_metadata(doc_id, meta)
        return records

    def vectors_by_input_hash(self, input_hashes: Collection[str]) -> dict[str, np.ndarray]:
        """Stored vectors whose embedding input has one of these hashes (one per hash)."""
        found: dict[str, np.ndarray] = {}
        wanted = list(dict.fromkeys(input_hashes))
        for start in range(0, len(wanted), PAGE):
            got = self._chunks.get(
                where={"input_hash": {"$in": wanted[start : start + PAGE]}}, include=["metadatas", "embeddings"]
            )
            for meta, vec in zip(got["metadatas"], got["embeddings"]):
                found.setdefault(meta["input_hash"], np.asarray(vec, dtype=np.float32))
        return found

    def iter_lexical_rows(self, doc_ids: Sequence[str] | None = None) -> Iterator[tuple[str, str]]:
        """(chunk id, space-joined tokens) for every chunk, or for these documents' chunks."""
        self._read(lambda: self._chunks.count())  # a dropped collection reopened before the pages
        if doc_ids is None:
            total = self._chunks.count()
            for offset in range(0, total, PAGE):
                page = self._chunks.get(include=["metadatas"], limit=PAGE, offset=offset)
                for chunk_id, meta in zip(page["ids"], page["metadatas"]):
                    yield chunk_id, meta.get("tokens", "")
            return
        ids = list(doc_ids)
        for start in range(0, len(ids), _DOCS_PER_GET):
            page = self._chunks.get(where={"doc_id": {"$in": ids[start : start + _DOCS_PER_GET]}}, include=["metadatas"])
            for chunk_id, meta in zip(page["ids"], page["metadatas"]):
                yield chunk_id, meta.get("tokens", "")

    def lexical_snapshot_path(self, cache_dir: Path) -> Path:
        """Where this store's BM25 corpus (``kbcore.lexical.LexicalCorpus``) is saved: inside an
        embedded store's directory, so it goes where the store goes; under ``cache_dir``, per
        server and collection, for a Chroma server (every app host keeps its own)."""
        base = collection_base(self.collection_prefix, self.embedder_name)
        settings = self._client.get_settings()
        if settings.is_persistent and settings.persist_directory:
            return Path(settings.persist_directory) / f"{base}-bm25.npz"
        return Path(cache_dir) / f"{slug(self.location.split('://', 1)[-1])}-{base}-bm25.npz"

    def get_chunks(self, chunk_ids: Sequence[str]) -> dict[str, Chunk]:
        if not chunk_ids:
            return {}
        got = self._read(lambda: self._chunks.get(ids=list(chunk_ids), include=["metadatas", "documents"]))
        return dict(_chunks_of(got["ids"], got["documents"], got["metadatas"]))

    def first_chunks(self, limit: int) -> list[Chunk]:
        """Up to ``limit`` chunks in the store's own order (one read, however large the store):
        a sample of what it holds, for example questions."""
        got = self._read(lambda: self._chunks.get(include=["metadatas", "documents"], limit=limit))
        return [chunk for _, chunk in _chunks_of(got["ids"], got["documents"], got["metadatas"])]

    def doc_ids(self, where: dict) -> set[str]:
        """The documents whose manifest entry matches ``where`` (``filter_where``)."""
        return self._read(lambda: self._doc_ids(where))

    def _doc_ids(self, where: dict) -> set[str]:
        found: set[str] = set()
        offset = 0
        while True:
            page = self._docs.get(where=where, include=[], limit=PAGE, offset=offset)["ids"]
            found.update(page)
            if len(page) < PAGE:
                return found
            offset += PAGE

    def query(
        self, vector: np.ndarray, k: int, *, exclude_docs: Collection[str] = (), where: dict | None = None
    ) -> list[tuple[Chunk, float]]:
        """Nearest chunks by cosine similarity, best first; only chunks matching ``where``
        (``filter_where``), Chroma filtering before it ranks. Chroma returns fewer than ``k``
        when the collection holds fewer, so nothing counts it first: a count is a round trip
        that grows with the collection (14 ms at 180k chunks through `chroma run`, against a
        2 ms top-40)."""
        if k < 1:
            return []
        exclusion = [{"doc_id": {"$nin": list(exclude_docs)}}] if exclude_docs else []
        res = self._read(lambda: self._chunks.query(
            query_embeddings=[np.asarray(vector, dtype=np.float32).tolist()],
            n_results=k,
            where=_all_of([*exclusion, *([where] if where else [])]),
            include=["metadatas", "documents", "distances"],
        ), meanwhile=lambda: {"ids": [[]], "documents": [[]], "metadatas": [[]], "distances": [[]]})
        similarity = {cid: 1.0 - float(dist) for cid, dist in zip(res["ids"][0], res["distances"][0])}
        return [
            (chunk, similarity[cid])
            for cid, chunk in _chunks_of(res["ids"][0], res["documents"][0], res["metadatas"][0])
        ]

    # --- writing -------------------------------------------------------------------------
    def write_documents(
        self, docs: Sequence[tuple[DocRecord, Sequence[IndexedChunk]]], on_step: StepHook | None = None
    ) -> None:
        """Replace these documents' chunks and manifest entries in the crash-safe order of the
        module docstring; ``on_step`` is called after each step with its name
        ("manifest_pending", "chunks_written", "stale_deleted", "manifest_written")."""
        if not docs:
            return
        step = on_step or (lambda _name: None)
        records = [record for record, _ in docs]
        self._upsert_manifest([replace(r, state=STATE_WRITING) for r in records])
        step("manifest_pending")
        items = [(item, record) for record, chunk_items in docs for item in chunk_items]
        for start in range(0, len(items), PAGE):
            batch = items[start : start + PAGE]
            self._chunks.upsert(
                ids=[i.chunk.chunk_id for i, _ in batch],
                embeddings=[np.asarray(i.vector, dtype=np.float32).tolist() for i, _ in batch],
                documents=[i.chunk.text for i, _ in batch],
                metadatas=[_chunk_metadata(i, record) for i, record in batch],
            )
        step("chunks_written")
        # One delete for the batch: per-document calls cost a round trip each on a server.
        stale = [{"$and": [{"doc_id": r.doc_id}, {"ordinal": {"$gte": r.chunk_count}}]} for r in records]
        for start in range(0, len(stale), 100):
            part = stale[start : start + 100]
            self._chunks.delete(where=part[0] if len(part) == 1 else {"$or": part})
        step("stale_deleted")
        self._bump_revision()
        self._upsert_manifest([replace(r, state=STATE_OK) for r in records])
        step("manifest_written")

    def delete_documents(self, doc_ids: Sequence[str], on_step: StepHook | None = None) -> None:
        """Remove documents and their chunks, crash-safely (module docstring); ``on_step`` as in
        ``write_documents`` ("removal_marked", "chunks_deleted", "documents_removed")."""
        ids = list(dict.fromkeys(doc_ids))
        if not ids:
            return
        step = on_step or (lambda _name: None)
        known = self._docs.get(ids=ids, include=[])["ids"]
        if known:
            # update() merges metadata: only the state changes.
            self._docs.update(ids=known, metadatas=[{"state": STATE_DELETING} for _ in known])
        step("removal_marked")
        # Also ids without an entry: chunks a pre-manifest-state crash may have orphaned.
        self._chunks.delete(where={"doc_id": {"$in": ids}})
        step("chunks_deleted")
        self._bump_revision()
        self._docs.delete(ids=ids)
        step("documents_removed")

    def record_origins(self, origins: dict[str, str]) -> None:
        """Set the ``origin`` of these manifest entries (doc id -> origin), nothing else: for
        entries written before the ingest compared origins. One idempotent merge, so it needs
        no step order, and the content (hence the revision) is unchanged."""
        ids = list(origins)
        for start in range(0, len(ids), PAGE):
            part = ids[start : start + PAGE]
            self._docs.update(ids=part, metadatas=[{"origin": origins[doc_id]} for doc_id in part])

    def _upsert_manifest(self, records: Sequence[DocRecord]) -> None:
        self._docs.upsert(
            ids=[r.doc_id for r in records],
            embeddings=[PLACEHOLDER_VECTOR for _ in records],
            metadatas=[r.to_metadata() | filter_keys(r) for r in records],
        )

    def _bump_revision(self) -> None:
        # A random token rather than a counter: two writers can't produce the same value.
        token = uuid.uuid4().hex
        self._docs.modify(metadata={"revision": token})
        self._seen_revision = f"{self._docs.id}:{token}"  # this process's own write: nothing to reopen

    def ingest_lock(self) -> IngestLock:
        return ingest_lock(self._client, collection_prefix=self.collection_prefix, embedder_name=self.embedder_name)
