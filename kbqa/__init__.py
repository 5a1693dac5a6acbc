"""Knowledge-base QA: store, retrieval and cited answering over ingested documents.

Import what you need from the submodules; the main entry point is
``kbqa.knowledge_base.KnowledgeBase``. Nothing is imported here so that ``ingest`` can use
``kbqa.store`` without pulling in the whole stack.
"""
