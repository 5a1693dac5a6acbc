"""Incremental ingestion into a real Chroma with the real embedder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kbqa.knowledge_base import KnowledgeBase
from kbcore.text import query_terms

REPO = Path(__file__).resolve().parents[2]

ARTICLE_A = "数字政府的建设\n数字政府建设从政务上云开始。全市46家单位的业务系统迁移上云。\n"
ARTICLE_B = "# 开放数据\n\n开放数据资源，鼓励企业利用非涉密政务数据开展研发和创新。\n"


def test_incremental_ingest_update_and_prune(kb, tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text(ARTICLE_A, encoding="utf-8")
    (folder / "b.md").write_text(ARTICLE_B, encoding="utf-8")
    (folder / "broken.txt").write_bytes(b"\x00\x01\x02binary\x00" * 100)

    first = kb.ingest([str(folder)])
    assert sorted(first.added) == ["a.txt", "b.md"]
    assert [origin for origin, _ in first.failed] == [str((folder / "broken.txt").resolve())]
    assert first.chunks_embedded == first.chunks_written > 0

    again = kb.ingest([str(folder)])
    assert sorted(again.unchanged) == ["a.txt", "b.md"] and not again.added and not again.updated
    assert again.chunks_embedded == 0

    (folder / "a.txt").write_text(ARTICLE_A + "\n" + "云平台只是起点\n" + "华为锦州云计算平台投入使用。" * 30, encoding="utf-8")
    changed = kb.ingest([str(folder)])
    assert changed.updated == ["a.txt"] and changed.unchanged == ["b.md"]
    assert 0 < changed.chunks_embedded < changed.chunks_written  # the unchanged first chunk kept its vector

    (folder / "b.md").unlink()
    kept = kb.ingest([str(folder)])
    assert "b.md" in {r.doc_id for r in kb.documents()} and not kept.removed
    pruned = kb.ingest([str(folder)], prune=True)
    assert pruned.removed == ["b.md"]
    assert {r.doc_id for r in kb.documents()} == {"a.txt"}
    assert all(p.chunk.doc_id == "a.txt" for p in kb.search("开放数据资源", k=5).passages)


def test_repeated_articles_are_embedded_once(kb, tmp_path):
    # News corpora post one article under many ids; each copy is its own document and
    # passage, but the model runs once per distinct embedding input.
    story = "2020-03-01 08:00，正文：锦州市政务云平台完成扩容，46家单位的100多个业务系统已迁移上云。" * 4
    rows = [{"id": f"copy{i}", "title": "", "text": story, "source": f"site{i}"} for i in range(3)]
    rows.append({"id": "other", "title": "", "text": "开放数据资源，鼓励企业利用非涉密政务数据开展研发。", "source": "x"})
    corpus = tmp_path / "news.jsonl"
    corpus.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    first = kb.ingest([str(corpus)])
    per_copy = first.chunks_written // 3  # "other" is one chunk
    assert sorted(first.added) == ["copy0", "copy1", "copy2", "other"]
    assert first.chunks_written == 3 * per_copy + 1 and first.chunks_embedded <= per_copy + 1
    assert first.embed_seconds > 0

    # A copy added later reuses the vectors already stored.
    corpus.write_text(corpus.read_text(encoding="utf-8") + json.dumps(rows[0] | {"id": "copy3"}, ensure_ascii=False)
                      + "\n", encoding="utf-8")
    later = kb.ingest([str(corpus)])
    assert later.added == ["copy3"] and later.chunks_embedded == 0
    assert {r.doc_id for r in kb.documents()} == {"copy0", "copy1", "copy2", "copy3", "other"}
    # Search gives each distinct passage once, whichever copy it comes from, so an answer never
    # cites the same text twice.
    passages = kb.search("锦州政务云迁移了多少业务系统", k=8).passages
    texts = [p.chunk.text for p in passages]
    assert len(texts) == len(set(texts)) and {p.chunk.doc_id for p in passages} & {"copy0", "copy1", "copy2", "copy3"}
    assert "other" in {p.chunk.doc_id for p in passages}  # the distinct document still gets a slot


def test_jsonl_lines_removed_are_pruned(kb, tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    rows = [{"id": f"d{i}", "title": "", "text": f"第{i}号文件 关于数字经济的第{i}项措施。", "source": f"s{i}"} for i in range(3)]
    corpus.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    assert sorted(kb.ingest([str(corpus)]).added) == ["d0", "d1", "d2"]
    corpus.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows[:2]), encoding="utf-8")
    assert kb.ingest([str(corpus)], prune=True).removed == ["d2"]


@pytest.mark.server
def test_server_mode_by_configuration_alone(make_settings, embedder, chroma_server, tmp_path):
    """Two app processes' worth of KnowledgeBase objects sharing one `chroma run` server."""
    settings = make_settings(chroma_url=chroma_server, collection="srvtest")
    writer = KnowledgeBase(settings, embedder=embedder)
    reader = KnowledgeBase(settings, embedder=embedder)
    reader.searcher.refresh_seconds = 0.0
    assert writer.ensure_seeded() is not None
    answer = reader.ask("锦州的“三个开放”是什么？")
    assert answer.found and "开放数据资源" in answer.text

    # A document the writer adds reaches the reader's BM25 leg without a restart: the reader
    # notices the new revision and rebuilds in the background, serving the old index meanwhile.
    note = tmp_path / "note.txt"
    note.write_text("锦州烧烤节定于每年八月举办，吸引大量游客。", encoding="utf-8")
    writer.ingest([str(note)])
    deadline = time.monotonic() + 20
    def note_found() -> bool:
        hits = reader.searcher.lexical_index().rank(query_terms("锦州烧烤节"), 3)
        return bool(hits) and hits[0][0].startswith("note.txt#")

    while not note_found():
        assert time.monotonic() < deadline, "the reader never saw the writer's document"
        time.sleep(0.1)


def test_cli_ingest_list_and_failures(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text(ARTICLE_A, encoding="utf-8")
    (folder / "empty.txt").write_text("", encoding="utf-8")
    store = tmp_path / "chroma"
    run = subprocess.run(
        [sys.executable, "-m", "ingest", str(folder), "--store", str(store), "--list"],
        cwd=REPO, capture_output=True, text=True, timeout=240,
    )
    assert run.returncode == 1, run.stderr  # one input failed, the rest ingested
    assert "empty.txt" in run.stderr
    assert "added 1, updated 0, unchanged 0, removed 0, failed 1 documents" in run.stdout
    assert "a.txt\t" in run.stdout and "1 documents" in run.stdout

    bad = subprocess.run([sys.executable, "-m", "ingest", "--store", str(store), "--chroma-url", "http://x:1", "a"],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "not allowed with argument" in bad.stderr


# --------------------------------------------------------------------------- ids and sources

def _ingest_cli(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ingest", "--no-progress", *args],
                          check=False, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def _texts(kb: KnowledgeBase, doc_id: str) -> str:
    ids = [chunk_id for chunk_id, _ in kb.store.iter_lexical_rows([doc_id])]
    return "\n".join(c.text for c in kb.store.get_chunks(ids).values())


def test_a_file_from_elsewhere_never_replaces_a_document_under_its_id(make_settings, embedder, tmp_path):
    # Issue 9: `python -m ingest /a/ok.md` after `python -m ingest /b/folder/` (holding ok.md)
    # reported "updated 1" and replaced the folder's document with another file's text. Issue 21:
    # it was then refused; now it is kept beside it under an id that says where it came from.
    folder = tmp_path / "b" / "folder"
    folder.mkdir(parents=True)
    (folder / "ok.md").write_text(ARTICLE_B, encoding="utf-8")
    elsewhere = tmp_path / "a"
    elsewhere.mkdir()
    (elsewhere / "ok.md").write_text("# 另一份文件\n\n这是另一个文件夹里同名的另一份文件，讲的是烧烤节。\n", encoding="utf-8")
    (elsewhere / "other.md").write_text("# 其他\n\n同一次运行里的其他文件照常入库。\n", encoding="utf-8")
    store = str(tmp_path / "chroma")

    first = _ingest_cli(str(folder), "--store", store)
    assert first.returncode == 0, first.stderr
    assert "added 1, updated 0" in first.stdout

    second = _ingest_cli(str(elsewhere / "ok.md"), str(elsewhere / "other.md"), "--store", store)
    assert second.returncode == 0, second.stderr
    assert "added 2, updated 0, unchanged 0, removed 0, failed 0 documents" in second.stdout

    kb = KnowledgeBase(make_settings(store=store), embedder=embedder)
    records = kb.store.doc_records()
    assert set(records) == {"ok.md", "a:ok.md", "other.md"}
    assert records["ok.md"].origin == str(folder / "ok.md")
    assert records["a:ok.md"].origin == str(elsewhere / "ok.md") and records["a:ok.md"].source == "a:ok.md"
    assert "开放数据资源" in _texts(kb, "ok.md") and "烧烤节" not in _texts(kb, "ok.md")
    assert "烧烤节" in _texts(kb, "a:ok.md")

    # The same sources again: unchanged is skipped, changed is updated, each under its own id.
    (folder / "ok.md").write_text(ARTICLE_B + "\n开放数据平台已上线。\n", encoding="utf-8")
    again = _ingest_cli(str(folder), "--store", store)
    assert again.returncode == 0, again.stderr
    assert "added 0, updated 1, unchanged 0, removed 0, failed 0" in again.stdout
    (elsewhere / "ok.md").write_text("# 另一份文件\n\n烧烤节改到了八月。\n", encoding="utf-8")
    again = _ingest_cli(str(elsewhere / "ok.md"), "--store", store)
    assert "added 0, updated 1, unchanged 0, removed 0, failed 0" in again.stdout, again.stderr
    assert set(kb.store.doc_records()) == {"ok.md", "a:ok.md", "other.md"}


def test_same_name_files_of_two_folders_are_both_kept_and_each_updates_in_place(kb, tmp_path):
    # Issue 21: site1/index.html and site2/index.html, each ingested as its own folder.
    for site, text in (("site1", "第一个网站的首页：锦州数字政府。"), ("site2", "第二个网站的首页：贵阳大数据。")):
        (tmp_path / site).mkdir()
        (tmp_path / site / "index.html").write_text(f"<html><body><p>{text}</p></body></html>", encoding="utf-8")
    assert kb.ingest([str(tmp_path / "site1")]).added == ["index.html"]  # the id a store already holds stays
    assert kb.ingest([str(tmp_path / "site2")]).added == ["site2:index.html"]
    assert kb.ingest([str(tmp_path / "site1")]).unchanged == ["index.html"]
    (tmp_path / "site2" / "index.html").write_text("<p>第二个网站的首页：贵阳大数据产业园。</p>", encoding="utf-8")
    report = kb.ingest([str(tmp_path / "site2")])
    assert report.updated == ["site2:index.html"] and not report.added and not report.failed
    assert "产业园" in _texts(kb, "site2:index.html") and "锦州" in _texts(kb, "index.html")
    (tmp_path / "site2" / "index.html").unlink()
    assert kb.ingest([str(tmp_path / "site2")], prune=True).removed == ["site2:index.html"]
    assert [d.doc_id for d in kb.documents()] == ["index.html"]


def test_an_id_held_by_another_corpus_is_kept_beside_it_under_the_corpus_name(kb, tmp_path):
    first = tmp_path / "first.jsonl"
    second = tmp_path / "second.jsonl"
    row = {"id": "d1", "title": "", "text": "第一份语料里的一号文件：政务上云。", "source": "s1"}
    first.write_text(json.dumps(row, ensure_ascii=False) + "\n", encoding="utf-8")
    second.write_text(
        json.dumps(row | {"text": "第二份语料里同号的另一份文件：烧烤节。"}, ensure_ascii=False) + "\n"
        + json.dumps({"id": "d2", "title": "", "text": "第二份语料里的二号文件。", "source": "s2"}, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    assert kb.ingest([str(first)]).added == ["d1"]
    report = kb.ingest([str(second)])
    assert report.added == ["second.jsonl:d1", "d2"] and not report.updated and not report.failed
    assert "政务上云" in _texts(kb, "d1") and "烧烤节" in _texts(kb, "second.jsonl:d1")
    # One run reading both: each line under the id it already has.
    both = kb.ingest([str(first), str(second)])
    assert both.unchanged == ["d1", "second.jsonl:d1", "d2"] and not both.failed
    # The same corpus twice in one run is still a duplicate, named with where the first came from.
    twice = kb.ingest([str(second), str(second)])
    assert twice.failed and all("duplicate document id" in reason for _, reason in twice.failed)


def test_the_same_file_reached_another_way_is_the_same_source(kb, tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text(ARTICLE_A, encoding="utf-8")
    assert kb.ingest([str(folder)]).added == ["a.txt"]
    link = tmp_path / "docs-link"
    link.symlink_to(folder)
    assert kb.ingest([str(link / "a.txt")]).unchanged == ["a.txt"]  # a lone file: its name is its id
    (folder / "a.txt").write_text(ARTICLE_A + "\n云平台已经扩容。\n", encoding="utf-8")
    report = kb.ingest([str(tmp_path / "docs-link" / ".." / "docs")])
    assert report.updated == ["a.txt"] and not report.failed


def test_documents_stored_without_an_origin_are_taken_as_the_same_source_and_get_one(kb, tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text(ARTICLE_A, encoding="utf-8")
    assert kb.ingest([str(folder)]).added == ["a.txt"]
    kb.store._docs.update(ids=["a.txt"], metadatas=[{"origin": ""}])  # as a store written before origins
    assert kb.store.doc_records()["a.txt"].origin == ""
    report = kb.ingest([str(folder)])
    assert report.unchanged == ["a.txt"] and not report.failed
    assert kb.store.doc_records()["a.txt"].origin == str(folder / "a.txt")  # recorded on this run
    other = tmp_path / "other"
    other.mkdir()
    (other / "a.txt").write_text("另一个文件夹里的同名文件。", encoding="utf-8")
    beside = kb.ingest([str(other / "a.txt")])  # another source: kept beside it, never over it
    assert not beside.updated and beside.added == ["other:a.txt"]


def test_a_symlink_out_of_an_ingested_folder_is_not_ingested(make_settings, embedder, tmp_path):
    # Issue 9: folder/passwd.txt -> /etc/passwd was ingested and became searchable.
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("机密口令：锦州烧烤节的后台密码是八八八。", encoding="utf-8")
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text(ARTICLE_A, encoding="utf-8")
    (folder / "passwd.txt").symlink_to(secret)
    kb = KnowledgeBase(make_settings(), embedder=embedder)
    report = kb.ingest([str(folder)])
    assert report.added == ["a.txt"]
    ((origin, reason),) = report.failed
    assert origin == str(folder / "passwd.txt") and "outside the ingested folder" in reason
    assert {r.doc_id for r in kb.documents()} == {"a.txt"}
    assert all("机密" not in p.chunk.text for p in kb.search("后台密码是多少", k=5).passages)

    # The operator may say otherwise (KB_FOLLOW_SYMLINKS / --follow-symlinks).
    following = KnowledgeBase(make_settings(follow_symlinks=True), embedder=embedder)
    assert sorted(following.ingest([str(folder)]).added) == ["a.txt", "passwd.txt"]


def test_cli_list_and_failures_keep_one_row_per_document_whatever_the_file_names(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "two\nlines.txt").write_text(ARTICLE_A, encoding="utf-8")
    (folder / "tab\tand\x1bescape.md").write_text(ARTICLE_B, encoding="utf-8")
    (folder / "right\u202eto-left.txt").write_text(ARTICLE_A + "从右到左。", encoding="utf-8")  # a bidi override
    (folder / "empty\nfile.txt").write_text("", encoding="utf-8")
    with open(os.fsencode(folder) + b"/latin1-\xe9.txt", "wb") as f:  # not UTF-8: no id can hold it
        f.write(ARTICLE_A.encode())
    store = str(tmp_path / "chroma")
    run = _ingest_cli(str(folder), "--store", store, "--list")
    assert run.returncode == 1, run.stderr
    assert sorted(line for line in run.stderr.splitlines() if line.startswith("failed:")) == [
        f"failed: {folder}/empty\\nfile.txt: empty file",
        f"failed: {folder}/latin1-\\udce9.txt: file name is not valid UTF-8: rename it",
    ]
    rows = run.stdout.splitlines()[1:-1]  # between the summary and the totals
    assert sorted(row.split("\t")[0] for row in rows) == [
        "right\\u202eto-left.txt", "tab\\tand\\x1bescape.md", "two\\nlines.txt"]
    assert all(len(row.split("\t")) == 4 for row in rows), rows
    assert run.stdout.splitlines()[-1].startswith("3 documents")


def test_an_input_of_another_scheme_is_refused_as_a_url_not_read_as_a_path(kb, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    trap = tmp_path / "file:" / "etc"
    trap.mkdir(parents=True)
    (trap / "passwd").write_text(ARTICLE_A, encoding="utf-8")  # what reading it as a relative path would find
    report = kb.ingest(["file:///etc/passwd", "ftp://127.0.0.1/pub"])
    assert not report.added and kb.documents() == []
    assert [origin for origin, _ in report.failed] == ["file:///etc/passwd", "ftp://127.0.0.1/pub"]
    assert all("unsupported URL scheme" in reason for _, reason in report.failed), report.failed


def test_the_embedder_works_a_batch_ahead_of_the_store_writes(kb, tmp_path, monkeypatch):
    # Issue 13: embedding overlaps parsing, tokenizing and writing. The first batch's write
    # waits (up to 20 s) for the embedder to start on the second batch: a serial pipeline, which
    # embeds batch 2 only after batch 1 is written, runs out the wait and fails here.
    import threading

    rows = [{"id": f"d{i}", "title": "", "text": f"锦州第{i}号政务系统迁移上云，开放数据资源{i}项。", "source": "x"} for i in range(4)]
    corpus = tmp_path / "news.jsonl"
    corpus.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    real_embed, real_write = kb.embedder.embed_passages, kb.store.write_documents
    calls: list[str] = []
    second_batch_started = threading.Event()
    overlapped: list[bool] = []

    def embed(texts):
        calls.append(threading.current_thread().name)
        if len(calls) == 2:
            second_batch_started.set()
        return real_embed(texts)

    def write(docs, on_step=None):
        if not overlapped:
            overlapped.append(second_batch_started.wait(timeout=20))
        return real_write(docs, on_step=on_step)

    monkeypatch.setattr(kb.embedder, "embed_passages", embed)
    monkeypatch.setattr(kb.store, "write_documents", write)
    report = kb.ingest([str(corpus)], write_batch_chunks=1)
    assert overlapped == [True]
    assert len(calls) == 4 and all(name != threading.current_thread().name for name in calls)
    assert sorted(report.added) == ["d0", "d1", "d2", "d3"] and report.chunks_embedded == report.chunks_written == 4
    assert {p.chunk.doc_id for p in kb.search("第2号政务系统", k=4).passages} == {"d0", "d1", "d2", "d3"}


def test_a_repeat_of_the_batch_in_flight_takes_its_vector_from_there(kb, tmp_path):
    # The store does not hold batch k's vectors yet when batch k+1 is looked up: a repeated
    # input is still embedded once, and both copies get the same vector.
    story = "锦州市政务云平台完成扩容，46家单位的100多个业务系统已迁移上云。"
    rows = [{"id": f"copy{i}", "title": "", "text": story, "source": "x"} for i in range(3)]
    corpus = tmp_path / "news.jsonl"
    corpus.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    report = kb.ingest([str(corpus)], write_batch_chunks=1)
    assert report.chunks_written == 3 and report.chunks_embedded == 1
    got = kb.store._chunks.get(include=["embeddings"])
    assert len(got["ids"]) == 3 and all((v == got["embeddings"][0]).all() for v in got["embeddings"])
