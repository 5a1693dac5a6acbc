"""Schema changes of the stored collections, in their own module: the layout version every
store is stamped with, the check when one is opened, and the rebuild (``--reindex``) for a
version that can't be migrated in place.

The layout is what ``kbcore.store`` writes: the chunk metadata (``kbcore.store``) and the manifest
entries (``kbcore.types.DocRecord``). Bump ``SCHEMA_VERSION`` when a change makes old records
unreadable or wrong, and either list the old version in ``_STAMP_ONLY_VERSIONS`` (when the old
records stay valid) or let :class:`SchemaVersionError` send the user to ``--reindex``.
"""

from __future__ import annotations

import logging

from kbcore.chroma import DEFAULT_KB, PAGE, collection_base, split_prefix, store_flag
from kbcore.types import DocRecord

log = logging.getLogger(__name__)

# 2: chunks and manifest entries carry the document's filter keys (regions, date number,
# source keys: ``kbcore.store.filter_keys``) and entries their ``ingested_at``. A store of
# version 0 or 1 has none of them, so its filters would silently miss every document: it is
# rebuilt (--reindex), not stamped.
SCHEMA_VERSION = 2
# Versions whose records are still valid at SCHEMA_VERSION, stamped in place when opened.
_STAMP_ONLY_VERSIONS: frozenset[int] = frozenset()


class SchemaVersionError(RuntimeError):
    """The store's collections were written with a layout this code can't read."""

    def __init__(self, message: str, *, found: int, expected: int, location: str):
        super().__init__(message)
        self.found = found
        self.expected = expected
        self.location = location


def stamp(embedder_name: str, dim: int) -> dict:
    """The chunks collection's metadata: which embedder wrote it, its dimension, the layout version."""
    return {"embedder": embedder_name, "dim": dim, "schema_version": SCHEMA_VERSION}


def check(collection, stored: dict, *, client, location: str, collection_prefix: str) -> None:
    """Open the chunks ``collection`` (``stored``: its metadata) only at a layout this code reads:
    stamp a store of a stamp-only version in place, raise :class:`SchemaVersionError` otherwise."""
    name = collection.name
    found = int(stored.get("schema_version", 0))
    if found == SCHEMA_VERSION:
        return
    if found > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"collection {name} in {location} has schema version {found}, written by a newer kbqa; "
            f"this one reads version {SCHEMA_VERSION}: upgrade kbqa",
            found=found, expected=SCHEMA_VERSION, location=location,
        )
    if found in _STAMP_ONLY_VERSIONS:
        # modify() replaces the metadata, so carry the embedder/dim stamp over. Racing
        # openers write the same value, so this needs no lock.
        collection.modify(metadata={**stored, "schema_version": SCHEMA_VERSION})
        log.info("stamped %s with schema version %d (was %d)", name, SCHEMA_VERSION, found)
        return
    collection, kb = split_prefix(collection_prefix)
    env = "" if collection == "kb" else f"KB_COLLECTION={collection} "
    kb_flag = "" if kb == DEFAULT_KB else f" --kb {kb}"
    raise SchemaVersionError(
        f"collection {name} in {location} has schema version {found}; this kbqa needs version "
        f"{SCHEMA_VERSION} and can't migrate it in place. Rebuild it from the documents' sources "
        f"(nothing is changed until you do):\n  {env}python -m ingest --reindex{kb_flag} {store_flag(client)}"
        f"  (plus the --embedder and chunking flags you ingest with)",
        found=found, expected=SCHEMA_VERSION, location=location,
    )


# --- rebuilding after a schema change ----------------------------------------------------


def begin_reindex(client, *, collection_prefix: str, embedder_name: str) -> list[DocRecord]:
    """Drop this embedder's collections for a rebuild and return the documents they held.

    The manifest is first renamed to ``<base>-docs-reindex`` rather than dropped: it is the only
    record of where the documents came from, so it must outlive a crash mid-rebuild (a rerun
    finds it and starts over). Call ``end_reindex`` once the rebuild is done; hold the ingest
    lock throughout.
    """
    from chromadb.errors import NotFoundError

    base = collection_base(collection_prefix, embedder_name)
    plan_name = f"{base}-docs-reindex"

    def existing(name: str):
        try:
            return client.get_collection(name, embedding_function=None)
        except NotFoundError:
            return None

    plan = existing(plan_name)
    if plan is None:
        docs = existing(f"{base}-docs")
        if docs is not None:
            docs.modify(name=plan_name)
            plan = existing(plan_name)
    for name in (f"{base}-chunks", f"{base}-docs"):
        if existing(name) is not None:
            client.delete_collection(name)
    records: list[DocRecord] = []
    if plan is not None:
        for offset in range(0, plan.count(), PAGE):
            page = plan.get(include=["metadatas"], limit=PAGE, offset=offset)
            for doc_id, meta in zip(page["ids"], page["metadatas"]):
                # Only doc id and origin are needed, and they are in every version's layout.
                records.append(DocRecord(doc_id, "", str((meta or {}).get("origin", "")), "", "", None, 0))
    return records


def end_reindex(client, *, collection_prefix: str, embedder_name: str) -> None:
    from chromadb.errors import NotFoundError

    try:
        client.delete_collection(f"{collection_base(collection_prefix, embedder_name)}-docs-reindex")
    except NotFoundError:
        pass
