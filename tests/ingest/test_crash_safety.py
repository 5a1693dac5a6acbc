"""An ingest SIGKILLed at any step, then run again, leaves exactly the store of a clean run.

Each test kills a real ingest process (``reliability.py`` driving ``python -m ingest``'s main
with an event hook) at one precise point, re-runs the ingest to completion, and compares the
store with a clean run's: chunk ids, texts, metadata and exact vectors, manifest (ids,
hashes, origins, counts, states), BM25 rows and counts, plus the invariants (no orphan
chunks, no half-written or half-removed document).
"""

from __future__ import annotations

import signal

import pytest
from reliability import (
    INGEST_FLAGS,
    REPO,
    WRITE_BATCH,
    assert_consistent,
    assert_same,
    driver_cmd,
    read_events,
    run_driver,
    snapshot,
    wait_for,
    without_docs,
)

from bench.servers import free_port, start_chroma, stop

KILLED = -signal.SIGKILL


def killed_ingest(corpus, store, kill_at: str, tmp_path, *extra: str):
    """Run the ingest until the given event, SIGKILLed there; returns its events."""
    events = tmp_path / "events.jsonl"
    done = run_driver([*corpus.inputs, "--store", str(store), *INGEST_FLAGS, "--write-batch", str(WRITE_BATCH), *extra],
                      kill_at=kill_at, events_file=events)
    assert done.returncode == KILLED, (done.returncode, done.stderr[-3000:])
    return read_events(events)


def written_docs(events) -> list[str]:
    """Documents whose batch finished (manifest marked ok) before the kill."""
    return [d for name, info in events if name == "manifest_written" for d in info["doc_ids"]]


def test_incremental_update_equals_a_fresh_ingest(corpus, r1_copy, r2, open_kb):
    """No crash: v1 then v2 (with --prune) equals a fresh v2 (dates dropped, chunks shrunk...)."""
    corpus.write("v2")
    kb = open_kb(r1_copy)
    report = kb.ingest(corpus.inputs, prune=True)
    assert sorted(report.removed) == ["f.txt", "j07"]
    assert sorted(report.updated) == ["a.txt", "b.txt", "j03", "j05", "j09"] and report.added == ["new.txt"]
    assert_consistent(kb.store)
    assert_same(snapshot(kb.store, corpus.root), r2)


def test_killed_while_parsing(corpus, r1, open_kb, tmp_path):
    """(a) Killed during parsing/chunking, before anything was written (documents stream
    through in write batches, so that is while the first batch fills)."""
    corpus.write("v1")
    store = tmp_path / "chroma"
    events = killed_ingest(corpus, store, "document_parsed:2", tmp_path)
    assert not [e for e in events if e[0] == "manifest_pending"]
    kb = open_kb(store)
    assert kb.store.chunk_count() == 0 and kb.store.doc_count() == 0
    kb.ingest(corpus.inputs)
    assert_consistent(kb.store)
    assert_same(snapshot(kb.store, corpus.root), r1[1])


def test_killed_between_write_batches(corpus, r1, open_kb, tmp_path):
    """(b) Killed mid-embedding, after two batches were written: those are skipped on the rerun."""
    corpus.write("v1")
    store = tmp_path / "chroma"
    events = killed_ingest(corpus, store, "batch_embedded:3", tmp_path)
    finished = written_docs(events)
    assert len(finished) >= 2
    kb = open_kb(store)
    assert_consistent(kb.store)  # two whole batches, nothing of the third
    rerun = kb.ingest(corpus.inputs)
    assert sorted(rerun.unchanged) == sorted(finished)
    total = r1[1]["counts"][0]
    assert rerun.chunks_embedded == rerun.chunks_written < total
    assert_consistent(kb.store)
    assert_same(snapshot(kb.store, corpus.root), r1[1])


def test_killed_between_chunk_write_and_manifest(corpus, r1, open_kb, tmp_path):
    """(c) Killed after a batch's chunks were upserted, before its manifest entries were."""
    corpus.write("v1")
    store = tmp_path / "chroma"
    events = killed_ingest(corpus, store, "chunks_written:2", tmp_path)
    cut = [info for name, info in events if name == "chunks_written"][-1]
    first = [info for name, info in events if name == "manifest_written"]
    assert len(first) == 1
    kb = open_kb(store)
    states = {d: r.state for d, r in kb.store.doc_records().items()}
    assert {states[d] for d in cut["doc_ids"]} == {"writing"}  # the cut batch's chunks have an owner
    rerun = kb.ingest(corpus.inputs)
    assert sorted(rerun.unchanged) == sorted(first[0]["doc_ids"])
    # The cut batch's vectors were stored: only the batches after it are embedded again.
    total = r1[1]["counts"][0]
    assert rerun.chunks_embedded == total - first[0]["chunks"] - cut["chunks"]
    assert_consistent(kb.store)
    assert_same(snapshot(kb.store, corpus.root), r1[1])


@pytest.mark.parametrize("kill_at", ["chunks_written:1", "stale_deleted:1"])
def test_killed_while_updating_a_shrinking_document(corpus, r1_copy, r2, open_kb, tmp_path, kill_at):
    """(d) v1 -> v2 killed with a.txt (3 chunks -> 1) half replaced: after the upsert (new
    chunk 0 next to old chunks 1-2), or after the stale delete but before its manifest."""
    corpus.write("v2")
    events = killed_ingest(corpus, r1_copy, kill_at, tmp_path, "--prune")
    assert "a.txt" in [info for name, info in events if name == kill_at.split(":")[0]][-1]["doc_ids"]
    kb = open_kb(r1_copy)
    record = kb.store.doc_records()["a.txt"]
    assert record.state == "writing" and record.chunk_count == 1
    left = {cid for cid, _ in kb.store.iter_lexical_rows() if cid.startswith("a.txt#")}
    assert left == ({"a.txt#0", "a.txt#1", "a.txt#2"} if kill_at.startswith("chunks") else {"a.txt#0"})
    kb.ingest(corpus.inputs, prune=True)
    assert_consistent(kb.store)
    assert_same(snapshot(kb.store, corpus.root), r2)


def test_killed_while_pruning(corpus, r1_copy, r2, open_kb, tmp_path):
    """--prune killed after the pruned chunks were deleted, before their manifest entries: the
    next ingest, even without --prune, finishes the removal."""
    corpus.write("v2")
    events = killed_ingest(corpus, r1_copy, "chunks_deleted:1", tmp_path, "--prune")
    assert sorted([info for name, info in events if name == "chunks_deleted"][-1]["doc_ids"]) == ["f.txt", "j07"]
    kb = open_kb(r1_copy)
    assert {kb.store.doc_records()[d].state for d in ("f.txt", "j07")} == {"deleting"}
    rerun = kb.ingest(corpus.inputs)
    assert sorted(rerun.removed) == ["f.txt", "j07"]
    assert_consistent(kb.store)
    assert_same(snapshot(kb.store, corpus.root), r2)


def test_killed_remove_does_not_lose_a_document_that_is_ingested_again(corpus, r1_copy, r1, open_kb, tmp_path):
    """--remove killed after the chunks went: re-ingesting the folder must bring the document
    back, not skip it as unchanged (its manifest entry still had the old hash)."""
    corpus.write("v1")
    done = run_driver(["--store", str(r1_copy), *INGEST_FLAGS, "--remove", "b.txt"], kill_at="chunks_deleted:1")
    assert done.returncode == KILLED, done.stderr[-3000:]
    kb = open_kb(r1_copy)
    rerun = kb.ingest(corpus.inputs)
    assert rerun.removed == ["b.txt"] and rerun.added == ["b.txt"]
    assert_consistent(kb.store)
    assert_same(snapshot(kb.store, corpus.root), r1[1])


def test_killed_then_sources_fail(corpus, r1, open_kb, tmp_path):
    """Killed with a.txt and c.txt half-written; then a.txt is emptied (no longer loads) and
    c.txt deleted. The rerun (no --prune) drops both instead of keeping a partial write."""
    corpus.write("v1")
    store = tmp_path / "chroma"
    events = killed_ingest(corpus, store, "chunks_written:1", tmp_path)
    cut = [info for name, info in events if name == "chunks_written"][-1]["doc_ids"]
    assert {"a.txt", "c.txt"} <= set(cut)
    (corpus.txt / "a.txt").write_text("", encoding="utf-8")
    (corpus.txt / "c.txt").unlink()
    try:
        kb = open_kb(store)
        rerun = kb.ingest(corpus.inputs)
        assert sorted(rerun.removed) == ["a.txt", "c.txt"]
        assert [origin.rsplit("/", 1)[-1] for origin, _ in rerun.failed] == ["a.txt"]
        assert_consistent(kb.store)
        assert_same(snapshot(kb.store, corpus.root), without_docs(r1[1], {"a.txt", "c.txt"}))
    finally:
        corpus.write("v1")


@pytest.mark.server
def test_chroma_server_killed_mid_ingest(corpus, r1, open_kb, tmp_path):
    """The Chroma server dies between two batches: the ingest exits non-zero naming the
    server; after a restart on the same data, a rerun completes to the clean store."""
    import subprocess

    corpus.write("v1")
    port, data = free_port(), tmp_path / "server-data"
    url = f"http://127.0.0.1:{port}"
    server = start_chroma(data, port)
    try:
        paused, release = tmp_path / "paused", tmp_path / "release"
        ingest = subprocess.Popen(
            driver_cmd([*corpus.inputs, "--chroma-url", url, *INGEST_FLAGS, "--write-batch", str(WRITE_BATCH)],
                       pause_at="chunks_written:2", signal_file=paused, release_file=release),
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            wait_for(paused, ingest)
            server.kill()
            server.wait()
            release.touch()
            _, err = ingest.communicate(timeout=60)
        finally:
            if ingest.poll() is None:
                ingest.kill()
        assert ingest.returncode == 4, (ingest.returncode, err[-3000:])
        assert f"Chroma server at {url}" in err and "run the same command again" in err
        server = start_chroma(data, port)
        kb = open_kb(chroma_url=url)
        states = {r.state for r in kb.store.doc_records().values()}
        assert "writing" in states  # the cut batch, left for the rerun
        rerun = kb.ingest(corpus.inputs)  # also takes over the dead ingest's lease (same host, pid gone)
        assert rerun.unchanged and rerun.chunks_embedded < r1[1]["counts"][0]
        assert_consistent(kb.store)
        assert_same(snapshot(kb.store, corpus.root), r1[1])
    finally:
        stop(server)
