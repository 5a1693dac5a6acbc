"""The int8 ONNX Runtime e5-small backend against the fp32 sentence-transformers one (real models)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import kbcore.model_build as emb
from kbcore.embeddings import Embedder, OnnxEmbedder, make_embedder
from kbcore.model_build import E5_ONNX_FOLDER, ensure_e5_onnx_folder
from kbcore.settings import Settings

TEXTS = [
    "如何申请年假？",
    "员工每年享有带薪年假，工作满一年后可享受五天，满十年后可享受十天，需提前一周在系统中提交申请。",
    "报销需要提交发票原件、费用明细和部门经理签字，财务部每月十五日统一处理。",
    "新冠肺炎疫情期间，企业复工复产需要做好体温检测、通风消毒和员工健康登记等防控措施。",
    "ＡＢＣ１２３ 全角字符与 emoji 🚀 混排",
    "x",
]


@pytest.fixture(scope="module")
def onnx_embedder(make_settings) -> Embedder:
    return make_embedder(make_settings(embedder="e5-small-onnx"))


def test_unit_rows_dim_and_name(onnx_embedder: Embedder) -> None:
    assert onnx_embedder.name == "e5-small@onnx-int8" and onnx_embedder.dim == 384
    for vectors in (onnx_embedder.embed_queries(TEXTS), onnx_embedder.embed_passages(TEXTS)):
        assert vectors.dtype == np.float32 and vectors.shape == (len(TEXTS), 384)
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_close_to_fp32_sentence_transformers(onnx_embedder: Embedder, st_embedder: Embedder) -> None:
    assert st_embedder.name == "e5-small@st"
    for kind in ("embed_queries", "embed_passages"):
        cos = (getattr(onnx_embedder, kind)(TEXTS) * getattr(st_embedder, kind)(TEXTS)).sum(axis=1)
        assert cos.mean() >= 0.99 and cos.min() >= 0.98, (kind, cos)
    # the prefixes are applied: a query and a passage of the same text differ
    assert (onnx_embedder.embed_queries(TEXTS[:1]) @ onnx_embedder.embed_passages(TEXTS[:1]).T)[0, 0] < 0.999


def test_a_vector_does_not_depend_on_its_batch(onnx_embedder: Embedder) -> None:
    texts = [f"第{i}条：" + TEXTS[i % len(TEXTS)] * (1 + i % 4) for i in range(9)]
    alone = np.concatenate([onnx_embedder.embed_passages([t]) for t in texts])
    np.testing.assert_allclose(onnx_embedder.embed_passages(texts), alone, atol=1e-6)


def test_length_sorted_batches_keep_input_order(onnx_embedder: Embedder, make_settings) -> None:
    folder = make_settings().model_cache / E5_ONNX_FOLDER  # built by the onnx_embedder fixture
    batched = OnnxEmbedder(folder, name="batched", batch_tokens=400, max_batch=8)
    texts = [f"第{i}条：" + TEXTS[i % len(TEXTS)] * (1 + i % 4) for i in range(21)]
    assert len(batched._batches([len(t) for t in texts])) > 3  # several ragged batches
    together = batched.embed_passages(texts)
    alone = np.concatenate([batched.embed_passages([t]) for t in texts])
    # Activation scales are per batch, so rows differ slightly, but each must match its own text.
    cos = together @ alone.T
    assert (cos.argmax(axis=1) == np.arange(len(texts))).all()
    assert np.diag(cos).min() >= 0.995


def test_empty_input(onnx_embedder: Embedder) -> None:
    assert onnx_embedder.embed_queries([]).shape == (0, 384)
    assert onnx_embedder.embed_passages([]).shape == (0, 384)


def test_listed_in_the_unknown_embedder_message() -> None:
    with pytest.raises(ValueError, match="'e5-small-onnx'"):
        make_embedder(Settings(embedder="e5-small-onnx-fp16"))


_KILLED_BUILD = """
import sys, time
from pathlib import Path
from kbcore.model_build import build_once as _build_once

def build(out: Path) -> None:
    (out / "model.onnx").write_bytes(b"half a model")
    (out / "started").touch()
    time.sleep(60)

_build_once(Path(sys.argv[1]), build)
"""


def test_killed_build_is_never_used(onnx_embedder: OnnxEmbedder, make_settings, tmp_path: Path, monkeypatch) -> None:
    real = make_settings().model_cache
    cache = tmp_path / "models"
    cache.mkdir()
    target = cache / E5_ONNX_FOLDER
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_BUILD, str(target)], cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)}
    )
    try:
        deadline = time.monotonic() + 60
        while not any(cache.glob(f".{E5_ONNX_FOLDER}.*/started")):
            assert proc.poll() is None and time.monotonic() < deadline, "the build never started"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)  # no cleanup handler runs, as with an OOM kill
        proc.wait(timeout=10)
    assert not target.exists()
    assert len(list(cache.glob(f".{E5_ONNX_FOLDER}.*"))) == 1  # the partial build is left behind

    # The next process takes the lock, throws the partial folder away and builds anew; the
    # real build (graph + quantization) is swapped for copying the cached result to stay fast.
    built = real / E5_ONNX_FOLDER
    monkeypatch.setattr(emb, "build_e5_onnx_int8", lambda out: shutil.copytree(built, out, dirs_exist_ok=True))
    assert ensure_e5_onnx_folder(cache) == target
    assert not list(cache.glob(f".{E5_ONNX_FOLDER}.*"))
    assert (target / "model.onnx").stat().st_size == (built / "model.onnx").stat().st_size
    fresh = OnnxEmbedder(target, name="e5-small@onnx-int8", max_batch=1)
    np.testing.assert_allclose(fresh.embed_queries(TEXTS[:2]), onnx_embedder.embed_queries(TEXTS[:2]), atol=1e-6)


def test_failed_build_leaves_nothing(tmp_path: Path) -> None:
    def broken(out: Path) -> None:
        (out / "model.onnx").write_bytes(b"partial")
        raise RuntimeError("export failed")

    with pytest.raises(RuntimeError, match="export failed"):
        emb.build_once(tmp_path / "thing", broken)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thing.lock"]
