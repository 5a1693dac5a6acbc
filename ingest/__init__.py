"""Ingestion: read sources (files, folders, ``.jsonl`` corpora, URLs), clean them into
:class:`kbcore.types.Document`s and split those into :class:`kbcore.types.Chunk`s.

``loaders`` reads (``discovery`` walks folders, ``fetch`` fetches URLs safely, ``decoding`` and
``formats`` turn bytes into text, ``jsonl`` streams corpora), ``cleaning`` strips site chrome
and derives title/date, ``chunking`` packs whole sentences into chunks with exact character
offsets.
"""
