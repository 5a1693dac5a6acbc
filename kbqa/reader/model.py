"""The trained reader at run time: question + passages -> the best answer span of each passage.

An int8 ONNX graph (built once from the shipped weights by kbqa/reader/build.py) scores every
token of a window as a span start and end. Each passage is read in the windows of
``kbqa.reader.windows``; a passage's result is its best span over its windows, in characters of
the passage, with that span's margin over the window's "no answer" score. All windows of one
question run as one padded batch.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kbqa.reader.windows import PAD, Span, Window, best_span, windows


@dataclass(frozen=True)
class Reading:
    """What the reader found in one passage: its best span (characters of ``text``)."""

    index: int  # the passage's position in the list read
    span: Span


class Reader:
    """``reader(question, texts)`` -> one :class:`Reading` per text, in order."""

    def __init__(self, folder: str | Path, *, threads: int | None = None, max_batch_tokens: int = 4096):
        import onnxruntime as ort
        import tokenizers

        folder = Path(folder)
        self.folder = folder
        self.tokenizer = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or len(os.sched_getaffinity(0))
        options.inter_op_num_threads = 1
        # Not spinning between ops: a spinning pool slows every other process on a shared box
        # (the embedder measured 27 ms instead of 6 ms a query beside a busy process).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"])
        self.max_batch_tokens = max_batch_tokens
        self._lock = threading.Lock()  # one ORT run at a time: the pool already uses every core

    def __call__(self, question: str, texts: Sequence[str]) -> list[Reading]:
        if not texts:
            return []
        encoded = self.tokenizer.encode_batch([question, *texts], add_special_tokens=False)
        q_ids = encoded[0].ids
        owned: list[tuple[int, Window]] = []
        for i, e in enumerate(encoded[1:]):
            owned += [(i, w) for w in windows(q_ids, e.ids, e.offsets)]
        logits = self._logits([w for _, w in owned])
        best: dict[int, Span] = {}
        for (i, w), row in zip(owned, logits, strict=True):
            span = best_span(w, row[:, 0], row[:, 1])
            if i not in best or span.margin > best[i].margin:
                best[i] = span
        return [Reading(i, best[i]) for i in range(len(texts))]

    def _logits(self, batch: list[Window]) -> list[np.ndarray]:
        out: list[np.ndarray] = [np.empty(0)] * len(batch)
        order = sorted(range(len(batch)), key=lambda k: len(batch[k].ids))
        group: list[int] = []

        def run(members: list[int]) -> None:
            width = max(len(batch[k].ids) for k in members)
            ids = np.full((len(members), width), PAD, np.int64)
            for row, k in enumerate(members):
                ids[row, : len(batch[k].ids)] = batch[k].ids
            with self._lock:
                result = self.session.run(None, {"input_ids": ids, "attention_mask": (ids != PAD).astype(np.int64)})[0]
            for row, k in enumerate(members):
                out[k] = result[row, : len(batch[k].ids)]

        for k in order:
            if group and (len(group) + 1) * len(batch[k].ids) > self.max_batch_tokens:
                run(group)
                group = []
            group.append(k)
        if group:
            run(group)
        return out


def load_reader(cache: Path, weights: Path | None = None) -> Reader:
    from kbqa.reader.build import READER_WEIGHTS, ensure_reader_folder

    return Reader(ensure_reader_folder(cache, weights or READER_WEIGHTS))
