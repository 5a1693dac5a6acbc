"""What the page's events do, on the server: a question asked (streamed, with the session's
conversation and the filters), an example asked by its index, a briefing made, a vote stored.
Each takes the page's inputs as Gradio sends them and returns what the page shows; the wiring
is web/chat/layout.py's."""

from __future__ import annotations

import html
import logging
from collections.abc import Iterator
from typing import Any

import gradio as gr

from kbcore.markdown import escape_markdown
from kbqa.knowledge_base import DEFAULT_KB, KnowledgeBases, QuestionError, UnknownKnowledgeBase
from web.chat.renderers import (
    download_links,
    no_download_html,
    problem_html,
    render_answer,
    render_briefing,
    render_sources,
    render_turns,
)
from web.chat.session import MAX_HISTORY_MESSAGES, MAX_SOURCE_TURNS, Message, Turn, conversation, voted_turn
from web.feedback import FeedbackStore
from web.i18n import Lang, as_lang, text

log = logging.getLogger(__name__)

EXAMPLE_QUESTIONS = 4  # how many the page offers (KnowledgeBase.example_questions)
FILTER_LABELS = {"region": "region_label", "date_from": "date_from_label", "date_to": "date_to_label"}


class ChatEvents:
    """The events of a page over the knowledge bases ``kbs``; with ``feedback``, votes are
    stored there."""

    def __init__(self, kbs: KnowledgeBases, feedback: FeedbackStore | None = None) -> None:
        self.kbs = kbs
        self.feedback = feedback

    def vote(self, history: list[Message], data: gr.LikeData) -> None:
        # Only an answer of this session's own history, and only a thumb up or down.
        liked = {"Like": True, "Dislike": False}.get(data.liked) if isinstance(data.liked, str) else data.liked
        if type(liked) is not bool:
            liked = None
        turn = voted_turn(history, data.index)
        if self.feedback is None or liked is None or turn is None:
            return
        self.feedback.add(*turn, liked)

    def respond(
        self, question: str, history: list[Message], turns: list[Turn], lang: Lang, kb: str = DEFAULT_KB,
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
        earlier = conversation(turns, self.kbs.settings.max_history_messages)
        while sum(len(m["content"]) for m in earlier) > self.kbs.settings.max_history_chars:
            earlier = earlier[2:]  # the oldest question and answer go first
        filters = {"region": region, "date_from": date_from, "date_to": date_to}
        # A question that could not be answered stays in the box (the first reply cleared it),
        # so the visitor sends it again, or changes it, without typing it anew.
        answer = None
        try:
            for answer in self.kbs.get(kb).ask_stream(question, history=earlier, filters=filters):
                shown = [*history, {"role": "assistant", "content": render_answer(answer, turn, lang)}]
                record = (turn, question, render_sources(answer, turn, lang), answer.text, answer.standalone_question)
                shown_turns = [*turns, record][-MAX_SOURCE_TURNS:]
                yield "", shown, shown_turns, shown, render_turns(shown_turns, lang)
        except (QuestionError, UnknownKnowledgeBase) as exc:
            yield self._problem(question, history, turns, lang, text(lang, "question_error", error=exc))
            return
        except Exception:  # the visitor reads a sentence, the log keeps what happened
            log.exception("a chat question failed")
            yield self._problem(question, history, turns, lang, text(lang, "failed"))
            return
        if answer is not None and not answer.found and not answer.passages and any(v.strip() for v in filters.values()):
            # Nothing searched at all: no document meets the filters (an unfiltered search of a
            # knowledge base always finds some passages).
            chosen = text(lang, "list_sep").join(
                text(lang, "filter_item", label=text(lang, FILTER_LABELS[name]), value=value.strip())
                for name, value in filters.items() if value.strip()
            )
            yield self._problem(question, history, turns, lang, text(lang, "filters_empty", filters=chosen))

    @staticmethod
    def _problem(
        question: str, history: list[Message], turns: list[Turn], lang: Lang, message: str
    ) -> tuple[str, list[Message], list[Turn], list[Message], str]:
        """The page's outputs for a question it could not answer: ``message`` as the reply, the
        question back in the box, the turns (and sources panel) as they were."""
        shown = [*history, {"role": "assistant", "content": problem_html(message)}]
        return question, shown, turns, shown, render_turns(turns, lang)

    def ask_example(
        self, index: int, history: list[Message], turns: list[Turn], lang: Lang, offered: list[str], kb: str = DEFAULT_KB,
        region: str = "", date_from: str = "", date_to: str = "",
    ) -> Iterator[tuple[str, list[Message], list[Turn], list[Message], str]]:
        # The page sends the example's index; the question is the one this session was offered,
        # asked as one typed in (of the knowledge base chosen, with the filters).
        if type(index) is not int or not 0 <= index < len(offered):
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
            return
        yield from self.respond(offered[index], history, turns, lang, kb, region, date_from, date_to)

    def make_briefing(self, topic: str, lang: Lang, kb: str = DEFAULT_KB) -> tuple[str, str, str, str]:
        if not topic.strip():  # an empty click is a no-op
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        try:
            briefing = self.kbs.get(kb).brief(topic, lang=as_lang(lang))
        except (QuestionError, UnknownKnowledgeBase) as exc:
            return escape_markdown(text(lang, "topic_error", error=exc)), "", no_download_html(lang), ""
        return (
            render_briefing(briefing.markdown, lang),
            briefing.markdown,
            download_links(briefing.topic, lang, kb),
            briefing.topic,
        )

    def kb_choices(self) -> dict[str, Any]:
        """The knowledge base selector's choices, shown only when there is more than ``default``."""
        names = self.kbs.names()
        return {"choices": names, "visible": len(names) > 1}

    def example_questions(self, kb: str, lang: Lang = "zh") -> list[str]:
        """The questions the page offers for knowledge base ``kb`` in ``lang``
        (KnowledgeBase.example_questions)."""
        return self.kbs.get(kb).example_questions(EXAMPLE_QUESTIONS, lang=lang)
