"""The index: chunks, their vectors and a document manifest, all kept in Chroma.

Chroma is the single source of truth so that several app processes sharing one Chroma
server agree on what the knowledge base holds:

* ``<prefix>-<embedder>-chunks``: one record per chunk (id ``doc_id#ordinal``), its vector, its
  text, and metadata (offsets, title, section, date, source, the jieba tokens the BM25 index
  is rebuilt from, and the chunk's content hash so unchanged chunks keep their vectors).
* ``<prefix>-<embedder>-docs``: one record per document (content hash, origin, chunk count).
  Chroma needs a vector per record; these carry a constant 1-d placeholder.

Both collections are named after the embedder, so vectors of different models never mix and
switching models re-embeds into a fresh collection instead of corrupting the old one.

Writes are ordered chunks -> stale-chunk delete -> manifest, so a crash at any point leaves
a document whose manifest entry is missing or outdated, and the next ingest redoes it with
the same deterministic ids: the result equals a clean run's.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from kbqa.types import Chunk

_PLACEHOLDER_VECTOR = [1.0]
_PAGE = 2000  # records per Chroma get() page; well under Chroma's max batch size


@dataclass(frozen=True)
class DocRecord:
    doc_id: str
    content_hash: str
    origin: str
    title: str
    source: str
    date: str | None
    chunk_count: int

    def to_metadata(self) -> dict:
        meta = {
            "content_hash": self.content_hash,
            "origin": self.origin,
            "title": self.title,
            "source": self.source,
            "chunk_count": self.chunk_count,
        }
        if self.date:
            meta["date"] = self.date
        return meta

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
    }
    if c.date:
        meta["date"] = c.date
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
        return chromadb.HttpClient(
            host=url.hostname or "127.0.0.1",
            port=url.port or (443 if url.scheme == "https" else 8000),
            ssl=url.scheme == "https",
            settings=chroma_settings,
        )
    if store_dir is None:
        raise ValueError("either store_dir or chroma_url is required")
    Path(store_dir).mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(store_dir), settings=chroma_settings)


class ChunkStore:
    def __init__(self, client, *, collection_prefix: str, embedder_name: str, dim: int):
        base = f"{collection_prefix}-{_slug(embedder_name)}"
        self.embedder_name = embedder_name
        self.dim = dim
        # embedding_function=None: we always pass vectors, and Chroma's default function
        # would try to download a model the first time something forgot to.
        self._chunks = client.get_or_create_collection(
            f"{base}-chunks",
            configuration={"hnsw": {"space": "cosine"}},
            metadata={"embedder": embedder_name, "dim": dim},
            embedding_function=None,
        )
        self._docs = client.get_or_create_collection(
            f"{base}-docs", metadata={"revision": "new"}, embedding_function=None
        )
        stored = self._chunks.metadata or {}
        if stored.get("embedder") != embedder_name or int(stored.get("dim", dim)) != dim:
            raise RuntimeError(
                f"collection {base}-chunks was built by {stored.get('embedder')!r} "
                f"(dim {stored.get('dim')}), not {embedder_name!r} (dim {dim})"
            )
        self._client = client
        self._docs_name = f"{base}-docs"

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

    def query(self, vector: np.ndarray, k: int) -> list[tuple[Chunk, float]]:
        """Nearest chunks by cosine similarity, best first."""
        n = min(k, self._chunks.count())
        if n == 0:
            return []
        res = self._chunks.query(
            query_embeddings=[np.asarray(vector, dtype=np.float32).tolist()],
            n_results=n,
            include=["metadatas", "documents", "distances"],
        )
        return [
            (chunk_from_record(text, meta), 1.0 - float(dist))
            for text, meta, dist in zip(res["documents"][0], res["metadatas"][0], res["distances"][0])
        ]

    # --- writing -------------------------------------------------------------------------
    def write_documents(self, docs: Sequence[tuple[DocRecord, Sequence[IndexedChunk]]]) -> None:
        """Replace these documents' chunks and manifest entries (see module doc for ordering)."""
        items = [item for _, chunk_items in docs for item in chunk_items]
        if items:
            for start in range(0, len(items), _PAGE):
                batch = items[start : start + _PAGE]
                self._chunks.upsert(
                    ids=[i.chunk.chunk_id for i in batch],
                    embeddings=[np.asarray(i.vector, dtype=np.float32).tolist() for i in batch],
                    documents=[i.chunk.text for i in batch],
                    metadatas=[_chunk_metadata(i) for i in batch],
                )
        for record, _ in docs:
            self._chunks.delete(
                where={"$and": [{"doc_id": record.doc_id}, {"ordinal": {"$gte": record.chunk_count}}]}
            )
        self._docs.upsert(
            ids=[r.doc_id for r, _ in docs],
            embeddings=[_PLACEHOLDER_VECTOR for _ in docs],
            metadatas=[r.to_metadata() for r, _ in docs],
        )
        self._bump_revision()

    def delete_documents(self, doc_ids: Sequence[str]) -> None:
        if not doc_ids:
            return
        ids = list(doc_ids)
        self._chunks.delete(where={"doc_id": {"$in": ids}})
        self._docs.delete(ids=ids)
        self._bump_revision()

    def _bump_revision(self) -> None:
        # A random token rather than a counter: two writers can't produce the same value.
        self._docs.modify(metadata={"revision": uuid.uuid4().hex})
