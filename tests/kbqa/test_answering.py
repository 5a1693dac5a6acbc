"""The extractive answerer on hand-built passages (no store, no model), and the question's
terms carried from the search to it through a knowledge base on a fake embedder.

The end-to-end answers on the seed article are in test_knowledge_base.py.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import kbcore.text
from kbqa.answer_model import BACKGROUND
from kbcore.embeddings import Embedder
from kbcore.evidence import coverage
from kbqa.answering import EMPTY_QUESTION_TEXT, NOT_FOUND_TEXT, NOT_FOUND_TEXT_EN, ExtractiveAnswerer
from kbqa.langchain_adapters import passage_to_langchain
from kbcore.settings import Settings
from kbcore.text import cut_question
from kbcore.types import Chunk, Passage

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


def ask(question: str, passages: list[Passage], *, threshold: float = 0.0, weigh=None):
    terms = cut_question(question)
    if weigh is not None:
        terms = terms.weighted(weigh)
    return ExtractiveAnswerer(min_probability=threshold).answer(question, passages, terms)


def test_picks_the_sentence_that_answers():
    answer = ask("锦州的“三个开放”是什么？", [BBQ, OPEN, GEO])
    assert answer.found and 0.0 < answer.confidence < 1.0  # the fitted probability
    # The fitted chooser takes the answering sentence and (on this toy passage) the one after it:
    # a run of two sentences of one passage, never sentences of the off-topic passages.
    assert answer.text.startswith(OPEN_ANSWER + "[1]")
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
    # The answer is in the second passage, numbered [1] as the first (and only) one it uses:
    # runners-up from other passages no longer pad the answer (issue 11: concise answers).
    answer = ask("锦州什么时候举办烧烤节？", [other, BBQ])
    assert answer.text.startswith("每年七月，锦州举办烧烤节。[1]") and elsewhere not in answer.text
    assert [(c.n, c.passage.chunk.doc_id) for c in answer.citations] == [(1, "jinzhou.txt")]
    # The terms' weights decide coverage, not a lookup of the answerer's own: the other passage's
    # sentence holds 锦州 and 烧烤节 but not 举办.
    question = "锦州什么时候举办烧烤节？"
    shares = []
    for weigh in (lambda word: 1.0, lambda word: 5.0 if word == "举办" else 1.0):
        terms = cut_question(question).weighted(weigh)
        found = ExtractiveAnswerer().candidates(question, [other, BBQ], terms)
        assert found.candidates[0].text == elsewhere
        assert found.features["coverage"][0] == pytest.approx(coverage(terms.weights, elsewhere))
        shares.append(found.features["coverage"][0])
    assert shares[1] < shares[0]  # 举办, missing from the sentence, weighs more


def test_refuses_below_the_threshold():
    default = Settings().answer_min_probability
    refused = ask("锦州的港口吞吐量是多少？", [OPEN, BBQ, GEO], threshold=default)
    assert not refused.found and refused.text == NOT_FOUND_TEXT and refused.citations == ()
    assert refused.confidence < default  # only 锦州 of 锦州 / 港口 / 吞吐量 is there
    assert refused.passages == (OPEN, BBQ, GEO)  # still shown as what was searched
    assert ask("锦州的港口吞吐量是多少？", [OPEN, BBQ, GEO], threshold=refused.confidence * 0.99).found
    assert not ask("锦州的“三个开放”是什么？", []).found
    empty = ask("？？", [OPEN])
    assert not empty.found and empty.text == EMPTY_QUESTION_TEXT


def test_streams_growing_prefixes_of_the_answer(monkeypatch):
    answerer = ExtractiveAnswerer(min_probability=0.0)
    question = "锦州什么时候举办烧烤节？"
    # A two-sentence answer (a run) streams sentence by sentence.
    monkeypatch.setattr(answerer, "decide", lambda found, model=None: (
        next(i for i, c in enumerate(found.candidates) if len(c.sentences) == 2), 0.9))
    parts = list(answerer.stream({"question": question, "passages": [BBQ], "terms": cut_question(question)}))
    assert [p.text for p in parts] == ["每年七月，锦州举办烧烤节。[1]", "每年七月，锦州举办烧烤节。[1]烧烤节期间游客众多，街头巷尾都是烤串的香味。[1]"]
    assert all(p.found and p.citations == parts[-1].citations for p in parts)
    answerer = ExtractiveAnswerer()
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
    answerer = ExtractiveAnswerer()
    from_documents = answerer.invoke({"question": question, "passages": [passage_to_langchain(OPEN)]})
    direct = answerer.answer(question, [OPEN], cut_question(question))
    assert (from_documents.text, from_documents.confidence) == (direct.text, direct.confidence)
    assert from_documents.citations[0].spans == direct.citations[0].spans


def test_settings_are_checked():
    for bad in ({"min_probability": 1.5}, {"max_embedded": -1}, {"max_chars": 10}, {"passages_considered": 0}):
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
    # Answer whatever the fitted probability on this toy corpus: these tests are about the terms.
    kb = KnowledgeBase(make_settings(store=tmp_path / "chroma", lexical_cache=tmp_path / "bm25", answer_min_probability=0.0),
                       embedder=char_embedder)
    assert sorted(kb.ingest([str(folder)]).added) == ["jinzhou.md", "other.md"]
    return kb


def test_the_question_is_cut_once_and_weighed_by_the_search(small_kb, monkeypatch):
    question = "锦州的“三个开放”是什么？"
    found = small_kb.search(question)
    index = small_kb.searcher.lexical_index()
    assert found.terms.weights == {word: index.idf(word) for word in ("锦州", "三个", "开放")}
    assert found.terms.search == tuple(kbcore.text.query_terms(question))

    cuts, lookups = [], []
    real_words, real_index = kbcore.text._words, small_kb.searcher.lexical_index
    monkeypatch.setattr(kbcore.text, "_words", lambda text: cuts.append(text) or real_words(text))
    monkeypatch.setattr(small_kb.searcher, "lexical_index", lambda: lookups.append(1) or real_index())
    answer = small_kb.ask(question)
    assert answer.found and answer.text == OPEN_ANSWER + "[1]"
    assert cuts == [question] and len(lookups) == 1  # one jieba cut, one index, per question
    citation = answer.citations[0]
    document = "数字锦州的味道\n" + DOC.split("\n", 1)[1]  # the cleaned text the offsets refer to
    assert citation.passage.chunk.doc_id == "jinzhou.md" and document[citation.start : citation.end] == OPEN_ANSWER


# --- meaning, languages, refusals with related reading (issue 11) ----------------------------------


class ConceptEmbedder(Embedder):
    """Texts are near when they name the same concepts, in either language: a stand-in for
    multilingual e5 (an English question and a Chinese sentence meet by meaning)."""

    name, dim = "concepts", 6
    CONCEPTS = (("烧烤", "barbecue"), ("七月", "july"), ("开放", "open"), ("港口", "port"), ("海滨", "seaside"))

    def __init__(self):
        self.calls = []

    def embed_queries(self, texts):
        self.calls.append(("queries", len(texts)))
        return self._embed(texts)

    def embed_passages(self, texts):
        self.calls.append(("passages", len(texts)))
        return self._embed(texts)

    def _embed(self, texts):
        out = np.full((len(texts), len(self.CONCEPTS) + 1), 1e-3, np.float32)
        for row, text in enumerate(texts):
            low = text.lower()
            for col, names in enumerate(self.CONCEPTS):
                out[row, col] += sum(low.count(n) for n in names)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_an_english_question_gets_the_chinese_sentence_cited():
    question = "When is Jinzhou's barbecue festival held in July?"
    answerer = ExtractiveAnswerer(embedder=ConceptEmbedder(), min_probability=0.0)
    answer = answerer.answer(question, [OPEN, BBQ, GEO], cut_question(question))
    assert answer.found and answer.text.startswith("每年七月，锦州举办烧烤节。[1]")
    assert [c.passage for c in answer.citations] == [BBQ]


def test_a_refusal_speaks_the_questions_language_and_lists_related_passages():
    never = ExtractiveAnswerer(embedder=ConceptEmbedder(), min_probability=1.0)
    english = never.answer("How busy is Jinzhou's port?", [OPEN, BBQ, GEO], cut_question("How busy is Jinzhou's port?"))
    assert not english.found and english.text == NOT_FOUND_TEXT_EN and not english.citations
    assert english.related == (OPEN,)  # one per document: all three passages are of jinzhou.txt
    data = english.to_dict()
    assert data["found"] is False and [p["chunk_id"] for p in data["related"]] == ["jinzhou.txt#1"]
    assert not re.search(r"\[\d+\]", data["answer"])
    chinese = never.answer("锦州的港口吞吐量是多少？", [OPEN, BBQ, GEO], cut_question("锦州的港口吞吐量是多少？"))
    assert chinese.text == NOT_FOUND_TEXT and chinese.related == (OPEN,)
    answered = ExtractiveAnswerer(min_probability=0.0).answer("锦州的“三个开放”是什么？", [OPEN], cut_question("锦州的“三个开放”是什么？"))
    assert answered.found and answered.related == () and answered.to_dict()["related"] == []


def test_leading_datelines_and_run_on_titles_are_trimmed_with_exact_offsets():
    news = "2020-02-14 10:00，正文：新华社南京2月14日电（记者 赵久龙）江苏对稳产保供主体给予不超过2%的贴息支持。"
    policy = "关于支持企业复工的通知 苏政发〔2020〕1号 对稳产保供主体给予贷款贴息支持。"
    for doc, kept in ((news, "江苏对稳产保供主体给予不超过2%的贴息支持。"), (policy, "对稳产保供主体给予贷款贴息支持。")):
        p = passage(doc, ordinal=0, doc=doc, doc_id="d.txt")
        answer = ExtractiveAnswerer(min_probability=0.0).answer("稳产保供主体有什么贴息支持？", [p], cut_question("稳产保供主体有什么贴息支持？"))
        assert answer.text == kept + "[1]"
        (span,) = answer.citations[0].spans
        assert doc[span[0] : span[1]] == kept


def test_candidates_are_sentences_and_short_runs_with_every_feature():
    from kbqa.answer_model import CANDIDATE_FEATURES

    question = "锦州什么时候举办烧烤节？"
    found = ExtractiveAnswerer(embedder=ConceptEmbedder()).candidates(question, [OPEN, BBQ], cut_question(question))
    texts = [c.text for c in found.candidates]
    assert "每年七月，锦州举办烧烤节。烧烤节期间游客众多，街头巷尾都是烤串的香味。" in texts  # a run of two
    assert len(texts) == 6  # 2 sentences a passage: 2 singles + 1 run each
    assert set(found.features) == set(CANDIDATE_FEATURES)
    assert all(len(column) == len(texts) for column in found.features.values())
    assert found.features["sim_rel"].max() == pytest.approx(0.0) and found.features["coverage_rel"].max() == 0.0


def test_sentence_vectors_are_embedded_once():
    embedder = ConceptEmbedder()
    answerer = ExtractiveAnswerer(embedder=embedder, min_probability=0.0)
    question = "锦州什么时候举办烧烤节？"
    answerer.answer(question, [OPEN, BBQ], cut_question(question))
    # The question, the passages' 4 sentences, and once per embedder the background sentences.
    assert embedder.calls == [("queries", 1), ("passages", 4), ("passages", len(BACKGROUND))]
    answerer.answer("锦州的“三个开放”是什么？", [OPEN, BBQ], cut_question("锦州的“三个开放”是什么？"))
    assert embedder.calls[3:] == [("queries", 1)]  # the passages' sentences come from the cache
    # Another answerer on the same embedder (another knowledge base of the process) embeds its
    # own sentences but not the background again.
    ExtractiveAnswerer(embedder=embedder, min_probability=0.0).answer(question, [OPEN, BBQ], cut_question(question))
    assert embedder.calls[4:] == [("queries", 1), ("passages", 4)]


def test_an_english_query_is_searched_by_its_translated_words(small_kb, monkeypatch):
    # BM25 and the coverage rerank match words; an English question shares none with Chinese
    # passages, so BM25 gets the Chinese words a dictionary gives for them (kbqa/crosslingual.py),
    # and without any (translation off) only the (multilingual) dense leg ranks them.
    index = small_kb.searcher.lexical_index()
    calls = []
    real = type(index).rank
    monkeypatch.setattr(type(index), "rank", lambda self, *a, **k: calls.append(a[0]) or real(self, *a, **k))
    found = small_kb.search("What are the three openings of Jinzhou?")
    assert found.passages and calls == [found.terms.search] and {"锦州", "开放"} <= set(calls[0])
    assert "三个开放" in found.passages[0].chunk.text and found.passages[0].coverage > 0
    calls.clear()
    monkeypatch.setattr(small_kb.searcher, "translate_foreign", False)
    found = small_kb.search("What are the three openings of Jinzhou?")
    assert found.passages and not calls and all(p.coverage == 0.0 for p in found.passages)
