"""Text utilities of the ground floor: sentences, headings, jieba tokens and index text.

No I/O and no frameworks (jieba loads its dictionary on first use): ingest, the lexical
index, retrieval, answering and briefing all cut text with these, so a sentence, a heading
or a term means the same thing to the writer and to the readers.

* ``split_sentences`` cuts after Chinese/Latin sentence punctuation (closing quotes and
  brackets stay with their sentence) and at newlines; ``is_heading_line`` is the rule for a
  short standalone heading line (a chunk's ``section``; never a briefing point).
* ``tokenize`` gives a text's index tokens (jieba's search mode: compound words plus their
  parts, so "云计算" also matches "计算"); ``cut_question`` cuts a question once into its BM25
  terms and its key words (``QueryTerms``), which the search weighs and carries forward.
* ``index_text`` is what a chunk is indexed as (its vector and its BM25 tokens).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from kbcore.types import Chunk, QueryTerms

__all__ = [
    "STOPWORDS",
    "cut_question",
    "index_text",
    "is_heading_line",
    "query_terms",
    "split_sentences",
    "tokenize",
    "word_tag",
    "words",
]

# --- sentences and headings -------------------------------------------------------------------

_CLOSERS = "”’」』）)\\]】》〉\"'"
_CJK_TERM = "。！？；…"
_ANY_TERM = "。！？；…!?;"

_BOUNDARY = re.compile(
    rf"""
    (?:
        [{_CJK_TERM}][{_ANY_TERM}]*                 # 。！？；…… (runs like ！？ or ……)
      | [!?;][{_ANY_TERM}]*(?![A-Za-z0-9_.\-/%&]*=)      # ASCII !?; but not a URL query "?id=1"
      | \.+(?=[\s{_CLOSERS}]|\Z)                    # Latin period only before space/closer/end (not 2.5)
    )
    [{_CLOSERS}]*                                   # closing quotes/brackets stay with the sentence
    \s*                                             # trailing whitespace, newlines included
  | \n\s*                                           # a newline ends a sentence too
    """,
    re.X,
)

_HEADING_FORBIDDEN = re.compile(r"[。！？；:：!?;，,]")
_LIST_ITEM = re.compile(r"^(?:[-*+•·●○■□▪◆◇►▶√✓]\s*|\d{1,3}\s*[.．、)）]\s*|[(（]\d{1,3}[)）]\s*|[①-⑳])")
_HEADING_MAX = 24


def split_sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) spans that cover ``text`` exactly, in order; each ends after its
    terminator, closing quotes and trailing whitespace."""
    spans: list[tuple[int, int]] = []
    pos = 0
    for m in _BOUNDARY.finditer(text):
        if m.end() <= pos:
            continue
        spans.append((pos, m.end()))
        pos = m.end()
    if pos < len(text):
        spans.append((pos, len(text)))
    return spans


def is_heading_line(line: str) -> bool:
    """A short standalone heading: ≤ 24 chars, no sentence/clause punctuation, not a list item."""
    s = line.strip()
    return (
        0 < len(s) <= _HEADING_MAX
        and not _HEADING_FORBIDDEN.search(s)
        and not s.endswith(("、", "…"))
        and not _LIST_ITEM.match(s)
        and sum(1 for c in s if c.isalpha()) >= 2
    )


# --- tokens and terms -------------------------------------------------------------------------

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


def _words(text: str) -> list[str]:
    """jieba's precise-mode words (HMM on): the one segmentation everything below derives from."""
    return list(_segmenter().cut(text))


def words(text: str) -> list[str]:
    """``text`` cut into jieba's precise-mode words, punctuation and spaces included (their
    concatenation is ``text``): what a rewrite that edits a question word by word needs."""
    return _words(text)


_tags: dict[str, str] | None = None


def word_tag(word: str) -> str:
    """The part of speech jieba's dictionary gives ``word`` ("n", "ns" place, "nr" person, "v",
    "r" pronoun, "m" numeral ...), "eng" for a Latin word, "" when unknown. A look-up, not a
    second segmentation: it tags the words of the one cut (``words``). The table loads on
    first use (~0.7 s; KnowledgeBase.ready warms it)."""
    global _tags
    if _tags is None:
        _segmenter()
        import jieba.posseg

        _tags = jieba.posseg.dt.word_tag_tab
    if re.fullmatch(r"[A-Za-z][A-Za-z'\-]*", word):
        return "eng"
    if re.fullmatch(r"\d+(?:\.\d+)?", word):
        return "m"
    return _tags.get(word, "")


def _with_parts(words: Iterable[str]) -> Iterator[str]:
    """Search mode over words already cut: each word preceded by its 2- and 3-character parts
    that are dictionary words. This is jieba's own ``cut_for_search`` step by step (tested
    against it), so a question cut once yields both its search terms and its key words."""
    known = _segmenter().get_FREQ
    for w in words:
        if len(w) > 2:
            for i in range(len(w) - 1):
                if known(w[i : i + 2]):
                    yield w[i : i + 2]
        if len(w) > 3:
            for i in range(len(w) - 2):
                if known(w[i : i + 3]):
                    yield w[i : i + 3]
        yield w


def _clean(words: Iterable[str]) -> list[str]:
    """Lower-cased, punctuation and whitespace dropped."""
    return [t for t in (w.strip().lower() for w in words) if t and _TOKEN_OK.search(t)]


def _content(tokens: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(t for t in tokens if t not in STOPWORDS))


def tokenize(text: str) -> list[str]:
    """Index tokens: lower-cased jieba search-mode words, punctuation and whitespace dropped."""
    return _clean(_with_parts(_words(text)))


def cut_question(text: str) -> QueryTerms:
    """A question cut once: its BM25 terms (search mode: words and their parts) and its key
    words for coverage tests (precise mode: search mode's overlapping parts, "北京市" -> 北京,
    京市, 北京市, would count one missing word three times), stopwords out. Every key word
    weighs 1.0 until the search weighs them by idf (``QueryTerms.weighted``)."""
    words = _words(text)
    key = _content(_clean(words))
    return QueryTerms(text=text, search=tuple(_content(_clean(_with_parts(words)))), weights=dict.fromkeys(key, 1.0))


def query_terms(text: str) -> list[str]:
    """Distinct content terms of a question for BM25 (search mode: words and their parts)."""
    return list(cut_question(text).search)


# --- what a chunk is indexed as ---------------------------------------------------------------


def index_text(chunk: Chunk) -> str:
    """What a chunk is indexed as (its vector and its BM25 tokens): its text in the context
    of title and section.

    Policy chunks deep in a document rarely repeat the document's subject (city, program);
    the title and section carry it.
    """
    context = " ".join(part for part in (chunk.title, chunk.section) if part and part not in chunk.text)
    return f"{context}\n{chunk.text}" if context else chunk.text
