"""Conversation on the ground floor: a follow-up rewritten into a standalone question.

Retrieval sees one question, so "那上海呢？" or "它是哪一年提出的？" must become a question that
names its subject before anything is searched. ``rewrite(question, history)`` does that by
rule, on jieba's words (``kbcore.text.words`` / ``word_tag``), without a model:

* Ellipsis: "那上海呢？", "华为呢？", "And Shanghai?", "What about Huawei?" swap the new subject
  into the previous question, in place of its word of the same kind (a place for a place, a
  person for a person, a numeral like 第二个 for 第一个): "北京的人口是多少？" -> "上海的人口是多少？".
* A bare pronoun (它/它们/其/这/那/此, it/they/this/that) stands for the previous question's
  subject — the noun phrase before its predicate: after "锦州的“三个开放”是什么？", "它是哪一年提出
  的？" -> "锦州的“三个开放”是哪一年提出的？". ``其中`` is "among the subject":
  "其中第二个开放是什么？" -> "锦州的“三个开放”中第二个开放是什么？".
* A determiner with a noun (这个协议, 该平台, 这些措施) points at what the conversation last
  named with that noun, which is most often the previous *answer*: the question "华为与锦州签署了
  什么协议？" only says 协议, its answer says 云计算产业战略协议. So the noun's longest compound in
  the previous answer wins, then the previous question's; without either, the noun is taken as
  the subject's ("锦州的“三个开放”的协议").
* A short question with no content word of its own ("为什么？", "具体呢？") gets the subject
  in front.
* Anything else — a question that names its own subject — is left alone, as is every question
  when there is no earlier user turn.

Earlier follow-ups are rewritten in turn, so the subject carries over several turns. English
follow-ups work the same way on English words; an English subject is the phrase after "what
is/are ..." (or the previous question's key words).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from kbcore.text import STOPWORDS, cut_question, word_tag, words

__all__ = ["Message", "as_messages", "is_follow_up", "rewrite", "subject_of"]


@dataclass(frozen=True)
class Message:
    """One earlier message of a conversation, as plain text (no HTML, no Markdown)."""

    role: Literal["user", "assistant"]
    content: str


def is_text(value: str) -> bool:
    """Whether ``value`` is text: JSON's ``"\\ud800"`` decodes to a lone surrogate, which no
    encoding holds (the tokenizer failed on one with a TypeError: a 500)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def as_messages(history: Iterable[Message | Mapping[str, str]] | None) -> list[Message]:
    """``history`` as ``Message``s: dicts ``{"role": "user"|"assistant", "content": str}`` are
    accepted (the API's shape); anything else raises ValueError."""
    out = []
    for item in history or ():
        if isinstance(item, Message):
            out.append(item)
            continue
        if not isinstance(item, Mapping):
            raise ValueError("each history message must be {role, content}")
        role, content = item.get("role"), item.get("content")
        if role not in ("user", "assistant") or not isinstance(content, str):
            raise ValueError("a history message needs role 'user' or 'assistant' and a text content")
        if not is_text(content):
            raise ValueError("a history message holds a lone surrogate: not text")
        out.append(Message(role, content))
    return out


# --- words that point back ----------------------------------------------------------------------

# Words that stand for something said before. ``其`` alone is "its" (其目标); 其他/其实 are one
# word in jieba's cut and don't match.
_PRONOUNS_ZH = frozenset("它 它们 其 这 那 此 该 这个 那个 这些 那些 这项 那项 该项 此项 这种 那种 上述 这里 那里".split())
# jieba's cut keeps some pronoun + verb pairs as one word: the pronoun part is replaced.
_PRONOUN_VERBS_ZH = {"这是": "是", "那是": "是", "这就是": "就是", "此为": "为", "这有": "有"}
# Of those, the ones that can precede a noun (这个协议, 该平台, 上述措施).
_DETERMINERS_ZH = frozenset("这 那 此 该 这个 那个 这些 那些 这项 那项 该项 此项 这种 那种 上述".split())
_AMONG_ZH = "其中"
# 该 is also "should" (企业该如何申请？): a pointer only before a noun.
_ONLY_BEFORE_NOUN_ZH = frozenset({"该"})
# "这个城市" after a question about 锦州 is 锦州: class nouns and the name tags they stand for.
_CLASS_NOUNS_ZH = {
    "城市": ("ns",), "地方": ("ns",), "地区": ("ns",), "省份": ("ns",),
    "公司": ("nt", "nz", "nr"), "企业": ("nt", "nz", "nr"), "机构": ("nt",), "单位": ("nt",),
}
# Spoken openers of a follow-up, dropped from the front ("那上海呢" is "上海呢").
_OPENERS_ZH = ("那么", "那", "还有", "另外", "而", "请问")
# Where a Chinese question's subject ends: its predicate or question word.
_PREDICATES_ZH = frozenset(
    "是 有 指 为 在 于 从 对 向 把 被 将 能 会 要 可以 包括 包含 属于 什么 哪 哪些 哪个 哪一年 哪年 多少 几 怎么 怎样 "
    "如何 为什么 何时 何 是否 是不是 有没有 分别 主要 共 一共 都".split()
)
# Tags that end a noun compound when walking back from its head noun.
_COMPOUND_STOP_TAGS = ("p", "c", "d", "u", "r", "y", "a", "q", "f")

_PRONOUNS_EN = frozenset("it its they them their this that these those".split())
_DETERMINERS_EN = frozenset("this that these those".split())
_ELLIPSIS_EN = re.compile(r"^\s*(?:and\s+)?(?:what|how)\s+about\s+(?P<x>.+?)\s*[?.!]*\s*$|^\s*and\s+(?P<y>.+?)\s*[?.!]*\s*$", re.I)
_SUBJECT_EN = re.compile(
    r"^\s*(?:what|which|who|where|how\s+\w+)\s+(?:is|are|was|were)\s+(?P<s>.+?)\s*[?.!]*\s*$", re.I
)
# "What agreement did Huawei and Jinzhou sign in 2017?" is about "the agreement Huawei and ...".
_OBJECT_EN = re.compile(r"^\s*(?:what|which)\s+(?P<n>\w+(?:\s+\w+)?)\s+(?:do|does|did)\s+(?P<rest>.+?)\s*[?.!]*\s*$", re.I)
# "the second one", "the last ones": an item of what was asked about.
_ONE_EN = re.compile(r"\bthe\s+(?P<which>first|second|third|fourth|fifth|last|other|\w+th)\s+ones?\b", re.I)
_MARKS = re.compile(r"\[\d+\]")
_QUOTED = re.compile(r"[“「\"]([^”」\"]{1,20})[”」\"]")
# "第二个", "第2条", "其中第三点": an item of a list the previous answer gave.
_ORDINAL_ZH = re.compile(
    r"(?:其中的?)?第(?P<n>[一二两三四五六七八九十]|\d{1,2})(?:个|条|点|项|步|种|类|方面|部分|是)?"
)
_ORDINAL_EN = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6}
_NUMERALS_ZH = {c: i for i, c in enumerate("一二三四五六七八九十", start=1)} | {"两": 2}
# What introduces a list inside its clause ("即开放业务系统、开放数据资源、开放市场应用").
_LIST_LEAD = re.compile(r"^.*?(?:即|包括|包含|分别是|分别为|分为|特指|是指|指的是|是|为|有|：|:)")
_CJK = re.compile(r"[\u4e00-\u9fff]")
_END = re.compile(r"[\s？?。.!！]+$")


def _points_back(ws: list[str]) -> bool:
    """Whether words cut from a Chinese question hold a pronoun (or a pronoun-verb word)."""
    for i, w in enumerate(ws):
        if w in _PRONOUN_VERBS_ZH:
            return True
        if w in _PRONOUNS_ZH:
            nxt = ws[i + 1] if i + 1 < len(ws) else ""
            if w not in _ONLY_BEFORE_NOUN_ZH or word_tag(nxt).startswith("n"):
                return True
    return False


def _is_chinese(text: str) -> bool:
    return bool(_CJK.search(text))


def _content(word: str) -> bool:
    w = word.strip().lower()
    return bool(w) and w not in STOPWORDS and bool(re.search(r"\w", w))


def _key_terms(text: str) -> list[str]:
    return list(cut_question(text).weights)


# --- the previous question's subject --------------------------------------------------------------


def subject_of(question: str) -> str:
    """The noun phrase a question is about: Chinese, its words before the first predicate or
    question word outside quotes ("锦州的“三个开放”是什么？" -> "锦州的“三个开放”"); English, the
    phrase after "what is/are" ("What are the three openings of Jinzhou?" -> "the three openings
    of Jinzhou"). Without one, the question's key words."""
    text = _END.sub("", question.strip())
    if not _is_chinese(text):
        m = _SUBJECT_EN.match(text)
        if m:
            return m.group("s")
        m = _OBJECT_EN.match(text)
        if m:
            return f"the {m.group('n')} {m.group('rest')}"
        return " ".join(w for w in re.findall(r"[\w'-]+", text) if _content(w))
    ws = words(text)
    while ws and ws[0] in _OPENERS_ZH + ("关于", "对于"):
        ws = ws[1:]
    phrase, quoted = [], False
    for i, w in enumerate(ws):
        nxt = ws[i + 1] if i + 1 < len(ws) else ""
        # A verb before 的 is a clause inside the subject: 锦州坚持的“三个开放”.
        if not quoted and (w in _PREDICATES_ZH or word_tag(w) == "v") and not (nxt == "的" and word_tag(w) == "v"):
            break
        if w in "“”\"「」『』":
            quoted = not quoted if w == '"' else w in "“「『"
        phrase.append(w)
    subject = "".join(phrase).strip().removesuffix("的").strip("，,、 ")
    if not any(_content(w) for w in words(subject)):
        return "".join(_key_terms(text))
    return subject


# --- is it a follow-up? ---------------------------------------------------------------------------


def _strip_opening(text: str) -> str:
    """``text`` without a spoken opener ("那", "还有") in front."""
    return "".join(_strip_openers(words(text)))


def _strip_openers(ws: list[str]) -> list[str]:
    while ws and ws[0] in _OPENERS_ZH:
        ws = ws[1:]
    return ws


def _elliptical_subject(question: str) -> str | None:
    """The new subject of an elliptical follow-up ("那上海呢？" -> "上海", "And Shanghai?" ->
    "Shanghai"), or None."""
    text = _END.sub("", question.strip())
    if not _is_chinese(text):
        m = _ELLIPSIS_EN.match(text)
        if not m:
            return None
        x = (m.group("x") or m.group("y")).strip()
        return x if len(x.split()) <= 4 and not any(w.lower() in _PRONOUNS_EN for w in x.split()) else None
    ws = _strip_openers([w for w in words(text) if w.strip()])
    if not ws or ws[-1] != "呢":
        return None
    ws = ws[:-1]
    if ws and ws[-1] == "的":
        ws = ws[:-1]
    if not ws or any(w in _PREDICATES_ZH or w in _PRONOUNS_ZH or word_tag(w) == "v" for w in ws):
        return None
    if not any(_content(w) for w in ws):  # "具体呢？" asks on, it names nothing new
        return None
    return "".join(ws)


def is_follow_up(question: str) -> bool:
    """Whether ``question`` leans on an earlier turn: a pronoun or 其中, an elliptical "X呢？" /
    "And X?", or no content word of its own."""
    if _elliptical_subject(question) is not None or _ORDINAL_ZH.match(_END.sub("", question.strip())):
        return True
    if _is_chinese(question):
        ws = words(question)
        if _AMONG_ZH in ws or _points_back(ws):
            return True
        return not any(_content(w) and w not in _OPENERS_ZH for w in ws)
    if re.search(r"\s[A-Z][a-z]", question.strip()):
        return False  # names its own subject ("Is it true that Jinzhou opened its data?")
    tokens = re.findall(r"[A-Za-z']+", question.lower())
    if any(t in _PRONOUNS_EN for t in tokens) or _ONE_EN.search(question):
        return True
    return not _key_terms(question)


# --- the rewrite ----------------------------------------------------------------------------------


def list_items(answer: str, subject: str = "") -> list[str]:
    """The items of an enumeration ("A、B、C") in an answer: "……,即开放业务系统、开放数据资源、
    开放市场应用。" -> ["开放业务系统", "开放数据资源", "开放市场应用"]. A list inside quotes
    (“三大步、六小步” names two lists) is none. With several, the first in a sentence whose first
    quoted name is in ``subject`` ("其中,“三大步”指,新建……、……" when asked about 三大步), else the
    first."""
    found: list[tuple[bool, list[str]]] = []
    for sentence in re.split(r"(?<=[。！？!?\n])", _MARKS.sub("", answer)):
        first_quoted = _QUOTED.search(sentence)
        about = bool(first_quoted and subject and first_quoted.group(1) in subject)
        for clause in re.split(r"[，,。；;！？!?\n]", sentence):
            parts = clause.split("、")
            if len(parts) < 2 or _inside_quotes(clause, clause.index("、")):
                continue
            parts[0] = _LIST_LEAD.sub("", parts[0])
            items = [p.strip(" “”\"'（）()") for p in parts]
            if all(0 < len(item) <= 30 for item in items):
                found.append((about, items))
                break
    return next((items for about, items in found if about), found[0][1] if found else [])


def _inside_quotes(text: str, position: int) -> bool:
    before = text[:position]
    return before.count("“") > before.count("”") or before.count('"') % 2 == 1


def _ordinal(question: str) -> tuple[re.Match[str], int] | None:
    m = _ORDINAL_ZH.search(question)
    if m:
        n = m.group("n")
        return m, int(n) if n.isdigit() else _NUMERALS_ZH[n]
    m = _ONE_EN.search(question)
    if m and m.group("which").lower() in _ORDINAL_EN:
        return m, _ORDINAL_EN[m.group("which").lower()]
    return None


def _resolve_item(question: str, subject: str, answer: str) -> str | None:
    """"其中第二个开放是什么？" after an answer listing 开放业务系统、开放数据资源、开放市场应用:
    "锦州的开放数据资源是什么？" — the item, with the names (places, people, organisations)
    of the subject; None when the previous answer has no such item."""
    found = _ordinal(question)
    items = list_items(answer, subject)
    if found is None or not items:
        return None
    m, n = found
    if not 1 <= n <= len(items):
        return None
    item = items[n - 1]
    rest = question[m.end() :]
    if _is_chinese(question):
        ws = words(rest)
        if ws and _content(ws[0]) and ws[0] not in _PREDICATES_ZH and (ws[0] in item or ws[0] in subject):
            rest = rest[len(ws[0]) :]  # 第二个开放 -> the item, 开放 included
        names = [w for w in words(subject) if word_tag(w) in ("ns", "nr", "nt")]
        context = "".join(f"{w}的" for w in names if w not in item)
        if not _END.sub("", rest).removesuffix("呢"):  # "第三个呢？" asks what it is
            rest = "是什么？"
        return f"{_strip_opening(question[: m.start()])}{context}{item}{rest}"
    if not _END.sub("", rest).strip():
        return f"What is {item}?"
    return f"{question[: m.start()]}{item}{rest}"


def _compound(noun: str, text: str) -> str | None:
    """The longest noun compound in ``text`` that ends with ``noun`` ("签署云计算产业战略协议" ->
    "云计算产业战略协议"), walking back over up to four words. jieba splits an unknown compound
    into a one-character noun and a verb (云计算 -> 云 / 计算), so a verb counts as part of the
    compound when a one-character word precedes it."""
    ws = words(_MARKS.sub("", text))
    best = None
    for i, w in enumerate(ws):
        if w != noun:
            continue
        j = i
        while j > 0 and i - j < 4:
            prev = ws[j - 1]
            tag = word_tag(prev)
            if not _content(prev) or tag.startswith(_COMPOUND_STOP_TAGS):
                break
            if tag == "v" and not (j >= 2 and len(ws[j - 2]) == 1 and _content(ws[j - 2])):
                break
            j -= 1
        phrase = "".join(ws[j : i + 1])
        if len(phrase) > len(noun) and (best is None or len(phrase) > len(best)):
            best = phrase
    return best


def _name_of(text: str, tags: tuple[str, ...]) -> str | None:
    """The first word of ``text`` tagged as one of ``tags`` (a place, an organisation)."""
    return next((w for w in words(text) if word_tag(w) in tags), None)


def _same_kind(new: str, previous: str) -> int | None:
    """The index of the word of ``previous`` (its words) that ``new`` replaces: the same part
    of speech (a place for a place), the most characters in common breaking ties; else the
    first place, person or organisation; else the first content word."""
    ws = words(previous)
    kind = word_tag(new) or next((word_tag(w) for w in words(new) if _content(w)), "")
    names = ("ns", "nr", "nt", "nz")
    if kind == "eng" and new[:1].isupper():  # an English name stands for a Chinese name
        kind = ""
    # Ties go to the later word: in "锦州的“三个开放”中第一个开放", 第二个 replaces 第一个.
    scored = [
        (len(set(w) & set(new)) + 2 * (w[:1] == new[:1]), i)
        for i, w in enumerate(ws)
        if _content(w) and kind and word_tag(w) == kind
    ]
    if scored:
        return max(scored)[1]
    for tags in (names, ("n", "eng")):
        for i, w in enumerate(ws):
            if _content(w) and word_tag(w) in tags:
                return i
    return next((i for i, w in enumerate(ws) if _content(w)), None)


def _substitute(new: str, previous: str) -> str:
    if not _is_chinese(previous):
        # English: the last capitalised word after the first (a name), else the subject phrase.
        tokens = previous.split()
        for i in range(len(tokens) - 1, 0, -1):
            word = re.sub(r"[^\w'-]", "", tokens[i])
            if word[:1].isupper():
                return previous.replace(word.removesuffix("'s"), new, 1) if word else previous
        subject = subject_of(previous)
        return previous.replace(subject, new, 1) if subject in previous else f"{new}: {previous}"
    # A quoted name swaps a quoted name ("那“六小步”呢？" after "……“三大步”指什么？"): jieba cuts
    # 三大步 into 三 / 大步, so the quotes, not the words, bound it.
    # A word outside the quotes that shares more with the new subject wins (第二个 swaps 第一个
    # in "锦州的“三个开放”中第一个开放", not the quoted 三个开放).
    ws = words(previous)
    i = _same_kind(new, previous)
    bare = new.strip("“”\"「」")
    quoted = [(len(set(m.group(1)) & set(bare)), m) for m in _QUOTED.finditer(previous)]
    word_overlap = len(set(ws[i]) & set(bare)) if i is not None else 0
    if quoted and (new != bare or max(q[0] for q in quoted) > word_overlap):
        _, m = max(quoted, key=lambda q: q[0])
        return previous[: m.start(1)] + bare + previous[m.end(1) :]
    if i is None:
        return f"{new}，{previous}"
    return "".join([*ws[:i], new, *ws[i + 1 :]])


def _resolve_zh(question: str, subject: str, previous: str, answer: str) -> str:
    ws = words(question)
    out: list[str] = []
    i = 0
    opening = True
    while i < len(ws):
        w = ws[i]
        if opening and w in _OPENERS_ZH and i + 1 < len(ws):
            i += 1
            continue
        opening = False
        nxt = ws[i + 1] if i + 1 < len(ws) else ""
        if w == _AMONG_ZH:
            out.append(f"{subject}中")
        elif w in _DETERMINERS_ZH and nxt in _CLASS_NOUNS_ZH and (name := _name_of(previous, _CLASS_NOUNS_ZH[nxt])):
            out.append(name)  # 这个城市 -> 锦州
            i += 1
        elif w in _DETERMINERS_ZH and _content(nxt) and word_tag(nxt).startswith(("n", "v")) and nxt not in _PREDICATES_ZH:
            referent = _compound(nxt, answer) or _compound(nxt, previous)
            if referent is None:
                referent = subject if nxt in subject else f"{subject}的{nxt}"
            out.append(referent)
            i += 1
        elif w == "其":  # its: 其目标 -> X的目标
            out.append(f"{subject}的")
        elif w in _PRONOUN_VERBS_ZH:
            out.append(subject + _PRONOUN_VERBS_ZH[w])
        elif w in _ONLY_BEFORE_NOUN_ZH and not word_tag(nxt).startswith("n"):
            out.append(w)  # 该 as "should"
        elif w in _PRONOUNS_ZH:
            out.append(subject)
        else:
            out.append(w)
        i += 1
    return "".join(out)


_PRONOUN_EN = re.compile(
    r"\b(?:(?P<its>its|their)|(?P<det>this|that|these|those)\s+(?P<noun>(?!is\b|are\b|was\b|were\b|mean|do|does|did)[a-z]+)"
    r"|it|they|them|this|that|these|those)\b",
    re.I,
)


def _resolve_en(question: str, subject: str) -> str:
    def swap(m: re.Match[str]) -> str:
        if m.group("its"):
            return f"{subject}'s"
        if m.group("det"):
            noun = m.group("noun")
            return subject if noun.lower() in subject.lower() else f"the {noun} of {subject}"
        return subject

    one = _ONE_EN.search(question)
    if one:
        return question[: one.start()] + f"the {one.group('which')} of {subject}" + question[one.end() :]
    return _PRONOUN_EN.sub(swap, question, count=1)


def _rewrite_one(question: str, previous: str, answer: str) -> str:
    question = question.strip()
    if not is_follow_up(question):
        return question
    subject = subject_of(previous)
    if subject and subject in question:  # names the subject already: standalone
        return question
    # An ordinal names an item of the list the previous answer gave ("第三个呢？"), before
    # it could be taken for a new subject.
    item = _resolve_item(question, subject, answer)
    if item is not None:
        return item
    ordinal = _ORDINAL_ZH.search(question)
    # (When the previous question named an item by its number too, the number is swapped below.)
    if ordinal and _is_chinese(question) and _AMONG_ZH not in question and not _ORDINAL_ZH.search(previous):
        # No list to pick from (the previous answer was a refusal): among the subject.
        rest = _strip_opening(question[ordinal.start() :])
        if _END.sub("", rest).endswith("呢"):
            rest = _END.sub("", rest).removesuffix("呢") + "是什么？"
        return f"{subject}中{rest}"
    new = _elliptical_subject(question)
    if new is not None:
        return _substitute(new, previous)
    if _is_chinese(question):
        ws = words(question)
        if _AMONG_ZH in ws or _points_back(ws):
            return _resolve_zh(question, subject, previous, answer)
        # No content word of its own ("为什么？", "具体呢？"): it asks on about the whole
        # previous question.
        return f"{_END.sub('', previous)}，{''.join(_strip_openers(ws))}"
    if _ONE_EN.search(question) or any(t in _PRONOUNS_EN for t in re.findall(r"[A-Za-z']+", question.lower())):
        return _resolve_en(question, subject)
    return f"{_END.sub('', previous)}: {question}"


def rewrite(question: str, history: Sequence[Message | Mapping[str, str]] | None = None) -> str:
    """``question`` as a standalone question, given the conversation before it (oldest first).
    Without an earlier user turn, or when the question names its own subject, it is returned
    unchanged (stripped)."""
    previous: str | None = None
    answer = ""
    for message in as_messages(history):
        if message.role == "user":
            text = message.content.strip()
            if text:
                previous = _rewrite_one(text, previous, answer) if previous else text
                answer = ""
        else:
            answer = message.content
    if previous is None:
        return question.strip()
    return _rewrite_one(question, previous, answer)
