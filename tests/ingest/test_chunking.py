"""ingest.chunking: sentence spans and chunk packing with exact offsets."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.chunking import chunk_document
from ingest.cleaning import clean_document
from ingest.loaders import iter_documents
from ingest.records import SourceDocument
from kbcore.text import is_heading_line, split_sentences
from kbcore.types import Document

REPO = Path(__file__).resolve().parents[2]
SEED = next((p for p in [Path("/work/shared/seed/000_d3d8b424e3677781.txt"), REPO / "kb" / "000_d3d8b424e3677781.txt"]
             if p.exists()), None)
EVAL_CORPUS = Path("/work/shared/eval/dev/corpus.jsonl")
SEED_HEADINGS = ["数字政府的方法论", "顶层设计是一把手工程", "“三大”是基础", "云平台只是起点", "锦州模式可以复制", "闭环已经形成"]


def make_doc(text: str, **kw) -> Document:
    return Document(doc_id=kw.get("doc_id", "d"), title=kw.get("title", "T"), text=text, source=kw.get("source", "s"),
                    date=kw.get("date"))


def check_invariants(doc: Document, chunks, chunk_size: int) -> None:
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    covered = [False] * len(doc.text)
    last_start = -1
    for c in chunks:
        assert c.text, "empty chunk"
        assert c.text == doc.text[c.start:c.end]
        assert c.text == c.text.strip()
        assert len(c.text) <= chunk_size
        assert c.start > last_start
        last_start = c.start
        assert (c.doc_id, c.title, c.date, c.source) == (doc.doc_id, doc.title, doc.date, doc.source)
        for i in range(c.start, c.end):
            covered[i] = True
    lost = [ch for ch, cov in zip(doc.text, covered) if not cov and not ch.isspace()]
    assert not lost, f"text not in any chunk: {''.join(lost)[:50]!r}"


# --------------------------------------------------------------------------- sentences

def pieces(text):
    return [text[s:e] for s, e in split_sentences(text)]


def test_sentence_boundaries():
    assert pieces("他说：“好！”然后走了。价格2.5元. Next one? a.php?id=1 ok\n新行……结束") == [
        "他说：“好！”", "然后走了。", "价格2.5元. ", "Next one? ", "a.php?id=1 ok\n", "新行……", "结束"]
    assert pieces("是否有一定之规?发展数字经济是否有成熟的方法论?在回答此问题之前") == [
        "是否有一定之规?", "发展数字经济是否有成熟的方法论?", "在回答此问题之前"]
    assert pieces("「你好。」『再见！』（注：见上。）后文；再后") == ["「你好。」", "『再见！』", "（注：见上。）", "后文；", "再后"]
    assert pieces("他说……然后呢？！好吧") == ["他说……", "然后呢？！", "好吧"]
    assert pieces("增长2.5%。版本v1.2.3发布") == ["增长2.5%。", "版本v1.2.3发布"]
    assert pieces("") == []
    assert pieces("   ") == ["   "]


# --------------------------------------------------------------------------- headings

@pytest.mark.parametrize("line", ["数字政府的方法论", "“三大”是基础", "顶层设计是一把手工程", "一、夯实数字基础设施", "Getting started"])
def test_heading_lines(line):
    assert is_heading_line(line)


@pytest.mark.parametrize(
    "line",
    ["逐一进行解释:", "具体来看。", "由此,数字生态闭环、数字产业闭环已经形成", "1. 安装依赖", "- 列表项", "（1）第一项",
     "这是一个超过二十四个字符的很长很长很长的普通句子没有标点", "2023", "真的吗？"],
)
def test_not_heading_lines(line):
    assert not is_heading_line(line)


# --------------------------------------------------------------------------- the seed

@pytest.fixture(scope="module")
def seed_doc() -> Document:
    if SEED is None:
        pytest.skip("seed document not available")
    loaded = next(iter(iter_documents([str(SEED)])))
    doc = clean_document(loaded)
    assert doc is not None
    return doc


def test_seed_chunks(seed_doc):
    chunks = chunk_document(seed_doc, chunk_size=320)
    check_invariants(seed_doc, chunks, 320)
    sections = []
    for c in chunks:
        if c.section and c.section not in sections:
            sections.append(c.section)
    assert sections == SEED_HEADINGS
    assert chunks[0].section == ""  # before the first heading
    for heading in SEED_HEADINGS:  # each heading opens the first chunk of its section
        first = next(c for c in chunks if c.section == heading)
        assert first.text.startswith(heading + "\n")
        assert sum(c.text.startswith(heading) for c in chunks) == 1
    assert any("开放业务系统、开放数据资源、开放市场应用" in c.text for c in chunks)
    assert all(c.title == "数字锦州的味道" and c.date == "2023-08-05" for c in chunks)
    assert 8 <= len(chunks) <= 16
    assert chunks[-1].text.endswith("由此,数字生态闭环、数字产业闭环已经形成")


@pytest.mark.parametrize("chunk_size,overlap", [(50, 0), (100, 30), (200, 0), (320, 80), (1000, 0), (4000, 200)])
def test_seed_chunks_at_other_sizes(seed_doc, chunk_size, overlap):
    chunks = chunk_document(seed_doc, chunk_size=chunk_size, overlap=overlap)
    check_invariants(seed_doc, chunks, chunk_size)


def test_eval_corpus_sample_chunks_index_the_text():
    if not EVAL_CORPUS.exists():
        pytest.skip("eval corpus not available")
    loaded = [d for d in iter_documents([str(EVAL_CORPUS)]) if isinstance(d, SourceDocument)]
    sample = random.Random(20240805).sample(loaded, 200)
    total = 0
    for src in sample:
        doc = clean_document(src)
        for size, overlap in ((320, 0), (120, 40)):
            chunks = chunk_document(doc, chunk_size=size, overlap=overlap)
            check_invariants(doc, chunks, size)
            total += len(chunks)
            for chunk in chunks:  # one-line docs: no headings, no sections
                assert chunk.section == ""
    assert total > 400


# --------------------------------------------------------------------------- packing rules

def test_whole_sentences_are_never_cut_when_they_fit():
    sentences = [f"这是第{i}个句子，内容不长但也不短。" for i in range(40)]
    doc = make_doc("".join(sentences))
    chunks = chunk_document(doc, chunk_size=100)
    check_invariants(doc, chunks, 100)
    for c in chunks:
        assert c.text.startswith("这是第") and c.text.endswith("。")
    assert all(len(c.text) > 100 - len(sentences[0]) - 1 for c in chunks[:-1])  # greedy


def test_long_sentence_is_cut_at_clause_punctuation():
    clause = "锦州已整合十三个部门的内设信息机构"  # 17 chars
    sentence = "，".join([clause] * 30) + "。"
    doc = make_doc(sentence)
    chunks = chunk_document(doc, chunk_size=100)
    check_invariants(doc, chunks, 100)
    assert len(chunks) > 1
    for c in chunks[:-1]:
        assert c.text.endswith("，")


def test_unpunctuated_run_is_hard_cut():
    doc = make_doc("字" * 1000)
    chunks = chunk_document(doc, chunk_size=300)
    check_invariants(doc, chunks, 300)
    assert [len(c.text) for c in chunks] == [300, 300, 300, 100]


def test_paragraph_starts_a_new_chunk_only_when_half_full():
    a, b = "甲" * 170 + "。", "乙" * 100 + "。"
    chunks = chunk_document(make_doc(f"{a}\n{b}"), chunk_size=320)
    assert [c.text for c in chunks] == [a, b]
    a = "甲" * 100 + "。"
    chunks = chunk_document(make_doc(f"{a}\n{b}"), chunk_size=320)
    assert [c.text for c in chunks] == [f"{a}\n{b}"]


def test_heading_opens_a_chunk_and_names_the_section():
    text = "引言段落。\n第一部分\n第一部分的内容。\n第二部分\n第二部分的内容。更多内容。\n结尾没有标点的一行"
    doc = make_doc(text)
    chunks = chunk_document(doc, chunk_size=320)
    assert [(c.section, c.text) for c in chunks] == [
        ("", "引言段落。"),
        ("第一部分", "第一部分\n第一部分的内容。"),
        ("第二部分", "第二部分\n第二部分的内容。更多内容。\n结尾没有标点的一行"),
    ]


def test_overlap_repeats_whole_trailing_sentences():
    sentences = [f"第{i:02d}句话写在这里。" for i in range(30)]  # 10 chars each
    doc = make_doc("".join(sentences))
    chunks = chunk_document(doc, chunk_size=60, overlap=25)
    check_invariants(doc, chunks, 60)
    sentence_starts = {10 * i for i in range(30)}
    for prev, nxt in zip(chunks, chunks[1:]):
        assert nxt.start in sentence_starts  # whole sentences only
        assert prev.end - nxt.start == 20  # the two trailing sentences (<= 25 chars) are repeated
        assert len(nxt.text) == 60 or nxt is chunks[-1]
    no_overlap = chunk_document(doc, chunk_size=60)
    assert [c.text for c in no_overlap] == ["".join(sentences[i:i + 6]) for i in range(0, 30, 6)]


def test_overlap_never_crosses_a_heading():
    text = "甲" * 50 + "。" + "乙" * 20 + "。\n标题\n" + "丙" * 30 + "。"
    chunks = chunk_document(make_doc(text), chunk_size=80, overlap=30)
    heading_chunk = next(c for c in chunks if c.section == "标题")
    assert heading_chunk.text.startswith("标题\n")


def test_bad_arguments():
    doc = make_doc("文本。")
    with pytest.raises(ValueError):
        chunk_document(doc, chunk_size=100, overlap=100)
    with pytest.raises(ValueError):
        chunk_document(doc, chunk_size=0)
    assert chunk_document(make_doc(""), chunk_size=100) == []
    assert chunk_document(make_doc(" \n "), chunk_size=100) == []


# --------------------------------------------------------------------------- properties

ALPHABET = st.sampled_from(
    list("数字锦州的味道城市政府建设abcXYZ019 ") + ["。", "！", "？", "；", "…", "……", "，", "、", ":", "：", ".", "!", "?", ";",
                                             "“", "”", "「", "」", "（", "）", "(", ")", "\n", "\n\n", "  ", "\t", "\u3000",
                                             "2.5", "1. ", "- ", "a.php?id=1", "\xa0"]
)
TEXTS = st.lists(ALPHABET, max_size=300).map("".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TEXTS)
def test_sentence_spans_cover_the_text_in_order(text):
    spans = split_sentences(text)
    if not text:
        assert spans == []
        return
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    for (s1, e1), (s2, e2) in zip(spans, spans[1:]):
        assert e1 == s2
    assert all(e > s for s, e in spans)
    assert "".join(text[s:e] for s, e in spans) == text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TEXTS, st.integers(min_value=1, max_value=120), st.data())
def test_chunks_index_the_text_and_respect_the_size(text, chunk_size, data):
    overlap = data.draw(st.integers(min_value=0, max_value=chunk_size - 1))
    doc = make_doc(text)
    chunks = chunk_document(doc, chunk_size=chunk_size, overlap=overlap)
    check_invariants(doc, chunks, chunk_size)
    if overlap == 0:
        for prev, nxt in zip(chunks, chunks[1:]):
            assert nxt.start >= prev.end
    else:
        for prev, nxt in zip(chunks, chunks[1:]):
            if nxt.start < prev.end:
                assert prev.end - nxt.start <= overlap
