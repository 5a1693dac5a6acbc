"""The page's style and script, kept as real files beside this one (read once, at import):
``page.css`` (answers, refusals, citations, the sources panel), ``sources.css`` and
``download.css`` (the HTML blocks' own templates), ``cite.js`` (a click on ``[n]`` brings its
source into view and flashes it), ``status.js`` (a question the server refused or never got,
said in a sentence; the messages' accessible names as text). web/asgi.py passes CHAT_CSS,
CHAT_HEAD and CHAT_THEME to Gradio."""

import json
from pathlib import Path

import gradio as gr

from web.i18n import LANGUAGES, TEXTS

_HERE = Path(__file__).resolve().parent


def _read(name: str) -> str:
    return (_HERE / name).read_text(encoding="utf-8")


DOWNLOAD_CSS = _read("download.css")
SOURCES_CSS = _read("sources.css")
CHAT_CSS = _read("page.css") + "".join(  # a refusal's badge, in the page's language when it was shown (Gradio strips data-*)
    f'#kb-chat .kb-refusal.kb-ui-{lang}::before {{ content: "{TEXTS[lang]["refusal_badge"]} · "; }}\n'
    for lang in LANGUAGES
)
# status.js's wording, both languages (web/i18n.py); "</" can't end the script early.
_STATUS_WORDS = ("busy", "unavailable", "offline", "not_sent", "answer_said", "question_said", "chat_label")
_WORDS = json.dumps({lang: {k: TEXTS[lang][k] for k in _STATUS_WORDS} for lang in LANGUAGES}, ensure_ascii=False)
CHAT_HEAD = (
    f"<script>\n{_read('cite.js')}</script>\n"
    "<script>\nconst KB_WORDS = " + _WORDS.replace("</", "<\\/") + f";\n{_read('status.js')}</script>"
)

# Gradio's default theme with its text font's weights 400 and 700: the SemiBold (600) file it
# ships (static/fonts/SourceSansPro, 5 KB) holds a handful of glyphs, so every semibold label
# (the Send button, headings, the active tab) was drawn mostly in DejaVu Sans Bold with a few
# letters ("Q&") in Source Sans. A 600 now takes the full Bold face, the weight nearest above.
# Chinese text falls to the CJK font the page's machine has (fonts-noto-cjk), as before.
CHAT_THEME = gr.themes.Default(
    font=(gr.themes.LocalFont("Source Sans Pro", weights=(400, 700)), "ui-sans-serif", "system-ui", "sans-serif")
)
