"""Hybrid retrieval: dense (Chroma) and BM25 (jieba) legs fused by reciprocal rank fusion.

``HybridSearcher`` is the plain-Python engine; kbqa/langchain_adapters.py's ``HybridRetriever``
exposes it as a LangChain ``BaseRetriever`` so it composes into other chains.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Collection, Sequence
from pathlib import Path

from kbcore.embeddings import Embedder
from kbcore.evidence import coverage
from kbcore.lexical import LexicalCorpus, LexicalIndex
from kbqa.crosslingual import translated_terms
from kbcore.store import ChunkStore, filter_where
from kbcore.text import cut_question
from kbcore.types import (
    STATE_OK,
    Chunk,
    DocRecord,
    Filters,
    Passage,
    QueryTerms,
    SearchResult,
    chunk_doc_id,
    chunk_ordinal,
)

_CJK = re.compile(r"[\u3400-\u9fff]")
log = logging.getLogger(__name__)


def _misfits(corpus: LexicalCorpus, records: dict[str, DocRecord], revision: str) -> list[str]:
    """The complete documents that ``corpus`` holds wrongly, by the manifest ``records``: under
    the signature their rows were read with but with another number of chunks, or — in a corpus
    claiming the store's ``revision`` — not at all (a write enters its documents in the manifest
    before it bumps the revision, and marks them ``ok`` after).

    Like is compared with like: only ``ok`` entries, whose chunk count is exactly the store's
    chunks of that document; a ``writing`` or ``deleting`` entry's chunks are whatever an
    interrupted write left, read as they are and read again once the entry changes.
    """
    current = corpus.revision == revision
    return [
        doc_id
        for doc_id, record in records.items()
        if record.state == STATE_OK
        and (
            (corpus.signature(doc_id) is None and current)
            or (corpus.signature(doc_id) == record.signature and corpus.chunk_count(doc_id) != record.chunk_count)
        )
    ]


class HybridSearcher:
    def __init__(
        self,
        store: ChunkStore,
        embedder: Embedder,
        *,
        candidate_k: int = 40,
        rrf_k: int = 10,
        dense_weight: float = 1.0,
        lexical_weight: float = 1.5,
        rerank_depth: int = 30,
        coverage_weight: float = 1.0,
        refresh_seconds: float = 1.0,
        snapshot_path: Path | None = None,
        snapshot_every_seconds: float = 30.0,
        translate_foreign: bool = True,
    ):
        # Defaults measured on ../shared/eval/dev (bench/, README "Retrieval design").
        if candidate_k < 1 or rrf_k < 1 or rerank_depth < 1:
            raise ValueError("candidate_k, rrf_k and rerank_depth must be positive")
        if coverage_weight < 0:
            raise ValueError("coverage_weight must be non-negative")
        if dense_weight < 0 or lexical_weight < 0 or dense_weight + lexical_weight == 0:
            raise ValueError("leg weights must be non-negative and not both zero")
        self.store = store
        self.embedder = embedder
        self.candidate_k = candidate_k
        self.rrf_k = rrf_k
        self.dense_weight = dense_weight
        self.lexical_weight = lexical_weight
        self.rerank_depth = rerank_depth
        self.coverage_weight = coverage_weight
        self.refresh_seconds = refresh_seconds
        self.snapshot_path = snapshot_path
        self.snapshot_every_seconds = snapshot_every_seconds
        self.translate_foreign = translate_foreign
        self._corpus: LexicalCorpus | None = None
        self._saved_at = float("-inf")
        self._sync_lock = threading.Lock()  # one reader of the store's token rows at a time
        self._generation_built = self._generation_installed = 0
        self._background_build_seconds = 0.0
        self._lexical: LexicalIndex | None = None
        self._lexical_revision: str | None = None
        self._checked_at = 0.0
        self._rebuilding = False
        self._rebuild_now = False
        self._lock = threading.Lock()

    def lexical_index(self) -> LexicalIndex:
        """The BM25 index for the store's current content.

        The store's revision is checked at most once per ``refresh_seconds`` (a round trip to
        a Chroma server). When another writer changed it, the index is rebuilt in a background
        thread while queries keep using the previous one: a large store takes seconds to
        rebuild, and a long ingest elsewhere changes the revision every batch. So that such an
        ingest doesn't keep a core busy rebuilding, the next check waits at least twice as long
        as the last background build took. The first build, and the first after this process's
        own write (``invalidate``), happen in the caller.
        """
        with self._lock:
            now = time.monotonic()
            interval = max(self.refresh_seconds, 2 * self._background_build_seconds)
            if self._lexical is not None and (self._rebuilding or now - self._checked_at < interval):
                return self._lexical
            self._checked_at = now
            revision = self.store.revision()
            if self._lexical is not None and revision == self._lexical_revision:
                return self._lexical
            if self._lexical is None or self._rebuild_now:
                self._install(self._build(revision), revision)
                return self._lexical
            self._rebuilding = True
        threading.Thread(target=self._rebuild_in_background, args=(revision,), daemon=True).start()
        return self._lexical

    def _build(self, revision: str) -> tuple[LexicalIndex, int]:
        """Bring the token corpus up to ``revision`` and index it; also returns the build's
        generation (builds are serial, so a later generation reflects a later store).

        Only documents whose manifest signature differs from the corpus's are read again. The
        order — revision, then signatures, then rows — is what makes this safe against a
        concurrent writer: each write changes a document's signature before its chunks and again
        after them (``ChunkStore.write_documents``), and bumps the revision, so rows read in the
        middle of a write sit under a signature that the next check finds stale.

        A corpus that holds a complete document with another number of chunks than the manifest
        gives (``_misfits``) lost rows somewhere — a snapshot written by a faulty build, a damaged
        or foreign file, a document removed and written again between two syncs — and no sync by
        signature would bring them back: it is discarded, rebuilt from the store, and the
        snapshot overwritten at once.
        """
        with self._sync_lock:
            corpus, index, check = self._corpus, None, False
            if corpus is None and self.snapshot_path is not None:
                corpus = LexicalCorpus.load(self.snapshot_path)
                if corpus is not None and corpus.revision == revision:
                    # A restart with nothing changed, when the snapshot holds what the store does:
                    # checked against the manifest only when the chunk counts differ (the store
                    # also counts chunks that no manifest entry owns, so they may, rarely, rightly).
                    check = len(corpus.chunk_ids()) != self.store.chunk_count()
                    index = corpus.load_index(self.snapshot_path)
            if corpus is None:
                corpus = LexicalCorpus()
            if corpus.revision != revision or check:
                records = self.store.doc_records()
                signatures = {doc_id: record.signature for doc_id, record in records.items()}
                misfits = _misfits(corpus, records, revision)
                if misfits:
                    log.warning("the BM25 corpus disagrees with the store on %d document(s), e.g. %s; "
                                "rebuilding it from the store", len(misfits), misfits[0])
                stale = [d for d, sig in signatures.items() if corpus.signature(d) != sig]
                if misfits or len(stale) > len(signatures) // 2:
                    # Mostly new: one paged scan of every document beats reads by document. The
                    # fresh corpus must then take every document, not only the stale ones.
                    corpus, stale = LexicalCorpus(), list(signatures)
                gone = set(corpus.doc_ids()) - signatures.keys()
                for doc_id in gone:
                    corpus.drop(doc_id)
                if corpus.revision != revision or stale or gone:  # else: the snapshot was right
                    rows_by_doc: dict[str, list[tuple[str, list[str]]]] = {d: [] for d in stale}
                    scan = None if not len(corpus) else stale
                    for chunk_id, tokens in self.store.iter_lexical_rows(scan) if stale else ():
                        doc_rows = rows_by_doc.get(chunk_doc_id(chunk_id))
                        if doc_rows is not None:  # chunks without a manifest entry are not served
                            doc_rows.append((chunk_id, tokens.split()))
                    for doc_id, rows in rows_by_doc.items():
                        corpus.put(doc_id, signatures[doc_id], sorted(rows, key=lambda row: chunk_ordinal(row[0])))
                    corpus.revision = revision
                    index = corpus.index()
                    self._save(corpus, index, force=bool(misfits))
            self._corpus = corpus
            self._generation_built += 1
            return index if index is not None else corpus.index(), self._generation_built

    def _save(self, corpus: LexicalCorpus, index: LexicalIndex, *, force: bool = False) -> None:
        # Throttled, as the revision moves every few seconds while another process ingests. A
        # snapshot behind the store is still a valid start: the next sync reads what it lacks.
        # A wrong one is not (``force``): the next restart would have to heal it again.
        now = time.monotonic()
        if self.snapshot_path is None or (now - self._saved_at < self.snapshot_every_seconds and not force):
            return
        try:
            corpus.save(self.snapshot_path)
            corpus.save_index(self.snapshot_path, index)
            self._saved_at = now
        except OSError as exc:  # a read-only disk costs restart time, nothing else
            log.warning("could not save the BM25 snapshot to %s: %s", self.snapshot_path, exc)

    def _install(self, built: tuple[LexicalIndex, int], revision: str) -> None:
        index, generation = built
        if generation < self._generation_installed:
            return  # a background build that a newer build in the caller overtook
        self._lexical, self._lexical_revision, self._rebuild_now = index, revision, False
        self._generation_installed = generation

    def _rebuild_in_background(self, revision: str) -> None:
        try:
            t0 = time.monotonic()
            built = self._build(revision)
            with self._lock:
                self._install(built, revision)
                self._background_build_seconds = time.monotonic() - t0
                self._checked_at = time.monotonic()
        except Exception:  # the old index keeps serving; the next check retries
            log.exception("rebuilding the BM25 index failed")
        finally:
            with self._lock:
                self._rebuilding = False

    def invalidate(self) -> None:
        """Make the next query rebuild in the caller (called after this process writes)."""
        with self._lock:
            self._checked_at = 0.0
            self._rebuild_now = True

    def retrieve(
        self, query: str, k: int, *, exclude_docs: Collection[str] = (), filters: Filters | None = None
    ) -> SearchResult:
        """The ``k`` best passages; ``exclude_docs`` leaves those documents out entirely, and
        ``filters`` keeps only the documents they match. Both apply inside each leg, before it
        ranks: Chroma's ``where`` on the dense leg, a mask over the chunks on the BM25 leg."""
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        lexical = self.lexical_index()
        # A question without Chinese characters (English over Chinese documents) shares no words
        # with the passages: its words are translated by dictionary into Chinese words the index
        # holds (kbqa/crosslingual.py), and those are what BM25 and the coverage rerank see.
        foreign = not _CJK.search(query)
        if foreign and self.translate_foreign:
            cut = translated_terms(query, lexical.doc_frequency)
        else:
            cut = QueryTerms(query) if foreign else cut_question(query)
        # Weighed once, by the index that ranks the passages: the answerer and the briefer take
        # these terms from the result instead of asking the searcher again.
        terms = cut.weighted(lexical.idf)
        where = filter_where(filters)
        # The documents the filters allow, from the manifest, which carries the same keys as
        # the chunks (kbcore.store.filter_keys): what the BM25 leg may rank.
        allowed_docs = self.store.doc_ids(where) if where is not None else None
        if where is not None:
            timings["filter_ms"] = (time.perf_counter() - t0) * 1000
        t1 = time.perf_counter()
        lexical_hits: list[tuple[str, float]] = []
        if self.lexical_weight and terms.search and allowed_docs != set():
            allowed = lexical.rows(allowed_docs) if allowed_docs is not None else None
            if exclude_docs:
                kept = ~lexical.rows(exclude_docs)
                allowed = kept if allowed is None else allowed & kept
            lexical_hits = lexical.rank(terms.search, self.candidate_k, allowed=allowed)
        t2 = time.perf_counter()
        dense_hits: list[tuple[Chunk, float]] = []
        if self.dense_weight and allowed_docs != set():
            vector = self.embedder.embed_queries([query])[0]
            t3 = time.perf_counter()
            dense_hits = self.store.query(vector, self.candidate_k, exclude_docs=exclude_docs, where=where)
            timings["embed_ms"] = (t3 - t2) * 1000
            timings["dense_ms"] = (time.perf_counter() - t3) * 1000
        t4 = time.perf_counter()
        passages = self._fuse(dense_hits, lexical_hits, terms.weights, k)
        timings["lexical_ms"] = (t2 - t0) * 1000
        timings["lexical_sync_ms"] = (t1 - t0) * 1000
        timings["fuse_ms"] = (time.perf_counter() - t4) * 1000
        timings["search_ms"] = (time.perf_counter() - t0) * 1000
        return SearchResult(query=query, passages=tuple(passages), terms=terms, timings_ms=timings)

    def _fuse(
        self,
        dense_hits: Sequence[tuple[Chunk, float]],
        lexical_hits: Sequence[tuple[str, float]],
        weights: dict[str, float],
        k: int,
    ) -> list[Passage]:
        """Reciprocal rank fusion of the two legs, then a rerank of the head by term coverage.

        RRF alone can't tell two policy documents on the same topic apart; whether the
        passage (with its title and section) holds the question's rarer terms — the city, the
        agency, the program — usually can. The fused score is scaled to the best candidate's
        so the coverage weight means the same for every question.
        """
        fused: dict[str, float] = {}
        dense_scores: dict[str, float] = {}
        lexical_scores: dict[str, float] = {}
        chunks: dict[str, Chunk] = {}
        for rank, (chunk, similarity) in enumerate(dense_hits):
            cid = chunk.chunk_id
            chunks[cid] = chunk
            dense_scores[cid] = similarity
            fused[cid] = fused.get(cid, 0.0) + self.dense_weight / (self.rrf_k + rank + 1)
        for rank, (cid, score) in enumerate(lexical_hits):
            lexical_scores[cid] = score
            fused[cid] = fused.get(cid, 0.0) + self.lexical_weight / (self.rrf_k + rank + 1)
        head = sorted(fused, key=fused.__getitem__, reverse=True)[: max(k, self.rerank_depth)]
        chunks.update(self.store.get_chunks([cid for cid in head if cid not in chunks]))
        head = [cid for cid in head if cid in chunks]  # a chunk deleted since the BM25 rebuild
        if not head:
            return []
        top = fused[head[0]]
        covered = {cid: coverage(weights, chunks[cid].with_context) for cid in head}
        score = {cid: fused[cid] / top + self.coverage_weight * covered[cid] for cid in head}
        # A passage whose text an earlier one already gives (an article reposted under other ids)
        # would only repeat a citation: the best-scored copy stands for all.
        best: list[str] = []
        given: set[str] = set()
        for cid in sorted(head, key=score.__getitem__, reverse=True):
            if chunks[cid].text not in given:
                given.add(chunks[cid].text)
                best.append(cid)
                if len(best) == k:
                    break
        return [
            Passage(
                chunk=chunks[cid],
                score=score[cid],
                dense_score=dense_scores.get(cid),
                lexical_score=lexical_scores.get(cid),
                coverage=covered[cid],
            )
            for cid in best
        ]
