"""The Word export on a briefing of hand-made passages: document text (markup, a control
character) comes through as the literal text, footnotes are Word's own."""

from __future__ import annotations

from datetime import datetime
from io import BytesIO

import docx
from docx.oxml.ns import qn
from lxml import etree

from kbqa.briefing import Briefer
from kbcore.types import Chunk, Passage
from web.docx_export import briefing_docx

NASTY = "锦州云计算平台的<b>[链接](javascript:x)</b>与**加粗**和反斜杠\\*共有120个系统[^1]。"
TEXT = f"{NASTY}锦州云计算平台采用分布式架构，支持弹性扩展和多活容灾。"


def _briefing():
    chunk = Chunk(doc_id="a\x07.txt", ordinal=0, text=TEXT, start=0, end=len(TEXT), title="平台\x07<i>报告</i>",
                  section="第一节", date="2024-01-02", source="https://example.gov.cn/a.html")
    briefer = Briefer(refusal_threshold=0.5, clock=lambda: datetime(2024, 5, 6, 7, 8))
    return briefer.run("锦州云计算", [Passage(chunk=chunk, score=1.0)], lambda term: 1.0)


def test_markup_and_control_characters_are_literal_text():
    briefing = _briefing()
    assert [s.heading for s in briefing.sections] == ["摘要", "关键数据"]
    document = docx.Document(BytesIO(briefing_docx(briefing)))
    texts = [p.text for p in document.paragraphs]
    assert texts[:2] == ["简报：锦州云计算", "生成时间：2024-05-06 07:08 · 依据：知识库中 1 篇文档的 1 段原文；每条要点均为原文摘录，脚注注明出处。"]
    assert texts[2] == "来源文档：平台<i>报告</i>（2024-01-02）"  # \x07 cannot be in XML: dropped
    bullets = [p for p in document.paragraphs if p.style.name == "List Bullet"]
    assert [b.runs[0].text for b in bullets] == [p.text for s in briefing.sections for p in s.points]
    assert NASTY in [b.runs[0].text for b in bullets]  # the markup as written, no escapes added
    (rel,) = [r for r in document.part.rels.values() if r.reltype.endswith("/footnotes")]
    (note,) = [n for n in etree.fromstring(rel.target_part.blob).findall(qn("w:footnote")) if int(n.get(qn("w:id"))) > 0]
    assert "".join(note.itertext()) == " 平台<i>报告</i> · 2024-01-02 · 第一节 · https://example.gov.cn/a.html"


def test_one_footnote_a_source_and_word_styles():
    document = docx.Document(BytesIO(briefing_docx(_briefing())))
    body = document.element.body
    # Both points quote the one passage: one footnote, referenced by the first, cross-referenced by the second.
    assert [r.get(qn("w:id")) for r in body.iter(qn("w:footnoteReference"))] == ["1"]
    assert [b.get(qn("w:name")) for b in body.iter(qn("w:bookmarkStart"))] == ["_RefNote1"]
    assert [t.text for t in body.iter(qn("w:instrText"))] == [" NOTEREF _RefNote1 \\f \\h "]
    styles = document.styles
    assert styles["footnote reference"].font.superscript and styles["footnote text"].font.size.pt == 9
    assert styles["footnote reference"].style_id == "FootnoteReference"
    (lang,) = styles.element.xpath("w:docDefaults/w:rPrDefault/w:rPr/w:lang")
    assert lang.get(qn("w:eastAsia")) == "zh-CN"
    settings = document.settings.element
    (footnote_pr,) = settings.findall(qn("w:footnotePr"))
    assert footnote_pr.getnext().tag == qn("w:compat")  # where the schema puts it
    assert document.core_properties.title == "简报：锦州云计算"
