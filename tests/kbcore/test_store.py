"""ChunkStore against a real Chroma: embedded on disk and a `chroma run` server."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from kbcore.chroma import connect
from kbcore.store import ChunkStore, IndexedChunk
from kbcore.types import Chunk, DocRecord

DIM = 8


@pytest.fixture(params=["embedded", "server"])
def store(request, tmp_path):
    if request.param == "embedded":
        client = connect(tmp_path / "chroma", None)
    else:
        client = connect(None, request.getfixturevalue("chroma_server"))
    prefix = f"t{uuid.uuid4().hex[:8]}"  # the server is shared across tests
    return ChunkStore(client, collection_prefix=prefix, embedder_name="unit-vectors", dim=DIM)


def doc(doc_id: str, texts: list[str], *, version: str = "1") -> tuple[DocRecord, list[IndexedChunk]]:
    rng = np.random.default_rng(abs(hash((doc_id, version))) % 2**32)
    items, offset = [], 0
    for i, text in enumerate(texts):
        chunk = Chunk(doc_id=doc_id, ordinal=i, text=text, start=offset, end=offset + len(text), title=f"T-{doc_id}")
        offset += len(text)
        vector = rng.normal(size=DIM).astype(np.float32)
        items.append(IndexedChunk(chunk, vector / np.linalg.norm(vector), tokens=list(text), input_hash=f"h:{text}"))
    record = DocRecord(doc_id, f"hash-{version}", f"/data/{doc_id}", f"T-{doc_id}", doc_id, None, len(items))
    return record, items


def test_write_read_query_and_replace(store):
    before = store.revision()
    store.write_documents([doc("a", ["甲乙", "丙丁", "戊己"]), doc("b", ["庚辛"])])
    assert store.revision() != before
    assert store.doc_count() == 2 and store.chunk_count() == 4
    assert store.doc_records()["a"].content_hash == "hash-1"

    _, items = doc("a", ["甲乙", "丙丁", "戊己"])
    hits = store.query(items[1].vector, 2)
    assert hits[0][0].chunk_id == "a#1" and hits[0][1] == pytest.approx(1.0, abs=1e-4)
    assert hits[0][0].text == "丙丁" and hits[0][0].start == 2 and hits[0][0].title == "T-a"

    # A changed document with fewer chunks: old ordinals beyond the new count disappear.
    store.write_documents([doc("a", ["新的"], version="2")])
    assert store.chunk_count() == 2
    assert set(store.get_chunks(["a#0", "a#1", "a#2"])) == {"a#0"}
    assert store.doc_records()["a"].chunk_count == 1
    assert {cid for cid, _ in store.iter_lexical_rows()} == {"a#0", "b#0"}


def test_vectors_are_found_by_input_hash_across_documents(store):
    store.write_documents([doc("a", ["一", "二"]), doc("b", ["三"])])
    found = store.vectors_by_input_hash(["h:二", "h:三", "h:四"])
    assert set(found) == {"h:二", "h:三"}
    np.testing.assert_allclose(found["h:三"], doc("b", ["三"])[1][0].vector, atol=1e-6)
    assert store.vectors_by_input_hash([]) == {}


def test_delete_documents(store):
    store.write_documents([doc("a", ["一"]), doc("b", ["二", "三"])])
    rev = store.revision()
    store.delete_documents(["b"])
    assert store.revision() != rev
    assert set(store.doc_records()) == {"a"} and store.chunk_count() == 1
    assert store.query(np.ones(DIM, dtype=np.float32) / np.sqrt(DIM), 5)[0][0].doc_id == "a"


def test_refuses_vectors_of_another_embedder(tmp_path):
    client = connect(tmp_path / "chroma", None)
    ChunkStore(client, collection_prefix="kb", embedder_name="model-a", dim=DIM)
    ChunkStore(client, collection_prefix="kb", embedder_name="model-a", dim=DIM)  # reopen is fine
    with pytest.raises(RuntimeError, match="built by 'model-a'"):
        ChunkStore(client, collection_prefix="kb", embedder_name="model-a", dim=DIM + 1)


def test_empty_store_queries_return_nothing(store):
    assert store.query(np.ones(DIM, dtype=np.float32), 5) == []
    assert store.get_chunks([]) == {} and store.doc_records() == {}


def test_connect_store_picks_the_server_when_settings_name_one(tmp_path):
    from bench.servers import free_port
    from kbcore.chroma import StoreUnavailableError, connect_store, describe_location
    from kbcore.settings import Settings

    embedded = connect_store(Settings(store=tmp_path / "chroma"))
    assert describe_location(embedded) == str(tmp_path / "chroma")
    dead = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(StoreUnavailableError, match=dead):
        connect_store(Settings(store=tmp_path / "unused", chroma_url=dead))
    assert not (tmp_path / "unused").exists()
