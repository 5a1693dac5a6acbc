"""The trained reader as a second judge of the sentence chooser's answer.

The chooser (kbqa/answering.py) picks the sentences that answer and gives the probability that
they do; the reader reads the same top passages and gives its best span's margin over its "no
answer" score. Each sees something the other does not — the chooser word overlap and e5
similarity, the reader the question read against each passage token by token — so the answer
stands when the two together say it does: a logistic regression over (logit of the chooser's
probability, the reader's best margin), fitted on the dev set with each question asked with
its gold documents present and removed (``python -m bench.reader --write-gate``), its
operating point the lowest probability that refuses ≥ 95% of the questions whose documents
were removed. What the answer quotes is still the chooser's pick; when the reader's span lies
in it, the citation carries that span for the page to highlight.

The regression is fitted for one pair of models: the file names the reader weights' SHA-256,
and a gate for other weights is refused rather than applied to margins it never saw.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from kbcore.types import Passage
from kbqa.answer_model import is_foreign
from kbqa.answering import Opinion
from kbqa.reader.build import MODELS, READER_SHA256
from kbqa.reader.model import Reading

GATE_PATH = MODELS / "reader_gate.json"
# Margins beyond ±20 all mean "certain"; clipped, one outlier cannot carry the regression.
MARGIN_CLIP = 20.0
PROBABILITY_CLIP = 1e-4


def gate_features(probability: float, margin: float) -> tuple[float, float]:
    """(logit of the chooser's probability, the reader's clipped best margin)."""
    p = min(max(probability, PROBABILITY_CLIP), 1.0 - PROBABILITY_CLIP)
    return math.log(p / (1.0 - p)), max(-MARGIN_CLIP, min(MARGIN_CLIP, margin))


@dataclass(frozen=True)
class ReaderGate:
    """``reconsider(question, passages, chosen, probability)`` -> an Opinion, or None for a
    question in another language than the documents."""

    reader: Callable[[str, Sequence[str]], list[Reading]]
    weights: tuple[float, float]
    bias: float
    min_probability: float
    passages_read: int = 5

    def probability(self, chooser_probability: float, margin: float) -> float:
        x = gate_features(chooser_probability, margin)
        z = self.weights[0] * x[0] + self.weights[1] * x[1] + self.bias
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))

    def reconsider(self, question: str, passages: Sequence[Passage], chosen, probability: float) -> Opinion | None:
        """The chooser's ``probability`` for its pick ``chosen`` (a kbqa.answering.Candidate),
        judged again with the reader's best margin, and the reader's span (document offsets)
        when it lies in the chosen sentences. No say on an English question: the reader learned
        from Chinese questions only, and its margins there are noise (held-out English seed
        questions: 1 of 12 kept by the gate against 5 by the chooser alone, bench/results/reader.md)."""
        if is_foreign(question):
            return None
        considered = list(passages[: self.passages_read])
        readings = self.reader(question, [p.chunk.text for p in considered])
        if not readings:
            joint = self.probability(probability, -MARGIN_CLIP)
            return Opinion(joint, joint >= self.min_probability)
        best = max(readings, key=lambda r: r.span.margin)
        span = None
        if best.index == chosen.passage_index:
            chunk = considered[best.index].chunk
            lo, hi = chunk.start + best.span.start, chunk.start + best.span.end
            first, last = chosen.sentences[0], chosen.sentences[-1]
            if lo < last.end and hi > first.start:
                span = (max(lo, first.start), min(hi, last.end))
        joint = self.probability(probability, best.span.margin)
        return Opinion(joint, joint >= self.min_probability, span)


def load_gate(reader: Callable[[str, Sequence[str]], list[Reading]], path: Path = GATE_PATH, *,
              passages_read: int = 5, min_probability: float | None = None) -> ReaderGate:
    """The fitted gate over ``reader`` (the shipped weights); ``min_probability`` overrides the
    fitted operating point."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if data["reader_sha256"] != READER_SHA256:
        raise ValueError(f"{path} was fitted for reader weights {data['reader_sha256'][:12]}, "
                         f"not the shipped {str(READER_SHA256)[:12]}: run python -m bench.reader --write-gate")
    return ReaderGate(reader, (float(data["weights"][0]), float(data["weights"][1])), float(data["bias"]),
                      float(data["min_probability"] if min_probability is None else min_probability), passages_read)
