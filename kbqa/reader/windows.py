"""How the trained reader sees a question and a passage, shared by its training and its run time.

One window is XLM-R's pair layout ``<s> question </s></s> passage-piece </s>`` of at most
``MAX_TOKENS`` tokens. A passage longer than one window is read in windows that overlap by
``OVERLAP`` tokens, so an answer cut by one window's edge is whole in the next. Both sides
tokenize with the e5 tokenizer.json alone (``tokenizers``, no special tokens) and assemble the
ids here, so training and serving cannot disagree on the layout.

The reader scores every window position as a span start and end; position 0 (``<s>``) is the
"no answer here" position, trained as the target of windows that do not hold the answer
(SQuAD 2.0's convention). ``best_span`` turns one window's logits into the best span, in
characters of the passage, and its margin over "no answer".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

BOS, EOS, PAD = 0, 2, 1  # XLM-R's <s>, </s>, <pad>
MAX_TOKENS = 256  # 320-character chunks fit one window with a question (measured: p95 ~230 tokens)
QUESTION_TOKENS = 48
OVERLAP = 64
MAX_ANSWER_TOKENS = 96  # policy answers run to whole sentences and lists (median 41 characters)


@dataclass(frozen=True)
class Window:
    """One reader input: token ids, and for each passage token its characters in the passage."""

    ids: list[int]
    passage_from: int  # index of the first passage token in ``ids``
    offsets: list[tuple[int, int]]  # passage characters of ids[passage_from + i]


def windows(question_ids: Sequence[int], passage_ids: Sequence[int],
            passage_offsets: Sequence[tuple[int, int]]) -> list[Window]:
    """The windows that read ``passage`` for ``question`` (ids without special tokens)."""
    q = list(question_ids[:QUESTION_TOKENS])
    head = [BOS, *q, EOS, EOS]
    room = MAX_TOKENS - len(head) - 1
    step = max(1, room - OVERLAP)
    out: list[Window] = []
    start = 0
    while True:
        piece = list(passage_ids[start:start + room])
        out.append(Window([*head, *piece, EOS], len(head), list(passage_offsets[start:start + room])))
        if start + room >= len(passage_ids):
            return out
        start += step


@dataclass(frozen=True)
class Span:
    start: int  # characters of the passage
    end: int
    score: float  # start + end logit of the span
    margin: float  # score minus the window's "no answer" score: > 0 means the reader answers


def best_span(window: Window, start_logits: np.ndarray, end_logits: np.ndarray,
              max_tokens: int = MAX_ANSWER_TOKENS) -> Span:
    """The highest-scoring passage span of one window (end >= start, at most ``max_tokens``)."""
    lo, n = window.passage_from, len(window.offsets)
    s = np.asarray(start_logits[lo:lo + n], np.float32)
    e = np.asarray(end_logits[lo:lo + n], np.float32)
    # score[i, j] = s[i] + e[j] for i <= j < i + max_tokens: one n x n matrix (n <= 256).
    grid = s[:, None] + e[None, :]
    i, j = np.indices(grid.shape)
    grid[(j < i) | (j >= i + max_tokens)] = -np.inf
    flat = int(np.argmax(grid))
    a, b = divmod(flat, n)
    score = float(grid[a, b])
    null = float(start_logits[0] + end_logits[0])
    return Span(window.offsets[a][0], window.offsets[b][1], score, score - null)
