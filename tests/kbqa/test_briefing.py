"""Briefings: on the seed article through ``KnowledgeBase.brief`` (real embedder, real Chroma),
an injection document ingested into a fresh KB, and the briefer's rules on hand-made passages."""

from __future__ import annotations

import html
import re
from dataclasses import replace
from datetime import datetime

import numpy as np
import pytest

from kbcore.markdown import escape_markdown
from kbqa.briefing import Briefer, central, figures, trim
from kbqa.knowledge_base import KnowledgeBase, QuestionError
from kbcore.text import cut_question
from kbcore.evidence import SentenceCandidate
from kbcore.types import Briefing, Chunk, Passage
from tests.kbqa.test_answering import ConceptEmbedder

SEED_ID = "000_d3d8b424e3677781.txt"
BULLET = re.compile(r"^- (.*)\[\^(\d+)\]$", re.M)
FOOTNOTE = re.compile(r"^\[\^(\d+)\]: (.*)$", re.M)


def unescape(markdown: str) -> str:
    """Undo backslash escapes (what a Markdown renderer does to the briefer's escaping)."""
    return re.sub(r"\\(.)", r"\1", markdown)


def bullets(briefing: Briefing) -> list[tuple[str, int]]:
    """(sentence as the reader sees it, footnote number) for every bullet point."""
    return [(unescape(text), int(n)) for text, n in BULLET.findall(briefing.markdown)]


def assert_well_formed(briefing: Briefing) -> None:
    """Every point verbatim from its cited passage; footnotes and sources agree."""
    assert [c.n for c in briefing.sources] == list(range(1, len(briefing.sources) + 1))
    points = bullets(briefing)
    assert {n for _, n in points} == {c.n for c in briefing.sources}
    assert {int(n) for n, _ in FOOTNOTE.findall(briefing.markdown)} == {c.n for c in briefing.sources}
    for sentence, n in points:
        citation = briefing.sources[n - 1]
        quoted = sentence if sentence in citation.passage.chunk.text else sentence.removesuffix("…")  # clipped
        assert quoted and quoted in citation.passage.chunk.text, (sentence, citation.passage.chunk.text)
        assert quoted in citation.quote  # the citation's spans are the quoted sentences
        chunk = citation.passage.chunk
        for start, end in citation.spans:
            assert chunk.start <= start < end <= chunk.end


def assert_structure_matches_markdown(briefing: Briefing) -> None:
    """The structure (what the Word file is made of) says what the Markdown says, unescaped;
    footnotes are numbered in order of first appearance across summary, figures and sections."""
    md = briefing.markdown
    assert md.startswith(f"# {escape_markdown(briefing.title)}\n")
    for paragraph in briefing.lead:
        assert f"\n{escape_markdown(paragraph)}\n" in md
    assert re.findall(r"^## (.+)$", md, re.M) == [escape_markdown(s.heading) for s in briefing.sections]
    assert bullets(briefing) == [(p.text, p.n) for s in briefing.sections for p in s.points]
    assert list(dict.fromkeys(p.n for s in briefing.sections for p in s.points)) == list(range(1, len(briefing.sources) + 1))
    assert len(briefing.notes) == len(briefing.sources)
    for n, definition in FOOTNOTE.findall(md):
        note = briefing.notes[int(n) - 1]
        assert unescape(re.sub(r"<(https?://[^>]+)>$", r"\1", definition)) == note  # autolinks aside


def render(markdown: str) -> str:
    markdown_it = pytest.importorskip("markdown_it")
    return markdown_it.MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"]).render(markdown)


# --- the seed ---------------------------------------------------------------------------------


def test_briefing_on_the_seed(seed_kb):
    briefing = seed_kb.brief("锦州数字政府建设")
    assert briefing.found and briefing.topic == "锦州数字政府建设"
    md = briefing.markdown
    assert md.startswith("# 简报：锦州数字政府建设\n\n生成时间：")
    points = bullets(briefing)
    assert len(points) >= 3
    assert_well_formed(briefing)
    assert all(c.passage.chunk.doc_id == SEED_ID for c in briefing.sources)
    # A summary of 2-4 points and the key figures first, each point stating one.
    headings = re.findall(r"^## (.+)$", md, re.M)
    assert headings[:2] == ["摘要", "关键数据"] == [s.heading for s in briefing.sections[:2]]
    blocks = re.split(r"^## .+$", md, flags=re.M)[1:]
    assert 2 <= len(BULLET.findall(blocks[0])) <= 4
    assert BULLET.findall(blocks[1]) and all(figures(unescape(text)) for text, _ in BULLET.findall(blocks[1]))
    # Then one document: its sections are the groups, in document order, at most two points each.
    headings = headings[2:]
    assert len(headings) >= 2 and "数字政府的方法论" in headings
    first_offset = [min(c.start for c in briefing.sources if c.passage.chunk.section == h) for h in headings]
    assert first_offset == sorted(first_offset)
    for block in blocks[2:]:
        assert 1 <= len(BULLET.findall(block)) <= 2
    for _, definition in FOOTNOTE.findall(md):
        assert definition.startswith("数字锦州的味道 · 2023-08-05 · ")
        assert SEED_ID not in definition  # the title names the source; a file name tells a client nothing
    # Nothing said twice.
    texts = [s for s, _ in points]
    assert len(set(texts)) == len(texts)
    data = briefing.to_dict()
    assert set(data) == {"topic", "found", "markdown", "text", "lang", "sources", "timings_ms"}
    assert data["sources"][0]["title"] == "数字锦州的味道" and data["sources"][0]["n"] == 1
    assert briefing.timings_ms["total_ms"] > 0 and {"search_ms", "sentence_embed_ms"} <= set(briefing.timings_ms)
    assert_structure_matches_markdown(briefing)


@pytest.mark.parametrize("topic", ["数字锦州", "锦州 数字政府"])
def test_key_figures_on_the_seed(seed_kb, topic):
    """The complaint of issue #12: the seed's counts — 46 units, 100+ systems, 133 medical
    institutions — belong in the briefing's key figures."""
    briefing = seed_kb.brief(topic)
    assert briefing.found
    key_figures = briefing.sections[1]
    assert key_figures.heading == "关键数据"
    said = [p.text for p in key_figures.points]
    assert any("46家单位的100多个业务系统" in text for text in said), said
    assert not any("出关200公里" in text for text in said[:2])  # a distance is no key figure of 数字锦州
    block = briefing.markdown.split("## 关键数据\n", 1)[1].split("\n## ", 1)[0]
    assert "将全市46家单位的100多个业务系统" in block
    assert_well_formed(briefing)


def test_topic_outside_the_kb(seed_kb):
    briefing = seed_kb.brief("火星殖民计划")
    assert not briefing.found and briefing.sources == ()
    assert "知识库中没有关于“火星殖民计划”的内容" in briefing.markdown
    assert not BULLET.search(briefing.markdown) and "[^" not in briefing.markdown


@pytest.mark.parametrize("topic, k", [("", 20), ("   ", 20), ("x" * 50_000, 20), ("锦州", 0), ("锦州", 51)])
def test_bad_topics_raise_clear_errors(seed_kb, topic, k):
    with pytest.raises(QuestionError):
        seed_kb.brief(topic, k)


# --- untrusted document text ------------------------------------------------------------------

EVIL = """绿洲科技公司<b>简介</b>

第一节 <i>概况</i>

绿洲科技公司的[点此领奖](javascript:alert(1))活动说明。
绿洲科技公司<script>alert(1)</script>提供<img src=x onerror=alert(1)>服务。

第二节 **加粗标题**

# 绿洲科技公司的标题注入。
- 绿洲科技公司列表注入，**加粗**和_斜体_以及`代码`。

第三节 [链接](evil)

1.绿洲科技公司编号注入，后面还有更多文字。
绿洲科技公司网址 https://evil.example/login 与 www.evil.example 和 admin@evil.example 都不是链接。

第四节 <img src=x>

> 绿洲科技公司的引用注入和|表格|以及~~删除线~~。
绿洲科技公司的脚注[^1]与$$x$$公式，还有反斜杠\\[与&amp实体。
"""


@pytest.fixture(scope="module")
def evil_kb(make_settings, embedder, tmp_path_factory) -> KnowledgeBase:
    folder = tmp_path_factory.mktemp("evil")
    (folder / "evil.txt").write_text(EVIL, encoding="utf-8")
    kb = KnowledgeBase(make_settings(), embedder=embedder)
    assert kb.ingest([str(folder)]).added
    return kb


def test_document_markup_comes_out_escaped(evil_kb):
    briefing = evil_kb.brief("绿洲科技公司")
    assert briefing.found
    assert_well_formed(briefing)
    assert_structure_matches_markdown(briefing)
    md = briefing.markdown
    said = "\n".join(s for s, _ in bullets(briefing))
    # The nasty sentences were chosen (so the checks below are about them) ...
    for nasty in ("<script>alert(1)</script>", "[点此领奖](javascript:alert(1))", "**加粗**", "`代码`",
                  "https://evil.example/login", "# 绿洲科技公司", "- 绿洲", "1.绿洲", "> 绿洲", "~~删除线~~",
                  "[^1]与$$x$$", "\\[与&amp"):
        assert nasty in said, nasty
    # ... and none of it is markup in the briefing: a CommonMark renderer shows the text.
    page = render(md)
    for tag in ("<a ", "<img", "<script", "<b>", "<i>", "<strong", "<em", "<code", "<blockquote", "<table",
                "<del", "<s>", "<ol", "<h3", "<hr"):
        assert tag not in page, (tag, page)
    assert page.count("<h1>") == 1 and page.count("<h2>") == md.count("\n## ")
    items = re.findall(r"<li>(.*?)</li>", page, re.S)
    assert [html.unescape(item) for item in items] == [f"{s}[^{n}]" for s, n in bullets(briefing)]
    # GFM's bare-URL links are defused; footnotes stay one line each.
    assert "https://evil" not in md and "www.evil" not in md and "admin@evil" not in md
    assert len(FOOTNOTE.findall(md)) == len(briefing.sources)
    for _, definition in FOOTNOTE.findall(md):
        assert "\\<b\\>" in definition and "<b>" not in definition  # the title is escaped too


@pytest.mark.parametrize(
    "text",
    [
        "[链接](javascript:alert(1))",
        "![图](http://evil.example/x.png)",
        "<img src=x onerror=alert(1)>",
        "- 列表",
        "+ 列表",
        "1. 列表",
        "12) 列表",
        "# 标题",
        "> 引用",
        "***粗斜体*** __粗__ _斜_",
        "`代码` ```围栏```",
        "| a | b |",
        "~~删除~~",
        "&lt;b&gt; &#106;",
        "反斜杠 \\ 和 \\*",
        "[^1] [x]: http://evil",
        "第一行\n# 第二行\n\n    代码块",
    ],
)
def test_escape_markdown_renders_as_the_text(text):
    escaped = escape_markdown(text)
    assert "\n" not in escaped
    page = render(f"- {escaped}")
    assert page.startswith("<ul>\n<li>") and page.count("<li>") == 1 and "<a " not in page and "<img" not in page
    shown = html.unescape(re.sub(r"</?(ul|li)>|\n", "", page))
    assert shown == " ".join(text.split())


# --- the rules, on hand-made passages ---------------------------------------------------------


def _passage(doc: str, text: str, *, ordinal: int = 0, start: int = 0, title: str = "", date: str | None = None,
             section: str = "", source: str | None = None) -> Passage:
    chunk = Chunk(doc_id=doc, ordinal=ordinal, text=text, start=start, end=start + len(text),
                  title=title or doc, section=section, date=date,
                  source=f"https://example.gov.cn/{doc}.html" if source is None else source)
    return Passage(chunk=chunk, score=1.0)


ITEMS = "，".join(f"第{i}项内容包括机房、网络和安全设施的改造升级" for i in range(1, 9))
LONG = f"锦州云计算中心一期工程，{ITEMS}。"  # > 160 characters


def test_points_grouped_per_document_with_caps_duplicates_and_clipping():
    passages = [
        _passage("a", "锦州云计算中心已于去年正式上线运行。锦州云计算产业园开园。锦州云计算基地揭牌。",
                 title="甲报告", date="2024-01-02", start=100),
        _passage("b", "锦州云计算中心已于去年正式上线运行了。另外，" + LONG, title="乙报告"),
        _passage("c", "本文与主题无关，讨论的是别的城市。", title="丙报告"),
        _passage("d", "锦州云计算还有一处值得一提的进展。", source="javascript:alert(1)"),
    ]
    fixed = datetime(2024, 5, 6, 7, 8)
    briefing = Briefer(refusal_threshold=0.5, clock=lambda: fixed).run("锦州云计算", passages, lambda term: 1.0)
    assert briefing.found
    assert_well_formed(briefing)
    md = briefing.markdown
    assert "生成时间：2024-05-06 07:08" in md
    # The summary: b's long sentence, the one on-topic sentence long enough to summarise. Then
    # the documents by relevance, titled with their dates; the off-topic one is absent.
    assert re.findall(r"^## (.+)$", md, re.M) == ["摘要", "甲报告（2024-01-02）", "d"]
    assert_structure_matches_markdown(briefing)
    points = bullets(briefing)
    by_doc = [briefing.sources[n - 1].passage.chunk.doc_id for _, n in points]
    assert by_doc.count("a") == 2  # max_per_document
    # b's first sentence is a near-copy of a's: only its long sentence is there, clipped at a clause.
    b_points = [s for s, n in points if briefing.sources[n - 1].passage.chunk.doc_id == "b"]
    assert [p.text for p in briefing.sections[0].points] == b_points
    assert len(b_points) == 1 and b_points[0].endswith("…") and len(b_points[0]) <= 160
    assert b_points[0][:-1] in "另外，" + LONG and b_points[0][-2] not in "，、"
    # Footnotes: http(s) sources are autolinks, anything else escaped text.
    definitions = dict(FOOTNOTE.findall(md))
    assert definitions["1"] == "乙报告 · <https://example.gov.cn/b.html>"
    assert definitions["2"] == "甲报告 · 2024-01-02 · <https://example.gov.cn/a.html>"
    assert definitions[str(len(definitions))] == "d · javascript:alert(1)"  # text, no link
    # Offsets are document offsets.
    a = briefing.sources[1]
    assert a.spans[0][0] >= 100 and a.quote.startswith("锦州云计算")


def test_one_document_groups_by_section_in_document_order():
    passages = [
        _passage("a", "锦州云计算平台第二节内容。锦州云计算平台第二节补充。锦州云计算平台第二节再补充一句。",
                 ordinal=1, start=200, section="第二节"),
        _passage("a", "锦州云计算平台开篇介绍。", ordinal=0, start=0),
    ]
    briefing = Briefer(refusal_threshold=0.5).run("锦州云计算", passages, lambda term: 1.0)
    # Every part present: the best point is the summary (a briefing of points alone had none).
    assert re.findall(r"^## (.+)$", briefing.markdown, re.M) == ["摘要", "导语", "第二节"]
    assert "来源文档：a" in briefing.markdown
    assert len(bullets(briefing)) == 3  # two from 第二节 (the cap), one from the lead


def test_refusal_and_settings():
    passages = [_passage("a", "锦州的烧烤很有名气。")]
    refused = Briefer().run("锦州云计算", passages, lambda term: 1.0)
    assert not refused.found and refused.confidence < 0.8 and refused.sources == ()
    assert not Briefer().run("？？", passages, lambda term: 1.0).found  # no content words
    assert not Briefer().run("锦州云计算", [], lambda term: 1.0).found
    for bad in ({"max_points": 0}, {"max_per_document": 0}, {"max_per_document": 9}, {"max_chars_per_point": 5},
                {"refusal_threshold": 1.5}, {"near_duplicate": -0.1}, {"min_coverage": 2}, {"summary_points": 1},
                {"summary_points": 5}, {"max_figures": -1}, {"max_embedded": 1}):
        with pytest.raises(ValueError):
            Briefer(**bad)


# --- with the topic's terms as the search hands them on ---------------------------------------

CLOUD_DOC = (
    "锦州云计算\n"
    "锦州云计算中心投资2.5亿元，占地100亩，服务“三个开放”。\n"
    "平台建设\n"
    "锦州云计算平台采用*分布式*架构，支持<b>弹性</b>扩展。锦州云计算平台已接入120个政务系统。\n"
)


def _cloud(text: str, ordinal: int, section: str = "") -> Passage:
    start = CLOUD_DOC.index(text)
    return _passage("cloud", text, ordinal=ordinal, start=start, title="锦州云计算", section=section)


CENTRE = _cloud("锦州云计算中心投资2.5亿元，占地100亩，服务“三个开放”。", 0)
PLATFORM = _cloud("锦州云计算平台采用*分布式*架构，支持<b>弹性</b>扩展。锦州云计算平台已接入120个政务系统。", 1, "平台建设")


def test_sources_are_exact_spans_and_points_the_sentences_themselves():
    fixed = datetime(2024, 5, 6, 7, 8)
    briefing = Briefer(refusal_threshold=0.5, clock=lambda: fixed).run(
        "锦州云计算", [PLATFORM, CENTRE], cut_question("锦州云计算"))
    assert briefing.found
    assert_well_formed(briefing)
    # Summary, then key figures (a tie of the two orders: the better-scored sentence first),
    # numbered as they are shown: PLATFORM's footnote is used again by its second sentence.
    # The points by source are there too: a figure beyond the first moves to them.
    assert [s.heading for s in briefing.sections] == ["摘要", "关键数据", "导语"]
    assert [(c.n, c.passage) for c in briefing.sources] == [(1, PLATFORM), (2, CENTRE)]
    assert [[CLOUD_DOC[s:e] for s, e in c.spans] for c in briefing.sources] == [
        ["锦州云计算平台采用*分布式*架构，支持<b>弹性</b>扩展。", "锦州云计算平台已接入120个政务系统。"],
        ["锦州云计算中心投资2.5亿元，占地100亩，服务“三个开放”。"],
    ]
    assert briefing.sources[0].quote == PLATFORM.chunk.text  # quotes stay raw; only the Markdown is escaped
    assert bullets(briefing) == [
        ("锦州云计算平台采用*分布式*架构，支持<b>弹性</b>扩展。", 1),
        ("锦州云计算平台已接入120个政务系统。", 1),
        ("锦州云计算中心投资2.5亿元，占地100亩，服务“三个开放”。", 2),
    ]
    assert_structure_matches_markdown(briefing)


def test_escapes_markup_and_nothing_else():
    briefing = Briefer(refusal_threshold=0.5).run("锦州云计算", [PLATFORM, CENTRE], cut_question("锦州云计算"))
    lines = briefing.markdown.splitlines()
    # Plain text (digits, decimal points, Chinese punctuation and quotes) is left as it is...
    assert "- 锦州云计算中心投资2.5亿元，占地100亩，服务“三个开放”。[^2]" in lines
    assert "- 锦州云计算平台已接入120个政务系统。[^1]" in lines
    # ...and only Markdown/HTML syntax gets a backslash.
    assert "- 锦州云计算平台采用\\*分布式\\*架构，支持\\<b\\>弹性\\</b\\>扩展。[^1]" in lines


def test_the_terms_weights_decide_the_refusal():
    topic = "锦州云计算港口"
    terms = cut_question(topic)
    assert list(terms.weights) == ["锦州", "云", "计算", "港口"]
    briefer = Briefer(refusal_threshold=0.5, clock=lambda: datetime(2024, 5, 6, 7, 8))
    alike = briefer.run(topic, [PLATFORM, CENTRE], terms)
    assert alike.found and alike.confidence == pytest.approx(0.75)
    # The same words with 港口 rare (as idf would weigh a word few chunks hold): refused.
    rare = briefer.run(topic, [PLATFORM, CENTRE], terms.weighted(lambda word: 9.0 if word == "港口" else 1.0))
    assert not rare.found and rare.confidence == pytest.approx(3 / 12) and rare.sources == ()
    # A weighing function instead of terms gives the same briefing as the terms it weighs.
    assert briefer.run(topic, [PLATFORM, CENTRE], lambda word: 1.0).markdown == alike.markdown


# --- summary and key figures, on hand-made passages -------------------------------------------


@pytest.mark.parametrize(
    "text, found",
    [
        ("百余家华为生态伙伴", ["百余家"]),
        ("全市133家医疗机构", ["133家"]),
        ("46个单位", ["46个"]),
        ("投资1.2亿元", ["1.2亿元"]),
        ("100多个业务系统", ["100多个"]),
        ("增长35%，占比12.5％", ["35%", "12.5％"]),
        ("2017年签约，2023-08-05发布", ["2017年", "2023-08-05"]),
        ("三十余年过去，近百座城市", ["三十余年", "百座"]),
        ("百分之三十的企业", ["百分之三十"]),
        ("1,200人参加", ["1,200人"]),
        # Names, ordinals and numbers inside words are no figures.
        ("一把手工程、三个开放、三大步六小步、一号受理、十分重要", []),
        ("第13个、第十个、5G网络、e5模型、8890政务便民热线", []),
    ],
)
def test_figures(text, found):
    assert figures(text) == found


def test_central_favours_the_hub_and_the_relevant():
    # A star: sentence 0 is like each of 1-3, which are like nothing else.
    star = np.eye(4)
    star[0, 1:] = star[1:, 0] = 0.8
    rank = central(star, np.ones(4))
    assert rank.sum() == pytest.approx(1.0) and rank.argmax() == 0 and rank[1] == pytest.approx(rank[3])
    # Two pairs, alike but for relevance: the walk restarts more at the second pair.
    pairs = np.array([[1, 0.9, 0, 0], [0.9, 1, 0, 0], [0, 0, 1, 0.9], [0, 0, 0.9, 1.0]])
    rank = central(pairs, np.array([1.0, 1.0, 3.0, 3.0]))
    assert rank[2] > rank[0] and rank[2] == pytest.approx(rank[3])
    # A sentence like no other (a dangling node) still gets its restart share; one sentence, all of it.
    assert central(np.eye(3), np.array([1.0, 1.0, 2.0])) == pytest.approx([0.25, 0.25, 0.5])
    assert central(np.eye(1), np.array([0.5])) == pytest.approx([1.0])


# ConceptEmbedder's concepts: 开放, 港口 and 海滨 make the hub like each spoke; 烧烤, the aside like none.
HUB = "锦州云计算中心服务全市的开放平台，也服务港口系统和海滨景区。"
SPOKES = [
    "锦州云计算平台上的开放平台已经统一迁移完成并稳定运行。",
    "锦州云计算平台上的港口系统接入了全市的码头和物流公司。",
    "锦州云计算平台上的海滨景区系统覆盖了全市所有的浴场。",
]
ASIDE = "锦州云计算产业园旁的烧烤街今年春天已经全部顺利开业。"


def test_the_summary_is_the_most_central_sentences_one_per_passage():
    texts = [ASIDE, *SPOKES, HUB, HUB.replace("全市", "全城")]  # the last a near-copy of the hub
    passages = [_passage(f"d{i}", text) for i, text in enumerate(texts)]
    embedder = ConceptEmbedder()
    briefer = Briefer(refusal_threshold=0.5, embedder=embedder)
    briefing = briefer.run("锦州云计算", passages, lambda term: 1.0)
    summary = briefing.sections[0]
    assert summary.heading == "摘要"
    said = [p.text for p in summary.points]
    assert said[0] in (HUB, HUB.replace("全市", "全城")) and len(said) == 3  # the hub first, said once
    assert set(said[1:]) <= set(SPOKES) and ASIDE not in said  # the aside is like nothing else
    # Nothing said twice: the rest are the sections' points, the near-copy of the hub not among them.
    rest = [p.text for s in briefing.sections[1:] for p in s.points]
    assert not set(rest) & set(said) and HUB not in rest and HUB.replace("全市", "全城") not in rest
    assert_well_formed(briefing)
    assert_structure_matches_markdown(briefing)
    # Briefed again, nothing new is embedded but the topic.
    calls = len(embedder.calls)
    assert briefer.run("锦州云计算", passages, lambda term: 1.0).markdown.split("\n", 3)[3] == briefing.markdown.split("\n", 3)[3]
    assert all(kind == "queries" for kind, _ in embedder.calls[calls:])


def test_without_an_embedder_the_summary_is_central_by_shared_words():
    passages = [_passage(f"d{i}", text) for i, text in enumerate([ASIDE, *SPOKES, HUB])]
    briefing = Briefer(refusal_threshold=0.5).run("锦州云计算", passages, lambda term: 1.0)
    said = [p.text for p in briefing.sections[0].points]
    assert briefing.sections[0].heading == "摘要" and len(said) == 3 and ASIDE not in said
    assert "sentence_embed_ms" not in briefing.timings_ms


def test_key_figures_fuse_relevance_and_how_many_figures_a_sentence_states():
    passages = [
        _passage("a", "锦州云计算平台已接入120个政务系统。锦州云计算平台采用分布式架构，支持弹性扩展。"),
        _passage("b", "锦州云计算在2017年启动。锦州云计算第1期工程已经完工。"),
        _passage("c", "锦州云计算中心占地100亩，投资2.5亿元。"),
        _passage("d", "锦州云计算中心服务46家单位的300多个系统，腾退机房50个。"),
        _passage("e", "本市烧烤店共有300家，夜市200多个。"),  # figures, but nothing of the topic
        _passage("f", "锦州云计算产业的规模" + "，".join(["持续扩大"] * 40) + "，达到500亿元。"),  # clipped away
    ]
    briefing = Briefer(refusal_threshold=0.5, max_chars_per_point=60).run("锦州云计算", passages, lambda term: 1.0)
    key_figures = next(s for s in briefing.sections if s.heading == "关键数据")
    # Fused ranks: the best-scored sentence first, then d's, fourth by score but stating three
    # figures; then b's and c's (tied: by score). The ordinal 第1期 is no figure; the off-topic
    # sentence and the one whose figure the clipping would cut are left out.
    assert [p.text for p in key_figures.points] == [
        "锦州云计算平台已接入120个政务系统。",
        "锦州云计算中心服务46家单位的300多个系统，腾退机房50个。",
        "锦州云计算在2017年启动。",
        "锦州云计算中心占地100亩，投资2.5亿元。",
    ]
    assert_well_formed(briefing)
    assert_structure_matches_markdown(briefing)
    # A briefer with no figures section.
    assert "关键数据" not in [s.heading for s in Briefer(refusal_threshold=0.5, max_figures=0).run(
        "锦州云计算", passages, lambda term: 1.0).sections]


# --- issue 21 §4: briefings a sales person can hand to a client ----------------------------------


@pytest.mark.parametrize("raw, kept", [
    ("言归正传,锦州建成了云计算中心。", "锦州建成了云计算中心。"),
    ("举例说明,必然云公司与锦州医管局合作研发平台。", "必然云公司与锦州医管局合作研发平台。"),
    ("最后说一句,100余家华为生态伙伴正在与锦州探讨合作细节。", "100余家华为生态伙伴正在与锦州探讨合作细节。"),
    ("首先，其次，锦州整合了信息资源；", "锦州整合了信息资源"),
    ("撤并110部非紧急类热线,实现“一号受理”;", "撤并110部非紧急类热线,实现“一号受理”"),
    ("为企业提供核心业务系统建设等。。", "为企业提供核心业务系统建设等。"),
    ("因此,锦州坚持三个开放。", "因此,锦州坚持三个开放。"),  # a connective that means something stays
])
def test_fillers_and_trailing_punctuation_are_trimmed_with_their_span(raw, kept):
    doc = "前文。" + raw + "后文。"
    start = doc.index(raw)
    cand = SentenceCandidate(0, 1, start, start + len(raw), raw, 1.0, 1.0)
    out = trim(cand)
    assert out.text == kept and doc[out.start : out.end] == kept  # the span is the text quoted


def test_trimmed_points_are_cited_at_the_text_they_show():
    text = "言归正传,锦州云计算中心已于去年正式上线运行;最后说一句,锦州云计算产业园已入驻企业46家。"
    passage = _passage("a", text, title="锦州报告", date="2024-01-02", start=50)
    briefing = Briefer(refusal_threshold=0.5).run("锦州云计算", [passage], lambda term: 1.0)
    assert_well_formed(briefing)
    said = [p.text for s in briefing.sections for p in s.points]
    assert said and not any(t.startswith(("言归正传", "最后说一句")) or t.endswith((";", "；", ",")) for t in said)
    spans = [passage.chunk.text[s - 50 : e - 50] for c in briefing.sources for s, e in c.spans]
    assert sorted(spans) == sorted(said)


def test_footnotes_by_title_and_date_alike_ones_merged_no_file_names():
    """Two consecutive chunks of one section read alike in a footnote: they are one footnote,
    whose passage spans both; a document's file name is shown only when it has no title."""
    first = _passage("jz.txt", "锦州云计算中心已于去年正式上线运行。", title="锦州报告", date="2024-01-02",
                     ordinal=0, start=0, section="云平台", source="jz.txt")
    second = _passage("jz.txt", "锦州云计算产业园已入驻企业46家。", title="锦州报告", date="2024-01-02",
                      ordinal=1, start=first.chunk.end + 1, section="云平台", source="jz.txt")
    untitled = _passage("notitle.txt", "锦州云计算基地的机房有50个机柜。", source="notitle.txt")
    untitled = Passage(chunk=replace(untitled.chunk, title=""), score=1.0)
    briefing = Briefer(refusal_threshold=0.5).run("锦州云计算", [first, second, untitled], lambda term: 1.0)
    assert_well_formed(briefing)
    assert briefing.notes.count("锦州报告 · 2024-01-02 · 云平台") == 1
    merged = next(c for c in briefing.sources if c.passage.chunk.doc_id == "jz.txt")
    assert len(merged.spans) == 2 and merged.quote == first.chunk.text + second.chunk.text
    assert not any("jz.txt" in note for note in briefing.notes)
    assert any(note.startswith("notitle.txt") for note in briefing.notes)  # no title: the file names it
    assert len(set(briefing.notes)) == len(briefing.notes)


def test_every_part_present_and_english_headings(seed_kb):
    for lang, (summary, key_figures, notes) in {"zh": ("摘要", "关键数据", "来源"),
                                                "en": ("Summary", "Key figures", "Sources")}.items():
        briefing = seed_kb.brief("锦州数字经济发展经验", lang=lang)
        assert briefing.found and briefing.lang == lang
        headings = [s.heading for s in briefing.sections]
        assert headings[:2] == [summary, key_figures] and len(headings) >= 3  # then the points by source
        assert len(briefing.sections[0].points) >= 2
        assert not any(re.search(r"与其说|不如说", p.text) for p in briefing.sections[0].points)  # facts
        assert f"\n{notes}\n" in briefing.text
    english = seed_kb.brief("锦州数字政府建设", lang="en")
    written = "\n".join([english.title, *english.lead, *(s.heading for s in english.sections[:2])])
    assert not re.search(r"[\u4e00-\u9fff]", written.replace("锦州数字政府建设", "").replace("数字锦州的味道", ""))
    with pytest.raises(ValueError):
        Briefer().run("x", [], lambda term: 1.0, lang="fr")


def test_plain_text_has_no_markdown_escapes():
    passage = _passage("a", "锦州云计算(一期)投资*2.5亿元*，见 [附件] 与 <b>说明</b> #1。", title="锦州_报告",
                       date="2024-01-02", source="a.txt")
    briefing = Briefer(refusal_threshold=0.5).run("锦州云计算", [passage], lambda term: 1.0)
    assert briefing.found and "\\" in briefing.markdown  # the Markdown escapes the markup
    assert "\\" not in briefing.text
    assert "锦州云计算(一期)投资*2.5亿元*，见 [附件] 与 <b>说明</b> #1。[1]" in briefing.text
    assert briefing.text.endswith("来源\n[1] 锦州_报告 · 2024-01-02\n")
    assert "\\(" not in briefing.markdown  # parentheses need no escape (no "]" before them)


def test_a_topic_the_kb_does_not_cover_gives_a_short_not_covered_briefing():
    """杭州城市大脑 over passages on 锦州 that name 城市 and a 杭州 item on something else:
    no unrelated sentence, just the statement that the knowledge base holds nothing on it."""
    passages = [
        _passage("jz", "锦州城市数据的沉淀为数字经济奠定了基础。锦州建成城市综合运行指挥中心。", title="数字锦州"),
        _passage("hz", "杭州市区出租车将收取1元燃油附加费。杭州城市绿化管理条例出台。", title="杭州新闻"),
    ]
    terms = cut_question("杭州城市大脑").weighted(lambda term: 1.0)
    briefing = Briefer().run("杭州城市大脑", passages, terms)  # the knowledge base's threshold, 0.8
    assert not briefing.found and briefing.sections == () and briefing.sources == ()
    assert briefing.lead[-1] == "知识库中没有关于“杭州城市大脑”的内容，无法生成简报。"
    assert len(briefing.text.splitlines()) <= 5
