"""Example questions made from what a knowledge base holds, by template (no model): the
subjects of its section headings ("顶层设计是一把手工程" -> "顶层设计是什么？"), the terms its
text puts in quotes (“三大步” -> "“三大步”是什么？") and its titles.

Templates alone do not make answerable questions: on the seed article "数字政府的方法论是什么？"
and "数字锦州的味道是什么？" are refused while "顶层设计是什么？" is answered. So these are
candidates, best kinds first; ``KnowledgeBase.example_questions`` asks them and keeps the
answered ones.

The English page offers English questions (ENGLISH_QUESTIONS): a template can't put a Chinese
heading into English, so these are written for the demo knowledge base (kb/, the seed article)
and asked like the others; a knowledge base that answers none of them offers none in English.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from itertools import zip_longest

from kbcore.text import is_heading_line
from kbcore.types import Chunk

# A heading's leading number: "一、" "（二）" "第三章 " "四." (digit list items are no headings).
_NUMBERING = re.compile(r"^(?:第?[一二三四五六七八九十百]+[、.．章节部分]\s*|[（(][一二三四五六七八九十]+[)）]\s*)")
# A heading that states something about its subject: the subject is what comes before the verb
# ("锦州模式可以复制", "闭环已经形成", "云平台只是起点").
_PREDICATE = re.compile(r"^(.+?)(?:只是|就是|已经|可以|正在|成为|需要|是)")
_ASKS = re.compile(r"什么|如何|怎么|怎样|为何|为什么|哪")
_QUOTED = re.compile(r"“([^“”\n]{2,12})”")
_SENTENCE_PUNCT = re.compile(r"[。！？；，,!?;]")

# Each answered on the seed, cited (English questions go through kbqa/crosslingual.py); best first.
# At most 60 characters: the page's example buttons cut a longer one short.
ENGLISH_QUESTIONS = [
    "What are Jinzhou's \"three openings\"?",
    "What agreement did Huawei and Jinzhou sign in 2017?",
    "How many business systems were migrated to Huawei Cloud?",
    "Who leads Jinzhou's big data leading group?",
    "How many guests attended the 2019 cloud industry summit?",
    "What is the 8890 government service platform?",
]


def _letters(text: str) -> int:
    return sum(1 for c in text if c.isalpha())


def heading_question(heading: str) -> str | None:
    """A heading (or a title) as a question: its subject, or the whole heading when it states
    nothing, with "是什么？"; a heading that asks already ("什么是数字政府") gets its "？".
    None for a line that is no heading."""
    heading = _NUMBERING.sub("", heading.strip())
    if not is_heading_line(heading):
        return None
    if _ASKS.search(heading):
        return f"{heading}？"
    stated = _PREDICATE.match(heading)
    subject = stated.group(1) if stated and _letters(stated.group(1)) >= 2 else heading
    return f"{subject}是什么？"


def quoted_terms(text: str) -> list[str]:
    """The terms ``text`` quotes (“…”), most often quoted first, then in order of appearance;
    a quoted clause or sentence is no term."""
    counts = Counter(t for t in _QUOTED.findall(text) if not _SENTENCE_PUNCT.search(t) and _letters(t) >= 2)
    return [term for term, _ in counts.most_common()]  # most_common keeps first-seen order on ties


def candidate_questions(chunks: Iterable[Chunk]) -> list[str]:
    """Questions about ``chunks``' documents, to be asked before they are offered: per document
    its headings' questions (in order), its quoted terms', then its title's; the documents
    taken in turns (one question of each, then the next of each), so that a few questions
    cover several documents. No duplicates."""
    by_doc: dict[str, list[Chunk]] = {}
    for chunk in chunks:
        by_doc.setdefault(chunk.doc_id, []).append(chunk)
    per_doc: list[list[str]] = []
    for doc_chunks in by_doc.values():
        doc_chunks.sort(key=lambda c: c.ordinal)
        sections = dict.fromkeys(c.section for c in doc_chunks if c.section)
        questions = [heading_question(s) for s in sections]
        questions += [f"“{t}”是什么？" for t in quoted_terms("\n".join(c.text for c in doc_chunks))]
        questions.append(heading_question(doc_chunks[0].title))
        per_doc.append([q for q in questions if q])
    interleaved = (q for turn in zip_longest(*per_doc) for q in turn if q is not None)
    return list(dict.fromkeys(interleaved))
