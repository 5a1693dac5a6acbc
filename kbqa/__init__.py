"""Knowledge-base QA: retrieval, cited answering and briefing over the index, and the
``KnowledgeBase`` facade (``kbqa.knowledge_base``) that the chat and HTTP faces sit on.

Nothing is imported here: ``kbqa.retrieval`` is used without loading the facade, and the
ground it stands on (records, text, the store) is ``kbcore``.
"""
