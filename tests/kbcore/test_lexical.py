import math

import numpy as np
import pytest

from kbcore.lexical import LexicalCorpus, LexicalIndex
from kbcore.text import query_terms, tokenize
from kbcore.types import chunk_doc_id


def index_of(rows) -> LexicalIndex:
    """A fresh BM25 index of these ``(chunk id, tokens)`` rows, built as the app builds one:
    through a ``LexicalCorpus``, one entry per document."""
    by_doc: dict[str, list] = {}
    for chunk_id, tokens in rows:
        by_doc.setdefault(chunk_doc_id(chunk_id), []).append((chunk_id, tokens))
    corpus = LexicalCorpus()
    for doc_id, doc_rows in by_doc.items():
        corpus.put(doc_id, f"ok:{doc_id}", doc_rows)
    return corpus.index()


def test_tokenize_drops_punctuation_and_lowercases():
    tokens = tokenize("锦州的“三个开放”是什么？GDP")
    assert "锦州" in tokens and "开放" in tokens and "gdp" in tokens
    assert not any(t in tokens for t in ("“", "”", "？"))


def test_query_terms_drop_question_words():
    assert query_terms("锦州的“三个开放”是什么？") == ["锦州", "三个", "开放"]
    assert query_terms("？！。") == []


def test_bm25_ranks_matching_chunk_first_and_idf_orders_rarity():
    rows = [
        ("a#0", tokenize("锦州坚持三个开放，推进产业发展")),
        ("b#0", tokenize("华为与锦州签署云计算产业战略协议")),
        ("c#0", tokenize("杭州发展数字经济")),
    ]
    index = index_of(rows)
    hits = index.rank(query_terms("锦州的三个开放"), 3)
    assert hits[0][0] == "a#0"
    assert all(score > 0 for _, score in hits)
    assert index.rank(["不存在的词"], 3) == []
    assert index.idf("不存在的词") > index.idf("三个") > index.idf("锦州")


def test_empty_index():
    index = index_of([])
    assert len(index) == 0 and index.rank(["锦州"], 5) == []


def corpus_of(docs: dict[str, list[str]]) -> LexicalCorpus:
    corpus = LexicalCorpus()
    for doc_id, texts in docs.items():
        corpus.put(doc_id, f"ok:{doc_id}", [(f"{doc_id}#{i}", tokenize(t)) for i, t in enumerate(texts)])
    return corpus


def assert_same_index(a: LexicalIndex, b: LexicalIndex, queries: list[str]) -> None:
    assert sorted(a.chunk_ids) == sorted(b.chunk_ids)
    for q in queries:
        terms = query_terms(q)
        got, want = dict(a.rank(terms, 50)), dict(b.rank(terms, 50))
        assert got.keys() == want.keys(), q
        assert all(abs(got[c] - want[c]) < 1e-5 for c in got), q
        assert all(abs(a.idf(t) - b.idf(t)) < 1e-9 for t in terms), q


QUERIES = ["锦州的三个开放", "云计算产业", "杭州数字经济", "政务数据开放", "不存在的词"]
DOCS = {
    "a": ["锦州坚持三个开放，推进产业发展", "开放业务系统、开放数据资源、开放市场应用"],
    "b": ["华为与锦州签署云计算产业战略协议"],
    "c": ["杭州发展数字经济", "杭州城市大脑"],
}


def test_corpus_index_equals_an_index_of_the_same_rows_after_drops_and_replacements():
    corpus = corpus_of(DOCS)
    corpus.drop("b")
    corpus.put("c", "ok:c2", [("c#0", tokenize("杭州政务数据开放平台上线"))])  # fewer chunks than before
    expected = index_of(
        [(f"a#{i}", tokenize(t)) for i, t in enumerate(DOCS["a"])] + [("c#0", tokenize("杭州政务数据开放平台上线"))]
    )
    assert_same_index(corpus.index(), expected, QUERIES)
    assert corpus.signature("c") == "ok:c2" and corpus.signature("b") is None
    # "云计算" only lived in the dropped document: its idf is that of an unseen word again.
    assert corpus.index().idf("云计算") == expected.idf("从未出现") and not corpus.index().rank(["云计算"], 5)


def test_corpus_survives_a_save_and_load(tmp_path):
    corpus = corpus_of(DOCS)
    corpus.put("empty", "ok:e", [])
    corpus.revision = "col:rev1"
    path = tmp_path / "sub" / "bm25.npz"
    corpus.save(path)
    loaded = LexicalCorpus.load(path)
    assert loaded is not None and loaded.revision == "col:rev1"
    assert sorted(loaded.doc_ids()) == ["a", "b", "c", "empty"] and loaded.signature("b") == "ok:b"
    assert [loaded.chunk_count(d) for d in ("a", "b", "empty", "absent")] == [2, 1, 0, 0]
    assert_same_index(loaded.index(), corpus.index(), QUERIES)
    assert [p.name for p in path.parent.iterdir()] == ["bm25.npz"]  # no temporary file left


def test_a_missing_or_damaged_snapshot_loads_as_none(tmp_path):
    assert LexicalCorpus.load(tmp_path / "absent.npz") is None
    path = tmp_path / "bm25.npz"
    corpus_of(DOCS).save(path)
    path.write_bytes(path.read_bytes()[: 200])  # a torn copy
    assert LexicalCorpus.load(path) is None
    path.write_bytes(b"not a zip at all")
    assert LexicalCorpus.load(path) is None
    empty = LexicalCorpus()
    empty.save(path)
    assert len(LexicalCorpus.load(path)) == 0 and len(LexicalCorpus.load(path).index()) == 0


def test_an_index_keeps_serving_while_its_corpus_grows():
    corpus = corpus_of(DOCS)
    serving = corpus.index()
    corpus.put("d", "ok:d", [("d#0", tokenize("全新的词汇：量子通信"))])  # new ids in the shared vocabulary
    assert serving.rank(tokenize("量子通信"), 5) == [] and serving.idf("量子") == serving.idf("从未出现")
    assert [c for c, _ in corpus.index().rank(tokenize("量子通信"), 5)] == ["d#0"]


def test_idf_uses_each_terms_chunk_frequency():
    rows = [(f"{d}#{i}", tokenize(t)) for d, texts in DOCS.items() for i, t in enumerate(texts)]
    index = index_of(rows)
    n = len(rows)
    for term in ["锦州", "开放", "杭州", "云计算", "从未出现"]:
        df = sum(term in tokens for _, tokens in rows)
        assert index.idf(term) == pytest.approx(math.log(1 + (n - df + 0.5) / (df + 0.5))), term


def test_a_saved_index_is_mapped_back_only_for_its_own_corpus_state(tmp_path):
    corpus = corpus_of(DOCS)
    corpus.revision = "col:r1"
    path = tmp_path / "bm25.npz"
    corpus.save(path)
    corpus.save_index(path, corpus.index())
    corpus.save_index(path, corpus.index())  # a second save swaps the directory, leaving no debris
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bm25.index", "bm25.npz"]

    loaded = LexicalCorpus.load(path)
    mapped = loaded.load_index(path)
    assert isinstance(mapped._bm25.scores["data"], np.memmap)  # mapped, not rebuilt
    assert_same_index(mapped, corpus.index(), QUERIES)
    assert mapped.idf("锦州") == corpus.index().idf("锦州")

    loaded.revision = "col:r2"  # the store moved on since: the saved index is not this corpus's
    assert loaded.load_index(path) is None
    loaded.revision = "col:r1"
    loaded.drop("b")
    assert loaded.load_index(path) is None
    (tmp_path / "bm25.index" / "data.csc.index.npy").write_bytes(b"torn")
    assert LexicalCorpus.load(path).load_index(path) is None
