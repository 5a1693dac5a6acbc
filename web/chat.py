"""The Chinese-first chat page (Gradio): streamed answers beside a "引用来源" panel.

Every piece of document text is untrusted. It reaches the browser only HTML-escaped, and the
chatbot renders its messages without Markdown so answer sentences show exactly as quoted
(a ``*`` or ``#`` in a document must not restyle the answer).

The second tab, "简报", turns a topic into a briefing (kbqa/briefing.py): Markdown whose
document text is already escaped, rendered with Gradio's HTML sanitizer on, shown raw for
copying, and offered as .md and Word (.docx) downloads.

The example questions come from the knowledge base (``KnowledgeBase.example_questions``, on
each page load) and are asked on click. The page's wording is Chinese or English
(web/i18n.py), switched by a button; the language lives in the session (``gr.State``) like the
conversation.

Both tabs ask the knowledge base chosen in the page's bar (shown only when the store holds more
than ``default``; its example questions follow the choice); questions can be narrowed by region
and date (kbqa.types.Filters).
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import gradio as gr

from kbqa.briefing import escape_markdown
from kbqa.chroma import DEFAULT_KB
from kbqa.knowledge_base import KnowledgeBases, QuestionError, UnknownKnowledgeBase
from kbqa.types import Answer
from web.admin_tab import admin_tab
from web.feedback import FeedbackStore
from web.i18n import LANGUAGES, TEXTS, Lang, as_lang, text


def no_sources_html(lang: Lang = "zh") -> str:
    return f'<p class="kb-none">{text(lang, "no_sources")}</p>'


DOWNLOADS = (("md", "download"), ("docx", "download_docx"))  # extension, i18n key


def no_download_html(lang: Lang = "zh") -> str:
    return " ".join(f'<span class="kb-download kb-download-off">{text(lang, key)}</span>' for _, key in DOWNLOADS)


NO_SOURCES_HTML = no_sources_html()
EXAMPLE_QUESTIONS = 4  # how many the page offers (KnowledgeBase.example_questions)

BRIEF_EXAMPLES = ["锦州数字政府建设", "锦州云计算产业"]
NO_DOWNLOAD_HTML = no_download_html()
# Turns a visitor keeps on the page (user + assistant messages); older ones scroll away.
MAX_HISTORY_MESSAGES = 40
MAX_SOURCE_TURNS = 20  # answers whose sources the panel keeps
_DOWNLOAD_CSS = """
.kb-download { display: inline-block; padding: 0.45rem 1rem; border-radius: 8px; font-weight: 600;
  border: 1px solid var(--border-color-primary); background: var(--button-secondary-background-fill);
  color: var(--button-secondary-text-color); text-decoration: none; }
.kb-download-off { opacity: 0.5; cursor: not-allowed; }
"""

_SOURCES_CSS = """
.kb-sources { list-style: none; padding: 0; margin: 0; }
.kb-source { margin: 0 0 0.9rem; padding: 0.6rem 0.75rem; border: 1px solid var(--border-color-primary);
  border-radius: 8px; background: var(--background-fill-secondary); }
.kb-meta { font-size: 0.85rem; color: var(--body-text-color-subdued); margin-bottom: 0.35rem; }
.kb-meta .kb-n { font-weight: 600; color: var(--color-accent); }
.kb-meta .kb-title { font-weight: 600; color: var(--body-text-color); }
.kb-passage { white-space: pre-wrap; line-height: 1.7; margin: 0; font-size: 0.92rem; }
.kb-passage mark { background: #fde68a; color: inherit; padding: 0 1px; border-radius: 2px; }
.kb-none { color: var(--body-text-color-subdued); }
"""

Message = dict[str, Any]
# (turn number, question, its sources' HTML, the answer's plain text, the standalone question):
# the last two are the conversation the next question is asked in (KnowledgeBase.ask_stream's
# history), kept apart from the chat's rendered HTML.
Turn = tuple[int, str, str, str, str]

# Page-wide style and behaviour (web/app.py passes them to Gradio): answers and refusals look
# different; a click on [n] brings its source into view in the panel and flashes it.
CHAT_CSS = """
#kb-chat .kb-refusal { color: var(--body-text-color-subdued); border-left: 3px solid var(--color-accent-soft);
  padding-left: 0.6rem; }
#kb-chat .kb-refusal::before { font-weight: 600; }
#kb-bar { justify-content: flex-end; }
#kb-chat .kb-notice, #kb-chat .kb-checked { font-size: 0.85rem; color: var(--body-text-color-subdued); }
#kb-chat a.kb-cite { text-decoration: none; font-weight: 600; color: var(--color-accent); padding: 0 1px; }
#kb-chat a.kb-cite:hover { text-decoration: underline; }
#kb-sources .kb-turn { margin-bottom: 1.2rem; }
#kb-sources .kb-q { font-size: 0.9rem; margin: 0 0 0.5rem; color: var(--body-text-color-subdued); }
#kb-sources .kb-standalone { font-weight: normal; }
#kb-sources .kb-flash { outline: 2px solid var(--color-accent); transition: outline-color 1.5s; }
""" + "".join(  # a refusal's badge, in the page's language when it was shown (Gradio strips data-*)
    f'#kb-chat .kb-refusal.kb-ui-{lang}::before {{ content: "{TEXTS[lang]["refusal_badge"]} · "; }}\n'
    for lang in LANGUAGES
)
CHAT_HEAD = """<script>
document.addEventListener("click", function (event) {
  var link = event.target.closest && event.target.closest("a.kb-cite");
  if (!link) return;
  event.preventDefault();
  event.stopPropagation();
  var item = document.getElementById(link.getAttribute("href").slice(1));
  if (!item) return;
  item.scrollIntoView({behavior: "smooth", block: "center"});
  item.classList.remove("kb-flash");
  void item.offsetWidth;
  item.classList.add("kb-flash");
  setTimeout(function () { item.classList.remove("kb-flash"); }, 2000);
}, true);
</script>"""


def _highlight(text: str, offset: int, spans: list[list[int]]) -> str:
    """Escape ``text`` and wrap each span (document offsets; the text starts at ``offset``) in <mark>."""
    out: list[str] = []
    pos = 0
    for start, end in sorted(spans):
        # Clamp to the passage: spans are document offsets and must not index past it.
        start, end = max(start - offset, pos), min(end - offset, len(text))
        if start >= end:
            continue
        out += [html.escape(text[pos:start]), "<mark>", html.escape(text[start:end]), "</mark>"]
        pos = end
    out.append(html.escape(text[pos:]))
    return "".join(out)


def _source_link(source: str) -> str:
    # Only http(s) sources become links: a document could carry a javascript: URL.
    if source.startswith(("http://", "https://")):
        url = html.escape(source, quote=True)
        return f'<a href="{url}" target="_blank" rel="noopener noreferrer">{html.escape(source)}</a>'
    return html.escape(source)


def download_links(topic: str, lang: Lang = "zh", kb: str = DEFAULT_KB) -> str:
    """The briefing's downloads: links to ``GET /api/brief.md`` and ``GET /api/brief.docx``
    (relative, so they work under any mount path) of knowledge base ``kb``. The briefing is
    composed again there, so nothing is written to Gradio's cache for it."""
    query = f"topic={quote(topic, safe='')}" + ("" if kb == DEFAULT_KB else f"&kb={quote(kb, safe='')}")
    links = []
    for extension, key in DOWNLOADS:
        href = html.escape(f"api/brief.{extension}?{query}", quote=True)
        links.append(f'<a class="kb-download" href="{href}" download>{text(lang, key)}</a>')
    return " ".join(links)


def render_sources(answer: Answer, turn: int = 1, lang: Lang = "zh") -> str:
    """Answer ``turn``'s sources: ``[n] title · date · section · source`` and the passage with
    the cited spans highlighted; item ``n`` has the id ``kb-src-<turn>-<n>`` its mark links to."""
    if not answer.found or not answer.citations:
        return no_sources_html(lang)
    items = []
    for c in (citation.to_dict() for citation in answer.citations):
        meta = [f'<span class="kb-title">{html.escape(c["title"] or c["doc_id"])}</span>']
        meta += [html.escape(part) for part in (c["date"], c["section"]) if part]
        if c["source"]:
            meta.append(_source_link(c["source"]))
        passage = _highlight(c["text"], c["passage_start"], c["spans"])
        items.append(
            f'<li class="kb-source" id="kb-src-{turn}-{c["n"]}">'
            f'<div class="kb-meta"><span class="kb-n">[{c["n"]}]</span> {" · ".join(meta)}</div>'
            f'<p class="kb-passage">{passage}</p></li>'
        )
    return f'<ol class="kb-sources">{"".join(items)}</ol>'


_MARK = re.compile(r"\[(\d+)\]")


def refusal_html(message: str, lang: Lang = "zh") -> str:
    """A refusal's text in the chat's refusal style, its badge (CHAT_CSS) in ``lang``."""
    return f'<div class="kb-refusal kb-ui-{as_lang(lang)}">{html.escape(message)}</div>'


def render_answer(answer: Answer, turn: int, lang: Lang = "zh") -> str:
    """An answer as the chat shows it: the text escaped, each ``[n]`` a link to its source in
    the panel (``kb-src-<turn>-<n>``; the page's script opens and flashes it); a refusal in
    its own style. Only marks that name one of the answer's citations become links: a "[3]"
    quoted from a document stays text. The page's own wording around it is in ``lang``; the
    answer's text is in the question's language."""
    notice = f'<div class="kb-notice">{html.escape(answer.notice)}</div>' if answer.notice else ""
    if not answer.found:
        related = "".join(
            f'<li>{html.escape(p.chunk.title or p.chunk.doc_id)}：{html.escape(p.chunk.text[:80])}…</li>'
            for p in answer.related
        )
        extra = f'<div class="kb-related">{text(lang, "related")}<ul>{related}</ul></div>' if related else ""
        return f"{notice}{refusal_html(answer.text, lang)}{extra}"
    cited = len(answer.citations)

    def link(match: re.Match[str]) -> str:
        n = int(match.group(1))
        if not 1 <= n <= cited:
            return match.group(0)
        return f'<a class="kb-cite" href="#kb-src-{turn}-{n}" title="{text(lang, "cite_title", n=n)}">[{n}]</a>'

    checked = ""
    if answer.verification and answer.verification.get("removed"):
        removed = answer.verification["removed"]
        checked = f'<div class="kb-checked">{text(lang, "removed", n=removed)}</div>'
    return f'{notice}<div class="kb-answer">{_MARK.sub(link, html.escape(answer.text))}</div>{checked}'


def render_turns(turns: list[Turn], lang: Lang = "zh") -> str:
    """The sources panel: every answer's sources, newest first, under its question (and, for
    a follow-up, the standalone question it was understood as)."""
    if not turns:
        return no_sources_html(lang)
    sections = []
    for turn, question, sources, _, standalone in reversed(turns):
        understood = ""
        if standalone and standalone != question.strip():
            understood = text(lang, "understood", question=html.escape(standalone))
            understood = f'<span class="kb-standalone">{understood}</span>'
        sections.append(
            f'<section class="kb-turn" id="kb-turn-{turn}"><h4 class="kb-q">{text(lang, "turn", n=turn)}'
            f"{html.escape(question)}{understood}</h4>{sources}</section>"
        )
    return "".join(sections)


def conversation(turns: list[Turn], max_messages: int) -> list[dict[str, str]]:
    """The plain text of the earlier turns, oldest first, as KnowledgeBase.ask_stream's
    history: each question and its answer (not the chat's HTML), the newest ``max_messages``."""
    messages = [
        message
        for _, question, _, answer, _ in turns
        for message in ({"role": "user", "content": question}, {"role": "assistant", "content": answer})
    ]
    return messages[len(messages) - max_messages :] if max_messages else []


_FOOTNOTE_REF = re.compile(r"\[\^(\d+)\]")
_FOOTNOTE_DEF = re.compile(r"^\[\^(\d+)\]: ", re.M)


def render_briefing(markdown: str) -> str:
    """A briefing's GitHub Markdown as Gradio's Markdown shows it: that renderer has no
    footnotes, so ``[^n]`` marks become superscript ``[n]`` and the definitions a numbered
    source list. Document text in a briefing is escaped, so a ``[^n]`` with its closing
    bracket unescaped can only be one of the briefer's own marks."""
    first = _FOOTNOTE_DEF.search(markdown)
    if first is None:
        return markdown
    body, notes = markdown[: first.start()], markdown[first.start() :]
    notes = _FOOTNOTE_DEF.sub(lambda m: f"{m.group(1)}. ", notes)
    body = _FOOTNOTE_REF.sub(lambda m: f"<sup>[{m.group(1)}]</sup>", body)
    return f"{body}### 来源\n\n{notes}"


def message_text(content: Any) -> str:
    """A chat message as plain text: the page's messages are escaped HTML (``render_answer``),
    so the tags go and the entities are read back."""
    if isinstance(content, list):  # Gradio's normalised form: [{"type": "text", "text": ...}]
        content = " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    if not isinstance(content, str):
        return ""
    shown = _ANSWER_DIV.search(content)  # an answer's own text, without the notice or check lines
    return html.unescape(re.sub(r"<[^>]*>", "", shown.group(1) if shown else content)).strip()


_ANSWER_DIV = re.compile(r'<div class="kb-(?:answer|refusal)[ "][^>]*>(.*?)</div>', re.DOTALL)


def voted_turn(history: list[Message], index: Any) -> tuple[str, str] | None:
    """(question, answer) of the assistant message at ``index`` of the server's own history,
    or None. The page sends only the index and the vote: the texts stored are the server's,
    so a vote can't carry text the app never showed."""
    if isinstance(index, (list, tuple)) and index:
        index = index[0]
    if type(index) is not int or not 0 <= index < len(history or []):
        return None
    message = history[index]
    if not isinstance(message, dict) or message.get("role") != "assistant":
        return None
    question = next(
        (m for m in reversed(history[:index]) if isinstance(m, dict) and m.get("role") == "user"), None
    )
    if question is None:
        return None
    return message_text(question.get("content")), message_text(message.get("content"))


def kb_choices(kbs: KnowledgeBases) -> dict[str, Any]:
    """The knowledge base selector's choices, shown only when there is more than ``default``."""
    names = kbs.names()
    return {"choices": names, "visible": len(names) > 1}


def build_chat(kbs: KnowledgeBases, *, feedback: FeedbackStore | None = None, admin: bool = False) -> gr.Blocks:
    """The page over the knowledge bases ``kbs``; with ``feedback``, 👍/👎 under each answer are
    stored there; with ``admin`` (an admin key is configured), the 管理 tab (web/admin_tab.py)."""
    settings = kbs.settings

    def vote(history: list[Message], data: gr.LikeData) -> None:
        # Only an answer of this session's own history, and only a thumb up or down.
        liked = {"Like": True, "Dislike": False}.get(data.liked) if isinstance(data.liked, str) else data.liked
        if type(liked) is not bool:
            liked = None
        turn = voted_turn(history, data.index)
        if feedback is None or liked is None or turn is None:
            return
        feedback.add(*turn, liked)

    def respond(
        question: str, history: list[Message], turns: list[Turn], lang: Lang, kb: str = DEFAULT_KB,
        region: str = "", date_from: str = "", date_to: str = "",
    ) -> Iterator[tuple[str, list[Message], list[Turn], list[Message], str]]:
        # The conversation and the language live on the server (gr.State): the event's inputs
        # from the page are text, the question's, the knowledge base's and the filters'
        # (web/gradio_guard.py).
        if not question.strip():  # an empty submit is a no-op, not a question
            yield question, gr.skip(), gr.skip(), gr.skip(), gr.skip()
            return
        turn = (turns[-1][0] + 1) if turns else 1
        history = [*history, {"role": "user", "content": html.escape(question)}][-MAX_HISTORY_MESSAGES:]
        earlier = conversation(turns, settings.max_history_messages)
        while sum(len(m["content"]) for m in earlier) > settings.max_history_chars:
            earlier = earlier[2:]  # the oldest question and answer go first
        try:
            filters = {"region": region, "date_from": date_from, "date_to": date_to}
            for answer in kbs.get(kb).ask_stream(question, history=earlier, filters=filters):
                shown = [*history, {"role": "assistant", "content": render_answer(answer, turn, lang)}]
                record = (turn, question, render_sources(answer, turn, lang), answer.text, answer.standalone_question)
                shown_turns = [*turns, record][-MAX_SOURCE_TURNS:]
                yield "", shown, shown_turns, shown, render_turns(shown_turns, lang)
        except (QuestionError, UnknownKnowledgeBase) as exc:
            message = text(lang, "question_error", error=exc)
            shown = [*history, {"role": "assistant", "content": refusal_html(message, lang)}]
            yield "", shown, turns, shown, render_turns(turns, lang)

    def ask_example(
        index: int, history: list[Message], turns: list[Turn], lang: Lang, offered: list[str], kb: str = DEFAULT_KB,
        region: str = "", date_from: str = "", date_to: str = "",
    ) -> Iterator[tuple[str, list[Message], list[Turn], list[Message], str]]:
        # The page sends the example's index; the question is the one this session was offered,
        # asked as one typed in (of the knowledge base chosen, with the filters).
        if type(index) is not int or not 0 <= index < len(offered):
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
            return
        yield from respond(offered[index], history, turns, lang, kb, region, date_from, date_to)

    def make_briefing(topic: str, lang: Lang, kb: str = DEFAULT_KB) -> tuple[str, str, str, str]:
        if not topic.strip():  # an empty click is a no-op
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        try:
            briefing = kbs.get(kb).brief(topic)
        except (QuestionError, UnknownKnowledgeBase) as exc:
            return escape_markdown(text(lang, "topic_error", error=exc)), "", no_download_html(lang), ""
        return (
            render_briefing(briefing.markdown),
            briefing.markdown,
            download_links(briefing.topic, lang, kb),
            briefing.topic,
        )

    # delete_cache: a backstop for the private cache (web/gradio_guard.py's own_cache), which
    # nothing writes to — anything that ever lands there is gone within the hour.
    with gr.Blocks(title="知识库问答", delete_cache=(600, 3600)) as demo:
        history = gr.State([])
        turns = gr.State([])
        language = gr.State("zh")  # the page's language (web/i18n.py)
        offered = gr.State([])  # the example questions this session shows, by index
        briefed = gr.State("")  # the topic of the briefing shown ("": none yet)
        with gr.Row(elem_id="kb-bar"):
            kb_choice = gr.Dropdown(
                value=DEFAULT_KB, label=text("zh", "kb_label"), elem_id="kb-select", scale=0, min_width=200,
                **kb_choices(kbs),
            )
            switch = gr.Button(text("zh", "switch"), elem_id="kb-lang", size="sm", scale=0, min_width=90)
        with gr.Tab(text("zh", "tab_chat"), id="kb-tab-chat") as chat_tab:
            intro = gr.Markdown(text("zh", "intro"))
            question = gr.Textbox(
                label=text("zh", "question_label"),
                placeholder=text("zh", "question_placeholder"),
                show_label=False,
                elem_id="kb-question",
                scale=5,
                max_lines=4,
                autofocus=True,
                render=False,  # placed under the chat below
            )
            with gr.Row(equal_height=False):
                with gr.Column(scale=3, min_width=320):
                    # Above the chat, so that on a phone the sources follow the input box directly.
                    # Filled on page load from the knowledge base (KnowledgeBase.example_questions).
                    examples = gr.Dataset(
                        components=[question],
                        samples=[],
                        type="index",
                        label=text("zh", "examples_label"),
                        elem_id="kb-examples",
                        visible=False,
                    )
                    chatbot = gr.Chatbot(
                        label=text("zh", "chat_label"),
                        elem_id="kb-chat",
                        height=480,
                        render_markdown=False,  # messages are escaped HTML (see module docstring)
                        feedback_options=("Like", "Dislike") if feedback is not None else None,
                        buttons=["copy"],
                        placeholder=text("zh", "chat_placeholder"),
                    )
                    with gr.Row():
                        question.render()
                        send = gr.Button(
                            text("zh", "send"), variant="primary", elem_id="kb-send", scale=1, min_width=80
                        )
                    # value="": an API client (gradio_client) may leave the filters out.
                    with gr.Accordion(text("zh", "filters"), open=False) as filters, gr.Row():
                        region = gr.Textbox(
                            "", label=text("zh", "region_label"), placeholder=text("zh", "region_placeholder"),
                            elem_id="kb-filter-region", max_lines=1,
                        )
                        date_from = gr.Textbox(
                            "", label=text("zh", "date_from_label"), placeholder="YYYY-MM-DD",
                            elem_id="kb-filter-from", max_lines=1,
                        )
                        date_to = gr.Textbox(
                            "", label=text("zh", "date_to_label"), placeholder="YYYY-MM-DD",
                            elem_id="kb-filter-to", max_lines=1,
                        )
                # min_width: below two columns' worth (a phone), the row wraps and the sources
                # come under the chat.
                with gr.Column(scale=2, min_width=320):
                    sources_heading = gr.Markdown(text("zh", "sources_heading"))
                    sources = gr.HTML(NO_SOURCES_HTML, elem_id="kb-sources", css_template=_SOURCES_CSS, max_height=640)
            chat_outputs = [question, history, turns, chatbot, sources]
            asked_of = [kb_choice, region, date_from, date_to]  # the knowledge base and the filters
            # Registered before "ask", which stays the page's second event (fn_index 1).
            examples.click(
                ask_example,
                inputs=[examples, history, turns, language, offered, *asked_of],
                outputs=chat_outputs,
                show_progress="minimal",
                api_name="ask_example",
                api_visibility="private",
                concurrency_limit=8,
            )
            gr.on(
                [question.submit, send.click],
                respond,
                inputs=[question, history, turns, language, *asked_of],
                outputs=chat_outputs,
                show_progress="minimal",
                api_name="ask",
                # Gradio runs one call per event at a time by default: 32 visitors queued behind
                # each other (p99 15 s at ~35 ms an answer). The KB is thread-safe for reads.
                concurrency_limit=8,
            )
            if feedback is not None:
                # Inputs: the server-side history only (a gr.State, sent as null); the vote and
                # the message's index come as Gradio's event data.
                chatbot.like(vote, inputs=[history], outputs=None, api_name="feedback", api_visibility="private")
            # The chat's trash button clears what the page shows; the server's copy goes too, or
            # the next answer would bring the old conversation back.
            chatbot.clear(
                lambda lang: ([], [], no_sources_html(lang)),
                inputs=[language],
                outputs=[history, turns, sources],
                api_name="clear",
                api_visibility="private",
            )
        with gr.Tab(text("zh", "tab_brief"), id="kb-tab-brief") as brief_tab:
            brief_intro = gr.Markdown(text("zh", "brief_intro"))
            with gr.Row():
                topic = gr.Textbox(
                    label=text("zh", "topic_label"),
                    placeholder=text("zh", "topic_placeholder"),
                    show_label=False,
                    elem_id="kb-brief-topic",
                    scale=5,
                    max_lines=2,
                )
                make = gr.Button(
                    text("zh", "make_brief"), variant="primary", elem_id="kb-brief-make", scale=1, min_width=100
                )
            brief_examples = gr.Examples(BRIEF_EXAMPLES, inputs=topic, label=text("zh", "brief_examples_label"))
            download = gr.HTML(NO_DOWNLOAD_HTML, elem_id="kb-brief-download", css_template=_DOWNLOAD_CSS)
            briefing_view = gr.Markdown(
                text("zh", "no_brief"),
                elem_id="kb-brief",
                sanitize_html=True,  # the briefer escapes document text; the sanitizer stays on too
                latex_delimiters=[],  # "$$" in a document is text, not math
                container=True,
            )
            with gr.Accordion(text("zh", "brief_source"), open=False) as brief_source:
                briefing_source = gr.Code(
                    language="markdown", interactive=False, show_label=False, elem_id="kb-brief-source"
                )
        gr.on(
            [topic.submit, make.click],
            make_briefing,
            inputs=[topic, language, kb_choice],
            outputs=[briefing_view, briefing_source, download, briefed],
            show_progress="minimal",
            api_name="brief",
            # The page's own event, not a second public API: HTTP clients have /api/brief, and
            # the app keeps Gradio's public surface to "ask" (tests/web/test_security.py).
            api_visibility="private",
            # Gradio's default is one at a time for everyone: 30 briefings queued by one client
            # made every visitor's wait behind them. Several run at once, and the guard keeps a
            # client to a few events in the queue (settings.max_events_per_client).
            concurrency_limit=4,
        )
        admin_wording: dict[Any, Callable[[Lang], Any]] = {}
        if admin:
            admin_page, admin_intro = admin_tab()
            admin_wording = {
                admin_page: lambda lang: gr.update(label=text(lang, "tab_admin")),
                admin_intro: lambda lang: text(lang, "admin_intro"),
            }

        # The page's wording in a language: each component with its wording (web/i18n.py).
        wording: dict[Any, Callable[[Lang], Any]] = {
            kb_choice: lambda lang: gr.update(label=text(lang, "kb_label")),
            switch: lambda lang: gr.update(value=text(lang, "switch")),
            chat_tab: lambda lang: gr.update(label=text(lang, "tab_chat")),
            intro: lambda lang: text(lang, "intro"),
            question: lambda lang: gr.update(
                label=text(lang, "question_label"), placeholder=text(lang, "question_placeholder")
            ),
            examples: lambda lang: gr.update(label=text(lang, "examples_label")),
            chatbot: lambda lang: gr.update(label=text(lang, "chat_label"), placeholder=text(lang, "chat_placeholder")),
            send: lambda lang: gr.update(value=text(lang, "send")),
            filters: lambda lang: gr.update(label=text(lang, "filters")),
            region: lambda lang: gr.update(label=text(lang, "region_label"), placeholder=text(lang, "region_placeholder")),
            date_from: lambda lang: gr.update(label=text(lang, "date_from_label")),
            date_to: lambda lang: gr.update(label=text(lang, "date_to_label")),
            sources_heading: lambda lang: text(lang, "sources_heading"),
            brief_tab: lambda lang: gr.update(label=text(lang, "tab_brief")),
            brief_intro: lambda lang: text(lang, "brief_intro"),
            topic: lambda lang: gr.update(label=text(lang, "topic_label"), placeholder=text(lang, "topic_placeholder")),
            make: lambda lang: gr.update(value=text(lang, "make_brief")),
            brief_examples.dataset: lambda lang: gr.update(label=text(lang, "brief_examples_label")),
            brief_source: lambda lang: gr.update(label=text(lang, "brief_source")),
            **admin_wording,
        }
        # And what the page shows that depends on the session too: the sources panel, and the
        # briefing's placeholder and download (a briefing shown keeps its text).
        shown_outputs = [sources, briefing_view, download]

        def shown_in(lang: Lang, turns: list[Turn], briefed: str, kb: str) -> list[Any]:
            if briefed:
                return [render_turns(turns, lang), gr.skip(), download_links(briefed, lang, kb)]
            return [render_turns(turns, lang), text(lang, "no_brief"), no_download_html(lang)]

        def switch_language(lang: Lang, turns: list[Turn], briefed: str, kb: str = DEFAULT_KB) -> list[Any]:
            lang = "zh" if lang == "en" else "en"
            return [lang, *(update(lang) for update in wording.values()), *shown_in(lang, turns, briefed, kb)]

        switch.click(
            switch_language,
            inputs=[language, turns, briefed, kb_choice],
            outputs=[language, *wording, *shown_outputs],
            show_progress="hidden",
            api_name="language",
            api_visibility="private",
        )

        def load_page(request: gr.Request) -> Iterator[dict[Any, Any]]:
            # ?lang=en opens the page in English (it is built in Chinese); else the language is
            # left alone, so a slow load can't undo a switch made meanwhile. The examples come
            # after: the knowledge base's own, computed once per content of the store.
            if request.query_params.get("lang") == "en":
                yield {language: "en"} | {block: update("en") for block, update in wording.items()}
            # Knowledge bases an admin created since the app started are offered too.
            yield {kb_choice: gr.update(**kb_choices(kbs))}
            yield examples_of(DEFAULT_KB)

        def examples_of(kb: str) -> dict[Any, Any]:
            questions = kbs.get(kb).example_questions(EXAMPLE_QUESTIONS)
            return {offered: questions, examples: gr.update(samples=[[q] for q in questions], visible=bool(questions))}

        demo.load(
            load_page,
            outputs=[language, offered, *wording],
            show_progress="hidden",
            api_name="load_page",
            api_visibility="private",
        )
        kb_choice.change(
            examples_of, inputs=[kb_choice], outputs=[offered, examples], show_progress="hidden",
            api_name="kb_examples", api_visibility="private",
        )
    return demo
