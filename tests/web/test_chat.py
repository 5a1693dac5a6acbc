"""The chat page's citation panel: spans highlighted, every piece of document text escaped."""

from __future__ import annotations

from kbqa.types import Answer, Chunk, Citation, Passage
from web.chat import NO_SOURCES_HTML, render_sources

TEXT = "第一句<b>粗</b>。<script>alert(1)</script>被引用的句子。结尾 & 其他。"


def answer(**chunk_fields) -> Answer:
    fields = {
        "doc_id": "d.txt",
        "ordinal": 0,
        "text": TEXT,
        "start": 100,  # the passage starts at document offset 100
        "end": 100 + len(TEXT),
        "title": '<img src=x onerror="alert(1)">标题',
        "section": "小节 <i>",
        "date": "2023-08-05",
        "source": "javascript:alert(1)",
    } | chunk_fields
    chunk = Chunk(**fields)
    cited = TEXT.index("被引用的句子。")
    span = (100 + cited, 100 + cited + len("被引用的句子。"))
    citation = Citation(n=1, passage=Passage(chunk, 0.9), start=span[0], end=span[1], spans=(span,))
    return Answer(question="q", text="被引用的句子。[1]", found=True, citations=(citation,))


def test_document_text_is_escaped_and_the_span_marked():
    html = render_sources(answer())
    assert "<script" not in html and "<img" not in html and "<b>" not in html and "<i>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;标题" in html
    assert "<mark>被引用的句子。</mark>" in html
    assert html.count("<mark>") == 1
    assert "2023-08-05 · 小节 &lt;i&gt; · javascript:alert(1)" in html
    assert "href" not in html  # a javascript: source is shown, never linked


def test_http_sources_become_links():
    html = render_sources(answer(source='https://example.org/a?x=1&y="2"'))
    assert '<a href="https://example.org/a?x=1&amp;y=&quot;2&quot;" target="_blank" rel="noopener noreferrer">' in html


def test_no_citations_without_an_answer():
    assert render_sources(Answer(question="q", text="抱歉", found=False)) == NO_SOURCES_HTML


# --- the 简报 tab ---------------------------------------------------------------------------


def test_briefing_footnotes_become_superscripts_and_a_source_list():
    from web.chat import render_briefing

    markdown = (
        "# 简报：x\n\n## 甲\n\n- 第一句。[^1]\n- 含 \\[^2\\] 的第二句。[^2]\n\n"
        "[^1]: 甲 · 2023-08-05 · a.txt\n[^2]: 乙 · b.txt\n"
    )
    shown = render_briefing(markdown)
    assert "- 第一句。<sup>[1]</sup>" in shown
    assert "- 含 \\[^2\\] 的第二句。<sup>[2]</sup>" in shown  # escaped document text stays as it is
    assert "### 来源\n\n1. 甲 · 2023-08-05 · a.txt\n2. 乙 · b.txt\n" in shown
    assert render_briefing("# 简报：x\n\n没有。\n") == "# 简报：x\n\n没有。\n"


def test_briefing_tab_handler(seed_kb):
    """The tab's event ("brief", private to the page) as Gradio calls it."""
    from web.chat import NO_DOWNLOAD_HTML, build_chat

    demo = build_chat(seed_kb)
    (make_briefing,) = [f.fn for f in demo.fns.values() if f.api_name == "brief"]
    shown, source, download = make_briefing("锦州数字政府建设")
    # The KB's briefing, but for the generation time (its minute may have turned meanwhile).
    assert source.split("\n", 3)[3] == seed_kb.brief("锦州数字政府建设").markdown.split("\n", 3)[3]
    assert "<sup>[1]</sup>" in shown and "[^1]" not in shown
    # The downloads are links to GET /api/brief.md and /api/brief.docx for the topic: no file is written for them.
    topic = "%E9%94%A6%E5%B7%9E%E6%95%B0%E5%AD%97%E6%94%BF%E5%BA%9C%E5%BB%BA%E8%AE%BE"
    assert download == (f'<a class="kb-download" href="api/brief.md?topic={topic}" download>下载简报（.md）</a> '
                        f'<a class="kb-download" href="api/brief.docx?topic={topic}" download>下载 Word（.docx）</a>')
    # Too long a topic: the reason, and nothing to download; an empty one changes nothing.
    shown, source, download = make_briefing("x" * 3000)
    assert "无法处理" in shown and source == "" and download == NO_DOWNLOAD_HTML
    assert all(update == {"__type__": "update"} for update in make_briefing("   "))


def test_a_notice_and_removed_sentences_are_shown_with_the_answer():
    from web.chat import render_answer

    answer = Answer("q", "锦州坚持“三个开放”[1]。", True, verification={"sentences": 2, "verified": 1, "corrected": 0, "removed": 1})
    html = render_answer(answer, 1)
    assert "已删去 1 句知识库原文无法支持的内容" in html and 'class="kb-answer"' in html
    fallback = Answer("q", "答案[1]", True, notice="大模型暂时无法访问<script>")
    assert '<div class="kb-notice">大模型暂时无法访问&lt;script&gt;</div>' in render_answer(fallback, 1)
    assert "kb-checked" not in render_answer(fallback, 1)


def test_the_conversation_sent_with_a_question_is_the_plain_text_of_earlier_turns():
    from web.chat import conversation, render_turns

    turns = [(1, "锦州的“三个开放”是什么？", "<ol>…</ol>", "开放业务系统、开放数据资源。[1]", "锦州的“三个开放”是什么？"),
             (2, "其中第二个呢？", "<ol>…</ol>", "开放数据资源,鼓励企业……[1]", "锦州的开放数据资源是什么？")]
    assert conversation(turns, 40) == [
        {"role": "user", "content": "锦州的“三个开放”是什么？"}, {"role": "assistant", "content": "开放业务系统、开放数据资源。[1]"},
        {"role": "user", "content": "其中第二个呢？"}, {"role": "assistant", "content": "开放数据资源,鼓励企业……[1]"},
    ]
    assert conversation(turns, 2) == conversation(turns, 40)[2:] and conversation(turns, 0) == []
    panel = render_turns(turns)
    assert panel.count("理解为") == 1 and "理解为：锦州的开放数据资源是什么？" in panel
