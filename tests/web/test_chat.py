"""The chat page's citation panel: spans highlighted, every piece of document text escaped."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from kbcore.types import Answer, Chunk, Citation, Passage
from web.chat.renderers import NO_SOURCES_HTML, render_sources

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


def test_a_refusal_shows_its_related_passages_as_no_answer():
    """Issue 21 §2: under a question asked, the panel shows what the refusal found, said not to
    be an answer (no [n], nothing highlighted), or that it found nothing; never the empty
    panel's "提问后，这里会列出…"."""
    from kbcore.types import Chunk, Passage

    nothing = render_sources(Answer(question="q", text="抱歉", found=False), lang="en")
    assert nothing == '<p class="kb-none">The knowledge base holds no passage related to this question.</p>'
    assert nothing != NO_SOURCES_HTML
    related = Passage(chunk=Chunk("a.txt", 0, "<b>锦州</b>的段落", 0, 9, title="标题", date="2023-08-05"), score=0.1)
    shown = render_sources(Answer(question="q", text="抱歉", found=False, related=(related,)))
    assert shown.startswith('<p class="kb-related-note">没有找到答案。以下是相关段落，仅供参考，不是答案：</p>')
    assert "&lt;b&gt;锦州&lt;/b&gt;的段落" in shown and "标题" in shown and "2023-08-05" in shown
    assert "<mark>" not in shown and "kb-n" not in shown and "kb-src-" not in shown


# --- the 简报 tab ---------------------------------------------------------------------------


def test_briefing_footnotes_become_superscripts_and_a_source_list():
    from web.chat.renderers import render_briefing

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
    from kbqa.knowledge_base import KnowledgeBases
    from web.chat.layout import build_chat
    from web.chat.renderers import NO_DOWNLOAD_HTML

    demo = build_chat(KnowledgeBases.serving(seed_kb))
    (make_briefing,) = [f.fn for f in demo.fns.values() if f.api_name == "brief"]
    shown, source, download, briefed = make_briefing("锦州数字政府建设", "zh")
    assert briefed == "锦州数字政府建设"  # the session's briefing: its download link follows the language
    # The KB's briefing, but for the generation time (its minute may have turned meanwhile).
    assert source.split("\n", 3)[3] == seed_kb.brief("锦州数字政府建设").markdown.split("\n", 3)[3]
    assert "<sup>[1]</sup>" in shown and "[^1]" not in shown
    # The downloads are links to GET /api/brief.md and /api/brief.docx for the topic: no file is written for them.
    topic = "%E9%94%A6%E5%B7%9E%E6%95%B0%E5%AD%97%E6%94%BF%E5%BA%9C%E5%BB%BA%E8%AE%BE"
    assert download == (f'<a class="kb-download" href="api/brief.md?topic={topic}" download>下载简报（.md）</a> '
                        f'<a class="kb-download" href="api/brief.txt?topic={topic}" download>下载纯文本（.txt）</a> '
                        f'<a class="kb-download" href="api/brief.docx?topic={topic}" download>下载 Word（.docx）</a>')
    # Too long a topic: the reason, and nothing to download; an empty one changes nothing.
    shown, source, download, briefed = make_briefing("x" * 3000, "zh")
    assert "无法处理" in shown and source == "" and download == NO_DOWNLOAD_HTML and briefed == ""
    assert all(update == {"__type__": "update"} for update in make_briefing("   ", "zh"))
    # In English: the page's wording, the reason as the knowledge base gave it.
    shown, _, download, _ = make_briefing("x" * 3000, "en")
    assert shown.startswith("Sorry, this topic can't be processed") and "Download briefing (.md)" in download
    assert ">Download briefing (.md)</a>" in make_briefing("锦州数字政府建设", "en")[2]


def test_a_notice_and_removed_sentences_are_shown_with_the_answer():
    from web.chat.renderers import render_answer

    answer = Answer("q", "锦州坚持“三个开放”[1]。", True, verification={"sentences": 2, "verified": 1, "corrected": 0, "removed": 1})
    html = render_answer(answer, 1)
    assert "已删去 1 句知识库原文无法支持的内容" in html and 'class="kb-answer"' in html
    fallback = Answer("q", "答案[1]", True, notice="大模型暂时无法访问<script>")
    assert '<div class="kb-notice">大模型暂时无法访问&lt;script&gt;</div>' in render_answer(fallback, 1)
    assert "kb-checked" not in render_answer(fallback, 1)


def test_the_conversation_sent_with_a_question_is_the_plain_text_of_earlier_turns():
    from web.chat.renderers import render_turns
    from web.chat.session import conversation

    turns = [(1, "锦州的“三个开放”是什么？", "<ol>…</ol>", "开放业务系统、开放数据资源。[1]", "锦州的“三个开放”是什么？"),
             (2, "其中第二个呢？", "<ol>…</ol>", "开放数据资源,鼓励企业……[1]", "锦州的开放数据资源是什么？")]
    assert conversation(turns, 40) == [
        {"role": "user", "content": "锦州的“三个开放”是什么？"}, {"role": "assistant", "content": "开放业务系统、开放数据资源。[1]"},
        {"role": "user", "content": "其中第二个呢？"}, {"role": "assistant", "content": "开放数据资源,鼓励企业……[1]"},
    ]
    assert conversation(turns, 2) == conversation(turns, 40)[2:] and conversation(turns, 0) == []
    panel = render_turns(turns)
    assert panel.count("理解为") == 1 and "理解为：锦州的开放数据资源是什么？" in panel


# --- the page's language (web/i18n.py) ----------------------------------------------------------


@pytest.mark.parametrize("table", ["TEXTS", "ADMIN_TEXTS"])
def test_both_languages_word_the_same_things(table):
    import web.i18n

    texts = getattr(web.i18n, table)
    keys = {lang: set(texts[lang]) for lang in web.i18n.LANGUAGES}
    assert keys["zh"] == keys["en"]
    for key in keys["zh"]:  # the same values to fill in, and no Chinese left in the English
        assert re.findall(r"\{\w+\}", texts["zh"][key]) == re.findall(r"\{\w+\}", texts["en"][key]), key
        assert key == "switch" or key == "topic_placeholder" or not re.search(r"[\u4e00-\u9fff]", texts["en"][key]), key


def test_the_wording_around_an_answer_follows_the_page_and_the_answer_its_question():
    from web.chat.renderers import render_answer, render_turns
    from web.chat.session import message_text

    refusal = Answer("锦州2024年的GDP是多少？", "抱歉，知识库中没有找到能回答这个问题的内容。", False,
                     related=(Passage(Chunk("d.txt", 0, "锦州的文字", 0, 5, title="标题"), 0.5),))
    english = render_answer(refusal, 1, "en")
    assert 'class="kb-refusal kb-ui-en"' in english and "Related passages (not an answer)" in english
    assert "抱歉，知识库中没有找到" in english  # the answer's own text stays in its question's language
    assert 'class="kb-refusal kb-ui-zh"' in render_answer(refusal, 1, "zh") and "相关内容（不是答案）" in render_answer(refusal, 1)
    assert message_text(english) == "抱歉，知识库中没有找到能回答这个问题的内容。"  # what a vote stores
    checked = Answer("q", "答案。[1]", True, citations=answer().citations, verification={"removed": 2})
    shown = render_answer(checked, 3, "en")
    assert 'title="Show source [1]"' in shown and "Removed 2 sentence(s)" in shown
    turns = [(1, "其中第二个呢？", "<ol>…</ol>", "…", "锦州的开放数据资源是什么？")]
    assert render_turns(turns, "en").startswith('<section class="kb-turn" id="kb-turn-1"><h4 class="kb-q">Q1: 其中第二个呢？')
    assert "(understood as: 锦州的开放数据资源是什么？)" in render_turns(turns, "en")
    assert "Ask a question" in render_turns([], "en") and render_turns([]) == NO_SOURCES_HTML


def test_the_refusal_badge_is_styled_in_each_language():
    from web.chat.assets import CHAT_CSS

    assert '.kb-refusal.kb-ui-zh::before { content: "未找到答案 · "; }' in CHAT_CSS
    assert '.kb-refusal.kb-ui-en::before { content: "No answer · "; }' in CHAT_CSS


def test_the_switch_rewords_the_page_and_keeps_the_sessions_content(seed_kb):
    """The language event as Gradio calls it: every component it names gets its wording, the
    sources panel is drawn again in the new language, a briefing shown stays, the example
    questions are the knowledge base's in the new language."""
    from kbqa.examples import ENGLISH_QUESTIONS
    from kbqa.knowledge_base import KnowledgeBases
    from web.chat.layout import build_chat

    demo = build_chat(KnowledgeBases.serving(seed_kb))
    (fn,) = [f for f in demo.fns.values() if f.api_name == "language"]
    turns = [(1, "锦州的“三个开放”是什么？", "<ol>…</ol>", "…", "锦州的“三个开放”是什么？")]
    lang, *updates = fn.fn("zh", turns, "")
    assert lang == "en" and len(updates) == len(fn.outputs) - 1
    labels = {str(u.get("label") or u.get("value") or "") for u in updates if isinstance(u, dict)}
    labels |= {u for u in updates if isinstance(u, str)}
    assert {"中文", "Ask", "Briefing", "Send", "Example questions (click to ask)", "Make briefing"} <= labels
    panel, briefing_view, download, offered, examples = updates[-5:]
    assert offered and set(offered) <= set(ENGLISH_QUESTIONS) and examples["samples"] == [[q] for q in offered]
    assert "Q1: 锦州的“三个开放”是什么？" in panel and briefing_view.startswith("Enter a topic")
    assert "Download briefing (.md)" in download and "href" not in download
    _, *updates = fn.fn("en", turns, "锦州数字政府建设")
    panel, briefing_view, download, offered, _ = updates[-5:]
    assert offered == seed_kb.example_questions(4)
    assert "第 1 问：" in panel and briefing_view == {"__type__": "update"}  # the briefing shown stays
    assert download.startswith('<a class="kb-download" href="api/brief.md?topic=') and "下载简报（.md）" in download


def test_the_readers_answer_span_is_marked_more_strongly_inside_the_cited_sentence():
    plain = answer()
    citation = plain.citations[0]
    lo = citation.start + len("被引用")
    spanned = replace(citation, answer_span=(lo, lo + 2))  # "的句"
    html = render_sources(replace(plain, citations=(spanned,)))
    assert '<mark>被引用</mark><mark><strong class="kb-answer-span">的句</strong></mark><mark>子。</mark>' in html
    assert "<script" not in html
    assert "kb-answer-span" not in render_sources(plain)
