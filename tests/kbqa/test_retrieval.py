"""HybridSearcher's BM25 leg against a real Chroma: kept in step with the store by document,
saved beside it, and equal at every step to an index built from scratch."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest

from kbcore.chroma import connect
from kbcore.lexical import LexicalCorpus, LexicalIndex
from kbqa.retrieval import HybridSearcher
from kbcore.store import ChunkStore, IndexedChunk
from kbcore.text import query_terms, tokenize
from kbcore.types import Chunk, DocRecord
from tests.ingest.reliability import REPO, assert_consistent, run_driver
from tests.kbcore.test_lexical import QUERIES, assert_same_index, index_of
from tests.web.conftest import serve

DIM = 8


class RowCountingStore(ChunkStore):
    """The real store, recording which token rows the searcher reads."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.row_reads: list[list[str] | None] = []

    def iter_lexical_rows(self, doc_ids=None):
        self.row_reads.append(None if doc_ids is None else sorted(doc_ids))
        return super().iter_lexical_rows(doc_ids)


def doc(doc_id: str, texts: list[str], version: str = "1") -> tuple[DocRecord, list[IndexedChunk]]:
    rng = np.random.default_rng(len(doc_id) + len(texts))
    items = []
    for i, text in enumerate(texts):
        vector = rng.normal(size=DIM).astype(np.float32)
        chunk = Chunk(doc_id=doc_id, ordinal=i, text=text, start=0, end=len(text))
        items.append(IndexedChunk(chunk, vector / np.linalg.norm(vector), tokens=tokenize(text), input_hash=text))
    return DocRecord(doc_id, f"{doc_id}-v{version}", f"/d/{doc_id}", "", "", None, len(items)), items


@pytest.fixture
def store(tmp_path):
    return RowCountingStore(connect(tmp_path / "chroma", None), collection_prefix="t", embedder_name="unit", dim=DIM)


def from_scratch(store: ChunkStore) -> LexicalIndex:
    return index_of((cid, tokens.split()) for cid, tokens in store.iter_lexical_rows())


def searcher_on(store: ChunkStore, embedder, path) -> HybridSearcher:
    return HybridSearcher(store, embedder, refresh_seconds=0.0, snapshot_path=path, snapshot_every_seconds=0.0)


def test_bm25_follows_the_store_by_document_and_restarts_from_its_snapshot(store, embedder, tmp_path):
    snapshot = tmp_path / "chroma" / "bm25.npz"
    store.write_documents([doc("a", ["锦州坚持三个开放", "开放业务系统、开放数据资源"]), doc("b", ["华为锦州云计算协议"])])
    store.write_documents([doc(f"n{i}", [f"第{i}号通知：数字政府建设"]) for i in range(4)])
    searcher = searcher_on(store, embedder, snapshot)
    assert_same_index(searcher.lexical_index(), from_scratch(store), QUERIES)
    assert store.row_reads[0] is None and snapshot.exists()  # first build: one scan

    # Another process's writes: a new document, a shorter version of one, a removal.
    store.write_documents([doc("c", ["杭州数字经济", "杭州城市大脑"]), doc("a", ["开放数据资源"], version="2")])
    store.delete_documents(["b"])
    store.row_reads.clear()
    searcher.invalidate()
    assert_same_index(searcher.lexical_index(), from_scratch(store), QUERIES)
    assert store.row_reads[0] == ["a", "c"]  # only what changed was read

    # A restart at the same revision reads no rows at all, and maps the saved index...
    store.row_reads.clear()
    restarted = searcher_on(store, embedder, snapshot)
    assert isinstance(restarted.lexical_index()._bm25.scores["data"], np.memmap)
    assert_same_index(restarted.lexical_index(), from_scratch(store), QUERIES)
    assert store.row_reads == [None]  # (the None is from_scratch's own scan)

    # ...and one after a change reads just that document.
    store.write_documents([doc("c", ["杭州政务数据开放平台"], version="3")])
    store.row_reads.clear()
    assert_same_index(searcher_on(store, embedder, snapshot).lexical_index(), from_scratch(store), QUERIES)
    assert store.row_reads[0] == ["c"]


def test_rows_read_in_the_middle_of_a_write_are_read_again(store, embedder, tmp_path):
    # A reader syncing while a write is half done sees the document as "writing" and keeps
    # whatever rows were there; the next revision makes it read them again.
    store.write_documents([doc("a", ["锦州坚持三个开放"])])
    searcher = searcher_on(store, embedder, tmp_path / "bm25.npz")
    searcher.lexical_index()
    steps = []

    def mid_write(step: str) -> None:
        steps.append(step)
        if step == "manifest_pending":
            searcher.invalidate()
            assert [c for c, _ in searcher.lexical_index().rank(tokenize("开放"), 5)] == ["a#0"]

    store.write_documents([doc("a", ["锦州开放数据资源", "开放市场应用"], version="2")], on_step=mid_write)
    assert steps[-1] == "manifest_written"
    searcher.invalidate()
    assert_same_index(searcher.lexical_index(), from_scratch(store), QUERIES + ["市场应用"])
    assert len(searcher.lexical_index()) == 2


def test_a_snapshot_of_another_store_is_not_trusted(store, embedder, tmp_path):
    snapshot = tmp_path / "bm25.npz"
    store.write_documents([doc("a", ["锦州坚持三个开放"])])
    searcher_on(store, embedder, snapshot).lexical_index()
    other = RowCountingStore(connect(tmp_path / "other", None), collection_prefix="t", embedder_name="unit", dim=DIM)
    other.write_documents([doc("z", ["杭州城市大脑"])])
    index = searcher_on(other, embedder, snapshot).lexical_index()
    assert index.chunk_ids == ["z#0"]


class SlowRowsStore(RowCountingStore):
    """Reading token rows takes 0.4 s, like a large store on a server."""

    def iter_lexical_rows(self, doc_ids=None):
        time.sleep(0.4)
        return super().iter_lexical_rows(doc_ids)


def test_background_rebuilds_are_spaced_by_their_own_cost(tmp_path, embedder):
    store = SlowRowsStore(connect(tmp_path / "chroma", None), collection_prefix="t", embedder_name="unit", dim=DIM)
    store.write_documents([doc("a", ["锦州坚持三个开放"]), doc("b", ["杭州城市大脑"]), doc("c", ["沈阳数字政府"])])
    searcher = searcher_on(store, embedder, None)
    searcher.lexical_index()  # the first build, in the caller

    def ids() -> set[str]:
        return set(searcher.lexical_index().chunk_ids)

    def wait_for(chunk_id: str, timeout: float) -> float:
        t0 = time.monotonic()
        while chunk_id not in ids():
            assert time.monotonic() - t0 < timeout, f"{chunk_id} never arrived"
            time.sleep(0.02)
        return time.monotonic() - t0

    store.write_documents([doc("d", ["大连智慧港口"])])  # another process's write
    first = wait_for("d#0", 10)  # noticed at once, rebuilt in the background (~0.4 s)
    store.write_documents([doc("e", ["鞍山工业互联网"])])
    # The next check waits twice the last build: ~3 builds' time instead of one.
    assert wait_for("e#0", 10) > 1.8 * first


# --------------------------------------------------------------------------- issue 9: BM25 must hold every served chunk

NEW_DOCS = {
    "dalian.txt": "大连智慧港口\n大连港上线了集装箱智能调度系统，码头作业效率提升三成。",
    "shenyang.txt": "沈阳数字政府\n沈阳市政务服务事项全部实现网上办理，群众办事不再跑腿。",
    "anshan.txt": "鞍山工业互联网\n鞍山钢铁企业接入工业互联网平台，设备故障预警提前两天。",
    "dandong.txt": "丹东边境贸易\n丹东口岸推行无纸化通关，边境贸易额同比增长百分之十二。",
    "yingkou.txt": "营口乡村振兴\n营口农村电商服务站覆盖全部行政村，农产品线上销售翻番。",
}


def write_docs(folder, docs: dict[str, str]) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in docs.items():
        (folder / name).write_text(text + "\n", encoding="utf-8")
    return str(folder)


def test_mostly_new_documents_do_not_push_the_unchanged_ones_out_of_bm25(make_settings, embedder, tmp_path):
    """The issue's sequence: seed, one search, five new documents, a restart. The sync found more
    than half of the documents stale, started a fresh corpus and read only the stale ones, so the
    seed's chunks left BM25 — and the snapshot carried the loss into the next process."""
    from kbqa.knowledge_base import KnowledgeBase

    settings = make_settings()
    kb = KnowledgeBase(settings, embedder=embedder)
    assert kb.ensure_seeded() is not None
    seed_chunks = kb.store.chunk_count()
    assert kb.search("锦州的三个开放").passages
    kb.ingest([write_docs(tmp_path / "new", NEW_DOCS)])

    for restarted in (kb, KnowledgeBase(settings, embedder=embedder)):
        index = restarted.searcher.lexical_index()
        assert sorted(index.chunk_ids) == sorted(cid for cid, _ in restarted.store.iter_lexical_rows())
        assert len(index) == restarted.store.chunk_count() > seed_chunks
        assert any(cid.startswith("000_") for cid, _ in index.rank(query_terms("锦州的三个开放"), 5))


def test_a_mostly_changed_store_is_read_in_one_scan_that_keeps_the_unchanged_documents(store, embedder, tmp_path):
    store.write_documents([doc("a", ["锦州坚持三个开放", "开放业务系统、开放数据资源"])])
    searcher = searcher_on(store, embedder, tmp_path / "bm25.npz")
    searcher.lexical_index()
    store.write_documents([doc(f"n{i}", [f"第{i}号通知：数字政府建设"]) for i in range(3)])
    store.row_reads.clear()
    searcher.invalidate()
    assert_same_index(searcher.lexical_index(), from_scratch(store), QUERIES)
    assert store.row_reads[0] is None and len(searcher.lexical_index()) == 5  # one scan, "a" kept


@pytest.mark.parametrize("damage", ["document lost", "chunk lost", "chunk lost, then the store moved on"])
def test_a_snapshot_that_lost_rows_is_rebuilt_by_the_next_process(store, embedder, tmp_path, damage):
    snapshot = tmp_path / "bm25.npz"
    store.write_documents([doc("a", ["锦州坚持三个开放", "开放业务系统、开放数据资源"]), doc("b", ["华为锦州云计算协议"])])
    searcher_on(store, embedder, snapshot).lexical_index()
    # What a faulty build would have saved, at the revision it synced to.
    corpus = LexicalCorpus.load(snapshot)
    if damage == "document lost":
        corpus.drop("a")
    else:
        corpus.put("a", corpus.signature("a"), [("a#0", tokenize("锦州坚持三个开放"))])
    corpus.save(snapshot)
    corpus.save_index(snapshot, corpus.index())
    if damage.endswith("moved on"):
        store.write_documents([doc("c", ["杭州城市大脑"])])  # "a" is carried over by its signature

    store.row_reads.clear()
    healed = searcher_on(store, embedder, snapshot).lexical_index()
    assert_same_index(healed, from_scratch(store), QUERIES)
    assert store.row_reads[0] is None  # discarded and rebuilt in one scan
    assert sorted(LexicalCorpus.load(snapshot).chunk_ids()) == sorted(healed.chunk_ids)  # the snapshot too
    store.row_reads.clear()
    assert_same_index(searcher_on(store, embedder, snapshot).lexical_index(), healed, QUERIES)
    assert store.row_reads == []  # the next restart trusts it again


def test_chunks_of_interrupted_writes_are_not_taken_for_lost_rows(store, embedder, tmp_path):
    """Only complete documents are compared with the manifest: a half-written one may hold more
    chunks than its entry says, and chunks without an entry are not served at all."""
    snapshot = tmp_path / "bm25.npz"
    store.write_documents([doc("a", ["锦州坚持三个开放", "开放业务系统、开放数据资源"]), doc("b", ["华为锦州云计算协议"])])

    def crash(step: str) -> None:
        if step == "chunks_written":
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError):  # "a" shrinks to one chunk; its old second chunk is still there
        store.write_documents([doc("a", ["锦州开放数据资源"], version="2")], on_step=crash)
    store.write_documents([doc("z", ["无主的分块"])])
    store._docs.delete(ids=["z"])  # an orphan, as a crash before manifest states could leave
    assert len(searcher_on(store, embedder, snapshot).lexical_index()) == 3 < store.chunk_count()

    store.row_reads.clear()
    restarted = searcher_on(store, embedder, snapshot).lexical_index()
    assert store.row_reads == [] and isinstance(restarted._bm25.scores["data"], np.memmap)
    assert sorted(restarted.chunk_ids) == ["a#0", "a#1", "b#0"]


class RacingStore(RowCountingStore):
    """Runs ``before`` and ``after`` around the next read of token rows: another process's
    writes landing in the middle of a sync."""

    before = after = None

    def iter_lexical_rows(self, doc_ids=None):
        before, after, self.before, self.after = self.before, self.after, None, None
        if before:
            before()
        yield from super().iter_lexical_rows(doc_ids)
        if after:
            after()


def test_a_document_removed_and_written_again_during_a_sync_is_not_lost(tmp_path, embedder):
    store = RacingStore(connect(tmp_path / "chroma", None), collection_prefix="t", embedder_name="unit", dim=DIM)
    a_v1 = doc("a", ["锦州坚持三个开放", "开放业务系统、开放数据资源"])
    store.write_documents([doc("a", ["锦州坚持三个开放"], version="0"), doc("b", ["华为锦州云计算协议"]), doc("c", ["杭州城市大脑"])])
    searcher = searcher_on(store, embedder, tmp_path / "bm25.npz")
    searcher.lexical_index()
    store.write_documents([a_v1])
    # The sync reads "a" as ok:a-v1, finds no rows (removed meanwhile), and the same version is
    # back before the next sync: its signature is the one the corpus holds, with no rows.
    store.before, store.after = lambda: store.delete_documents(["a"]), lambda: store.write_documents([a_v1])
    searcher.invalidate()
    assert "a#0" not in searcher.lexical_index().chunk_ids
    searcher.invalidate()
    assert_same_index(searcher.lexical_index(), from_scratch(store), QUERIES)
    assert len(searcher.lexical_index()) == store.chunk_count() == 4


def assert_bm25_holds_the_store(kb, timeout: float = 30.0) -> dict:
    """``kb.stats()``: the BM25 index holds every served chunk, once it has caught up (another
    process's write reaches this one through a background rebuild), and exactly those."""
    deadline = time.monotonic() + timeout
    while (stats := kb.stats())["lexical_chunks"] != stats["chunks"]:
        assert time.monotonic() < deadline, stats
        time.sleep(0.05)
    assert_consistent(kb.store)  # every chunk is served: no half-written documents, no orphans
    assert stats["chunks"] == sum(record.chunk_count for record in kb.documents())
    assert sorted(kb.searcher.lexical_index().chunk_ids) == sorted(cid for cid, _ in kb.store.iter_lexical_rows())
    return stats


STATS_IN_A_NEW_PROCESS = """
import json, sys
from pathlib import Path
from kbqa.knowledge_base import KnowledgeBase
from kbcore.settings import Settings
print(json.dumps(KnowledgeBase(Settings(store=Path(sys.argv[1]), lexical_cache=Path(sys.argv[2]))).stats()))
"""


def test_bm25_holds_the_store_through_two_processes_ingesting_removing_and_restarting(
    make_settings, embedder, tmp_path
):
    from kbqa.knowledge_base import KnowledgeBase
    from web.asgi import create_app

    settings = make_settings()
    store = ["--store", str(settings.store), "--no-progress"]

    def open_kb() -> KnowledgeBase:
        kb = KnowledgeBase(settings, embedder=embedder)
        kb.searcher.refresh_seconds = 0.0  # notice the other process's writes at once
        return kb

    def other_process(*args: str) -> None:
        done = run_driver([*args, *store])
        assert done.returncode == 0, done.stderr[-3000:]

    kb = open_kb()
    kb.ensure_seeded()
    seeded = assert_bm25_holds_the_store(kb)
    other_process(write_docs(tmp_path / "new", NEW_DOCS))  # the sequence, from another process
    assert assert_bm25_holds_the_store(kb)["documents"] == seeded["documents"] + 5
    other_process("--remove", "dalian.txt", "shenyang.txt")
    assert_bm25_holds_the_store(kb)
    with serve(create_app(kb)) as url:
        health = httpx.get(f"{url}/api/health", timeout=30).json()
    assert health["lexical_chunks"] == health["chunks"] == kb.store.chunk_count()

    kb = open_kb()  # a restart, from the snapshot
    kb.ingest([write_docs(tmp_path / "more", {"panjin.txt": "盘锦湿地保护\n盘锦红海滩湿地公园实行生态红线管理。"})])
    after_ingest = assert_bm25_holds_the_store(kb)
    other_process("--remove", "anshan.txt")
    assert_bm25_holds_the_store(kb)

    # A snapshot that lost the seed at the store's revision, as the faulty sync saved them: the
    # next process heals it (and the snapshot) instead of serving the loss.
    lossy = LexicalCorpus()
    for record in kb.documents():
        if not record.doc_id.startswith("000_"):
            rows = [(cid, tokens.split()) for cid, tokens in kb.store.iter_lexical_rows([record.doc_id])]
            lossy.put(record.doc_id, record.signature, rows)
    lossy.revision = kb.store.revision()
    snapshot = kb.store.lexical_snapshot_path(settings.lexical_cache)
    lossy.save(snapshot)
    lossy.save_index(snapshot, lossy.index())
    done = subprocess.run([sys.executable, "-c", STATS_IN_A_NEW_PROCESS, str(settings.store), str(settings.lexical_cache)],
                          check=False, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    other = json.loads(done.stdout.strip().splitlines()[-1])
    assert other["lexical_chunks"] == other["chunks"] == after_ingest["chunks"] - 1 == kb.store.chunk_count()
    assert len(LexicalCorpus.load(snapshot).chunk_ids()) == kb.store.chunk_count()
    assert len(KnowledgeBase(settings, embedder=embedder).searcher.lexical_index()) == kb.store.chunk_count()
