"""The reader's answers: what it quotes, what it cites, when it refuses.

The shipped weights read the seed article (kb/) through the real int8 ONNX graph; the quoting
rules are checked on a passage written here, where each expectation can be worked out by hand.
"""

from __future__ import annotations

import re

import pytest

from kbcore.types import Chunk, Passage
from kbqa.answering import not_found_text
from kbqa.reader.answerer import SHORT_SPAN, ReaderAnswerer, quote

PASSAGE_TEXT = (
    "锦州的数字政府建设始于2017年。目前,锦州坚持“三个开放”,推进产业发展,"
    "即开放业务系统、开放数据资源、开放市场应用。这些做法吸引了多家企业落户。"
)


def passage(text: str = PASSAGE_TEXT, start: int = 100) -> Passage:
    chunk = Chunk(doc_id="seed", ordinal=3, text=text, start=start, end=start + len(text), title="数字锦州的味道",
                  date="2023-08-05", source="kb/seed.txt")
    return Passage(chunk=chunk, score=1.0)


def test_a_short_span_is_given_first_then_the_whole_sentence_that_holds_it_with_its_mark():
    p = passage()
    lo = PASSAGE_TEXT.index("开放业务系统")
    hi = PASSAGE_TEXT.index("开放市场应用") + len("开放市场应用")
    text, citation = quote(p, lo, hi)
    sentence = "目前,锦州坚持“三个开放”,推进产业发展,即开放业务系统、开放数据资源、开放市场应用。"
    assert hi - lo <= SHORT_SPAN
    assert text == f"{PASSAGE_TEXT[lo:hi]}：{sentence}[1]"
    # The citation opens the sentence in the document (chunk offsets + the chunk's start) and
    # carries the span for the page to highlight.
    assert (citation.start, citation.end) == (100 + PASSAGE_TEXT.index(sentence), 100 + PASSAGE_TEXT.index(sentence) + len(sentence))
    assert citation.answer_span == (100 + lo, 100 + hi)
    assert citation.to_dict()["answer_span"] == [100 + lo, 100 + hi]


def test_a_span_that_is_the_whole_sentence_is_quoted_once():
    p = passage()
    sentence = "锦州的数字政府建设始于2017年。"
    text, _ = quote(p, 0, len(sentence))
    assert text == f"{sentence}[1]"


def test_a_span_over_two_sentences_quotes_both_and_nothing_else_is_invented():
    p = passage()
    lo = PASSAGE_TEXT.index("2017年")
    hi = PASSAGE_TEXT.index("开放市场应用") + 3
    text, citation = quote(p, lo, hi)
    quoted = re.sub(r"\[\d+\]", "", text).split("：")[-1]
    assert quoted == PASSAGE_TEXT[: PASSAGE_TEXT.index("这些")]
    assert len(citation.spans) == 2


@pytest.fixture(scope="module")
def reader(make_settings):
    from kbqa.reader.model import load_reader

    return load_reader(make_settings().model_cache)


@pytest.fixture(scope="module")
def seed_passages(seed_kb):
    return seed_kb.searcher.retrieve("锦州的“三个开放”是什么？", 5).passages


def test_the_shipped_reader_finds_the_three_opens_in_the_seed_article(reader, seed_passages):
    answerer = ReaderAnswerer(reader, min_margin=-50.0)
    answer = answerer.answer("锦州的“三个开放”是什么？", seed_passages, _terms("锦州的“三个开放”是什么？"))
    assert answer.found
    assert "开放业务系统" in answer.text and "开放数据资源" in answer.text
    lo, hi = answer.citations[0].answer_span
    document = answer.citations[0].passage.chunk
    span = document.text[lo - document.start: hi - document.start]
    assert "开放" in span
    # Every character the answer shows, marks and the span's colon aside, is the passage's.
    body = re.sub(r"\[\d+\]", "", answer.text).split("：", 1)[-1]
    assert body in document.text


def test_below_the_operating_point_the_reader_refuses_and_lists_what_it_read(reader, seed_passages):
    question = "锦州的“三个开放”是什么？"
    answer = ReaderAnswerer(reader, min_margin=50.0).answer(question, seed_passages, _terms(question))
    assert not answer.found and answer.citations == ()
    assert answer.text == not_found_text(question)
    assert answer.related and answer.confidence < 0.5
    assert {p.chunk.ordinal for p in answer.passages} == {p.chunk.ordinal for p in seed_passages}


def test_the_readers_order_puts_the_passage_it_answers_from_first(reader, seed_passages):
    question = "锦州的“三个开放”是什么？"
    answerer = ReaderAnswerer(reader, min_margin=-50.0)
    readings = answerer.read(question, seed_passages)
    assert [r.span.margin for r in readings] == sorted((r.span.margin for r in readings), reverse=True)
    answer = answerer.answer(question, seed_passages, _terms(question))
    assert answer.passages[0] is seed_passages[readings[0].index]


def test_an_empty_question_is_refused_without_reading(reader, seed_passages):
    calls = []

    def counting(question, texts):
        calls.append(question)
        return reader(question, texts)

    answer = ReaderAnswerer(counting, min_margin=0.0).answer("？？", seed_passages, _terms("？？"))
    assert not answer.found and calls == []


def _terms(question: str):
    from kbcore.text import cut_question

    return cut_question(question)


def test_a_knowledge_base_set_to_the_reader_answers_through_it_with_the_span_in_its_citation(make_settings, embedder):
    from kbqa.knowledge_base import KnowledgeBase

    kb = KnowledgeBase(make_settings(answerer="reader", reader_min_margin=-50.0), embedder=embedder)
    kb.ensure_seeded()
    answer = kb.ask("锦州的“三个开放”是什么？")
    assert answer.found and "开放业务系统" in answer.text
    assert answer.to_dict()["citations"][0]["answer_span"] is not None
