"""Fixtures of the kbqa unit tests: a small deterministic fake embedder.

``CharCountEmbedder`` counts characters into 16 buckets (by CRC-32, so the same in every
process): texts sharing characters are near, the vectors are exact, and no model is loaded.
It plays the part simonw/llm's tests give their demo embedding model.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
import pytest

from kbqa.embeddings import Embedder


class CharCountEmbedder(Embedder):
    name = "char-count-16"
    dim = 16

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []  # ("queries" | "passages", how many texts)

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), np.float32)
        for row, text in enumerate(texts):
            for ch in text:
                if not ch.isspace():
                    out[row, zlib.crc32(ch.encode("utf-8")) % self.dim] += 1.0
        out[:, 0] += 1e-3  # no zero vector, even for an empty text
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(("queries", len(texts)))
        return self._embed(texts)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(("passages", len(texts)))
        return self._embed(texts)


@pytest.fixture
def char_embedder() -> CharCountEmbedder:
    return CharCountEmbedder()
