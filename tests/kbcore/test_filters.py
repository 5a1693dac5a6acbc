"""Filters (kbcore.types.Filters) translated into retrieval: the Chroma ``where`` both collections
answer, the BM25 mask, and the names of knowledge bases in one store."""

from __future__ import annotations

import numpy as np
import pytest

from kbcore.chroma import check_kb_name, connect, kb_names, kb_prefix, split_prefix
from kbcore.store import ChunkStore, IndexedChunk, filter_keys, filter_where, source_keys
from kbcore.text import query_terms, tokenize
from kbcore.types import Chunk, DocRecord, Filters
from tests.kbcore.test_lexical import index_of

DIM = 4


# --- Filters ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"date_from": "2023-02-30"}, "date_from must be a date"),
        ({"date_to": "2023/08/05"}, "date_to must be a date"),
        ({"date_from": "20230805"}, "date_from must be a date"),
        ({"date_from": "2024-01-01", "date_to": "2023-12-31"}, "is after date_to"),
    ],
)
def test_bad_dates_are_refused(fields, message):
    with pytest.raises(ValueError, match=message):
        Filters(**fields)


def test_filters_are_false_when_nothing_restricts():
    assert not Filters() and Filters(source="a.txt") and Filters(date_from="2023-01-01", date_to="2023-01-01")


# --- the where clause ----------------------------------------------------------------------


def test_each_filter_becomes_one_clause_on_the_filter_keys():
    assert filter_where(None) is None and filter_where(Filters()) is None
    assert filter_where(Filters(region="锦州市")) == {"regions": {"$contains": "锦州市"}}
    assert filter_where(Filters(source="gov.cn")) == {"source_keys": {"$contains": "gov.cn"}}
    assert filter_where(Filters(region="锦州市", date_from="2023-01-01", date_to="2023-12-31")) == {
        "$and": [
            {"regions": {"$contains": "锦州市"}},
            {"date_number": {"$gte": 20230101}},
            {"date_number": {"$lte": 20231231}},
        ]
    }


def test_source_keys_are_the_source_and_a_url_hosts_domains():
    assert source_keys("https://www.gov.cn/zhengce/a.html") == ["https://www.gov.cn/zhengce/a.html", "www.gov.cn", "gov.cn"]
    assert source_keys("http://localhost:8000/x") == ["http://localhost:8000/x", "localhost"]
    assert source_keys("sub/a.md") == ["sub/a.md"]
    assert source_keys("") == []


def test_filter_keys_of_a_document():
    record = DocRecord("a", "h", "/a", "T", "https://www.gov.cn/a", "2023-08-05", 1, regions=("辽宁省", "锦州市"))
    assert filter_keys(record) == {
        "regions": ["辽宁省", "锦州市"],
        "date_number": 20230805,
        "source_keys": ["https://www.gov.cn/a", "www.gov.cn", "gov.cn"],
    }
    # None deletes a key on upsert (Chroma refuses an empty list): a document that lost them keeps none.
    assert filter_keys(DocRecord("b", "h", "/b", "T", "", None, 1)) == {
        "regions": None, "date_number": None, "source_keys": None}


def _doc(doc_id: str, vector: list[float], **fields) -> tuple[DocRecord, list[IndexedChunk]]:
    text = f"{doc_id} 的正文"
    chunk = Chunk(doc_id=doc_id, ordinal=0, text=text, start=0, end=len(text))
    item = IndexedChunk(chunk, np.asarray(vector, np.float32), tokens=tokenize(text), input_hash=doc_id)
    return DocRecord(doc_id, "h", f"/{doc_id}", doc_id, **{"source": doc_id, "date": None, "chunk_count": 1} | fields), [item]


@pytest.fixture
def store(tmp_path) -> ChunkStore:
    store = ChunkStore(connect(tmp_path / "chroma", None), collection_prefix="kb", embedder_name="unit", dim=DIM)
    store.write_documents([
        _doc("jinzhou", [1, 0, 0, 0], date="2023-08-05", regions=("辽宁省", "锦州市", "凌海市")),
        _doc("guiyang", [0.9, 0.1, 0, 0], date="2024-03-01", regions=("贵州省", "贵阳市"),
             source="https://www.guiyang.gov.cn/a"),
        _doc("undated", [0.8, 0.2, 0, 0], regions=("辽宁省", "锦州市")),
    ])
    return store


@pytest.mark.parametrize(
    ("filters", "matching"),
    [
        (Filters(region="锦州市"), {"jinzhou", "undated"}),
        (Filters(region="辽宁省"), {"jinzhou", "undated"}),  # a province matches its cities' documents
        (Filters(region="凌海市"), {"jinzhou"}),
        (Filters(region="锦州"), set()),  # the facade resolves short names; the store matches full ones
        (Filters(date_from="2023-08-05"), {"jinzhou", "guiyang"}),  # both ends included
        (Filters(date_to="2023-08-05"), {"jinzhou"}),  # an undated document is left out by a date filter
        (Filters(date_from="2023-08-06", date_to="2024-02-29"), set()),
        (Filters(source="guiyang.gov.cn"), {"guiyang"}),
        (Filters(source="jinzhou"), {"jinzhou"}),
        (Filters(region="锦州市", date_from="2023-01-01"), {"jinzhou"}),
    ],
)
def test_one_where_selects_chunks_and_documents_alike(store, filters, matching):
    where = filter_where(filters)
    assert store.doc_ids(where) == matching
    # The dense leg: Chroma filters before ranking, so the nearest chunk of the others never
    # crowds the matching ones out (k=1 still finds one when one matches).
    found = store.query(np.asarray([0.9, 0.1, 0, 0], np.float32), 1, where=where)
    assert {chunk.doc_id for chunk, _ in found} <= matching and len(found) == min(1, len(matching))
    found = store.query(np.asarray([1, 0, 0, 0], np.float32), 3, where=where, exclude_docs=["undated"])
    assert {chunk.doc_id for chunk, _ in found} == matching - {"undated"}


def test_a_rewritten_document_loses_the_keys_it_no_longer_has(store):
    store.write_documents([_doc("jinzhou", [1, 0, 0, 0])])  # no date, no regions now
    assert store.doc_ids(filter_where(Filters(region="锦州市"))) == {"undated"}
    assert store.doc_records()["jinzhou"].regions == ()
    got = store._chunks.get(ids=["jinzhou#0"], include=["metadatas"])["metadatas"][0]
    assert "regions" not in got and "date_number" not in got


# --- the BM25 leg -------------------------------------------------------------------------


def test_the_bm25_mask_applies_before_the_top_k():
    index = index_of([
        ("guiyang#0", tokenize("贵阳大数据产业园入驻企业三百余家")),
        ("guiyang#1", tokenize("大数据产业园建设数据中心")),
        ("jinzhou#0", tokenize("锦州建设大数据中心")),
    ])
    terms = query_terms("大数据产业园入驻企业")
    assert [cid for cid, _ in index.rank(terms, 1)] == ["guiyang#0"]
    allowed = index.rows(["jinzhou", "no-such-doc"])
    assert allowed.tolist() == [False, False, True]
    # Top 1 among the allowed: not the overall top 1 filtered afterwards (which would be empty).
    assert [cid for cid, _ in index.rank(terms, 1, allowed=allowed)] == ["jinzhou#0"]
    assert index.rank(terms, 5, allowed=index.rows([])) == []


# --- knowledge base names -------------------------------------------------------------------


def test_knowledge_base_names_map_onto_collection_prefixes(tmp_path):
    assert kb_prefix("kb", "default") == "kb"  # a store written before names is the default one
    assert kb_prefix("kb", "news") == "kb.news" and split_prefix("kb.news") == ("kb", "news")
    assert split_prefix("kb") == ("kb", "default")
    for bad in ("", "a.b", "锦州", "a b", "x" * 41, "../etc"):
        with pytest.raises(ValueError, match="knowledge base name"):
            check_kb_name(bad)
    client = connect(tmp_path / "chroma", None)
    assert kb_names(client, "kb", "unit") == ["default"]  # always there
    for prefix, embedder in (("kb.news", "unit"), ("kb.a-1", "unit"), ("kb.other", "another"), ("zz.x", "unit")):
        ChunkStore(client, collection_prefix=prefix, embedder_name=embedder, dim=DIM)
    assert kb_names(client, "kb", "unit") == ["default", "a-1", "news"]  # this embedder's, this prefix's
