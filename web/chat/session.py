"""What the page keeps per visitor, on the server (``gr.State``): the chat's messages, the turns
(each question with its sources and the plain text it was answered in), the conversation sent
with the next question, and the turn a 👍/👎 names."""

from __future__ import annotations

import html
import re
from typing import Any

# Turns a visitor keeps on the page (user + assistant messages); older ones scroll away.
MAX_HISTORY_MESSAGES = 40
MAX_SOURCE_TURNS = 20  # answers whose sources the panel keeps

Message = dict[str, Any]
# (turn number, question, its sources' HTML, the answer's plain text, the standalone question):
# the last two are the conversation the next question is asked in (KnowledgeBase.ask_stream's
# history), kept apart from the chat's rendered HTML.
Turn = tuple[int, str, str, str, str]


def conversation(turns: list[Turn], max_messages: int) -> list[dict[str, str]]:
    """The plain text of the earlier turns, oldest first, as KnowledgeBase.ask_stream's
    history: each question and its answer (not the chat's HTML), the newest ``max_messages``."""
    messages = [
        message
        for _, question, _, answer, _ in turns
        for message in ({"role": "user", "content": question}, {"role": "assistant", "content": answer})
    ]
    return messages[len(messages) - max_messages :] if max_messages else []


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
