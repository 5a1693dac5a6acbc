"""The web layer: HTTP API, chat UI and embeddable widget over ``kbqa.KnowledgeBase``."""
