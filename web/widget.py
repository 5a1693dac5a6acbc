"""The embeddable widget: ``/widget.js`` (one script tag puts a chat button on any page) and
``/widget``, a demo page that embeds it."""

from __future__ import annotations

import json
import re
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

STATIC_DIR = Path(__file__).resolve().parent / "static"
# The script's line that holds the history bounds; the served script carries the app's own.
_LIMITS = re.compile(r"var LIMITS = \{[^}\n]*\}; // filled in by web/widget\.py")

_WIDGET_DEMO = """<!doctype html>
<html lang="zh-CN">
<head><meta charset="utf-8"><title>问答小部件示例</title>
<style>body{font-family:system-ui,sans-serif;max-width:42rem;margin:3rem auto;line-height:1.6;padding:0 1rem}
code,pre{background:#f4f4f5;border-radius:4px;padding:.1rem .3rem}</style></head>
<body>
<h1>问答小部件示例</h1>
<p>把下面这一行放进任意网页，右下角就会出现“问答”按钮；问题发送到脚本所在服务器的
<code>/api/ask</code>，答案中的 [n] 可点击展开引用原文。</p>
<pre>&lt;script src="http://HOST:PORT/widget.js" defer&gt;&lt;/script&gt;</pre>
<p>加上 <code>data-kb="NAME"</code> 即询问名为 NAME 的知识库（默认 default）。</p>
<h2>允许你的网站</h2>
<p>浏览器只让服务器明确允许的网站读取答案。启动应用前，把放小部件的网站的源（协议、主机和端口，不带路径）
写进 <code>KB_ALLOWED_ORIGINS</code>，多个用逗号分隔，例如：</p>
<pre>KB_ALLOWED_ORIGINS=https://www.example.com,https://example.com python app.py</pre>
<p>未被允许的网站上，访客会看到“暂时连不上问答服务”，浏览器控制台会说明原因和要设置的值。</p>
<p>Add the line above to any page: a “问答” button opens a panel that asks this server's
<code>POST /api/ask</code> (<code>data-kb="NAME"</code> asks knowledge base NAME). API documentation:
<a href="/docs">/docs</a>.</p>
<p><strong>Allow your site.</strong> Browsers let a page read the answers only when this server allows
the page's origin (scheme, host and port, no path): list it in <code>KB_ALLOWED_ORIGINS</code>
(comma-separated) before starting the app, e.g.
<code>KB_ALLOWED_ORIGINS=https://www.example.com python app.py</code>. On a site that is not allowed,
visitors read that the service can't be reached, and the browser console tells the site owner why
and what to set.</p>
<script src="/widget.js" defer></script>
</body>
</html>
"""


def widget_script(max_history_messages: int, max_history_chars: int) -> str:
    """static/widget.js with these bounds on the conversation it sends (the app's settings:
    a widget that sent more would get a 422 on its next follow-up)."""
    script = (STATIC_DIR / "widget.js").read_text(encoding="utf-8")
    limits = json.dumps({"messages": max_history_messages, "chars": max_history_chars})
    script, found = _LIMITS.subn(lambda _: f"var LIMITS = {limits}; // filled in by web/widget.py", script)
    if found != 1:
        raise RuntimeError("static/widget.js has no LIMITS line for web/widget.py to fill in")
    return script


def widget_router(max_history_messages: int, max_history_chars: int) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    script = widget_script(max_history_messages, max_history_chars)

    @router.api_route("/widget.js", methods=["GET", "HEAD"])
    def widget_js() -> Response:
        return Response(script, media_type="text/javascript; charset=utf-8")

    @router.api_route("/widget", methods=["GET", "HEAD"], response_class=HTMLResponse)
    def widget_demo() -> str:
        return _WIDGET_DEMO

    return router
