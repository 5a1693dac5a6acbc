"""The index: chunks, their vectors and a document manifest, all kept in Chroma.

Chroma is the single source of truth so that several app processes sharing one Chroma
server agree on what the knowledge base holds:

* ``<prefix>-<embedder>-chunks``: one record per chunk (id ``doc_id#ordinal``), its vector, its
  text, and metadata (offsets, title, section, date, source, the jieba tokens the BM25 index
  is rebuilt from, and the chunk's content hash so unchanged chunks keep their vectors). Its
  collection metadata carries the layout's ``schema_version``.
* ``<prefix>-<embedder>-docs``: one record per document (content hash, origin, chunk count and
  a ``state``). Chroma needs a vector per record; these carry a constant 1-d placeholder.
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
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from kbqa.types import Chunk

log = logging.getLogger(__name__)

_PLACEHOLDER_VECTOR = [1.0]
_PAGE = 2000  # records per Chroma get() page; well under Chroma's max batch size

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
    def from_metadata(cls, doc_id: str, meta: dict) -> "DocRecord":
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


@dataclass(frozen=True)
class IndexedChunk:
    """What the ingest pipeline hands the store for one chunk."""

    chunk: Chunk
    vector: np.ndarray
    tokens: Sequence[str]


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
        "text_hash": c.text_hash,
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
            f"  [--embedder <the embedder it was built with>]",
            found=found, expected=SCHEMA_VERSION, location=self.location,
        )

    # --- reading -------------------------------------------------------------------------
    def revision(self) -> str:
        """Changes whenever the content changes; lets other processes notice writes."""
        return str(self._client.get_collection(self._docs_name, embedding_function=None).metadata["revision"])

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

    def vectors_by_text_hash(self, doc_ids: Sequence[str]) -> dict[str, np.ndarray]:
        """Existing vectors of these documents' chunks, keyed by chunk content hash."""
        if not doc_ids:
            return {}
        got = self._chunks.get(where={"doc_id": {"$in": list(doc_ids)}}, include=["metadatas", "embeddings"])
        return {
            meta["text_hash"]: np.asarray(vec, dtype=np.float32)
            for meta, vec in zip(got["metadatas"], got["embeddings"])
        }

    def iter_lexical_rows(self) -> Iterator[tuple[str, str]]:
        """(chunk id, space-joined tokens) for every chunk, in pages."""
        total = self._chunks.count()
        for offset in range(0, total, _PAGE):
            page = self._chunks.get(include=["metadatas"], limit=_PAGE, offset=offset)
            for chunk_id, meta in zip(page["ids"], page["metadatas"]):
                yield chunk_id, meta.get("tokens", "")

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

    def _upsert_manifest(self, records: Sequence[DocRecord]) -> None:
        self._docs.upsert(
            ids=[r.doc_id for r in records],
            embeddings=[_PLACEHOLDER_VECTOR for _ in records],
            metadatas=[r.to_metadata() for r in records],
        )

    def _bump_revision(self) -> None:
        # A random token rather than a counter: two writers can't produce the same value.
        self._docs.modify(metadata={"revision": uuid.uuid4().hex})
