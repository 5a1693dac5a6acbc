from kbqa.lexical import LexicalIndex, query_terms, tokenize


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
    index = LexicalIndex(rows)
    hits = index.search(query_terms("锦州的三个开放"), 3)
    assert hits[0][0] == "a#0"
    assert all(score > 0 for _, score in hits)
    assert index.search(["不存在的词"], 3) == []
    assert index.idf("不存在的词") > index.idf("三个") > index.idf("锦州")


def test_empty_index():
    index = LexicalIndex([])
    assert len(index) == 0 and index.search(["锦州"], 5) == []
