"""Answering with a chat model, for deployments that configure one (``--llm-base-url``; any
OpenAI-compatible server through LangChain's ``ChatOpenAI``, ``chat_model``).

The model sees the prompt files in ``prompts/`` with every passage fenced as untrusted data,
and its reply is checked sentence by sentence before anyone sees it (kbqa/verification.py):

* a sentence some passage supports is kept, cited to the supporting passage — a wrong ``[n]``
  is corrected, a missing one added — and its citation points at the supporting sentences;
* a sentence no passage supports (an invented number, an outside fact, an order a passage
  smuggled in) is removed; ``Answer.verification`` counts what was kept, corrected and removed;
* a reply left with nothing (or the model's own refusal) is a refusal, found=False.

So the guarantee of the extractive answerer holds here too: nothing reaches the user that a
retrieved passage does not say. The reply streams sentence by sentence, each one checked first.
When the model cannot be reached (a timeout, a refused connection, a rate limit, a 5xx), the
extractive answerer answers instead, with a ``notice`` saying so.
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.runnables import Runnable, RunnableConfig

from kbqa.answering import NOT_FOUND_TEXT, as_passages
from kbqa.conversation import Message, rewrite
from kbcore.evidence import cite
from kbcore.settings import REPO_ROOT
from kbcore.types import Answer, Passage
from kbqa.verification import MIN_COVERAGE, find_support

PROMPTS_DIR = REPO_ROOT / "prompts"
_MARK = re.compile(r"\[(\d+)\]")
_SENTENCE = re.compile(r"[^。！？!?\n]+(?:[。！？!?]+)?(?:\s*\[\d+\])*")
_TAIL = re.compile(r"^(?P<body>.*?)(?P<end>[。！？!?.]*)$", re.S)

FALLBACK_NOTICE = "大模型暂时无法访问，以下是从知识库原文摘录的答案（the chat model could not be reached: {reason}）"

# Errors that mean "the model is not available now", by class name so that this module needs
# neither openai nor httpx: the extractive answer stands in for them. Anything else is a bug.
_UNAVAILABLE = {
    "APITimeoutError", "APIConnectionError", "RateLimitError", "InternalServerError", "ServiceUnavailableError",
    "TimeoutException", "ConnectError", "ReadTimeout", "ConnectTimeout", "RemoteProtocolError", "ReadError",
}


def unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the chat model can't answer now (vs. a bug to raise)."""
    if isinstance(exc, (TimeoutError, ConnectionError)):
        return True
    return any(cls.__name__ in _UNAVAILABLE for cls in type(exc).__mro__)


def chat_model(
    base_url: str, model: str, api_key: str | None = None, *, timeout: float = 60.0, max_tokens: int = 512
) -> BaseChatModel:
    """LangChain's ``ChatOpenAI`` on an OpenAI-compatible server (DeepSeek, DashScope, vLLM,
    Ollama, llama.cpp's server ...); needs the ``llm`` extra. A reply is at most ``max_tokens``."""
    from kbcore.extras import require

    ChatOpenAI = require("langchain_openai", "llm").ChatOpenAI
    return ChatOpenAI(
        base_url=base_url,
        model=model,
        api_key=api_key or "not-needed",
        temperature=0,
        timeout=timeout,
        max_retries=0,  # a retry would double the wait before the extractive answer
        streaming=True,
        # The bound goes as ``max_tokens`` in the body: ChatOpenAI's own max_tokens is sent as
        # ``max_completion_tokens``, which llama.cpp's server ignores, and a small model that
        # loops (Qwen2.5-0.5B does) then writes until its context is full or the timeout cuts it.
        extra_body={"max_tokens": max_tokens},
    )


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
    """``{"question", "passages"}`` -> ``Answer``, by a chat model, every sentence verified.

    ``fallback`` (the extractive answerer) answers when the model is unavailable. ``gate``
    decides whether the passages hold an answer at all, before the model is asked: when it
    refuses (the extractive answerer's calibrated presence probability below its operating
    point), its refusal — in the question's language, with the related passages — is the
    answer. Verification keeps every shown sentence supported by a passage, but not on the
    question: without the gate, the 1.5B model answered 8 of 10 dev questions whose documents
    were removed (bench/results/llm.md)."""

    def __init__(
        self,
        model: BaseChatModel,
        *,
        fallback: Runnable[dict, Answer] | None = None,
        gate: Runnable[dict, Answer] | None = None,
        prompts_dir: Path = PROMPTS_DIR,
        max_passages: int = 5,
        min_coverage: float = MIN_COVERAGE,
    ):
        if max_passages < 1:
            raise ValueError("max_passages must be positive")
        self.model = model
        self.fallback = fallback
        self.gate = gate
        self.max_passages = max_passages
        self.min_coverage = min_coverage
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
        *_, final = self.stream(input, config)
        return final

    def stream(self, input: dict, config: RunnableConfig | None = None, **kwargs: Any) -> Iterator[Answer]:
        """The answer growing by verified sentences (each partial a prefix of the next); the last
        item is complete, with ``verification`` and timings."""
        t0 = time.perf_counter()
        if self.gate is not None:
            judged = self.gate.invoke(input, config)
            if not judged.found:
                yield replace(judged, timings_ms=judged.timings_ms | {"answer_ms": (time.perf_counter() - t0) * 1000})
                return
        question = input["question"]
        passages = as_passages(input.get("passages", ()))[: self.max_passages]
        check = _Checker(passages, self.min_coverage)
        buffer, yielded, notice = "", False, ""
        try:
            for chunk in self.model.stream(self.messages(question, passages), config):
                buffer += str(chunk.content)
                sentences = [m.group(0) for m in _SENTENCE.finditer(buffer)]
                # All but the last are complete: the last may still grow (or get its marks).
                for sentence in sentences[:-1]:
                    if check.add(sentence):
                        yielded = True
                        yield check.answer(question, passages)
                if sentences:
                    buffer = buffer[buffer.rindex(sentences[-1]) :]
        except Exception as exc:
            if not unavailable(exc):
                raise
            reason = f"{type(exc).__name__}: {exc}"[:200]
            if not yielded and self.fallback is not None:
                yield from self._fall_back(input, config, reason, t0)
                return
            notice = FALLBACK_NOTICE.format(reason=reason) if not yielded else f"回答不完整（the reply was cut off: {reason}）"
            buffer = ""
        for m in _SENTENCE.finditer(buffer):
            check.add(m.group(0))
        final = check.answer(question, passages, final=True)
        timings = {"answer_ms": (time.perf_counter() - t0) * 1000}
        yield replace(final, timings_ms=timings, notice=notice)

    def _fall_back(self, input: dict, config: RunnableConfig | None, reason: str, t0: float) -> Iterator[Answer]:
        notice = FALLBACK_NOTICE.format(reason=reason)
        previous = None
        for partial in self.fallback.stream(input, config):
            if previous is not None:
                yield replace(previous, notice=notice)
            previous = partial
        timings = previous.timings_ms | {"answer_ms": (time.perf_counter() - t0) * 1000}
        yield replace(previous, notice=notice, timings_ms=timings)

    def checked(self, reply: str, passages: Sequence[Passage]) -> Answer:
        """A whole reply checked at once (what ``stream`` does sentence by sentence)."""
        check = _Checker(list(passages), self.min_coverage)
        for m in _SENTENCE.finditer(reply):
            check.add(m.group(0))
        return check.answer("", passages, final=True)


class _Checker:
    """The verified sentences of a reply so far, with their supports, numbered by first use."""

    def __init__(self, passages: Sequence[Passage], min_coverage: float):
        self.passages = passages
        self.min_coverage = min_coverage
        self.kept: list[tuple[str, str, int, tuple[tuple[int, int], ...]]] = []  # (body, end, passage, spans)
        self.counts = {"sentences": 0, "verified": 0, "corrected": 0, "removed": 0}
        self.refused = False

    def add(self, sentence: str) -> bool:
        """Check one sentence of the reply; True when it was kept."""
        sentence = sentence.strip()
        plain = _MARK.sub("", sentence).strip()
        if not plain or not re.search(r"\w", plain):
            return False
        if plain == NOT_FOUND_TEXT or NOT_FOUND_TEXT.rstrip("。") in plain:
            self.refused = True
            return False
        self.counts["sentences"] += 1
        cited = [int(n) - 1 for n in _MARK.findall(sentence)]
        found = find_support(plain, self.passages, cited, min_coverage=self.min_coverage)
        if found is None:
            self.counts["removed"] += 1
            return False
        self.counts["verified"] += 1
        if cited != [found.passage_index]:
            self.counts["corrected"] += 1
        m = _TAIL.match(plain)
        self.kept.append((m.group("body").rstrip(), m.group("end"), found.passage_index, found.spans))
        return True

    def answer(self, question: str, passages: Sequence[Passage], *, final: bool = False) -> Answer:
        numbers, citations = cite((i, self.passages[i], span) for _, _, i, spans in self.kept for span in spans)
        text = "".join(f"{body}[{numbers[i]}]{end}" for body, end, i, _ in self.kept)
        verification = dict(self.counts) if final else None
        if not self.kept:
            return Answer(question, NOT_FOUND_TEXT, False, passages=tuple(passages), verification=verification)
        confidence = self.counts["verified"] / max(self.counts["sentences"], 1)
        return Answer(
            question, text, True, citations, tuple(passages), confidence=confidence, verification=verification
        )


class LLMRewriter:
    """A follow-up rewritten into a standalone question by the chat model (``prompts/
    rewrite.md``), the rule-based rewrite (kbqa/conversation.py) standing in when the model is
    unavailable or its output is no question (empty, several lines, far longer than the
    conversation warrants)."""

    def __init__(self, model: BaseChatModel, *, prompts_dir: Path = PROMPTS_DIR, max_chars: int = 500):
        self.model = model
        self.max_chars = max_chars
        self.system = load_prompt("rewrite", prompts_dir)

    def messages(self, question: str, history: Sequence[Message]) -> list:
        turns = "\n".join(
            f"<{m.role}>{html.escape(_MARK.sub('', m.content), quote=False)}</{m.role}>" for m in history
        )
        return [
            SystemMessage(self.system),
            HumanMessage(f"<conversation>\n{turns}\n</conversation>\n\n最后的问题 / Last question: "
                         f"{html.escape(question, quote=False)}"),
        ]

    def __call__(self, question: str, history: Sequence[Message]) -> str:
        if not any(m.role == "user" for m in history):
            return question
        try:
            reply = str(self.model.invoke(self.messages(question, history[-6:])).content).strip()
        except Exception as exc:
            if not unavailable(exc):
                raise
            return rewrite(question, history)
        reply = reply.strip().strip("“”\"'`").strip()
        if not reply or "\n" in reply or len(reply) > min(self.max_chars, 4 * len(question) + 200):
            return rewrite(question, history)
        return reply
