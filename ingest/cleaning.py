"""Turn a :class:`SourceDocument` into a clean :class:`kbcore.types.Document`.

Scraped pages (kinds ``text``/``markdown``/``html``) carry *site chrome*: phone banners,
breadcrumbs, "时间:…|来源:…" meta lines, keyword lists, view counters, copyright footers,
browser-upgrade notices. It is removed by general line classifiers, not by a list of one
site's strings, and mainly in the page's *head zone* (before the first body paragraph) and
*tail zone* (after the last one), so body paragraphs come through intact. Only a few
unmistakable kinds of chrome (copyright/ICP lines, browser notices, "当前位置" breadcrumbs,
full publish-meta lines) are also removed between body paragraphs.

Cleaned text layout: one paragraph per line, lines separated by a single ``"\\n"``, no
blank lines, no leading/trailing spaces on a line. Characters are otherwise unchanged
(chunk offsets index this text). ``jsonl`` records are already clean: only a leading
"<date> ，正文：" news prefix is cut (into the date). ``pdf``/``docx`` get the layout
normalisation and lose a date line among their first lines (into the date).
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from ingest.dates import parse_date
from ingest.records import SourceDocument
from kbcore.types import Document

__all__ = ["clean_document", "normalize_layout", "derive_title", "classify_line"]

# --------------------------------------------------------------------------- layout

_BLANKISH = re.compile(r"[\u200b\u200c\u200d\u2060\ufeff]")  # zero-width characters only


def normalize_layout(text: str) -> str:
    """One paragraph per line: strip each line, drop blank lines, single "\\n" between."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = []
    for line in text.split("\n"):
        line = line.strip()
        if line and _BLANKISH.sub("", line).strip():
            lines.append(line)
    return "\n".join(lines)


# --------------------------------------------------------------------------- line classifiers

_SENT_END = "。！？!?；;…"
_HAS_SENT_END = re.compile(r"[。！？!?；;…]")

_PHONE = re.compile(
    r"(?<![\d-])(?:\+?86[-\s]?)?(?:1[3-9]\d{9}|0\d{2,3}[-\s]?\d{7,8}|[48]00[-\s]?\d{3}[-\s]?\d{4}|\d{3,4}-\d{7,8})(?![\d-])"
)
_PHONE_WORDS = re.compile(
    r"在线咨询|在线客服|在线留言|咨询热线|服务热线|客服热线|投诉热线|咨询电话|联系电话|联系方式|全国热线|热线电话|"
    r"热线|电话|手机|客服|咨询|传真|座机|联系|Tel|Phone|Fax|QQ|微信|[:：\s|｜/,，、()（）+\-—]",
    re.I,
)
_PHONE_HARD_WORDS = re.compile(r"在线咨询|在线客服|咨询热线|服务热线|客服热线|全国热线|QQ|微信|400", re.I)

_BREADCRUMB_PREFIX = re.compile(
    r"^(?:当前位置|所在位置|您的位置|你的位置|您现在的位置|你现在的位置|您当前的位置|当前页面|当前页|位置)\s*[:：]"
)
_BREADCRUMB_SEP = re.compile(r"\s*(?:>>|->|→|>|＞|»|›|〉|/|／)\s*")
_HOME_WORDS = {"首页", "主页", "网站首页", "返回首页", "home", "首 页"}
_BREADCRUMB_TAIL_NOISE = {"正文", "详情", "内容", "详细内容", "正文内容", "文章详情", "浏览文章", "阅读文章"}

_META_FIELD = re.compile(
    r"(?:^|(?<=[\s|｜丨/·【\[(（]))"
    r"(?:发布时间|发布日期|更新时间|更新日期|时间|日期|文章来源|信息来源|稿件来源|新闻来源|来源|原文作者|作者|"
    r"发布者|发布人|发布单位|发布机构|责任编辑|编辑|审核|校对|供稿|摄影|记者|通讯员|浏览次数|浏览量|浏览|"
    r"点击数|点击量|点击率|点击|阅读量|阅读数|阅读|访问量|访问次数|人气|字号|"
    r"Posted|Author|Source|Date|Published|Updated|Views)\s*[:：]",
    re.I,
)
_DATE_ONLY = re.compile(
    r"^[\[【(（]?\s*(?:19|20)\d{2}\s*(?:[-/.]|年)\s*\d{1,2}\s*(?:[-/.]|月)\s*\d{1,2}\s*日?"
    r"(?:\s*(?:\d{1,2}:\d{2}(?::\d{2})?))?(?:\s*(?:星期|周)[一二三四五六日天])?\s*[\])）】]?$"
)
_KEYWORDS = re.compile(r"^(?:关键词|关键字|标签|tags?|keywords?|热门标签|文章标签)\s*[:：]", re.I)
_COPYRIGHT = re.compile(
    r"版权所有|版权归|版权声明|copyright|©|\(c\)\s*\d{4}|ICP\s*[备证]|公网安备|网安备|all rights reserved|"
    r"保留一切|保留所有权利|网站标识码|技术支持\s*[:：]|主办单位\s*[:：]|承办单位\s*[:：]|"
    r"未经.{0,12}(?:许可|授权|同意).{0,12}(?:转载|复制|使用)",
    re.I,
)
_BROWSER = re.compile(r"浏览器|browser", re.I)
_BROWSER_HINT = re.compile(
    r"不支持|建议|推荐|升级|下载|最佳|版本|分辨率|兼容|IE\s*\d|Chrome|Firefox|火狐|谷歌|Edge|Safari", re.I
)
_PREV_NEXT = re.compile(r"^(?:上一篇|下一篇|上一条|下一条|上一页|下一页|上篇|下篇|前一篇|后一篇)\s*[:：]?")
_NUMBER_ONLY = re.compile(r"^[\d\s.,:/%+\-|·]+$")
_LONE_LATIN = re.compile(r"^(?:[a-z][a-z'\-]{0,11}|[A-Z][A-Z'\-]{0,11})$")  # "news", "MORE"; not "Introduction"
_UI_WORDS = frozenset(
    """关闭 关闭窗口 关闭本页 返回 返回顶部 回到顶部 顶部 返回列表 返回首页 分享 分享到 一键分享 打印 打印本页 打印此页
    打印文章 收藏 加入收藏 收藏本页 设为首页 字号 大 中 小 默认 上一篇 下一篇 上一页 下一页 登录 注册 退出 扫一扫
    扫码 微信 微博 朋友圈 QQ空间 更多 更多>> 查看更多 首页 在线咨询 在线客服 在线留言 点赞 评论 举报 复制链接 阅读全文
    展开全文 相关阅读 相关文章 相关新闻 相关推荐 推荐阅读 热门文章 热门推荐 精彩推荐 猜你喜欢 网站地图 联系我们 关于我们
    免责声明 隐私政策 意见反馈 纠错 我要纠错 English 繁體 繁体 简体 无障碍 长者模式 适老化 搜索 全文检索 站内搜索
    【大】 【中】 【小】 [大] [中] [小] 大字 小字 分享至 转发 赞 踩 收起 展开 top TOP""".split()
)
_UI_SPLIT = re.compile(r"[\s|｜丨/·•、,，:：【】\[\]]+")

# Chrome kinds that are unmistakable anywhere in a page (not just head/tail zones).
_STRONG_KINDS = {"copyright", "browser", "breadcrumb-explicit", "meta-full"}
# Chrome kinds that start a tail "footer block": short lines after them are footer too.
_FOOTER_STARTERS = {"copyright", "browser", "keywords", "prevnext", "ui-related"}
# Chrome kinds that anchor a page header: short lines before them are nav / site name.
_HEADER_ANCHORS = {"breadcrumb", "breadcrumb-explicit", "meta", "meta-full"}


def _breadcrumb_items(line: str) -> list[str] | None:
    """Items of a breadcrumb line ("所在位置: 首页 > 营销资讯 > …"), or None if it isn't one."""
    if len(line) > 200:
        return None
    m = _BREADCRUMB_PREFIX.match(line)
    body = line[m.end():] if m else line
    items = [i.strip() for i in _BREADCRUMB_SEP.split(body)]
    items = [i for i in items if i]
    if m:
        return items
    if len(items) >= 2 and items[0].lower() in _HOME_WORDS and all(len(i) <= 40 for i in items):
        if _BREADCRUMB_SEP.search(body):
            return items
    return None


def _is_ui_line(line: str) -> bool:
    if len(line) > 40:
        return False
    tokens = [t for t in _UI_SPLIT.split(line.strip("【】[]()（）<>《》")) if t]
    if not tokens:
        return False
    return all(t in _UI_WORDS or t.strip("【】[]()（）") in _UI_WORDS for t in tokens)


def classify_line(line: str) -> str | None:
    """The chrome kind of one stripped line, or None when it looks like content.

    Kinds: phone, phone-hard, breadcrumb, breadcrumb-explicit, meta, meta-full, dateline,
    keywords, copyright, browser, prevnext, ui, ui-related, number, latin.
    """
    s = line.strip()
    if not s:
        return None
    # A bare date ("2024-06-01") is digits and dashes too: asked first, or it is a "number",
    # which is dropped without being read as the document's date.
    if _DATE_ONLY.match(s):
        return "dateline"
    if _NUMBER_ONLY.match(s) and any(c.isdigit() for c in s):
        return "number"
    if _LONE_LATIN.match(s):
        return "latin"
    if _is_ui_line(s):
        if re.search(r"相关|推荐|热门|猜你|上一|下一", s):
            return "ui-related"
        return "ui"
    items = _breadcrumb_items(s)
    if items is not None:
        return "breadcrumb-explicit" if _BREADCRUMB_PREFIX.match(s) else "breadcrumb"
    if _KEYWORDS.match(s) and len(s) <= 200:
        return "keywords"
    if len(s) <= 200 and _COPYRIGHT.search(s):
        return "copyright"
    if len(s) <= 200 and _BROWSER.search(s) and _BROWSER_HINT.search(s):
        return "browser"
    if _PREV_NEXT.match(s) and len(s) <= 100:
        return "prevnext"
    if len(s) <= 150 and not s.endswith(("。", "！", "？")):
        fields = _META_FIELD.findall(s)
        has_date = parse_date(s) is not None
        if len(fields) >= 2 and has_date:
            return "meta-full"
        if len(fields) >= 2:
            return "meta"
        if fields and (_META_FIELD.match(s) and len(s) <= 60 or has_date and len(s) <= 80):
            return "meta"
    if _PHONE.search(s) and len(s) <= 80:
        rest = _PHONE_WORDS.sub("", _PHONE.sub("", s))
        if len(rest) <= 6:
            return "phone-hard" if _PHONE_HARD_WORDS.search(s) else "phone"
    return None


def _is_body_like(line: str) -> bool:
    """A real paragraph: long enough and written in sentences/clauses."""
    s = line.strip()
    if len(s) < 20:
        return False
    if not re.search(r"[，。；！？、,;!?：:]|\.\s", s):
        return False
    letters = sum(1 for c in s if c.isalpha())
    return letters >= 10


def _is_heading_like(line: str, max_len: int = 60) -> bool:
    s = line.strip()
    return (
        2 <= len(s) <= max_len
        and not _HAS_SENT_END.search(s)
        and not s.endswith(("，", ",", "、", "：", ":"))
        and sum(1 for c in s if c.isalpha()) >= 2
    )


# --------------------------------------------------------------------------- markdown

_FRONT_MATTER = re.compile(r"\A---\n(.*?)\n(?:---|\.\.\.)\n", re.S)
_ATX_HEADING = re.compile(r"^(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
_SETEXT_UNDERLINE = re.compile(r"^(?:=+|-+)$")


def _prepare_markdown(text: str) -> tuple[str, set[int], str | None, str | None]:
    """Strip front matter and heading marks. Returns (text, heading line indexes, title, date)."""
    title = date = None
    text = text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\n")
    m = _FRONT_MATTER.match(text)
    if m:
        for fm_line in m.group(1).split("\n"):
            key, _, value = fm_line.partition(":")
            value = value.strip().strip("\"'")
            if key.strip().lower() == "title" and value:
                title = value
            elif key.strip().lower() in ("date", "published", "pubdate") and value:
                date = parse_date(value)
        text = text[m.end():]
    out: list[str] = []
    headings: set[int] = set()
    in_fence = False
    for raw in text.split("\n"):
        line = raw.strip()
        if line.startswith(("```", "~~~")):
            in_fence = not in_fence
            out.append(raw)
            continue
        if in_fence:
            out.append(raw)
            continue
        hm = _ATX_HEADING.match(line)
        if hm:
            if hm.group(2).strip():
                out.append(hm.group(2).strip())
                headings.add(len(out) - 1)
            continue
        if _SETEXT_UNDERLINE.match(line) and out and out[-1].strip() and len(line) >= 2:
            headings.add(len(out) - 1)
            continue
        out.append(raw)
    # re-index heading positions after blank-line removal happens in the caller
    return "\n".join(out), headings, title, date


# --------------------------------------------------------------------------- titles

_NEWS_PREFIX = re.compile(r"\A\s*([^。\n]{0,120}?)\s*[，,]\s*正文\s*[：:]\s*")
_ORIGINAL_TITLE = re.compile(r"^原标题\s*[:：]\s*")
# Wire datelines that open news copy: "新华社南京2月14日电（记者 赵久龙）", "科技日报讯 (记者冯志文)",
# "中国经济网北京8月3日讯", "央视网消息：".
_WIRE_DATELINE = re.compile(
    r"^[^，。,；;\s]{0,20}?(?:\d{1,2}月\d{1,2}日(?:电|讯|消息)|(?:网|报|社|台|刊)(?:讯|消息))"
    r"\s*[:：]?\s*(?:[(（][^)）]{0,30}[)）])?\s*"
)


def _first_sentence_title(text: str, limit: int = 60) -> str:
    s = text.strip()
    sentences = re.findall(r"[^。！？!?；;\n]+[。！？!?；;]*", s)
    if not sentences:
        return ""
    sent = sentences[0].strip()
    # a very short exclamation ("官宣！") is not a title on its own: take the next sentence too
    k = 1
    while len(sent.rstrip("。！？!?；;")) < 4 and k < len(sentences):
        sent += sentences[k].strip()
        k += 1
    sent = sent.rstrip("。！？!?；;").strip()
    rep = re.match(r"^(.{4,40}?)\1", sent)  # "标题标题 正文…" (title printed twice)
    if rep:
        sent = rep.group(1)
    if len(sent) <= limit:
        return sent.rstrip("，,、：:").strip()
    window = sent[:limit]
    cut = max(window.rfind(p) for p in "，,、；;：:（( ")
    if cut >= 8:
        return window[:cut].strip()
    return window.strip()


def derive_title(text: str, *, news: bool = False, limit: int = 60) -> str:
    """A title for text that has none.

    Policy-style texts open with the title inline ("江苏出台政策支持… 新华社南京2月14日电…"):
    take the leading segment before the first whitespace when it is a plausible title
    (4–60 chars, no sentence-final punctuation). Otherwise (and always for news) use the
    first sentence, shortened at a clause boundary to ``limit`` chars; wire datelines
    ("中新网广东新闻8月11日电 (记者 陈文)") and "原标题：" are skipped.
    """
    s = text.strip()
    if not s:
        return ""
    if not news:
        parts = s.split(None, 1)
        seg = parts[0]
        if len(parts) == 2 and 4 <= len(seg) <= limit and not _HAS_SENT_END.search(seg):
            return seg
    body = _ORIGINAL_TITLE.sub("", s, count=1)
    body = _WIRE_DATELINE.sub("", body, count=1) or body
    title = _first_sentence_title(body, limit)
    return title or _first_sentence_title(s, limit)


# --------------------------------------------------------------------------- chrome removal

def _remove_chrome(lines: list[str], heading_idx: set[int]) -> tuple[list[str], str | None, str | None]:
    """Drop chrome lines. Returns (kept lines, page title, page date)."""
    n = len(lines)
    kinds: list[str | None] = [None if i in heading_idx else classify_line(line) for i, line in enumerate(lines)]

    # verbatim repeats of an earlier line are chrome when the line is short or already chrome
    seen: dict[str, int] = {}
    repeat = [False] * n
    for i, line in enumerate(lines):
        key = re.sub(r"\s+", "", line)
        if key in seen and (len(key) <= 60 or kinds[seen[key]] is not None):
            repeat[i] = True
        else:
            seen.setdefault(key, i)

    body_idx = [i for i in range(n) if kinds[i] is None and not repeat[i] and _is_body_like(lines[i])]
    drop = [False] * n
    title: str | None = None
    title_idx: int | None = None

    if body_idx:
        head_end, tail_start = body_idx[0], body_idx[-1] + 1
    else:  # no paragraph at all: only clear-cut chrome goes, nothing is swept
        head_end, tail_start = n, 0

    # ---- head zone
    head = range(0, head_end)
    for i in head:
        if kinds[i] is not None or repeat[i]:
            drop[i] = True
    if body_idx:
        anchors = [i for i in head if kinds[i] in _HEADER_ANCHORS]
        # title: the line repeating the breadcrumb's last item, else the line before the first meta line
        crumbs = [i for i in head if kinds[i] in ("breadcrumb", "breadcrumb-explicit")]
        if crumbs:
            items = _breadcrumb_items(lines[crumbs[-1]]) or []
            items = [it for it in items if it not in _BREADCRUMB_TAIL_NOISE]
            if items:
                last = items[-1].rstrip(".…").strip()
                for i in range(crumbs[-1] + 1, head_end):
                    if kinds[i] is None and not repeat[i] and last and (lines[i] == last or (
                            items[-1].endswith(("...", "…")) and lines[i].startswith(last))):
                        title_idx = i
                        break
        if title_idx is None:
            metas = [i for i in head if kinds[i] in ("meta", "meta-full")]
            if metas:
                for i in range(metas[0] - 1, -1, -1):
                    if kinds[i] is None and not repeat[i]:
                        if _is_heading_like(lines[i]):
                            title_idx = i
                        break
        if title_idx is not None:
            title = lines[title_idx]
            drop[title_idx] = True
        if anchors:
            # everything short above the last header anchor is navigation / site name
            for i in range(0, anchors[-1]):
                if not drop[i] and len(lines[i]) <= 80 and not _HAS_SENT_END.search(lines[i]):
                    drop[i] = True

    # ---- tail zone (without any paragraph the head pass already covered every line)
    footer_started = False
    for i in range(tail_start, n) if body_idx else ():
        kind = kinds[i]
        if kind is not None:
            # a date line closing a document is usually its signature date; a plain
            # contact-phone line after the text is content unless the footer has begun
            if not (kind == "dateline" or (kind == "phone" and not footer_started)):
                drop[i] = True
            if kind in _FOOTER_STARTERS:
                footer_started = True
        elif repeat[i]:
            drop[i] = True
        elif footer_started and len(lines[i]) <= 60 and not _HAS_SENT_END.search(lines[i]):
            drop[i] = True  # link lists etc. inside the footer block

    # ---- middle: only unmistakable chrome
    for i in range(head_end, tail_start):
        if kinds[i] in _STRONG_KINDS:
            drop[i] = True

    # ---- date: header meta first, then any meta/dateline in the header, then footer meta
    date = None
    for pool in (
        [i for i in range(0, head_end) if kinds[i] in ("meta", "meta-full")],
        [i for i in range(0, head_end) if kinds[i] == "dateline"],
        [i for i in range(tail_start, n) if kinds[i] in ("meta", "meta-full")],
    ):
        for i in pool:
            date = parse_date(lines[i])
            if date:
                break
        if date:
            break

    kept = [line for i, line in enumerate(lines) if not drop[i]]
    return kept, title, date


# --------------------------------------------------------------------------- entry point

def _fallback_title(src: SourceDocument) -> str:
    if src.kind == "jsonl" or src.doc_id.startswith(("http://", "https://")):
        return src.doc_id
    name = PurePosixPath(src.doc_id).name
    for ext in (".jsonl.gz", ".markdown", ".html", ".htm", ".docx", ".txt", ".pdf", ".md"):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return name


LEADING_LINES = 6  # where a PDF or DOCX writes its date, under the title


def _take_leading_dateline(text: str) -> tuple[str, str | None]:
    """A date line among the first lines of a PDF or DOCX ("2023年8月5日", "发布时间：2023-08-05"),
    taken out of the text as its date: left in, the chunker took the short line for a section
    heading."""
    lines = text.split("\n")
    for i, line in enumerate(lines[:LEADING_LINES]):
        # chrome-shaped (a bare date, "发布时间：…", a meta line), not a sentence that has a date
        if classify_line(line) is not None and (date := parse_date(line)):
            return "\n".join(lines[:i] + lines[i + 1 :]), date
    return text, None


def _has_content(text: str) -> bool:
    return any(c.isalnum() for c in text)


def clean_document(src: SourceDocument) -> Document | None:
    """Clean one source document; None when nothing meaningful is left."""
    date = src.date
    title: str | None = src.title.strip() if src.title and src.title.strip() else None

    if src.kind == "jsonl":
        text = src.raw_text
        news = False
        m = _NEWS_PREFIX.match(text)
        if m:
            news = True
            date = date or parse_date(m.group(1))
            text = text[m.end():]
        text = normalize_layout(text)
        if not _has_content(text):
            return None
        if title is None:
            title = derive_title(text, news=news) or _fallback_title(src)
        return Document(doc_id=src.doc_id, title=title, text=text, source=src.source, date=date)

    if src.kind in ("pdf", "docx"):
        text, written_date = _take_leading_dateline(normalize_layout(src.raw_text))
        if not _has_content(text):
            return None
        # The date written on the page is the document's; the file's creation date (metadata)
        # is only when the file was made, so it comes second.
        date = written_date or date
        if title is None:
            first = text.split("\n", 1)[0]
            title = first if _is_heading_like(first) else (derive_title(text) or _fallback_title(src))
        return Document(doc_id=src.doc_id, title=title, text=text, source=src.source, date=date)

    # text / markdown / html: site chrome rules
    raw = src.raw_text
    md_title = md_date = None
    heading_idx: set[int] = set()
    if src.kind == "markdown":
        raw, md_heading_raw, md_title, md_date = _prepare_markdown(raw)
        # map raw-line heading indexes to indexes after blank-line removal
        heading_idx = set()
        j = 0
        for i, line in enumerate(raw.split("\n")):
            if line.strip() and _BLANKISH.sub("", line).strip():
                if i in md_heading_raw:
                    heading_idx.add(j)
                j += 1
    lines = normalize_layout(raw).split("\n")
    lines = [line for line in lines if line]
    kept, page_title, page_date = _remove_chrome(lines, heading_idx)
    text = "\n".join(kept)
    if not _has_content(text):
        return None

    date = date or md_date or page_date
    if md_title and title is None:
        title = md_title
    if title is None:
        title = page_title
    elif page_title and page_title in title:
        title = page_title  # "<title>Article - Site</title>" vs the page's own heading
    first = kept[0]
    if title is None:
        if _is_heading_like(first):
            title = first
        else:
            title = derive_title(text) or _fallback_title(src)
    elif len(kept) > 1 and first == title and src.kind == "html":
        # trafilatura keeps the <h1>; it is the title we already carry as metadata
        kept = kept[1:]
        text = "\n".join(kept)
    return Document(doc_id=src.doc_id, title=title, text=text, source=src.source, date=date)
