"""The page's style and script, kept as real files beside this one (read once, at import):
``page.css`` (answers, refusals, citations, the sources panel), ``sources.css`` and
``download.css`` (the HTML blocks' own templates), ``cite.js`` (a click on ``[n]`` brings its
source into view and flashes it). web/asgi.py passes CHAT_CSS and CHAT_HEAD to Gradio."""

from pathlib import Path

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
CHAT_HEAD = f"<script>\n{_read('cite.js')}</script>"
