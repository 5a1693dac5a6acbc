"""The Chroma client: connecting to a store (embedded on disk or a server), saying where it is,
and naming its collections (``<prefix>-<embedder>-chunks``, ``-docs``, ``-lock``)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

if TYPE_CHECKING:
    from kbqa.settings import Settings

# Chroma needs a vector per record; records that have none (manifest entries, the lease) carry this.
PLACEHOLDER_VECTOR = [1.0]
PAGE = 2000  # records per Chroma get() page; well under Chroma's max batch size


class StoreUnavailableError(RuntimeError):
    """The Chroma server can't be reached."""


@contextmanager
def reaching(location: str) -> Iterator[None]:
    """Turn a Chroma server that stopped answering mid-request (chromadb's HTTP client lets
    httpx's connection errors and timeouts through as they are) into StoreUnavailableError,
    which the faces report as such (the HTTP API: 503 with the reason)."""
    import httpx

    try:
        yield
    except httpx.TransportError as exc:
        raise StoreUnavailableError(f"cannot reach the Chroma server at {location}: {exc}") from exc


def slug(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9._-]+", "-", name).strip("-.")[:40] or "default"


def connect(store_dir: Path | None, chroma_url: str | None):
    """A Chroma client: a server when ``chroma_url`` is set, else an embedded on-disk store."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if chroma_url:
        url = urlparse(chroma_url)
        try:
            return chromadb.HttpClient(
                host=url.hostname or "127.0.0.1",
                port=url.port or (443 if url.scheme == "https" else 8000),
                ssl=url.scheme == "https",
                settings=chroma_settings,
            )
        except ValueError as exc:  # chromadb's way of saying the heartbeat failed
            if "connect" not in str(exc).lower():
                raise
            raise StoreUnavailableError(f"cannot reach the Chroma server at {chroma_url}: {exc}") from exc
    if store_dir is None:
        raise ValueError("either store_dir or chroma_url is required")
    Path(store_dir).mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(store_dir), settings=chroma_settings)


def collection_base(collection_prefix: str, embedder_name: str) -> str:
    return f"{collection_prefix}-{slug(embedder_name)}"


def describe_location(client) -> str:
    """The store as a user names it: the embedded directory or the server URL."""
    settings = client.get_settings()
    if settings.is_persistent and settings.persist_directory:
        return str(settings.persist_directory)
    scheme = "https" if settings.chroma_server_ssl_enabled else "http"
    return f"{scheme}://{settings.chroma_server_host}:{settings.chroma_server_http_port}"


def store_flag(client) -> str:
    """The CLI flag naming this store: ``--store DIR`` or ``--chroma-url URL``."""
    settings = client.get_settings()
    flag = "--store" if settings.is_persistent and settings.persist_directory else "--chroma-url"
    return f"{flag} {describe_location(client)}"


def connect_store(settings: Settings):
    """The client of the store ``settings`` name: the Chroma server at ``chroma_url`` when it is
    set, else the embedded store in the ``store`` directory."""
    return connect(None if settings.chroma_url else settings.store, settings.chroma_url)
