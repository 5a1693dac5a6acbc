"""The index: chunks, their vectors and a document manifest, all kept in Chroma.

Chroma is the single source of truth so that several app processes sharing one Chroma
server agree on what the knowledge base holds:

* ``<prefix>-<embedder>-chunks``: one record per chunk (id ``doc_id#ordinal``), its vector, its
  text, and metadata (offsets, title, section, date, source, the jieba tokens the BM25 index
  is built from, and the hash of the chunk's embedding input, so a chunk whose input was
  embedded before, in this document or any other, reuses that vector). Its
  collection metadata carries the layout's ``schema_version``.
* ``<prefix>-<embedder>-docs``: one record per document (content hash, origin, chunk count and
  a ``state``). Chroma needs a vector per record; these carry a constant 1-d placeholder. The
  origin (absolute file path, the ``.jsonl`` file of a corpus line, or the URL) is what the
  ingest checks before replacing a document: an id held by another origin is never overwritten.
* ``<prefix>-<embedder>-lock`` (Chroma server only): the lease that keeps two ingests apart;
  an embedded store uses a file lock in its directory instead (``ingest_lock``).

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
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlparse

import numpy as np

from kbqa.types import Chunk

log = logging.getLogger(__name__)

_PLACEHOLDER_VECTOR = [1.0]
_PAGE = 2000  # records per Chroma get() page; well under Chroma's max batch size
_DOCS_PER_GET = 200  # documents per get() by doc id: a few hundred chunks a page

# Layout of the collections this code writes. Bump it when a change makes old records
# unreadable or wrong, and either list the old version in _STAMP_ONLY_VERSIONS (when the old
# records stay valid) or let SchemaVersionError send the user to ``--reindex``.
SCHEMA_VERSION = 1
# 0 = stores written before the stamp existed: identical records, and a manifest entry
# without ``state`` reads as "ok".
_STAMP_ONLY_VERSIONS = frozenset({0})

# Manifest entry states (see the module docstring).
STATE_OK = "ok"
STATE_WRITING = "writing"
STATE_DELETING = "deleting"

StepHook = Callable[[str], None]


class SchemaVersionError(RuntimeError):
    """The store's collections were written with a layout this code can't read."""

    def __init__(self, message: str, *, found: int, expected: int, location: str):
        super().__init__(message)
        self.found = found
        self.expected = expected
        self.location = location


class StoreUnavailableError(RuntimeError):
    """The Chroma server can't be reached."""


class IngestLockError(RuntimeError):
    """Another ingest holds the store's ingest lock (or this one lost it)."""


@dataclass(frozen=True)
class DocRecord:
    doc_id: str
    content_hash: str
    origin: str
    title: str
    source: str
    date: str | None
    chunk_count: int
    state: str = STATE_OK  # "writing"/"deleting": an interrupted write the next ingest finishes

    def to_metadata(self) -> dict:
        # Chroma's upsert merges metadata into an existing record; None deletes a key, so a
        # document that lost its date doesn't keep the old one.
        return {
            "content_hash": self.content_hash,
            "origin": self.origin,
            "title": self.title,
            "source": self.source,
            "chunk_count": self.chunk_count,
            "date": self.date or None,
            "state": self.state,
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
        )

    @property
    def signature(self) -> str:
        """Changes whenever the document's chunks may have changed (the BM25 sync's key)."""
        return f"{self.state}:{self.content_hash}"


@dataclass(frozen=True)
class IndexedChunk:
    """What the ingest pipeline hands the store for one chunk."""

    chunk: Chunk
    vector: np.ndarray
    tokens: Sequence[str]
    input_hash: str  # of the exact text the vector embeds


def _chunk_metadata(item: IndexedChunk) -> dict:
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
    return meta


def chunk_from_record(text: str, meta: dict) -> Chunk:
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


def _slug(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9._-]+", "-", name).strip("-.")[:40] or "default"


def connect(store_dir: Path | None, chroma_url: str | None):
    """A Chroma client: a server when ``chroma_url`` is set, else an embedded on-disk store."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if chroma_url:
        url = urlparse(chroma_url)
        try:
            return chromadb.HttpClient(
                host=url.hostname or "127.0.0.1",
                port=url.port or (443 if url.scheme == "https" else 8000),
                ssl=url.scheme == "https",
                settings=chroma_settings,
            )
        except ValueError as exc:  # chromadb's way of saying the heartbeat failed
            if "connect" not in str(exc).lower():
                raise
            raise StoreUnavailableError(f"cannot reach the Chroma server at {chroma_url}: {exc}") from exc
    if store_dir is None:
        raise ValueError("either store_dir or chroma_url is required")
    Path(store_dir).mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(store_dir), settings=chroma_settings)


def collection_base(collection_prefix: str, embedder_name: str) -> str:
    return f"{collection_prefix}-{_slug(embedder_name)}"


def describe_location(client) -> str:
    """The store as a user names it: the embedded directory or the server URL."""
    settings = client.get_settings()
    if settings.is_persistent and settings.persist_directory:
        return str(settings.persist_directory)
    scheme = "https" if settings.chroma_server_ssl_enabled else "http"
    return f"{scheme}://{settings.chroma_server_host}:{settings.chroma_server_http_port}"


def _store_flag(client) -> str:
    settings = client.get_settings()
    flag = "--store" if settings.is_persistent and settings.persist_directory else "--chroma-url"
    return f"{flag} {describe_location(client)}"


class ChunkStore:
    def __init__(self, client, *, collection_prefix: str, embedder_name: str, dim: int):
        base = collection_base(collection_prefix, embedder_name)
        self.embedder_name = embedder_name
        self.dim = dim
        self.collection_prefix = collection_prefix
        self.location = describe_location(client)
        # embedding_function=None: we always pass vectors, and Chroma's default function
        # would try to download a model the first time something forgot to.
        self._chunks = client.get_or_create_collection(
            f"{base}-chunks",
            configuration={"hnsw": {"space": "cosine"}},
            metadata={"embedder": embedder_name, "dim": dim, "schema_version": SCHEMA_VERSION},
            embedding_function=None,
        )
        stored = dict(self._chunks.metadata or {})
        if stored.get("embedder") != embedder_name or int(stored.get("dim", dim)) != dim:
            raise RuntimeError(
                f"collection {base}-chunks was built by {stored.get('embedder')!r} "
                f"(dim {stored.get('dim')}), not {embedder_name!r} (dim {dim})"
            )
        self._check_schema(client, f"{base}-chunks", stored)
        self._docs = client.get_or_create_collection(
            f"{base}-docs", metadata={"revision": "new"}, embedding_function=None
        )
        self._client = client
        self._docs_name = f"{base}-docs"

    def _check_schema(self, client, name: str, stored: dict) -> None:
        found = int(stored.get("schema_version", 0))
        if found == SCHEMA_VERSION:
            return
        if found > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"collection {name} in {self.location} has schema version {found}, written by a newer kbqa; "
                f"this one reads version {SCHEMA_VERSION}: upgrade kbqa",
                found=found, expected=SCHEMA_VERSION, location=self.location,
            )
        if found in _STAMP_ONLY_VERSIONS:
            # modify() replaces the metadata, so carry the embedder/dim stamp over. Racing
            # openers write the same value, so this needs no lock.
            self._chunks.modify(metadata={**stored, "schema_version": SCHEMA_VERSION})
            log.info("stamped %s with schema version %d (was %d)", name, SCHEMA_VERSION, found)
            return
        prefix = "" if self.collection_prefix == "kb" else f"KB_COLLECTION={self.collection_prefix} "
        raise SchemaVersionError(
            f"collection {name} in {self.location} has schema version {found}; this kbqa needs version "
            f"{SCHEMA_VERSION} and can't migrate it in place. Rebuild it from the documents' sources "
            f"(nothing is changed until you do):\n  {prefix}python -m ingest --reindex {_store_flag(client)}"
            f"  (plus the --embedder and chunking flags you ingest with)",
            found=found, expected=SCHEMA_VERSION, location=self.location,
        )

    # --- reading -------------------------------------------------------------------------
    def revision(self) -> str:
        """Changes whenever the content changes; lets other processes notice writes. It names
        the collection too: a store dropped and rebuilt never repeats an old revision."""
        docs = self._client.get_collection(self._docs_name, embedding_function=None)
        return f"{docs.id}:{docs.metadata['revision']}"

    def chunk_count(self) -> int:
        return self._chunks.count()

    def doc_count(self) -> int:
        return self._docs.count()

    def doc_records(self) -> dict[str, DocRecord]:
        records: dict[str, DocRecord] = {}
        for offset in range(0, self._docs.count(), _PAGE):
            page = self._docs.get(include=["metadatas"], limit=_PAGE, offset=offset)
            for doc_id, meta in zip(page["ids"], page["metadatas"]):
                records[doc_id] = DocRecord.from_metadata(doc_id, meta)
        return records

    def vectors_by_input_hash(self, input_hashes: Collection[str]) -> dict[str, np.ndarray]:
        """Stored vectors whose embedding input has one of these hashes (one per hash)."""
        found: dict[str, np.ndarray] = {}
        wanted = list(dict.fromkeys(input_hashes))
        for start in range(0, len(wanted), _PAGE):
            got = self._chunks.get(
                where={"input_hash": {"$in": wanted[start : start + _PAGE]}}, include=["metadatas", "embeddings"]
            )
            for meta, vec in zip(got["metadatas"], got["embeddings"]):
                found.setdefault(meta["input_hash"], np.asarray(vec, dtype=np.float32))
        return found

    def iter_lexical_rows(self, doc_ids: Sequence[str] | None = None) -> Iterator[tuple[str, str]]:
        """(chunk id, space-joined tokens) for every chunk, or for these documents' chunks."""
        if doc_ids is None:
            total = self._chunks.count()
            for offset in range(0, total, _PAGE):
                page = self._chunks.get(include=["metadatas"], limit=_PAGE, offset=offset)
                for chunk_id, meta in zip(page["ids"], page["metadatas"]):
                    yield chunk_id, meta.get("tokens", "")
            return
        ids = list(doc_ids)
        for start in range(0, len(ids), _DOCS_PER_GET):
            page = self._chunks.get(where={"doc_id": {"$in": ids[start : start + _DOCS_PER_GET]}}, include=["metadatas"])
            for chunk_id, meta in zip(page["ids"], page["metadatas"]):
                yield chunk_id, meta.get("tokens", "")

    def lexical_snapshot_path(self, cache_dir: Path) -> Path:
        """Where this store's BM25 corpus (``kbqa.lexical.LexicalCorpus``) is saved: inside an
        embedded store's directory, so it goes where the store goes; under ``cache_dir``, per
        server and collection, for a Chroma server (every app host keeps its own)."""
        base = collection_base(self.collection_prefix, self.embedder_name)
        settings = self._client.get_settings()
        if settings.is_persistent and settings.persist_directory:
            return Path(settings.persist_directory) / f"{base}-bm25.npz"
        return Path(cache_dir) / f"{_slug(self.location.split('://', 1)[-1])}-{base}-bm25.npz"

    def get_chunks(self, chunk_ids: Sequence[str]) -> dict[str, Chunk]:
        if not chunk_ids:
            return {}
        got = self._chunks.get(ids=list(chunk_ids), include=["metadatas", "documents"])
        return {
            cid: chunk_from_record(text, meta)
            for cid, text, meta in zip(got["ids"], got["documents"], got["metadatas"])
        }

    def query(self, vector: np.ndarray, k: int, *, exclude_docs: Collection[str] = ()) -> list[tuple[Chunk, float]]:
        """Nearest chunks by cosine similarity, best first."""
        n = min(k, self._chunks.count())
        if n == 0:
            return []
        res = self._chunks.query(
            query_embeddings=[np.asarray(vector, dtype=np.float32).tolist()],
            n_results=n,
            where={"doc_id": {"$nin": list(exclude_docs)}} if exclude_docs else None,
            include=["metadatas", "documents", "distances"],
        )
        return [
            (chunk_from_record(text, meta), 1.0 - float(dist))
            for text, meta, dist in zip(res["documents"][0], res["metadatas"][0], res["distances"][0])
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
        items = [item for _, chunk_items in docs for item in chunk_items]
        for start in range(0, len(items), _PAGE):
            batch = items[start : start + _PAGE]
            self._chunks.upsert(
                ids=[i.chunk.chunk_id for i in batch],
                embeddings=[np.asarray(i.vector, dtype=np.float32).tolist() for i in batch],
                documents=[i.chunk.text for i in batch],
                metadatas=[_chunk_metadata(i) for i in batch],
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
        for start in range(0, len(ids), _PAGE):
            part = ids[start : start + _PAGE]
            self._docs.update(ids=part, metadatas=[{"origin": origins[doc_id]} for doc_id in part])

    def _upsert_manifest(self, records: Sequence[DocRecord]) -> None:
        self._docs.upsert(
            ids=[r.doc_id for r in records],
            embeddings=[_PLACEHOLDER_VECTOR for _ in records],
            metadatas=[r.to_metadata() for r in records],
        )

    def _bump_revision(self) -> None:
        # A random token rather than a counter: two writers can't produce the same value.
        self._docs.modify(metadata={"revision": uuid.uuid4().hex})

    def ingest_lock(self) -> IngestLock:
        return ingest_lock(self._client, collection_prefix=self.collection_prefix, embedder_name=self.embedder_name)


# --- the ingest lock ---------------------------------------------------------------------
# Advisory: readers never take it; every writer (the ingest pipeline, --remove, --reindex)
# does, so two ingests into one store run one after the other instead of interleaving.


@dataclass(frozen=True)
class LockHolder:
    pid: int
    host: str
    started_at: float  # unix time
    token: str = ""
    expires_at: float = 0.0  # leases only

    @classmethod
    def mine(cls, ttl: float = 0.0) -> LockHolder:
        now = time.time()
        return cls(os.getpid(), socket.gethostname(), now, uuid.uuid4().hex, now + ttl if ttl else 0.0)

    @classmethod
    def from_dict(cls, data: dict | None) -> LockHolder | None:
        if not data:
            return None
        try:
            return cls(int(data["pid"]), str(data["host"]), float(data["started_at"]), str(data.get("token", "")),
                       float(data.get("expires_at", 0.0)))
        except (TypeError, KeyError, ValueError):
            return None

    def to_dict(self) -> dict[str, Any]:
        return {"pid": self.pid, "host": self.host, "started_at": self.started_at, "token": self.token,
                "expires_at": self.expires_at}

    def describe(self) -> str:
        when = datetime.fromtimestamp(self.started_at).astimezone().isoformat(timespec="seconds")
        return f"pid {self.pid} on host {self.host}, started at {when}"

    def is_dead_here(self) -> bool:
        """True when the holder ran on this host and its process is gone (a crashed ingest)."""
        if self.host != socket.gethostname():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False


def _locked_message(holder: LockHolder | None, location: str) -> str:
    who = f"another ingest ({holder.describe()})" if holder else "another ingest"
    return f"{who} holds the lock on {location}; retry later or pass --lock-timeout SECONDS to wait"


WaitHook = Callable[[LockHolder | None], None]


class IngestLock(ABC):
    """Exclusive right to write one store. ``acquire`` waits up to ``timeout`` seconds
    (0: fail at once) and calls ``on_wait`` once if it has to wait."""

    location: str

    @abstractmethod
    def acquire(self, timeout: float = 0.0, on_wait: WaitHook | None = None) -> None: ...

    @abstractmethod
    def release(self) -> None: ...

    def check(self) -> None:
        """Raise IngestLockError if the lock was lost (a lease that expired under us)."""

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def ingest_lock(client, *, collection_prefix: str, embedder_name: str) -> IngestLock:
    """A file lock in an embedded store's directory, a lease record on a Chroma server."""
    settings = client.get_settings()
    if settings.is_persistent and settings.persist_directory:
        return FileIngestLock(Path(settings.persist_directory))
    return LeaseIngestLock(client, collection_base(collection_prefix, embedder_name), describe_location(client))


class FileIngestLock(IngestLock):
    """``filelock`` on ``<store>/ingest.lock``; the kernel drops it when the holder dies. The
    holder describes itself in ``ingest.lock.owner`` so a waiter can say who it waits for."""

    def __init__(self, store_dir: Path):
        from filelock import FileLock

        self.location = str(store_dir)
        self._owner_path = Path(store_dir) / "ingest.lock.owner"
        self._lock = FileLock(str(Path(store_dir) / "ingest.lock"), thread_local=False)
        self._me: LockHolder | None = None

    def _holder(self) -> LockHolder | None:
        try:
            return LockHolder.from_dict(json.loads(self._owner_path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            return None

    def acquire(self, timeout: float = 0.0, on_wait: WaitHook | None = None) -> None:
        from filelock import Timeout

        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            if timeout <= 0:
                raise IngestLockError(_locked_message(self._holder(), self.location)) from None
            if on_wait is not None:
                on_wait(self._holder())
            try:
                self._lock.acquire(timeout=timeout)
            except Timeout:
                raise IngestLockError(_locked_message(self._holder(), self.location)) from None
        self._me = LockHolder.mine()
        tmp = self._owner_path.with_name(f"{self._owner_path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(self._me.to_dict()), encoding="utf-8")
        os.replace(tmp, self._owner_path)

    def release(self) -> None:
        if self._me is None:
            return
        holder = self._holder()
        if holder is not None and holder.token == self._me.token:
            self._owner_path.unlink(missing_ok=True)
        self._me = None
        self._lock.release()


class LeaseIngestLock(IngestLock):
    """A lease record in ``<base>-lock`` on a Chroma server, shared by every host using it.

    Chroma has no compare-and-swap, but ``add`` keeps an existing id (the first writer wins)
    and ``delete`` takes a filter, so: read; if the lease is free, or expired, or its holder
    is a dead process on this host, delete exactly that stale record and ``add`` ours; re-read
    to see whose record survived. A thread extends the lease every ``ttl / 4`` seconds; a
    holder that stops refreshing (crashed, or cut off) loses it after ``ttl`` seconds.
    """

    RECORD = "ingest"
    POLL_SECONDS = 0.5

    def __init__(self, client, base: str, location: str, *, ttl: float = 60.0):
        self.location = f"{location} (collections {base}-*)"
        self._collection = client.get_or_create_collection(f"{base}-lock", embedding_function=None)
        self.ttl = ttl
        self._me: LockHolder | None = None
        self._stop = threading.Event()
        self._refresher: threading.Thread | None = None
        self._lost: LockHolder | None = None

    def _holder(self) -> LockHolder | None:
        got = self._collection.get(ids=[self.RECORD], include=["metadatas"])
        return LockHolder.from_dict(got["metadatas"][0]) if got["ids"] else None

    def _try_take(self, me: LockHolder) -> LockHolder | None:
        """None when ``me`` now holds the lease, else the holder."""
        holder = self._holder()
        if holder is not None:
            if holder.expires_at > time.time() and not holder.is_dead_here():
                return holder
            # Only that stale record: a racer's fresh lease written meanwhile survives.
            self._collection.delete(ids=[self.RECORD], where={"token": holder.token})
        self._collection.add(ids=[self.RECORD], embeddings=[_PLACEHOLDER_VECTOR], metadatas=[me.to_dict()])
        holder = self._holder()
        return None if holder is not None and holder.token == me.token else holder

    def acquire(self, timeout: float = 0.0, on_wait: WaitHook | None = None) -> None:
        deadline = time.monotonic() + max(timeout, 0.0)
        waited = False
        while True:
            me = LockHolder.mine(self.ttl)
            holder = self._try_take(me)
            if holder is None:
                break
            if time.monotonic() >= deadline:
                raise IngestLockError(_locked_message(holder, self.location))
            if not waited and on_wait is not None:
                on_wait(holder)
            waited = True
            time.sleep(min(self.POLL_SECONDS, max(deadline - time.monotonic(), 0.0)))
        self._me, self._lost = me, None
        self._stop.clear()
        self._refresher = threading.Thread(target=self._refresh, name="ingest-lease", daemon=True)
        self._refresher.start()

    def _refresh(self) -> None:
        while not self._stop.wait(self.ttl / 4):
            me = self._me
            if me is None:
                return
            try:
                holder = self._holder()
                if holder is None or holder.token != me.token:
                    self._lost = holder or LockHolder(0, "?", time.time())
                    return
                self._collection.update(ids=[self.RECORD], metadatas=[{"expires_at": time.time() + self.ttl}])
            except Exception as exc:  # noqa: BLE001 - the writer's own next call reports a dead server
                log.warning("could not refresh the ingest lease on %s: %s", self.location, exc)

    def check(self) -> None:
        if self._lost is not None:
            raise IngestLockError(
                f"lost the ingest lock on {self.location} (it expired and {self._lost.describe()} took it); "
                "stopped so that two ingests don't write at once: re-run to finish"
            )

    def release(self) -> None:
        me, self._me = self._me, None
        self._stop.set()
        if self._refresher is not None:
            self._refresher.join(timeout=5)
            self._refresher = None
        if me is None:
            return
        try:
            self._collection.delete(ids=[self.RECORD], where={"token": me.token})
        except Exception as exc:  # noqa: BLE001 - a dead server: the lease expires, or the next ingest here sees us gone
            log.warning("could not release the ingest lease on %s: %s", self.location, exc)


# --- rebuilding after a schema change ----------------------------------------------------


def begin_reindex(client, *, collection_prefix: str, embedder_name: str) -> list[DocRecord]:
    """Drop this embedder's collections for a rebuild and return the documents they held.

    The manifest is first renamed to ``<base>-docs-reindex`` rather than dropped: it is the only
    record of where the documents came from, so it must outlive a crash mid-rebuild (a rerun
    finds it and starts over). Call ``end_reindex`` once the rebuild is done; hold the ingest
    lock throughout.
    """
    from chromadb.errors import NotFoundError

    base = collection_base(collection_prefix, embedder_name)
    plan_name = f"{base}-docs-reindex"

    def existing(name: str):
        try:
            return client.get_collection(name, embedding_function=None)
        except NotFoundError:
            return None

    plan = existing(plan_name)
    if plan is None:
        docs = existing(f"{base}-docs")
        if docs is not None:
            docs.modify(name=plan_name)
            plan = existing(plan_name)
    for name in (f"{base}-chunks", f"{base}-docs"):
        if existing(name) is not None:
            client.delete_collection(name)
    records: list[DocRecord] = []
    if plan is not None:
        for offset in range(0, plan.count(), _PAGE):
            page = plan.get(include=["metadatas"], limit=_PAGE, offset=offset)
            for doc_id, meta in zip(page["ids"], page["metadatas"]):
                # Only doc id and origin are needed, and they are in every version's layout.
                records.append(DocRecord(doc_id, "", str((meta or {}).get("origin", "")), "", "", None, 0))
    return records


def end_reindex(client, *, collection_prefix: str, embedder_name: str) -> None:
    from chromadb.errors import NotFoundError

    try:
        client.delete_collection(f"{collection_base(collection_prefix, embedder_name)}-docs-reindex")
    except NotFoundError:
        pass
