"""The ground floor and the index: records (``types``), text, settings, evidence scoring, and
the store they are written to (Chroma, the BM25 index, the embedders and their model builds).

It imports nothing from the floors above (``ingest``, ``kbqa``, the faces). Nothing is imported
here, so that a part can use ``kbcore.types`` without loading Chroma or a model.
"""
