"""Incremental ingestion: sources -> cleaned documents -> chunks -> vectors + tokens -> store.

Like simonw/llm's embedding store, work is keyed by content hashes: a document whose hash
(over its cleaned text, metadata and the chunking settings) matches the manifest is skipped,
and inside a changed document every chunk whose own hash is unchanged keeps its old vector.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ingest.chunking import chunk_document
from ingest.cleaning import clean_document
from ingest.loaders import LoadFailure, iter_documents
from kbqa.embeddings import Embedder
from kbqa.lexical import tokenize
from kbqa.retrieval import index_text
from kbqa.store import ChunkStore, DocRecord, IndexedChunk
from kbqa.types import Chunk, IngestReport, content_hash

log = logging.getLogger(__name__)

# Bump when chunking or index_text changes meaning, so every document is re-indexed.
PIPELINE_VERSION = "1"


@dataclass
class _Pending:
    record: DocRecord
    chunks: list[Chunk]
    is_update: bool


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
    ):
        if chunk_overlap >= chunk_size:
            raise ValueError("chunk_overlap must be smaller than chunk_size")
        if write_batch_chunks < 1:
            raise ValueError("write_batch_chunks must be positive")
        self.store = store
        self.embedder = embedder
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap
        self.write_batch_chunks = write_batch_chunks
        self.max_bytes = max_bytes

    def run(self, inputs: Sequence[str], *, prune: bool = False, progress: bool = False) -> IngestReport:
        t0 = time.perf_counter()
        report = IngestReport()
        known = self.store.doc_records()
        pending, yielded = self._collect(inputs, known, report)
        self._index(pending, report, progress)
        if prune:
            self._prune(inputs, known, yielded, report)
        report.seconds = time.perf_counter() - t0
        return report

    def _collect(
        self, inputs: Sequence[str], known: dict[str, DocRecord], report: IngestReport
    ) -> tuple[list[_Pending], dict[str, set[str]]]:
        """Documents that need (re)indexing, and the doc ids each origin file yielded."""
        settings_hash = f"{PIPELINE_VERSION}:{self.chunk_size}:{self.chunk_overlap}"
        pending: list[_Pending] = []
        seen: set[str] = set()
        yielded: dict[str, set[str]] = {}
        for item in iter_documents(inputs, max_bytes=self.max_bytes):
            if isinstance(item, LoadFailure):
                report.failed.append((item.origin, item.reason))
                continue
            yielded.setdefault(item.origin, set()).add(item.doc_id)
            if item.doc_id in seen:
                report.failed.append((item.origin, f"duplicate document id {item.doc_id!r} in this run"))
                continue
            seen.add(item.doc_id)
            doc = clean_document(item)
            if doc is None:
                report.failed.append((item.origin, "no content left after removing site chrome"))
                continue
            chunks = chunk_document(doc, chunk_size=self.chunk_size, overlap=self.chunk_overlap)
            if not chunks:
                report.failed.append((item.origin, "no text to index"))
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
            old = known.get(doc.doc_id)
            if old is not None and old.content_hash == record.content_hash:
                report.unchanged.append(doc.doc_id)
                continue
            pending.append(_Pending(record, chunks, is_update=old is not None))
        return pending, yielded

    def _index(self, pending: list[_Pending], report: IngestReport, progress: bool) -> None:
        total = sum(len(p.chunks) for p in pending)
        bar = None
        if progress and total:
            from tqdm import tqdm

            bar = tqdm(total=total, unit="chunk", desc="embedding", dynamic_ncols=True)
        try:
            batch: list[_Pending] = []
            size = 0
            for item in pending:
                batch.append(item)
                size += len(item.chunks)
                if size >= self.write_batch_chunks:
                    self._write(batch, report, bar)
                    batch, size = [], 0
            if batch:
                self._write(batch, report, bar)
        finally:
            if bar is not None:
                bar.close()

    def _write(self, batch: list[_Pending], report: IngestReport, bar) -> None:
        reusable = self.store.vectors_by_text_hash([p.record.doc_id for p in batch if p.is_update])
        chunks = [c for p in batch for c in p.chunks]
        texts = [index_text(c) for c in chunks]
        vectors = [reusable.get(c.text_hash) for c in chunks]
        to_embed = [i for i, v in enumerate(vectors) if v is None]
        if to_embed:
            for i, vector in zip(to_embed, self.embedder.embed_passages([texts[i] for i in to_embed])):
                vectors[i] = vector
        items = [IndexedChunk(chunk=c, vector=v, tokens=tokenize(t)) for c, v, t in zip(chunks, vectors, texts)]
        items_by_doc = []
        for p in batch:
            items_by_doc.append((p.record, items[: len(p.chunks)]))
            items = items[len(p.chunks) :]
        self.store.write_documents(items_by_doc)
        for p in batch:
            (report.updated if p.is_update else report.added).append(p.record.doc_id)
        report.chunks_written += len(chunks)
        report.chunks_embedded += len(to_embed)
        if bar is not None:
            bar.update(len(chunks))

    def _prune(
        self, inputs: Sequence[str], known: dict[str, DocRecord], yielded: dict[str, set[str]], report: IngestReport
    ) -> None:
        """Remove documents whose file is gone, or whose file no longer yields them."""
        roots = [Path(i).resolve() for i in inputs if not i.startswith(("http://", "https://"))]
        doomed = []
        for doc_id, record in known.items():
            origin = record.origin
            if origin.startswith(("http://", "https://")):
                continue
            path = Path(origin)
            under_inputs = any(path == r or r in path.parents for r in roots)
            if not under_inputs:
                continue
            if not path.exists() or (origin in yielded and doc_id not in yielded[origin]):
                doomed.append(doc_id)
        self.store.delete_documents(doomed)
        report.removed.extend(doomed)
