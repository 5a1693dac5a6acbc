"""The embeddable widget: ``/widget.js`` (one script tag puts a chat button on any page) and
``/widget``, a demo page that embeds it."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse

STATIC_DIR = Path(__file__).resolve().parent / "static"

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
<p>Add the line above to any page: a “问答” button opens a panel that asks this server's
<code>POST /api/ask</code>. API documentation: <a href="/docs">/docs</a>.</p>
<script src="/widget.js" defer></script>
</body>
</html>
"""


def widget_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.api_route("/widget.js", methods=["GET", "HEAD"])
    def widget_js() -> FileResponse:
        return FileResponse(STATIC_DIR / "widget.js", media_type="text/javascript; charset=utf-8")

    @router.api_route("/widget", methods=["GET", "HEAD"], response_class=HTMLResponse)
    def widget_demo() -> str:
        return _WIDGET_DEMO

    return router
