"""What the extractive answerer judges candidates by: their features, and the two small fitted
models that turn features into probabilities.

A *candidate* is one sentence of a retrieved passage or a run of two or three adjacent ones
(list answers span several). Its features mix meaning and evidence:

* the e5 similarity of the question (query-prefixed) and each sentence (passage-prefixed):
  the signal that sees meaning and crosses languages (an English question, Chinese text);
* term coverage: the idf-weighted share of the question's key words in the candidate (terms
  only in the title/section count half), and in its passage;
* where it is: the passage's rank, fused score and dense score; the sentence's position;
* its shape: length, a heading or dateline (no answer), digits when the question asks for a
  number or a date, list markers;
* each relative to the best of the question's candidates (a chooser compares).

``chooser`` (logistic regression over candidates) gives the probability that a candidate
holds the answer; the answer is the most probable one. ``presence`` (logistic regression over
questions) gives the probability that the chosen candidate answers at all, fitted with each dev
question asked with its gold documents present and removed; the answerer refuses below an
operating point (``Settings.answer_min_probability``). Both are fitted, cross-validated by
question, by ``python -m bench.fit_answers`` and stored in ``kbqa/models/answer_scorer.json``.

Without an embedder (passages from some other retriever, or tests) the ``lexical`` variant of
both models is used: fitted the same way with the similarity features left out. A question in
another language than Chinese gets the ``semantic`` variant: no character-overlap features.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from kbcore.text import is_heading_line

MODEL_PATH = Path(__file__).resolve().parent / "models" / "answer_scorer.json"

CANDIDATE_FEATURES = (
    "sim",  # mean e5 similarity of the candidate's sentences to the question
    "sim_max",
    "sim_rel",  # sim_max minus the best sentence similarity among the question's candidates
    "coverage",  # key-word coverage of the candidate (title/section terms count half)
    "coverage_rel",  # minus the best candidate coverage
    "passage_coverage",
    "rank_prior",  # 1 / (1 + passage rank)
    "passage_score_rel",  # fused score / the top passage's
    "passage_dense",  # cosine of the passage, when the dense leg found it, else 0
    "first_in_passage",
    "first_chunk",  # the passage is the document's first chunk
    "log_chars",
    "short",  # fewer than 15 characters
    "heading",  # a heading line, no sentence punctuation
    "dateline",  # began with a dateline/news prefix (trimmed)
    "number_wanted",  # the question asks how many / when, and the candidate has digits
    "list_marks",  # share of the run's sentences that begin with a list marker (一是, 1., （一）)
    "run2",
    "run3",
    "foreign_sim",  # sim_rel when the question is not Chinese (coverage means nothing then)
    "bigram_coverage",  # share of the question's character bigrams in the candidate (no segmentation)
    "novelty",  # share of the candidate's characters that are not the question's
    "echo",  # the candidate restates the question ("四、纳税人申报若有困难，如何申请延期申报？")
    "prev_coverage",  # coverage of the sentence before it, when that one is a lead-in (a heading,
    "prev_sim",  # a restated question, "……如下：") — an answer often follows one — else 0
    "prev_echo",
    "prev_plain_coverage",  # coverage of the sentence before it when that one is no lead-in
    "defines",  # share of the run's sentences where a subject of the question is followed by
    # 指/是/即/包括…: "“三大步”指，……"
    "subject_first",  # a subject of the question opens the (first) sentence: "其中，“三大步”指……"
    "list_run",  # the question asks for a list or measures (哪些, 措施, 要求 …) times the run's extra sentences
    "run4",
    "sim_bg",  # sim_max minus the question's similarity to unrelated text (BACKGROUND)
)
LEXICAL_DROP = ("sim", "sim_max", "sim_rel", "foreign_sim", "prev_sim", "sim_bg")

QUESTION_FEATURES = (
    "best_share",  # the chooser's softmax share of the chosen candidate among the question's
    "best_logit",
    "margin",  # its logit minus the runner-up's from another place
    "best_sim",
    "best_coverage",
    "best_passage_coverage",
    "top_passage_coverage",
    "top_dense",
    "chosen_rank_prior",
    "foreign",
    "best_sim_bg",  # best_sim and top_dense minus the question's similarity to unrelated text
    "top_dense_bg",
)
QUESTION_LEXICAL_DROP = ("best_sim", "top_dense", "best_sim_bg", "top_dense_bg")

# Sentences about nothing a knowledge base of this kind holds (written here). A question's mean
# e5 similarity to them is its *background*: how similar it is to text it does not ask about.
# The level differs by question and most by language — an English question's similarity to any
# Chinese sentence runs ~0.09 lower than a Chinese question's (0.72 against 0.81 on the seed
# questions) — so similarities above the background compare across questions and languages
# where raw ones do not.
BACKGROUND = (
    "今天的天气晴朗，气温在二十度左右，适合外出散步。",
    "这家餐厅的招牌菜是红烧肉，味道偏甜。",
    "比赛进行到下半场，主队连进两球反超比分。",
    "他在图书馆里借了三本关于历史的书。",
    "新款手机的电池容量比上一代提高了百分之十。",
    "孩子们在公园里放风筝，玩得非常开心。",
    "这部电影讲述了一个普通家庭的成长故事。",
    "冬季来临，要注意防寒保暖，预防感冒。",
    "小区门口新开了一家便利店，营业到深夜。",
    "老师布置了一篇关于春天的作文。",
    "高速公路因大雾临时封闭，请司机绕行。",
    "他每天早上六点起床跑步，坚持了五年。",
    "博物馆展出了一批出土的青铜器。",
    "农民正在田里收割成熟的水稻。",
    "音乐会的门票在一小时内售罄。",
    "这只小猫喜欢趴在窗台上晒太阳。",
    "她用毛线给女儿织了一条红色的围巾。",
    "山顶的日出吸引了许多摄影爱好者。",
    "这道数学题有三种不同的解法。",
    "周末的菜市场人来人往，十分热闹。",
)
# A question in another language than the documents (English over Chinese) shares no characters
# with them: its ``semantic`` variant leaves out the features of character overlap and of the
# question's own wording, and keeps word coverage, which counts the question's words translated by
# dictionary (kbqa/crosslingual.py). Fitted with English versions of dev questions too
# (bench/fit_answers.py); with coverage kept, 10 of the 12 held-out English seed questions are
# answered correctly (none wrong) where the variant without it answered 1.
SEMANTIC_DROP = ("bigram_coverage", "novelty", "echo", "prev_coverage", "prev_plain_coverage", "defines",
                 "subject_first", "foreign_sim")
QUESTION_SEMANTIC_DROP = ("best_passage_coverage", "foreign")

# A news prefix ("2023-07-12 10:00，正文："), an agency dateline ("新华社南京2月14日电（记者 赵久龙）"),
# "本报讯（记者 …）": no part of an answer.
DATELINE = re.compile(
    r"^\s*(?:\d{4}-\d{1,2}-\d{1,2}(?:\s+\d{1,2}:\d{2}(?::\d{2})?)?\s*[，,]?\s*(?:正文[:：])?\s*)?"
    r"(?:(?:[^\s，。；！？]{0,12}?(?:社|报|网|台|客户端)[^\s，。；！？]{0,8}?\d{1,2}月\d{1,2}日(?:电|讯))"
    r"|本报讯|据[^\s，。]{1,10}报道[，,])?"
    r"\s*(?:[（(](?:记者|通讯员|特约)[^）)]{0,30}[）)])?\s*"
)
# A run-on title before the body: "关于……的通知 绍市教防控〔2020〕4号 为……": segments without
# clause punctuation, separated by whitespace, ahead of the sentence proper.
_TITLE_SEGMENT = re.compile(r"^(?:[^\s，。；：！？,;:]{2,60}\s+)+(?=[^\s])")
_CJK = re.compile(r"[\u4e00-\u9fff]")
_LATIN = re.compile(r"[A-Za-z]")
_DIGIT = re.compile(r"[0-9０-９一二三四五六七八九十百千万]+(?:年|月|日|个|家|项|条|万|亿|元|%|％|天|小时|人|次|所|种)|[0-9０-９]")
_NUMBER_QUESTION = re.compile(r"多少|几|哪一年|哪年|何时|什么时候|时间|日期|期限|多久|多长|比例|金额|how many|how much|when|what year|what date|how long", re.I)
_LIST_MARK = re.compile(r"^\s*(?:[一二三四五六七八九十]+是|[（(][一二三四五六七八九十\d]+[)）]|\d{1,2}\s*[.．、]|[一二三四五六七八九十]+、|第[一二三四五六七八九十]+|[①-⑳]|其[一二三四五六七八九十])")


_LIST_QUESTION = re.compile(r"哪些|哪几|分别|各是|哪七|哪五|哪三|哪四|哪六|措施|要求|举措|如何|怎样|怎么|什么政策|内容|which|what measures|how", re.I)


def asks_for_list(question: str) -> bool:
    return bool(_LIST_QUESTION.search(question))


def is_foreign(question: str) -> bool:
    """A question written in a language other than Chinese (Latin letters and no CJK)."""
    return not _CJK.search(question) and bool(_LATIN.search(question))


def asks_for_number(question: str) -> bool:
    return bool(_NUMBER_QUESTION.search(question))


def trim_lead(text: str) -> int:
    """How many leading characters of a sentence are a dateline or a run-on title (0: none).

    A trim that would leave fewer than 8 characters is no trim: the sentence was all title."""
    cut = 0
    m = DATELINE.match(text)
    if m and m.end() > 0:
        cut = m.end()
    rest = text[cut:]
    if _CJK.search(rest):
        t = _TITLE_SEGMENT.match(rest)
        if t and len(rest) - t.end() >= 8:
            cut += t.end()
    return cut if len(text) - cut >= 8 else 0


def has_number(text: str) -> bool:
    return bool(_DIGIT.search(text))


def is_list_item(text: str) -> bool:
    return bool(_LIST_MARK.match(text))


_PUNCT = set(" \n\t，。、；：？！,.;:?!“”\"'（）()[]《》【】-—")


def content_chars(text: str) -> list[str]:
    return [c for c in text if c not in _PUNCT]


def bigrams(text: str) -> set[str]:
    chars = content_chars(text.lower())
    return {a + b for a, b in zip(chars, chars[1:])}


_DEFINES = r"[”\"」』]?\s*[,，:：]?\s*(?:则|就|也|即)?(?:是指|指的是|特指|指|是|即|包括|包含|分为|分别为|为)"
_QUOTED = re.compile(r"[“\"「『]([^”\"」』]{2,20})[”\"」』]")


def subjects(question: str, terms) -> list[str]:
    """What a question asks about: its quoted phrases (“三大步”, which jieba cuts apart) and its
    key words of two characters or more."""
    return list(dict.fromkeys([*(m.lower() for m in _QUOTED.findall(question)), *(t for t in terms if len(t) >= 2)]))


def defines(text: str, asked: list[str]) -> bool:
    """Whether one of the ``asked`` subjects is followed by a defining verb in ``text``: the
    sentence says what the thing asked about is ("“三大步”指，……")."""
    return any(re.search(re.escape(t) + _DEFINES, text) for t in asked)


_OPENERS = re.compile(r"^(?:其中|而且|而|另外|此外|同时|并且|对于|关于|所谓|首先|其次|最后|目前)?[\s,，、“\"「]*")


def subject_first(text: str, asked: list[str]) -> bool:
    """Whether the sentence opens with one of the ``asked`` subjects (after a connective like 其中
    or 而): it is about that subject, not about something else that mentions it."""
    head = text[_OPENERS.match(text).end() :]
    return any(head.startswith(t) for t in asked)


def is_echo(text: str, question: str) -> bool:
    """A sentence that asks (ends with a question mark) or mostly repeats the question."""
    if text.rstrip().endswith(("？", "?")):
        return True
    chars = content_chars(text)
    asked = set(content_chars(question))
    return bool(chars) and sum(c in asked for c in chars) / len(chars) >= 0.8


def is_lead_in(text: str, question: str) -> bool:
    """A sentence that introduces what follows: a heading, a restated question, "……如下："."""
    return is_echo(text, question) or shape_is_heading(text) or text.rstrip().endswith(("：", ":"))


def shape_is_heading(text: str) -> bool:
    return is_heading_line(text) or not re.search(r"[。！？；!?;，,：:]", text)


@dataclass(frozen=True)
class Logistic:
    """A fitted logistic regression: standardise with ``mean``/``scale``, then ``weights``."""

    names: tuple[str, ...]
    weights: np.ndarray
    bias: float
    mean: np.ndarray
    scale: np.ndarray

    def logits(self, rows: np.ndarray) -> np.ndarray:
        return ((rows - self.mean) / self.scale) @ self.weights + self.bias

    def probabilities(self, rows: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.logits(rows)))

    @classmethod
    def from_dict(cls, data: dict) -> Logistic:
        return cls(
            names=tuple(data["features"]),
            weights=np.asarray(data["weights"], np.float64),
            bias=float(data["bias"]),
            mean=np.asarray(data["mean"], np.float64),
            scale=np.asarray(data["scale"], np.float64),
        )

    def to_dict(self) -> dict:
        return {
            "features": list(self.names),
            "weights": [round(float(w), 6) for w in self.weights],
            "bias": round(self.bias, 6),
            "mean": [round(float(m), 6) for m in self.mean],
            "scale": [round(float(s), 6) for s in self.scale],
        }


@dataclass(frozen=True)
class AnswerModel:
    """The chooser and the presence model, in one variant (``full`` or ``lexical``)."""

    chooser: Logistic
    presence: Logistic
    info: dict = field(default_factory=dict)

    def choose_columns(self, rows: dict[str, np.ndarray]) -> np.ndarray:
        return np.column_stack([rows[n] for n in self.chooser.names])

    def presence_columns(self, row: dict[str, float]) -> np.ndarray:
        return np.array([[row[n] for n in self.presence.names]], np.float64)


@lru_cache(maxsize=4)
def load_models(path: Path = MODEL_PATH) -> dict[str, AnswerModel]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return {
        variant: AnswerModel(Logistic.from_dict(m["chooser"]), Logistic.from_dict(m["presence"]), data.get("fitted", {}))
        for variant, m in data["models"].items()
    }
