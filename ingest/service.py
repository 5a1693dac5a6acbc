"""The ingest service: one knowledge base of a store, opened for writing, and its writes
(``ingest``, ``remove``, ``refresh``, ``reindex``), each under the store's ingest lock and each
returning an ``IngestReport``.

``python -m ingest`` runs on it, and so does the facade (``kbqa.knowledge_base``): one way to
open a store and write into it, and nothing under ``ingest/`` needs the layer above.

Every write waits up to ``lock_timeout`` seconds for another ingest into the same store
(``IngestLockError`` beyond); ``on_event`` receives the pipeline's events (ingest/pipeline.py);
``write_batch_chunks`` is how much a killed ingest redoes at most.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from kbcore.chroma import (
    DEFAULT_KB,
    UnknownKnowledgeBase,
    check_kb_name,
    connect_store,
    kb_names,
    kb_prefix,
    reaching,
    store_location,
)
from kbcore.embeddings import Embedder, LazyEmbedder
from kbcore.settings import Settings
from kbcore.store import ChunkStore
from kbcore.types import STATE_OK, DocRecord, IngestReport

# The pipeline (parsers, trafilatura, jieba ...) is imported where a write first needs it: a
# command that only lists or removes documents needs none of it, and it is ~0.45 s of its
# start-up (python -m ingest --list, issue 13).
if TYPE_CHECKING:
    from ingest.pipeline import EventHook, IngestPipeline


class IngestService:
    """Knowledge base ``name`` of the store ``settings`` name, for writing: creating it when the
    store holds none of that name (see ``existing`` for opening one that must be there).
    ``client``: a Chroma client to share; ``embedder``: loaded on first use (listing or removing
    documents needs no model)."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        embedder: Embedder | None = None,
        name: str = DEFAULT_KB,
        client=None,
    ):
        self.settings = settings or Settings()
        self.name = check_kb_name(name)
        self.embedder = embedder or LazyEmbedder(self.settings)
        self.client = client if client is not None else connect_store(self.settings)
        self.store = ChunkStore(
            self.client,
            collection_prefix=kb_prefix(self.settings.collection, name),
            embedder_name=self.embedder.name,
            dim=self.embedder.dim,
        )

    @classmethod
    def existing(
        cls, settings: Settings | None = None, *, embedder: Embedder | None = None, name: str = DEFAULT_KB, client=None
    ) -> IngestService:
        """Knowledge base ``name``; UnknownKnowledgeBase when the store holds none of that name
        (listing or removing never creates one)."""
        settings = settings or Settings()
        embedder = embedder or LazyEmbedder(settings)
        client = client if client is not None else connect_store(settings)
        with reaching(store_location(settings)):
            known = kb_names(client, settings.collection, embedder.name)
        if check_kb_name(name) not in known:
            raise UnknownKnowledgeBase(name)
        return cls(settings, embedder=embedder, name=name, client=client)

    @property
    def location(self) -> str:
        return store_location(self.settings)

    def reaching(self):
        """Every read of the store goes through this: a Chroma server that stopped answering is
        a StoreUnavailableError, not whatever its HTTP client raised."""
        return reaching(self.location)

    # --- reads --------------------------------------------------------------------------------
    def documents(self, *, complete_only: bool = True) -> list[DocRecord]:
        """What the knowledge base holds; ``complete_only`` hides documents an interrupted
        ingest left half-written (the next ingest finishes or removes them)."""
        with self.reaching():
            records = self.store.doc_records().values()
        return sorted((r for r in records if r.state == STATE_OK or not complete_only), key=lambda r: r.doc_id)

    def counts(self) -> dict[str, int]:
        """``{"documents", "chunks"}`` the store holds for this knowledge base."""
        with self.reaching():
            return {"documents": self.store.doc_count(), "chunks": self.store.chunk_count()}

    # --- writes -------------------------------------------------------------------------------
    @staticmethod
    def _pipeline_options(
        settings: Settings, *, lock_timeout: float, on_event: EventHook | None, write_batch_chunks: int = 256
    ) -> dict:
        from ingest.loaders import ParseLimits

        return {
            "chunk_size": settings.chunk_size,
            "chunk_overlap": settings.chunk_overlap,
            "parse_limits": ParseLimits(
                seconds=settings.parse_timeout_seconds,
                memory_bytes=settings.parse_memory_mb << 20,
                max_chars=settings.max_document_chars,
            ),
            "max_chunks": settings.max_document_chunks,
            "allow_private_urls": settings.allow_private_urls,
            "follow_symlinks": settings.follow_symlinks,
            "lock_timeout": lock_timeout,
            "write_batch_chunks": write_batch_chunks,
            "on_event": on_event,
        }

    def _pipeline(self, **writes) -> IngestPipeline:
        from ingest.pipeline import IngestPipeline

        return IngestPipeline(self.store, self.embedder, **self._pipeline_options(self.settings, **writes))

    def ingest(
        self,
        inputs: Sequence[str],
        *,
        prune: bool = False,
        progress: bool = False,
        lock_timeout: float = 0.0,
        write_batch_chunks: int = 256,
        on_event: EventHook | None = None,
    ) -> IngestReport:
        """Ingest files, folders, .jsonl corpora and URLs; ``prune`` also removes documents
        whose files under ``inputs`` are gone."""
        pipeline = self._pipeline(lock_timeout=lock_timeout, on_event=on_event, write_batch_chunks=write_batch_chunks)
        return pipeline.run(inputs, prune=prune, progress=progress)

    def remove(
        self, doc_ids: Sequence[str], *, lock_timeout: float = 0.0, on_event: EventHook | None = None
    ) -> IngestReport:
        """Remove documents (and their chunks) by id; an id the store does not hold is a failure
        of the report."""
        return self._pipeline(lock_timeout=lock_timeout, on_event=on_event).remove(doc_ids)

    def refresh(
        self, *, lock_timeout: float = 0.0, write_batch_chunks: int = 256, on_event: EventHook | None = None
    ) -> IngestReport:
        """Ingest every document again from its own source (``ingest.pipeline.source_inputs``),
        in place: changed sources are updated, unchanged ones skipped (a changed chunking or
        pipeline version changes every hash, so everything is re-chunked), a source that is
        gone is a failure and its document stays. The store keeps serving meanwhile, unlike
        ``reindex``, which drops the collections (for a schema change, with the app stopped)."""
        from ingest.pipeline import source_inputs

        inputs = source_inputs(self.documents(complete_only=False))
        if not inputs:
            return IngestReport()
        return self.ingest(inputs, lock_timeout=lock_timeout, write_batch_chunks=write_batch_chunks, on_event=on_event)

    @classmethod
    def reindex(
        cls,
        settings: Settings | None = None,
        inputs: Sequence[str] = (),
        *,
        name: str = DEFAULT_KB,
        embedder: Embedder | None = None,
        progress: bool = False,
        lock_timeout: float = 0.0,
        write_batch_chunks: int = 256,
        on_event: EventHook | None = None,
    ) -> tuple[IngestService, IngestReport]:
        """Rebuild this embedder's collections at the current schema from the documents' own
        sources plus ``inputs`` (ingest.pipeline.reindex); the service on the rebuilt store and
        the report. A class method: a store that needs it can't be opened before
        (SchemaVersionError). Interrupted, it is finished by running it again."""
        settings = settings or Settings()
        embedder = embedder or LazyEmbedder(settings)
        from ingest.pipeline import reindex

        client = connect_store(settings)
        report = reindex(
            client,
            embedder,
            collection_prefix=kb_prefix(settings.collection, name),
            inputs=inputs,
            progress=progress,
            **cls._pipeline_options(
                settings, lock_timeout=lock_timeout, on_event=on_event, write_batch_chunks=write_batch_chunks
            ),
        )
        return cls(settings, embedder=embedder, name=name, client=client), report
