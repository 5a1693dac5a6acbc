"""BM25 over jieba tokens: the lexical leg of hybrid retrieval.

Tokens are ``kbcore.text.tokenize``'s (jieba's search mode: compound words plus their parts,
so "云计算" also matches "计算"); scoring is ``bm25s`` (sparse-matrix BM25, no Python loop
over chunks per query). The index is derived from the token lists stored with each chunk in Chroma, so it
can always be rebuilt from the store and never drifts from it; ``LexicalCorpus`` keeps those
lists between runs and updates them by document, so neither a restart nor a small ingest
re-reads them all.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import zipfile
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path

import numpy as np

from kbcore.types import chunk_doc_id

log = logging.getLogger(__name__)


class LexicalIndex:
    """A BM25 index over chunks, addressed by chunk id."""

    def __init__(self, chunk_ids: Sequence[str], bm25=None):
        """``bm25``: a ``bm25s.BM25`` over these chunks, in this order (None when there are none);
        ``build`` and ``load`` make one."""
        self.chunk_ids = list(chunk_ids)
        self._n = len(self.chunk_ids)
        self._bm25 = bm25
        self._vocab: dict[str, int] = bm25.vocab_dict if bm25 is not None else {}
        self._df = np.zeros(0, np.int64)
        self._rows_by_doc: dict[str, np.ndarray] | None = None  # built on the first filtered search
        if bm25 is not None:
            if int(bm25.scores["num_docs"]) != self._n:
                raise ValueError(f"the BM25 matrix holds {bm25.scores['num_docs']} chunks, not {self._n}")
            # The score matrix is chunks x tokens in CSC form: a token's column holds one entry
            # per chunk containing it, so its length is the document frequency.
            self._df = np.diff(np.asarray(bm25.scores["indptr"])).astype(np.int64)

    @classmethod
    def build(
        cls,
        chunk_ids: Sequence[str],
        token_ids: Sequence[np.ndarray],
        vocab: dict[str, int],
        *,
        k1: float = 1.2,
        b: float = 0.75,
    ) -> LexicalIndex:
        import bm25s

        if not chunk_ids:
            return cls(chunk_ids)
        bm25 = bm25s.BM25(k1=k1, b=b)
        # A copy of the vocabulary: the corpus's grows while this index serves queries.
        bm25.index(bm25s.tokenization.Tokenized(ids=list(token_ids), vocab=dict(vocab)), show_progress=False)
        return cls(chunk_ids, bm25)

    def save(self, directory: Path) -> None:
        """The bm25s score matrix and vocabulary, in bm25s's own format (``load`` maps it)."""
        directory.mkdir(parents=True, exist_ok=True)
        if self._bm25 is not None:
            self._bm25.save(str(directory), show_progress=False)

    @classmethod
    def load(cls, directory: Path, chunk_ids: Sequence[str]) -> LexicalIndex:
        """The index ``save`` wrote for these chunks (in the order it was built with), memory-mapped."""
        import bm25s

        if not chunk_ids:
            return cls(chunk_ids)
        return cls(chunk_ids, bm25s.BM25.load(str(directory), mmap=True, show_progress=False, verbosity=0))

    def __len__(self) -> int:
        return self._n

    def rows(self, doc_ids: Collection[str]) -> np.ndarray:
        """A mask over the index's chunks: True for the chunks of these documents."""
        if self._rows_by_doc is None:
            by_doc: dict[str, list[int]] = {}
            for row, chunk_id in enumerate(self.chunk_ids):
                by_doc.setdefault(chunk_doc_id(chunk_id), []).append(row)
            self._rows_by_doc = {doc: np.asarray(rows, dtype=np.int64) for doc, rows in by_doc.items()}
        mask = np.zeros(self._n, dtype=bool)
        for doc_id in doc_ids:
            rows = self._rows_by_doc.get(doc_id)
            if rows is not None:
                mask[rows] = True
        return mask

    def doc_frequency(self, term: str) -> int:
        """How many chunks hold ``term`` (0: not in the index's vocabulary)."""
        term_id = self._vocab.get(term, len(self._df))  # bm25s appends its own "" token beyond df
        return int(self._df[term_id]) if term_id < len(self._df) else 0

    def idf(self, term: str) -> float:
        """BM25 idf; a term absent from the index gets the highest weight of all."""
        df = self.doc_frequency(term)
        return math.log(1.0 + (self._n - df + 0.5) / (df + 0.5))

    def rank(self, terms: Sequence[str], k: int, *, allowed: np.ndarray | None = None) -> list[tuple[str, float]]:
        """(chunk id, BM25 score) of the best ``k`` chunks with a positive score; with
        ``allowed`` (a ``rows`` mask), of those chunks only: the others are out before the
        ranking, so a filter never leaves fewer than ``k`` where ``k`` allowed chunks match."""
        if self._bm25 is None:
            return []
        known = [t for t in terms if self.doc_frequency(t) > 0]
        if not known:
            return []
        scores = self._bm25.get_scores(known)
        if allowed is not None:
            scores = np.where(allowed, scores, 0.0)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top])]
        return [(self.chunk_ids[i], float(scores[i])) for i in top if scores[i] > 0]


def _ids(tokens: Iterable[str], vocab: dict[str, int]) -> np.ndarray:
    return np.fromiter((vocab.setdefault(t, len(vocab)) for t in tokens), dtype=np.int32)


class LexicalCorpus:
    """The token rows the BM25 index is built from, by document, kept in step with the store
    and saved beside it so that a restart, or a change to a few documents, costs a read of
    what changed instead of every chunk's tokens.

    Each document carries the ``signature`` its rows were read under (the manifest's content
    hash and state) and the corpus the store ``revision`` it reflects; the caller
    (``kbqa.retrieval``) re-reads the documents whose signature moved. Token strings are held
    once, in ``vocab``; rows are int32 ids. The file is one ``.npz`` without pickles.
    """

    FORMAT = 1

    def __init__(self) -> None:
        self.revision: str | None = None
        self.vocab: dict[str, int] = {}
        # doc id -> (signature, chunk ids, token-id rows)
        self._docs: dict[str, tuple[str, list[str], list[np.ndarray]]] = {}

    def __len__(self) -> int:
        return len(self._docs)

    def doc_ids(self) -> list[str]:
        return list(self._docs)

    def signature(self, doc_id: str) -> str | None:
        entry = self._docs.get(doc_id)
        return entry[0] if entry else None

    def put(self, doc_id: str, signature: str, rows: Iterable[tuple[str, Sequence[str]]]) -> None:
        chunk_ids, token_ids = [], []
        for chunk_id, tokens in rows:
            chunk_ids.append(chunk_id)
            token_ids.append(_ids(tokens, self.vocab))
        self._docs[doc_id] = (signature, chunk_ids, token_ids)

    def chunk_count(self, doc_id: str) -> int:
        entry = self._docs.get(doc_id)
        return len(entry[1]) if entry else 0

    def drop(self, doc_id: str) -> None:
        self._docs.pop(doc_id, None)

    def chunk_ids(self) -> list[str]:
        return [cid for _, cids, _ in self._docs.values() for cid in cids]

    def index(self, **params: float) -> LexicalIndex:
        token_ids = [row for _, _, rows in self._docs.values() for row in rows]
        return LexicalIndex.build(self.chunk_ids(), token_ids, self.vocab, **params)

    @staticmethod
    def index_dir(path: Path) -> Path:
        return path.with_suffix(".index")

    def save_index(self, path: Path, index: LexicalIndex) -> None:
        """Save ``index`` (built from this corpus at its revision) beside the corpus file, so a
        restart at that revision maps it instead of rebuilding it. Swapped in by renames; a
        reader catching the moment between them just rebuilds."""
        target = self.index_dir(path)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        old = target.with_name(f".{target.name}.{os.getpid()}.old")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            index.save(tmp)
            marker = {"revision": self.revision, "chunks": len(index)}
            (tmp / "kbqa.json").write_text(json.dumps(marker), encoding="utf-8")
            if target.exists():
                os.replace(target, old)
            os.replace(tmp, target)  # raises if another process's index landed meanwhile: theirs stays
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(old, ignore_errors=True)

    def load_index(self, path: Path) -> LexicalIndex | None:
        """The saved index, when it was built from this corpus at its revision; else None."""
        directory = self.index_dir(path)
        chunk_ids = self.chunk_ids()
        try:
            marker = json.loads((directory / "kbqa.json").read_text(encoding="utf-8"))
            if marker != {"revision": self.revision, "chunks": len(chunk_ids)}:
                return None
            return LexicalIndex.load(directory, chunk_ids)
        except (OSError, ValueError, KeyError) as exc:
            if directory.exists():
                log.warning("ignoring the saved BM25 index %s (%s); rebuilding it", directory, exc)
            return None

    def save(self, path: Path) -> None:
        """Write atomically (a reader never sees half a file; the last writer wins)."""
        header = {
            "format": self.FORMAT,
            "revision": self.revision,
            "vocab": list(self.vocab),  # dicts keep insertion order: position == id
            "docs": [[doc_id, sig, cids] for doc_id, (sig, cids, _) in self._docs.items()],
        }
        rows = [row for _, _, doc_rows in self._docs.values() for row in doc_rows]
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            np.savez(
                f,
                header=np.frombuffer(json.dumps(header, ensure_ascii=False).encode("utf-8"), dtype=np.uint8),
                lengths=np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows)),
                ids=np.concatenate(rows) if rows else np.zeros(0, np.int32),
            )
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> LexicalCorpus | None:
        """The saved corpus, or None when there is none (or it is unreadable or of another format:
        it is only a cache of the store, rebuilt from there)."""
        try:
            with np.load(path, allow_pickle=False) as data:
                header = json.loads(data["header"].tobytes().decode("utf-8"))
                if header.get("format") != cls.FORMAT:
                    return None
                rows = np.split(data["ids"], np.cumsum(data["lengths"])[:-1]) if len(data["lengths"]) else []
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            if path.exists():
                log.warning("ignoring the BM25 snapshot %s (%s); rebuilding it from the store", path, exc)
            return None
        corpus = cls()
        corpus.revision = header["revision"]
        corpus.vocab = {token: i for i, token in enumerate(header["vocab"])}
        at = 0
        for doc_id, signature, chunk_ids in header["docs"]:
            corpus._docs[doc_id] = (signature, chunk_ids, rows[at : at + len(chunk_ids)])
            at += len(chunk_ids)
        return corpus
