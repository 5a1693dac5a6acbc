"""The Chroma client: connecting to a store (embedded on disk or a server), saying where it is,
and naming its collections (``<prefix>-<embedder>-chunks``, ``-docs``, ``-lock``)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

if TYPE_CHECKING:
    from kbcore.settings import Settings

# Chroma needs a vector per record; records that have none (manifest entries, the lease) carry this.
PLACEHOLDER_VECTOR = [1.0]
PAGE = 2000  # records per Chroma get() page; well under Chroma's max batch size


class StoreUnavailableError(RuntimeError):
    """The Chroma server can't be reached."""


class UnknownKnowledgeBase(LookupError):
    """A knowledge base name the store does not hold (the HTTP API answers 404)."""

    def __init__(self, name: str):
        super().__init__(f"没有这个知识库（no such knowledge base: {name!r:.60}; GET /api/kbs lists them）")


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


def is_embedded(client) -> bool:
    settings = client.get_settings()
    return bool(settings.is_persistent and settings.persist_directory)


def fresh_client(client) -> tuple[Any, Callable[[], None]]:
    """A client on the same embedded store with a System of its own, which reads the store as
    it is on disk now.

    Chroma's embedded store keeps each collection's vector index in the memory of the process
    that loaded it, and never reloads it when another process writes (chromadb 1.5.9; chroma
    issue #3792): the stale index then misses new chunks, returns deleted ones (their metadata
    None) and fails a filtered query with "Error finding id". SQLite, where the metadata and the
    write-ahead log live, is shared, so a new System replays what the others wrote. A new
    ``PersistentClient`` would not do: chromadb hands it the cached System of the path.
    ``Client.from_system`` makes the new one the path's cached System; the old one serves the
    queries still running on it. Returns the client and what stops its System: a System
    nobody stops keeps its memory (~1 MB a reopen measured, 300 reopens: 95 -> 459 MB RSS;
    stopped: flat at ~175 MB)."""
    from chromadb.api import ServerAPI
    from chromadb.api.client import Client
    from chromadb.config import System

    system = System(client.get_settings())
    system.instance(ServerAPI)
    system.start()
    return Client.from_system(system), system.stop


def is_stale_view(exc: Exception) -> bool:
    """Whether ``exc`` is what reading through a stale view of the store raises: a collection
    dropped and rebuilt meanwhile (``--reindex``), an embedded store's vector index behind
    another process's writes (``fresh_client``), or one that process has yet to write."""
    from chromadb.errors import InternalError, NotFoundError

    # "Nothing found on disk": a collection another process created and has not yet flushed.
    stale = ("Error finding id", "Nothing found on disk")
    return isinstance(exc, NotFoundError) or (isinstance(exc, InternalError) and any(s in str(exc) for s in stale))


def collection_base(collection_prefix: str, embedder_name: str) -> str:
    return f"{collection_prefix}-{slug(embedder_name)}"


# --- named knowledge bases in one store ---------------------------------------------------
# Knowledge base ``default`` is the collection prefix itself (``Settings.collection``, "kb"),
# so a store written before there were names is the default one, unchanged; knowledge base
# NAME is ``<collection>.<NAME>``. A name holds no ".", so the two never meet, and Chroma's
# collection names are ASCII: so are knowledge base names.
DEFAULT_KB = "default"
KB_NAME_PATTERN = r"^[a-zA-Z0-9_-]{1,40}$"
_KB_NAME = re.compile(KB_NAME_PATTERN)


def check_kb_name(name: str) -> str:
    if not isinstance(name, str) or not _KB_NAME.fullmatch(name):
        raise ValueError(f"a knowledge base name is 1-40 ASCII letters, digits, _ or -, not {name!r:.60}")
    return name


def kb_prefix(collection: str, name: str) -> str:
    """The collection prefix of knowledge base ``name`` (``kbcore.store``'s collections start with it)."""
    return collection if check_kb_name(name) == DEFAULT_KB else f"{collection}.{name}"


def split_prefix(collection_prefix: str) -> tuple[str, str]:
    """``kb_prefix`` undone: (the collection setting, the knowledge base's name)."""
    collection, _, name = collection_prefix.partition(".")
    return collection, name or DEFAULT_KB


def kb_names(client, collection: str, embedder_name: str) -> list[str]:
    """The knowledge bases the store holds for this embedder, ``default`` first and always."""
    suffix = f"-{slug(embedder_name)}-chunks"
    names = {DEFAULT_KB}
    for stored in client.list_collections():
        prefix = stored.name.removesuffix(suffix)
        if prefix != stored.name and prefix.startswith(f"{collection}."):
            name = split_prefix(prefix)[1]
            if _KB_NAME.fullmatch(name):
                names.add(name)
    return sorted(names, key=lambda name: (name != DEFAULT_KB, name))


def describe_location(client) -> str:
    """The store as a user names it: the embedded directory or the server URL."""
    settings = client.get_settings()
    if is_embedded(client):
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


def store_location(settings: Settings) -> str:
    """The store as the settings name it: the Chroma server's URL or the embedded directory."""
    return settings.chroma_url or str(settings.store)
