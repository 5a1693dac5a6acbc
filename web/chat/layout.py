"""The page: its components (a bar with the knowledge base and the language switch, the chat
tab with the sources panel and the filters, the 简报 tab, the 管理 tab with a key) and how its
events are wired to ``ChatEvents`` (web/chat/events.py). The event order is part of the
page's contract with web/gradio_guard.py ("ask" is the page's second event)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import gradio as gr

from kbqa.knowledge_base import DEFAULT_KB, KnowledgeBases
from web.admin_tab import admin_tab
from web.chat.assets import DOWNLOAD_CSS, SOURCES_CSS
from web.chat.events import ChatEvents
from web.chat.renderers import (
    NO_DOWNLOAD_HTML,
    NO_SOURCES_HTML,
    download_links,
    no_download_html,
    no_sources_html,
    render_turns,
)
from web.chat.session import Turn
from web.feedback import FeedbackStore
from web.i18n import Lang, text

BRIEF_EXAMPLES = ["锦州数字政府建设", "锦州云计算产业"]


def build_chat(kbs: KnowledgeBases, *, feedback: FeedbackStore | None = None, admin: bool = False) -> gr.Blocks:
    """The page over the knowledge bases ``kbs``; with ``feedback``, 👍/👎 under each answer are
    stored there; with ``admin`` (an admin key is configured), the 管理 tab (web/admin_tab.py),
    shown on the admin's own address only: ``/?admin`` (``/admin`` leads there, web/asgi.py)."""
    events = ChatEvents(kbs, feedback)

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
                **events.kb_choices(),
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
                        # Gradio's floating label covered the top message as the chat scrolled;
                        # the conversation keeps its name for screen readers (status.js).
                        show_label=False,
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
                    sources = gr.HTML(NO_SOURCES_HTML, elem_id="kb-sources", css_template=SOURCES_CSS, max_height=640)
            chat_outputs = [question, history, turns, chatbot, sources]
            asked_of = [kb_choice, region, date_from, date_to]  # the knowledge base and the filters
            # Registered before "ask", which stays the page's second event (fn_index 1).
            examples.click(
                events.ask_example,
                inputs=[examples, history, turns, language, offered, *asked_of],
                outputs=chat_outputs,
                show_progress="minimal",
                api_name="ask_example",
                api_visibility="private",
                concurrency_limit=8,
            )
            gr.on(
                [question.submit, send.click],
                events.respond,
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
                chatbot.like(events.vote, inputs=[history], outputs=None, api_name="feedback", api_visibility="private")
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
            download = gr.HTML(NO_DOWNLOAD_HTML, elem_id="kb-brief-download", css_template=DOWNLOAD_CSS)
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
            events.make_briefing,
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
        admin_page = None
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
        # briefing's placeholder and download (a briefing shown keeps its text); beside them the
        # example questions (examples_of), the knowledge base's in the page's language.
        shown_outputs = [sources, briefing_view, download]

        def shown_in(lang: Lang, turns: list[Turn], briefed: str, kb: str) -> list[Any]:
            if briefed:
                return [render_turns(turns, lang), gr.skip(), download_links(briefed, lang, kb)]
            return [render_turns(turns, lang), text(lang, "no_brief"), no_download_html(lang)]

        def switch_language(lang: Lang, turns: list[Turn], briefed: str, kb: str = DEFAULT_KB) -> list[Any]:
            lang = "zh" if lang == "en" else "en"
            asked = examples_of(kb, lang)
            return [
                lang, *(update(lang) for update in wording.values()), *shown_in(lang, turns, briefed, kb),
                asked[offered], asked[examples],
            ]

        switch.click(
            switch_language,
            inputs=[language, turns, briefed, kb_choice],
            outputs=[language, *wording, *shown_outputs, offered, examples],
            show_progress="hidden",
            api_name="language",
            api_visibility="private",
        )

        def load_page(request: gr.Request) -> Iterator[dict[Any, Any]]:
            # ?lang=en opens the page in English (it is built in Chinese); else the language is
            # left alone, so a slow load can't undo a switch made meanwhile. The examples come
            # after: the knowledge base's own, computed once per content of the store.
            lang: Lang = "en" if request.query_params.get("lang") == "en" else "zh"
            if lang == "en":
                yield {language: "en"} | {block: update("en") for block, update in wording.items()} | dict(
                    zip(shown_outputs, shown_in("en", [], "", DEFAULT_KB))
                )
            # The admin tab is no visitor's business: it shows only on the admin's own address.
            if admin_page is not None and "admin" in request.query_params:
                yield {admin_page: gr.update(visible=True)}
            # Knowledge bases an admin created since the app started are offered too.
            yield {kb_choice: gr.update(**events.kb_choices())}
            yield examples_of(DEFAULT_KB, lang)

        def examples_of(kb: str, lang: Lang = "zh") -> dict[Any, Any]:
            questions = events.example_questions(kb, lang)
            shown = gr.update(
                samples=[[q] for q in questions], visible=bool(questions), label=text(lang, "examples_label")
            )
            return {offered: questions, examples: shown}

        demo.load(
            load_page,
            outputs=[language, offered, examples, *shown_outputs, *wording],
            show_progress="hidden",
            api_name="load_page",
            api_visibility="private",
        )
        kb_choice.change(
            examples_of, inputs=[kb_choice, language], outputs=[offered, examples], show_progress="hidden",
            api_name="kb_examples", api_visibility="private",
        )
    return demo
