"""BM25 over jieba tokens: the lexical leg of hybrid retrieval.

Segmentation is jieba's search mode (compound words plus their parts, so "云计算" also
matches "计算"); scoring is ``bm25s`` (sparse-matrix BM25, no Python loop over chunks per
query). The index is derived from the token lists stored with each chunk in Chroma, so it
can always be rebuilt from the store and never drifts from it.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

# Function words and question words that carry no topic. A deliberately short, hand-kept
# list: the maintained Chinese stopword lists are several hundred words long and drop
# content words that matter in policy questions (e.g. 单位, 工作, 有关).
STOPWORDS = frozenset(
    """的 了 和 与 及 或 是 在 为 对 把 被 将 于 以 之 其 这 那 也 都 就 而 并 等 中 上 下 个 有 由 向 从
    吗 呢 吧 啊 么 什么 哪些 哪个 哪里 哪 怎么 怎样 如何 多少 几 是否 有没有 是不是 请问 请 能否 可以 能
    我 我们 你 你们 他 她 它 他们 谁 为什么 何 啥 呀 哦 要 会 需要 应该 该 the a an of to in and or is are
    what which who how when where why do does did be for on with by
    有何 何时 何种 什么样 怎么样 哪些方面 方面 分别 具体 主要 情况 问题 时候 时间 方式 通过 对于 针对 关于 期间
    采取 提出 做出 做 进行 处理 提供 获得 推出 实施 开始 达到 到 有 要求 规定 措施 政策""".split()
)
# The second line are question-framing words: measured on the dev set, they are the terms most
# often missing from the very passage that answers ("采取了哪些措施？" is answered by the measures).

_TOKEN_OK = re.compile(r"[\w\u4e00-\u9fff]", re.UNICODE)
_jieba = None


def _segmenter():
    global _jieba
    if _jieba is None:
        import jieba

        jieba.setLogLevel(60)  # jieba logs its dictionary load to stderr at INFO
        jieba.initialize()
        _jieba = jieba
    return _jieba


def tokenize(text: str) -> list[str]:
    """Index tokens: lower-cased jieba search-mode words, punctuation and whitespace dropped."""
    return [t for t in (w.strip().lower() for w in _segmenter().cut_for_search(text)) if t and _TOKEN_OK.search(t)]


def _content(tokens: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(t for t in tokens if t not in STOPWORDS))


def query_terms(text: str) -> list[str]:
    """Distinct content terms of a question for BM25 (search mode: words and their parts)."""
    return _content(tokenize(text))


def key_terms(text: str) -> list[str]:
    """Distinct content words of a question for coverage tests (jieba's precise mode).

    Search mode's overlapping parts ("北京市" -> 北京, 京市, 北京市) would count one missing
    word three times.
    """
    words = (w.strip().lower() for w in _segmenter().cut(text))
    return _content(w for w in words if w and _TOKEN_OK.search(w))


def coverage(weights: dict[str, float], text: str) -> float:
    """Share of the question's term weight whose terms occur in ``text`` (0..1).

    Substring tests rather than token matches, so segmentation differences between the
    question and the passage ("云计算" vs "云 计算") don't hide a match.
    """
    total = sum(weights.values())
    if not total:
        return 0.0
    lowered = text.lower()
    return sum(w for term, w in weights.items() if term in lowered) / total


class LexicalIndex:
    """A BM25 index over chunks, addressed by chunk id."""

    def __init__(self, rows: Iterable[tuple[str, Sequence[str]]], *, k1: float = 1.2, b: float = 0.75):
        import bm25s

        self.chunk_ids: list[str] = []
        corpus: list[list[str]] = []
        df: Counter[str] = Counter()
        for chunk_id, tokens in rows:
            self.chunk_ids.append(chunk_id)
            corpus.append(list(tokens))
            df.update(set(tokens))
        self._df = df
        self._n = len(corpus)
        self._bm25 = None
        if corpus:
            self._bm25 = bm25s.BM25(k1=k1, b=b)
            self._bm25.index(corpus, show_progress=False)

    def __len__(self) -> int:
        return self._n

    def idf(self, term: str) -> float:
        """BM25 idf; a term absent from the index gets the highest weight of all."""
        df = self._df.get(term, 0)
        return math.log(1.0 + (self._n - df + 0.5) / (df + 0.5))

    def term_weights(self, terms: Sequence[str]) -> dict[str, float]:
        return {t: self.idf(t) for t in terms}

    def search(self, terms: Sequence[str], k: int) -> list[tuple[str, float]]:
        """(chunk id, BM25 score) of the best ``k`` chunks with a positive score."""
        if self._bm25 is None:
            return []
        known = [t for t in terms if t in self._bm25.vocab_dict]
        if not known:
            return []
        scores = self._bm25.get_scores(known)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top])]
        return [(self.chunk_ids[i], float(scores[i])) for i in top if scores[i] > 0]
