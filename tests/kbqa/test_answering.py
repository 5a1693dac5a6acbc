"""The extractive answerer on hand-built passages (no store, no model), and the question's
terms carried from the search to it through a knowledge base on a fake embedder.

The end-to-end answers on the seed article are in test_knowledge_base.py.
"""

from __future__ import annotations

import pytest

import kbqa.text
from kbqa.answering import EMPTY_QUESTION_TEXT, NOT_FOUND_TEXT, ExtractiveAnswerer
from kbqa.langchain_adapters import passage_to_langchain
from kbqa.text import cut_question
from kbqa.types import Chunk, Passage

# One cleaned document; every passage below is a span of it (Chunk.text == DOC[start:end]).
DOC = (
    "数字锦州的味道\n"
    "锦州市位于辽宁省西南部，是一座海滨城市。\n"
    "锦州模式\n"
    "锦州坚持“三个开放”，即开放业务系统、开放数据资源、开放市场应用。这一做法吸引了多家企业落户。\n"
    "夏天的锦州\n"
    "每年七月，锦州举办烧烤节。烧烤节期间游客众多，街头巷尾都是烤串的香味。\n"
)
OPEN_ANSWER = "锦州坚持“三个开放”，即开放业务系统、开放数据资源、开放市场应用。"


def passage(text: str, *, ordinal: int, section: str = "", doc: str = DOC, doc_id: str = "jinzhou.txt") -> Passage:
    start = doc.index(text)
    chunk = Chunk(doc_id=doc_id, ordinal=ordinal, text=text, start=start, end=start + len(text),
                  title="数字锦州的味道", section=section, source="https://example.gov.cn/jinzhou.html")
    assert doc[chunk.start : chunk.end] == chunk.text
    return Passage(chunk=chunk, score=1.0)


GEO = passage("锦州市位于辽宁省西南部，是一座海滨城市。", ordinal=0)
OPEN = passage(OPEN_ANSWER + "这一做法吸引了多家企业落户。", ordinal=1, section="锦州模式")
BBQ = passage("每年七月，锦州举办烧烤节。烧烤节期间游客众多，街头巷尾都是烤串的香味。", ordinal=2, section="夏天的锦州")


def ask(question: str, passages: list[Passage], *, threshold: float = 0.8, weigh=None):
    terms = cut_question(question)
    if weigh is not None:
        terms = terms.weighted(weigh)
    return ExtractiveAnswerer(refusal_threshold=threshold).answer(question, passages, terms)


def test_picks_the_sentence_that_answers():
    answer = ask("锦州的“三个开放”是什么？", [BBQ, OPEN, GEO])
    assert answer.found and answer.confidence == pytest.approx(1.0)
    assert answer.text == OPEN_ANSWER + "[1]"  # not the off-topic sentence after it
    assert [c.passage for c in answer.citations] == [OPEN]
    assert answer.passages == (BBQ, OPEN, GEO)


def test_citations_are_exact_spans_of_the_document():
    answer = ask("锦州什么时候举办烧烤节？", [OPEN, BBQ])
    assert answer.text == "每年七月，锦州举办烧烤节。[1]烧烤节期间游客众多，街头巷尾都是烤串的香味。[1]"
    (citation,) = answer.citations
    assert citation.n == 1 and citation.passage is BBQ
    assert [DOC[s:e] for s, e in citation.spans] == ["每年七月，锦州举办烧烤节。", "烧烤节期间游客众多，街头巷尾都是烤串的香味。"]
    assert (citation.start, citation.end) == (citation.spans[0][0], citation.spans[-1][1])
    assert DOC[citation.start : citation.end] == citation.quote == BBQ.chunk.text
    assert citation.to_dict()["quote"] == citation.quote and citation.to_dict()["passage_start"] == BBQ.chunk.start


def test_passages_are_numbered_by_first_use_and_weights_come_from_the_terms():
    elsewhere = "锦州烧烤节的名气很大，吸引了各地游客。"
    other = passage(elsewhere, ordinal=0, doc=elsewhere, doc_id="news.txt")
    # Words alike: the best sentence is in the second passage ([1]); a runner-up covering three
    # of four words comes from the first ([2]).
    answer = ask("锦州什么时候举办烧烤节？", [other, BBQ])
    assert answer.text.startswith("每年七月，锦州举办烧烤节。[1]") and f"{elsewhere}[2]" in answer.text
    assert [(c.n, c.passage.chunk.doc_id) for c in answer.citations] == [(1, "jinzhou.txt"), (2, "news.txt")]
    assert answer.citations[1].spans == ((0, len(elsewhere)),)
    # The terms' weights decide, not a lookup of the answerer's own: with "举办" rare (heavy),
    # the sentence without it is no runner-up any more.
    heavy = ask("锦州什么时候举办烧烤节？", [other, BBQ], weigh=lambda word: 5.0 if word == "举办" else 1.0)
    assert heavy.found and [c.passage.chunk.doc_id for c in heavy.citations] == ["jinzhou.txt"]


def test_refuses_below_the_threshold():
    refused = ask("锦州的港口吞吐量是多少？", [OPEN, BBQ, GEO])
    assert not refused.found and refused.text == NOT_FOUND_TEXT and refused.citations == ()
    assert refused.confidence == pytest.approx(1 / 3)  # only 锦州 of 锦州 / 港口 / 吞吐量
    assert refused.passages == (OPEN, BBQ, GEO)  # still shown as what was searched
    assert ask("锦州的港口吞吐量是多少？", [OPEN, BBQ, GEO], threshold=0.3).found
    assert not ask("锦州的“三个开放”是什么？", []).found
    empty = ask("？？", [OPEN])
    assert not empty.found and empty.text == EMPTY_QUESTION_TEXT


def test_streams_growing_prefixes_of_the_answer():
    answerer = ExtractiveAnswerer(refusal_threshold=0.8)
    question = "锦州什么时候举办烧烤节？"
    parts = list(answerer.stream({"question": question, "passages": [BBQ], "terms": cut_question(question)}))
    assert [p.text for p in parts] == ["每年七月，锦州举办烧烤节。[1]", "每年七月，锦州举办烧烤节。[1]烧烤节期间游客众多，街头巷尾都是烤串的香味。[1]"]
    assert all(p.found and p.citations == parts[-1].citations for p in parts)
    refusal = list(answerer.stream({"question": "锦州的港口吞吐量是多少？", "passages": [BBQ]}))
    assert len(refusal) == 1 and not refusal[0].found


def test_quotes_document_text_verbatim_escaping_nothing():
    # Escaping is the page's job (the chat and the widget escape what they show); the answer
    # and its citation are the document's own characters.
    raw = "锦州开放平台的地址是<b>open.jz.gov.cn</b>，口号是**数据&市场**，详见[说明](http://jz.gov.cn/a?b=1&c=2)。"
    doc = f"锦州模式\n{raw}\n"
    answer = ask("锦州开放平台的地址", [passage(raw, ordinal=0, doc=doc)], threshold=0.5)
    assert answer.found and answer.text == raw + "[1]"
    assert answer.citations[0].quote == raw and answer.to_dict()["answer"] == raw + "[1]"


def test_langchain_input_without_terms_weighs_words_alike():
    question = "锦州的“三个开放”是什么？"
    answerer = ExtractiveAnswerer(refusal_threshold=0.8)
    from_documents = answerer.invoke({"question": question, "passages": [passage_to_langchain(OPEN)]})
    direct = answerer.answer(question, [OPEN], cut_question(question))
    assert (from_documents.text, from_documents.confidence) == (direct.text, direct.confidence)
    assert from_documents.citations[0].spans == direct.citations[0].spans


def test_settings_are_checked():
    for bad in ({"refusal_threshold": 1.5}, {"max_sentences": 0}, {"max_chars": 10}, {"passages_considered": 0}):
        with pytest.raises(ValueError):
            ExtractiveAnswerer(**bad)


# --- through a knowledge base on the fake embedder ------------------------------------------------


@pytest.fixture
def small_kb(tmp_path, make_settings, char_embedder):
    from kbqa.knowledge_base import KnowledgeBase

    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "jinzhou.md").write_text("# 数字锦州的味道\n\n" + DOC.split("\n", 1)[1], encoding="utf-8")
    (folder / "other.md").write_text("# 大连港\n\n大连港的货物吞吐量位居全国前列。\n", encoding="utf-8")
    kb = KnowledgeBase(make_settings(store=tmp_path / "chroma", lexical_cache=tmp_path / "bm25"), embedder=char_embedder)
    assert sorted(kb.ingest([str(folder)]).added) == ["jinzhou.md", "other.md"]
    return kb


def test_the_question_is_cut_once_and_weighed_by_the_search(small_kb, monkeypatch):
    question = "锦州的“三个开放”是什么？"
    found = small_kb.search(question)
    index = small_kb.searcher.lexical_index()
    assert found.terms.weights == {word: index.idf(word) for word in ("锦州", "三个", "开放")}
    assert found.terms.search == tuple(kbqa.text.query_terms(question))

    cuts, lookups = [], []
    real_words, real_index = kbqa.text._words, small_kb.searcher.lexical_index
    monkeypatch.setattr(kbqa.text, "_words", lambda text: cuts.append(text) or real_words(text))
    monkeypatch.setattr(small_kb.searcher, "lexical_index", lambda: lookups.append(1) or real_index())
    answer = small_kb.ask(question)
    assert answer.found and answer.text == OPEN_ANSWER + "[1]"
    assert cuts == [question] and len(lookups) == 1  # one jieba cut, one index, per question
    citation = answer.citations[0]
    document = "数字锦州的味道\n" + DOC.split("\n", 1)[1]  # the cleaned text the offsets refer to
    assert citation.passage.chunk.doc_id == "jinzhou.md" and document[citation.start : citation.end] == OPEN_ANSWER
