"""The reader's training loop and its path to the runtime graph, on a tiny fixture.

Two layers of the real e5 backbone, four windows: a few steps must lower the loss (the loop
learns), and the int8 ONNX graph built from the exported weights must read as the torch model
does (the export names, the head and the layout agree)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from kbcore.model_build import ensure_e5_folder  # noqa: E402
from kbqa.reader.build import build_reader_onnx_int8  # noqa: E402
from kbqa.reader.model import Reader  # noqa: E402
from kbqa.reader.weights import save_reader_weights  # noqa: E402
from training.reader import Example, Recipe, Tokens, make_model, train, trained_tensors, window_examples  # noqa: E402

FIXTURE = [
    ("锦州的“三个开放”是什么？", "目前，锦州坚持“三个开放”，即开放业务系统、开放数据资源、开放市场应用。", "开放业务系统、开放数据资源、开放市场应用"),
    ("华为和锦州签了什么协议？", "2019年，华为与锦州市政府签署了云计算产业战略合作协议，共建鲲鹏生态。", "云计算产业战略合作协议"),
    ("疫情期间房租怎么减免？", "对承租国有企业房产的中小企业，减免3个月房租，缓解经营压力。", "减免3个月房租"),
    ("政务云平台有多少个系统？", "全市已有46个单位、100多个系统迁移上云，政务服务效率明显提升。", "100多个系统"),
]


@pytest.fixture(scope="module")
def folder(make_settings):
    return ensure_e5_folder(make_settings().model_cache)


@pytest.fixture(scope="module")
def examples(folder) -> list[Example]:
    tokens = Tokens(folder / "tokenizer.json")
    out = []
    for question, context, answer in FIXTURE:
        start = context.index(answer)
        (q_ids, _), passage = tokens([question])[0], tokens([context])[0]
        pos, _ = window_examples(q_ids, passage, (start, start + len(answer)), "fixture")
        out += pos
    assert len(out) == len(FIXTURE)
    return out


@pytest.fixture(scope="module")
def trained(folder, examples):
    recipe = Recipe(layers=2, batch=4, epochs=12, lr=5e-4, head_lr=5e-3, warmup=0.0, bf16=False)
    model = make_model(folder, recipe.layers)
    losses = train(model, examples, recipe, log=lambda _: None)
    return model, losses


def test_a_few_steps_on_the_fixture_lower_the_loss(trained):
    _, losses = trained
    assert len(losses) == 12
    assert np.mean(losses[-3:]) < 0.6 * np.mean(losses[:3])


def test_the_runtime_graph_reads_as_the_trained_torch_model(trained, examples, tmp_path):
    model, _ = trained
    weights = save_reader_weights(trained_tensors(model), tmp_path / "reader.npz", {"fixture": True})
    reader = Reader(build_reader_onnx_int8(tmp_path / "onnx", weights=weights, sha256=None))
    for e in examples:
        with torch.no_grad():
            s, t = model(torch.tensor([e.ids]), torch.ones(1, len(e.ids), dtype=torch.long))
        (onnx_logits,) = reader._logits([_window(e)])
        torch_logits = np.stack([s[0].numpy(), t[0].numpy()], axis=1)
        assert np.corrcoef(torch_logits.ravel(), onnx_logits.ravel())[0, 1] > 0.99
        assert int(np.argmax(onnx_logits[:, 0])) == int(np.argmax(torch_logits[:, 0])) == e.start
        assert int(np.argmax(onnx_logits[:, 1])) == int(np.argmax(torch_logits[:, 1])) == e.end


def _window(e: Example):
    from kbqa.reader.windows import Window

    return Window(e.ids, 0, [])
