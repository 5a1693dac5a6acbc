"""The Chinese-first chat page (Gradio): streamed answers beside a "引用来源" panel.

Every piece of document text is untrusted. It reaches the browser only HTML-escaped, and the
chatbot renders its messages without Markdown so answer sentences show exactly as quoted
(a ``*`` or ``#`` in a document must not restyle the answer).

The second tab, "简报", turns a topic into a briefing (kbqa/briefing.py): Markdown whose
document text is already escaped, rendered with Gradio's HTML sanitizer on, shown raw for
copying, and offered as .md and Word (.docx) downloads.

The example questions come from the knowledge base (``KnowledgeBase.example_questions``, on
each page load) and are asked on click. The page's wording is Chinese or English
(web/i18n.py), switched by a button; the language lives in the session (``gr.State``) like the
conversation.

Both tabs ask the knowledge base chosen in the page's bar (shown only when the store holds more
than ``default``; its example questions follow the choice); questions can be narrowed by region
and date (kbcore.types.Filters).

One idea a file: ``layout`` (the page's components and how events are wired), ``events``
(what a question, an example, a briefing and a vote do), ``renderers`` (answers, sources,
briefings as the page shows them: escaped HTML), ``session`` (what the page keeps per visitor),
``assets`` (the page's CSS and script, real files beside it). Nothing is imported here.
"""
