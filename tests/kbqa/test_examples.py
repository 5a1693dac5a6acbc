"""Example questions from what the knowledge base holds (kbqa/examples.py), and the facade's
choice among them (KnowledgeBase.example_questions): on the seed, every example offered is
answered with a citation."""

from __future__ import annotations

import pytest

from kbqa.examples import ENGLISH_QUESTIONS, candidate_questions, heading_question, quoted_terms
from kbcore.types import Chunk


@pytest.mark.parametrize(
    "heading, question",
    [
        ("顶层设计是一把手工程", "顶层设计是什么？"),  # a statement: its subject is asked about
        ("锦州模式可以复制", "锦州模式是什么？"),
        ("云平台只是起点", "云平台是什么？"),
        ("闭环已经形成", "闭环是什么？"),
        ("“三大”是基础", "“三大”是什么？"),
        ("数字政府的方法论", "数字政府的方法论是什么？"),  # a noun phrase: asked about whole
        ("一、总体要求", "总体要求是什么？"),  # numbering goes
        ("（二）工作目标", "工作目标是什么？"),
        ("第三章 保障措施", "保障措施是什么？"),
        ("什么是数字政府", "什么是数字政府？"),  # a heading that asks already
        ("于是开始", "于是开始是什么？"),  # one letter before 是 is no subject
        ("  数字锦州的味道 ", "数字锦州的味道是什么？"),
    ],
)
def test_a_heading_becomes_a_question(heading, question):
    assert heading_question(heading) == question


@pytest.mark.parametrize("line", ["", "   ", "这是一个句子，不是标题。", "1. 列表项", "x" * 30, "12"])
def test_a_line_that_is_no_heading_makes_no_question(line):
    assert heading_question(line) is None


def test_quoted_terms_most_quoted_first_and_no_clauses():
    text = "推进“一网通办”。“三个开放”即开放业务系统。实现“一网通办”，坚持“三个开放”和“一网通办”。“说的是，一句话”“A”“12”"
    assert quoted_terms(text) == ["一网通办", "三个开放"]
    assert quoted_terms("没有引号。") == []


def chunk(doc_id: str, ordinal: int, text: str, *, title: str = "", section: str = "") -> Chunk:
    return Chunk(doc_id, ordinal, text, 0, len(text), title=title, section=section)


def test_candidates_take_each_document_in_turn_headings_then_terms_then_title():
    chunks = [
        # out of order, as a store may return them: a document's chunks are read by ordinal
        chunk("b.txt", 1, "乙文的“智慧医疗”。", title="乙文", section="乙节"),
        chunk("a.txt", 0, "甲文说“三大步”和“三大步”，还有“一号受理”。", title="甲城报告", section="顶层设计是一把手工程"),
        chunk("a.txt", 1, "再说“一号受理”与“三大步”。", title="甲城报告", section="顶层设计是一把手工程"),
        chunk("a.txt", 2, "最后。", title="甲城报告", section="锦州模式可以复制"),
        chunk("b.txt", 0, "乙文开头。", title="乙文"),
    ]
    assert candidate_questions(chunks) == [
        "乙节是什么？", "顶层设计是什么？",  # the first of each document (as first met), then the second ...
        "“智慧医疗”是什么？", "锦州模式是什么？",
        "乙文是什么？", "“三大步”是什么？",
        "“一号受理”是什么？",
        "甲城报告是什么？",
    ]


def test_candidates_have_no_duplicates_and_no_title_that_is_no_heading():
    long_title = "关于进一步加强数字政府建设推进政务服务一网通办工作的实施意见"
    chunks = [
        chunk("a.txt", 0, "“云平台”很重要。", title="云平台", section="云平台是起点"),
        chunk("b.txt", 0, "又是“云平台”。" + "“" + "很长很长的专有名词" + "”", title=long_title),
    ]
    questions = candidate_questions(chunks)
    assert questions == ["云平台是什么？", "“云平台”是什么？", "“很长很长的专有名词”是什么？"]
    assert candidate_questions([]) == []


# --- the facade, on the real seed knowledge base --------------------------------------------------


def test_every_example_of_the_seed_is_answered_with_a_citation(seed_kb):
    examples = seed_kb.example_questions(4)
    assert len(examples) == 4
    for question in examples:
        answer = seed_kb.ask(question)
        assert answer.found and answer.citations, (question, answer.text)
        assert "[1]" in answer.text and answer.citations[0].passage.chunk.doc_id == "000_d3d8b424e3677781.txt"
    # They come from the article: each asks about a heading's subject or a term it quotes.
    article = "".join(c.text + c.section for c in seed_kb.store.first_chunks(200))
    assert all(q.removesuffix("是什么？").strip("“”") in article for q in examples)


def test_the_examples_are_the_most_confidently_answered_of_the_first_candidates(seed_kb):
    """Exactly the rule: of the first ``max_asks`` candidates, those answered with a citation,
    one per distinct answer (the more confident), the ``n`` most confident, in candidate order."""
    candidates = candidate_questions(seed_kb.store.first_chunks(200))[:12]
    best: dict[str, tuple[float, str]] = {}
    for question in candidates:
        answer = seed_kb.ask(question)
        if answer.found and answer.citations and answer.confidence > best.get(answer.text, (-1.0, ""))[0]:
            best[answer.text] = (answer.confidence, question)
    chosen = {q for _, q in sorted(best.values(), reverse=True)[:2]}
    refused = [q for q in candidates if not seed_kb.ask(q).found]
    assert refused, "on the seed some template questions are refused: the asking is what filters them"
    assert seed_kb.example_questions(2, max_asks=12) == [q for q in candidates if q in chosen]


# What each English example's answer must quote from the seed: answered, and answered right.
ENGLISH_ANSWERS = {
    "What are Jinzhou's \"three openings\"?": "开放业务系统、开放数据资源、开放市场应用",
    "What agreement did Huawei and Jinzhou sign in 2017?": "华为与锦州签署云计算产业战略协议",
    "How many business systems were migrated to Huawei Cloud?": "100多个业务系统",
    "Who leads Jinzhou's big data leading group?": "市长任双组长",
    "How many guests attended the 2019 cloud industry summit?": "1500余位嘉宾",
    "What is the 8890 government service platform?": "8890政务便民综合服务平台",
}


def test_the_english_examples_are_english_and_the_seed_answers_them_right(seed_kb):
    """Issue 21 §3: the English page offers English questions, each one the demo knowledge base
    answers (through kbqa/crosslingual.py), with the sentence that answers it."""
    assert sorted(ENGLISH_QUESTIONS) == sorted(ENGLISH_ANSWERS)
    assert all(q.isascii() and len(q) <= 60 for q in ENGLISH_QUESTIONS)  # a button shows 60 characters
    for question, quoted in ENGLISH_ANSWERS.items():
        answer = seed_kb.ask(question)
        assert answer.found and answer.citations and quoted in answer.text, (question, answer.text)
    offered = seed_kb.example_questions(4, lang="en")
    assert len(offered) == 4 and set(offered) <= set(ENGLISH_QUESTIONS)
    assert seed_kb.example_questions(4) != offered  # Chinese ones stay the Chinese page's (cached apart)
    assert seed_kb.example_questions(4, lang="en") == offered


def test_examples_are_computed_once_per_content_of_the_store(make_settings, embedder, tmp_path, monkeypatch):
    from kbqa.knowledge_base import KnowledgeBase

    kb = KnowledgeBase(make_settings(), embedder=embedder)
    assert kb.example_questions() == []  # an empty store: nothing to offer
    kb.ensure_seeded()
    asked: list[str] = []
    retrieve = kb.searcher.retrieve
    monkeypatch.setattr(kb.searcher, "retrieve", lambda q, k: asked.append(q) or retrieve(q, k))
    first = kb.example_questions()
    assert first and 0 < len(asked) <= 12
    assert kb.example_questions() == first and len(asked) <= 12  # the same content: no asking again
    # New content: asked again, and the new document's questions are among the candidates.
    (tmp_path / "port.txt").write_text("锦州港\n\n锦州港是辽宁西部的出海口，被称为“辽西第一港”。\n", encoding="utf-8")
    kb.ingest([str(tmp_path / "port.txt")])
    asked.clear()
    kb.example_questions()
    assert "“辽西第一港”是什么？" in asked or "锦州港是什么？" in asked
