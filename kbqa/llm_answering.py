"""Answering with a chat model, for deployments that have one (none runs by default).

The model sees the prompt files in ``prompts/`` with every passage fenced as untrusted data,
and its reply is checked before anyone sees it: a sentence without a valid ``[n]`` mark is
dropped, and a reply left with nothing (or the model's own refusal) becomes found=False.
So the guarantee of the extractive answerer holds here too: nothing reaches the user
without a citation to a retrieved passage.
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.runnables import Runnable, RunnableConfig

from kbqa.answering import NOT_FOUND_TEXT, as_passages
from kbqa.settings import REPO_ROOT
from kbqa.types import Answer, Citation, Passage

PROMPTS_DIR = REPO_ROOT / "prompts"
_MARK = re.compile(r"\[(\d+)\]")
_SENTENCE = re.compile(r"[^。！？!?\n]+(?:[。！？!?]+)?(?:\s*\[\d+\])*")


def load_prompt(name: str, prompts_dir: Path = PROMPTS_DIR) -> str:
    return (prompts_dir / f"{name}.md").read_text(encoding="utf-8")


def render_documents(passages: Sequence[Passage], template: str) -> str:
    """Passages as fenced, escaped blocks: a passage can't close its fence or open a new one."""

    def esc(value: str | None) -> str:
        return html.escape(value or "", quote=True)

    return "\n".join(
        template.format(
            n=i,
            title=esc(p.chunk.title),
            date=esc(p.chunk.date),
            section=esc(p.chunk.section),
            source=esc(p.chunk.source),
            text=esc(p.chunk.text),
        ).strip()
        for i, p in enumerate(passages, start=1)
    )


class LLMAnswerer(Runnable[dict, Answer]):
    def __init__(self, model: BaseChatModel, *, prompts_dir: Path = PROMPTS_DIR, max_passages: int = 5):
        if max_passages < 1:
            raise ValueError("max_passages must be positive")
        self.model = model
        self.max_passages = max_passages
        self.system = load_prompt("answer_system", prompts_dir).replace("{not_found}", NOT_FOUND_TEXT)
        self.user = load_prompt("answer_user", prompts_dir)
        self.passage = load_prompt("passage", prompts_dir)

    def messages(self, question: str, passages: Sequence[Passage]) -> list:
        documents = render_documents(passages, self.passage)
        return [
            SystemMessage(self.system),
            HumanMessage(self.user.format(documents=documents, question=html.escape(question, quote=False))),
        ]

    def invoke(self, input: dict, config: RunnableConfig | None = None, **kwargs: Any) -> Answer:
        t0 = time.perf_counter()
        question = input["question"]
        passages = as_passages(input.get("passages", ()))[: self.max_passages]
        reply = self.model.invoke(self.messages(question, passages), config).content
        text, citations = self.checked(str(reply), passages)
        timings = {"answer_ms": (time.perf_counter() - t0) * 1000}
        if not citations:
            return Answer(question, NOT_FOUND_TEXT, False, passages=tuple(passages), timings_ms=timings)
        return Answer(question, text, True, citations, tuple(passages), timings, confidence=1.0)

    @staticmethod
    def checked(reply: str, passages: Sequence[Passage]) -> tuple[str, tuple[Citation, ...]]:
        """Keep only sentences whose marks all name a passage; cite those passages whole."""
        kept, used = [], []
        for sentence in (m.group(0).strip() for m in _SENTENCE.finditer(reply)):
            marks = [int(n) for n in _MARK.findall(sentence)]
            if not marks or not all(1 <= n <= len(passages) for n in marks):
                continue
            kept.append(sentence)
            used.extend(n for n in marks if n not in used)
        citations = tuple(
            Citation.from_spans(n, passages[n - 1], [(passages[n - 1].chunk.start, passages[n - 1].chunk.end)])
            for n in sorted(used)
        )
        return "".join(kept), citations
