"""The chat page and the widget in headless Chromium, against the real app on the seed KB."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SEED_QUESTION = "锦州的“三个开放”是什么？"
TIMEOUT_MS = 30_000

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install chromium fonts-noto-cjk)"),
]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser) -> Iterator:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    yield page
    context.close()


@pytest.fixture
def js_errors(page) -> list[str]:
    """Uncaught exceptions in the page, collected while the test runs."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return errors


def open_chat(page, app_url: str) -> None:
    # "load" plus an element: Gradio keeps a connection open, so "networkidle" never comes.
    page.goto(app_url + "/", wait_until="load")
    page.locator("#kb-question textarea").wait_for()


def ask(page, question: str) -> None:
    page.locator("#kb-question textarea").fill(question)
    page.locator("#kb-send").click()


def test_chat_streams_a_cited_answer(page, js_errors, app_url):
    from playwright.sync_api import expect

    open_chat(page, app_url)
    ask(page, SEED_QUESTION)
    reply = page.locator("#kb-chat .message.bot").last
    expect(reply).to_contain_text("开放数据资源")
    expect(reply).to_contain_text("[1]")
    sources = page.locator("#kb-sources")
    expect(sources).to_contain_text("[1]")
    expect(sources).to_contain_text("数字锦州的味道")
    expect(sources.locator("mark", has_text="开放业务系统").first).to_be_visible()
    page.screenshot(path="/tmp/chat.png", full_page=True)
    assert js_errors == []


ARTIFACTS = Path(__file__).resolve().parents[2] / ".artifacts"  # screenshots for a person to look at


def in_view(page, selector: str) -> bool:
    return page.evaluate(
        """(sel) => { const r = document.querySelector(sel).getBoundingClientRect();
                      return r.top >= 0 && r.bottom <= window.innerHeight; }""", selector)


def test_each_mark_opens_its_source_and_every_answer_keeps_its_own(page, js_errors, app_url):
    from playwright.sync_api import expect

    page.set_viewport_size({"width": 1280, "height": 700})
    open_chat(page, app_url)
    ask(page, SEED_QUESTION)
    first = page.locator("#kb-chat .message.bot").first  # a locator is lazy: .last would be the next answer
    expect(first).to_contain_text("开放数据资源")
    ask(page, "华为与锦州在2017年签署了什么协议？")
    expect(page.locator("#kb-chat .message.bot")).to_have_count(2)
    expect(page.locator("#kb-sources .kb-turn")).to_have_count(2)  # newest first, both kept
    expect(page.locator("#kb-src-2-1")).to_contain_text("数字锦州的味道")
    # Back to the first answer: its [1] opens the first answer's passage, highlighted span and all.
    page.evaluate("document.querySelector('#kb-sources').scrollTop = 0")
    first.locator("a.kb-cite", has_text="[1]").first.click()
    source = page.locator("#kb-src-1-1")
    expect(source).to_have_class(re.compile("kb-flash"))
    expect(source.locator("mark", has_text="开放业务系统").first).to_be_visible()
    page.wait_for_timeout(800)  # the smooth scroll
    assert in_view(page, "#kb-src-1-1")
    assert page.url.endswith("/")  # the click did not navigate
    # The trash button starts over, on the server too: the next answer is the only one shown.
    page.locator("#kb-chat button[aria-label='清空对话']").click()
    expect(page.locator("#kb-sources .kb-turn")).to_have_count(0)
    ask(page, SEED_QUESTION)
    expect(page.locator("#kb-chat .message.bot")).to_have_count(1)
    expect(page.locator("#kb-sources .kb-turn")).to_have_count(1)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "chat-cited.png"))
    assert js_errors == []


def test_a_follow_up_in_the_page_is_answered_in_its_conversation(page, js_errors, app_url):
    from playwright.sync_api import expect

    open_chat(page, app_url)
    ask(page, SEED_QUESTION)
    replies = page.locator("#kb-chat .message.bot")
    expect(replies.first).to_contain_text("开放数据资源")
    ask(page, "其中第二个开放是什么？")
    expect(replies).to_have_count(2)
    second = replies.nth(1)
    expect(second).to_contain_text("鼓励企业利用锦州市非涉密类政务数据资源")
    # cited: each sentence of the answer (a run of adjacent ones since the fitted chooser) carries [1]
    expect(second.locator("a.kb-cite", has_text="[1]").first).to_be_visible()
    expect(page.locator("#kb-turn-2 .kb-q")).to_contain_text("理解为：锦州的开放数据资源是什么？")
    expect(page.locator("#kb-src-2-1")).to_contain_text("数字锦州的味道")
    # After the trash button there is nothing to follow up on.
    page.locator("#kb-chat button[aria-label='清空对话']").click()
    expect(page.locator("#kb-sources .kb-turn")).to_have_count(0)
    ask(page, "其中第二个开放是什么？")
    expect(page.locator("#kb-chat .kb-refusal")).to_have_count(1)
    assert js_errors == []


def test_a_refusal_looks_different_from_an_answer(page, js_errors, app_url):
    """Issue 21 §2: a refusal reads like any message (it was a faint grey), the sources panel
    shows the related passages it found, said not to be an answer (it showed the empty panel's
    "提问后，这里会列出…" under a question that was asked), and each message's accessible name
    is its text (it was "bot's message: <div class=…")."""
    from playwright.sync_api import expect

    open_chat(page, app_url)
    ask(page, "锦州2024年的GDP是多少？")
    reply = page.locator("#kb-chat .message.bot").last
    expect(reply.locator(".kb-refusal")).to_have_count(1)
    expect(reply.locator("a.kb-cite")).to_have_count(0)
    body_color = page.evaluate("getComputedStyle(document.querySelector('.gradio-container')).color")
    assert reply.locator(".kb-refusal").evaluate("e => getComputedStyle(e).color") == body_color
    turn = page.locator("#kb-turn-1")
    expect(turn.locator(".kb-related-note")).to_have_text("没有找到答案。以下是相关段落，仅供参考，不是答案：")
    expect(turn.locator(".kb-related .kb-source").first).to_contain_text("数字锦州的味道")
    expect(turn).not_to_contain_text("提问后")
    expect(turn.locator("mark, .kb-n")).to_have_count(0)  # nothing in it is cited
    labelled = page.locator("#kb-chat [aria-label^='回答：']")
    expect(labelled).to_have_count(1)
    assert labelled.get_attribute("aria-label").startswith("回答：抱歉，知识库中没有找到")
    expect(page.locator("#kb-chat [aria-label^='问题：']")).to_have_attribute("aria-label", "问题：锦州2024年的GDP是多少？")
    expect(page.locator("#kb-chat [aria-label*='<']")).to_have_count(0)
    expect(page.locator("#kb-chat [role=log]")).to_have_attribute("aria-label", "对话")
    assert js_errors == []


def test_failures_speak_and_the_question_stays(page, js_errors, seed_kb, start_app, monkeypatch):
    """Issue 21 §2: a failed request, filters no document meets and the app's 429 each get a
    sentence in the page's language, no bare "Error", and the question stays in its box."""
    from playwright.sync_api import expect

    # Tokens for the page's load and three questions; the fifth question meets the rate limit.
    url = start_app(seed_kb, seed_kb.settings.model_copy(update={"rate_limit_per_minute": 1, "rate_limit_burst": 4}))
    open_chat(page, url)
    box = page.locator("#kb-question textarea")
    with monkeypatch.context() as patched:
        patched.setattr(seed_kb, "ask_stream", lambda *a, **kw: (_ for _ in ()).throw(RuntimeError("internal")))
        ask(page, SEED_QUESTION)
        expect(page.locator("#kb-chat .message.bot").last.locator(".kb-problem")).to_have_text(
            "抱歉，回答这个问题时出了问题。问题还在输入框里，请稍后再点“发送”。")
    expect(box).to_have_value(SEED_QUESTION)
    page.get_by_text("筛选：地区、日期").click()
    region = page.locator("#kb-filter-region textarea, #kb-filter-region input").first
    region.fill("上海")
    region.press("Tab")
    page.locator("#kb-send").click()  # sent again as it stood
    expect(page.locator("#kb-chat .message.bot").last).to_have_text(
        "没有文档符合所选的筛选条件（地区：上海）。请放宽或清空筛选后再点“发送”，问题还在输入框里。")
    expect(box).to_have_value(SEED_QUESTION)
    region.fill("")
    region.press("Tab")
    page.locator("#kb-send").click()
    expect(page.locator("#kb-chat .message.bot").last).to_contain_text("开放数据资源")
    alert = page.locator("#kb-alert")
    busy = re.compile(r"^提问太频繁，服务器正忙。请等 \d+ 秒后再点“发送”，问题还在输入框里。$")
    for _ in range(4):  # until the bucket is empty (the page's own events take tokens too)
        ask(page, "锦州2024年的GDP是多少？")
        try:
            expect(alert).to_have_text(busy, timeout=5_000)
            break
        except AssertionError:
            continue
    expect(alert).to_have_text(busy)
    expect(box).to_have_value("锦州2024年的GDP是多少？")
    page.wait_for_timeout(500)
    for part in ("#kb-chat", "#kb-question", "#kb-sources"):
        assert not page.locator(part).get_by_text(re.compile(r"^\s*(错误|Error)\s*$")).is_visible(), part
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "chat-failures.png"))
    assert js_errors == []


def test_on_a_phone_the_sources_come_under_the_answer(page, js_errors, app_url):
    from playwright.sync_api import expect

    page.set_viewport_size({"width": 390, "height": 844})
    open_chat(page, app_url)
    expect(page.locator("#kb-examples button")).to_have_count(4)  # the page as it settles
    # Issue 21 §6: the question box and its button above the fold, under a chat as short as
    # its (no) messages; no floating "对话" label over the top message.
    assert in_view(page, "#kb-question textarea") and in_view(page, "#kb-send")
    expect(page.locator("#kb-chat [data-testid='block-label']")).to_have_count(0)
    ask(page, SEED_QUESTION)
    expect(page.locator("#kb-chat .message.bot").last).to_contain_text("开放数据资源")
    chat, send, sources = (page.locator(s).bounding_box() for s in ("#kb-chat", "#kb-send", "#kb-sources"))
    assert sources["y"] >= send["y"] + send["height"] - 1 >= chat["y"] + chat["height"] - 1
    assert sources["x"] < 40 and sources["width"] > 300  # full width, not a squeezed side column
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "chat-phone.png"), full_page=True)
    assert js_errors == []


def test_chat_refuses_and_reports_bad_questions_in_the_conversation(page, js_errors, app_url):
    from playwright.sync_api import expect

    open_chat(page, app_url)
    ask(page, "锦州2024年的GDP是多少？")
    expect(page.locator("#kb-chat .message.bot").last).to_contain_text("没有找到")
    expect(page.locator("#kb-sources mark")).to_have_count(0)  # related reading only: nothing cited
    expect(page.locator("#kb-sources .kb-related-note")).to_have_count(1)

    ask(page, "问" * 2500)  # longer than max_question_chars: a QuestionError, shown as a message
    expect(page.locator("#kb-chat .message.bot").last).to_contain_text("抱歉，这个问题无法处理")
    expect(page.locator("#kb-question textarea")).to_have_value("问" * 2500)  # kept, to be shortened
    assert js_errors == []


def test_an_example_from_the_knowledge_base_is_asked_on_click(page, js_errors, app_url, seed_kb):
    from playwright.sync_api import expect

    open_chat(page, app_url)
    offered = page.locator("#kb-examples button")
    # Filled on load from the knowledge base, not a fixed list (the buttons can be drawn a moment
    # before their words arrive: wait for the words).
    expect(offered).to_have_text(seed_kb.example_questions(4))
    first = offered.nth(1).inner_text().strip()
    offered.nth(1).click()  # one click asks: no textbox to fill, no send
    expect(page.locator("#kb-chat .message.user").last).to_contain_text(first)
    reply = page.locator("#kb-chat .message.bot").last
    expect(reply.locator("a.kb-cite", has_text="[1]").first).to_be_visible()
    expect(page.locator("#kb-src-1-1")).to_contain_text("数字锦州的味道")
    expect(page.locator("#kb-question textarea")).to_have_value("")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "chat-example.png"))
    assert js_errors == []


def refusal_badge(page) -> str:
    return page.evaluate(
        """() => getComputedStyle(document.querySelectorAll('#kb-chat .kb-refusal')[
                 document.querySelectorAll('#kb-chat .kb-refusal').length - 1], '::before').content"""
    )


def test_the_english_switch_rewords_the_page_and_answers_still_show(page, js_errors, app_url):
    from playwright.sync_api import expect

    open_chat(page, app_url)
    ask(page, SEED_QUESTION)
    expect(page.locator("#kb-chat .message.bot").last).to_contain_text("开放数据资源")
    page.locator("#kb-lang").click()
    expect(page.locator("#kb-send")).to_have_text("Send")
    expect(page.locator("#kb-lang")).to_have_text("中文")
    expect(page.get_by_role("tab", name="Ask")).to_be_visible()
    expect(page.get_by_role("tab", name="Briefing")).to_be_visible()
    expect(page.locator("#kb-question textarea")).to_have_attribute("placeholder", "Type a question and press Enter")
    expect(page.get_by_text("Example questions (click to ask)")).to_be_visible()
    expect(page.locator("#kb-turn-1 .kb-q")).to_contain_text("Q1: ")  # the sources panel, drawn again
    # An English question: the reply shows, in English, with the page's English badge.
    ask(page, "What was Jinzhou's GDP in 2024?")
    reply = page.locator("#kb-chat .message.bot").nth(1)
    expect(reply).to_contain_text("Sorry, the knowledge base holds nothing")
    expect(reply).to_contain_text("Related passages (not an answer)")
    assert refusal_badge(page) == '"No answer · "'
    # A Chinese question in the English page: answered and cited as ever, under "Q3".
    ask(page, "华为与锦州在2017年签署了什么协议？")
    expect(page.locator("#kb-chat .message.bot").nth(2).locator("a.kb-cite").first).to_have_attribute(
        "title", "Show source [1]")
    expect(page.locator("#kb-turn-3 .kb-q")).to_contain_text("Q3: 华为与锦州")
    page.get_by_role("tab", name="Briefing").click()
    expect(page.locator("#kb-brief-make")).to_have_text("Make briefing")
    expect(page.locator("#kb-brief-download")).to_contain_text("Download briefing (.md)")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "chat-english-brief.png"))
    page.get_by_role("tab", name="Ask").click()
    page.screenshot(path=str(ARTIFACTS / "chat-english.png"))
    page.locator("#kb-lang").click()  # and back
    expect(page.locator("#kb-send")).to_have_text("发送")
    expect(page.locator("#kb-turn-3 .kb-q")).to_contain_text("第 3 问：")
    ask(page, "锦州2024年的GDP是多少？")
    expect(page.locator("#kb-chat .kb-refusal")).to_have_count(2)
    assert refusal_badge(page) == '"未找到答案 · "'
    assert js_errors == []


def test_the_page_opens_in_english_with_lang_en(page, js_errors, app_url):
    from playwright.sync_api import expect

    page.goto(app_url + "/?lang=en", wait_until="load")
    expect(page.locator("#kb-send")).to_have_text("Send")
    expect(page.locator("#kb-examples button")).to_have_count(4)
    assert js_errors == []


def test_the_knowledge_base_selector_and_the_filters(page, js_errors, app_url, region_kbs, start_app):
    """The selector shows only when the store holds more than ``default``; the chosen knowledge
    base and the region filter decide what the answer draws on."""
    from playwright.sync_api import expect

    from tests.conftest import REGION_QUESTION

    open_chat(page, app_url)  # the seed app: default only
    expect(page.locator("#kb-select")).to_be_hidden()

    open_chat(page, start_app(region_kbs, region_kbs.settings.model_copy(update={"rate_limit_per_minute": 0})))
    expect(page.locator("#kb-select")).to_be_visible()
    page.get_by_text("筛选：地区、日期").click()  # opened first: its boxes are on the page before they are typed in
    page.locator("#kb-select input").click()
    page.get_by_role("option", name="regions").click()
    ask(page, REGION_QUESTION)
    expect(page.locator("#kb-chat .message.bot").last).to_contain_text("三百余家")
    expect(page.locator("#kb-sources")).to_contain_text("贵阳大数据产业园建设提速")

    region = page.locator("#kb-filter-region textarea, #kb-filter-region input").first
    region.fill("锦州")
    region.press("Tab")
    ask(page, REGION_QUESTION)
    expect(page.locator("#kb-chat .message.bot")).to_have_count(2)
    filtered = page.locator("#kb-chat .message.bot").last
    expect(filtered).to_contain_text("锦州")  # cited, or offered as related reading with a refusal
    expect(filtered).not_to_contain_text("三百余家")  # 贵阳's is filtered out
    page.screenshot(path="/tmp/chat-kbs.png")
    date_from = page.locator("#kb-filter-from textarea, #kb-filter-from input").first
    date_from.fill("2023-02-30")
    date_from.press("Tab")
    ask(page, REGION_QUESTION)
    expect(page.locator("#kb-chat .message.bot").last).to_contain_text("date_from")  # the reason, as a message
    assert js_errors == []


def test_widget_answers_and_expands_citations(page, js_errors, app_url):
    from playwright.sync_api import expect

    page.goto(app_url + "/widget", wait_until="load")
    page.locator(".fab").click()  # Playwright's CSS engine pierces the widget's open shadow root
    page.locator(".panel textarea").fill(SEED_QUESTION)
    page.locator(".panel textarea").press("Enter")
    answer = page.locator(".panel .a").last
    expect(answer).to_contain_text("开放数据资源")
    answer.locator(".cite", has_text="[1]").first.click()
    source = answer.locator(".src")
    expect(source).to_contain_text("数字锦州的味道")
    expect(source.locator("mark", has_text="开放业务系统").first).to_be_visible()
    page.screenshot(path="/tmp/widget.png")
    assert js_errors == []


@pytest.fixture(scope="module")
def other_origin(tmp_path_factory):
    """A plain page on another loopback port: ``url(app)`` serves one that embeds ``app``'s widget."""
    import http.server
    import threading

    root = tmp_path_factory.mktemp("site")
    handler = type("Site", (http.server.SimpleHTTPRequestHandler,), {
        "log_message": lambda *a: None,
        "__init__": lambda self, *a, **kw: http.server.SimpleHTTPRequestHandler.__init__(self, *a, directory=str(root), **kw),
    })
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"

    def url(app: str, name: str, attributes: str = "") -> str:
        (root / f"{name}.html").write_text(
            f'<!doctype html><meta charset="utf-8"><title>x</title><p>A page of another site.</p>'
            f'<script src="{app}/widget.js" defer{attributes}></script>', encoding="utf-8")
        return f"{base}/{name}.html"

    yield base, url
    server.shutdown()


def test_widget_on_another_origin_answers_when_allowed_and_fails_cleanly_when_not(
    page, js_errors, seed_kb, start_app, other_origin
):
    from playwright.sync_api import expect

    base, url = other_origin
    allowed = start_app(seed_kb, seed_kb.settings.model_copy(update={"rate_limit_per_minute": 0, "allowed_origins": [base]}))
    refused = start_app(seed_kb, seed_kb.settings.model_copy(update={"rate_limit_per_minute": 0}))
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    for app, name in ((allowed, "allowed"), (refused, "refused")):
        page.goto(url(app, name), wait_until="load")
        page.locator(".fab").click()
        page.locator(".panel textarea").fill(SEED_QUESTION)
        page.locator(".panel textarea").press("Enter")
        answer = page.locator(".panel .a").last
        if name == "allowed":
            expect(answer).to_contain_text("开放数据资源")
            answer.locator(".cite", has_text="[1]").first.click()
            expect(answer.locator(".src")).to_contain_text("数字锦州的味道")
        else:
            # The browser refused the reply: the visitor reads a kind sentence (not "Failed to
            # fetch"), the site owner finds in the console why and what to set (issue 21).
            expect(answer).to_have_text("暂时连不上问答服务，请稍后再试。")
    assert any("KB_ALLOWED_ORIGINS=" + base in line for line in console), console
    assert js_errors == []
    assert "KB_ALLOWED_ORIGINS" in httpx.get(refused + "/widget", timeout=30).text  # the demo says how


def test_the_host_pages_css_does_not_touch_the_widgets_host(page, js_errors, app_url, other_origin):
    # Issue 21: a page's "div { border: ... }" drew a stray mark around the widget's host element.
    base, url = other_origin
    page.goto(url(app_url, "hostile"), wait_until="load")
    page.add_style_tag(content="div { border: 7px solid red !important; padding: 9px; margin: 11px; }"
                               " #kbqa-widget { display: block; height: 40px; background: red; }")
    host = page.locator("#kbqa-widget")
    style = host.evaluate("e => { const s = getComputedStyle(e); return [s.borderTopWidth, s.paddingTop,"
                          " s.marginTop, s.backgroundColor, s.display]; }")
    assert style == ["0px", "0px", "0px", "rgba(0, 0, 0, 0)", "inline"], style
    assert host.bounding_box() is None or host.bounding_box()["height"] == 0
    page.locator(".fab").click()
    expect_visible = page.locator(".panel")
    assert expect_visible.is_visible()
    assert js_errors == []


def test_the_widgets_data_kb_names_the_knowledge_base_it_asks(page, js_errors, region_kbs, start_app, other_origin):
    from playwright.sync_api import expect

    from tests.conftest import REGION_QUESTION

    base, url = other_origin
    app = start_app(region_kbs, region_kbs.settings.model_copy(update={"rate_limit_per_minute": 0,
                                                                       "allowed_origins": [base]}))
    for name, attributes, expected in (("named", ' data-kb="regions"', "三百余家"), ("unnamed", "", "抱歉")):
        page.goto(url(app, name, attributes), wait_until="load")
        page.locator(".fab").click()
        page.locator(".panel textarea").fill(REGION_QUESTION)
        page.locator(".panel textarea").press("Enter")
        expect(page.locator(".panel .a").last).to_contain_text(expected)  # default holds nothing: a refusal
    assert js_errors == []


# --------------------------------------------------------------------------- escaping (XSS)
# Document text is untrusted: markup in it must reach the page as text, never as elements.
# Its own app and store, so the shared seed app's knowledge base stays as it is.

PAYLOADS = ['<script>window.__xss=1</script>', '<img src=x onerror="window.__xss=2">']
XSS_ARTICLE = (
    '网页安全<svg onload="window.__xss=3">测试说明\n\n'
    # One sentence holds both payloads: the answer quotes the answering sentence (issue 11).
    f"锦州数据开放平台的测试标记是{PAYLOADS[0]}这段文字，图片标记是{PAYLOADS[1]}这段文字。\n"
)
XSS_QUESTION = "锦州数据开放平台的测试标记是什么？"
MARKUP_QUESTION = '<img src=x onerror="window.__xss=4">是什么？'  # questions are echoed back
INJECTED_ELEMENTS = "img[src='x'], script:not([src]), svg[onload], [onerror]"


@pytest.fixture(scope="module")
def xss_url(make_settings, embedder, start_app, tmp_path_factory) -> str:
    from kbqa.knowledge_base import KnowledgeBase

    folder = tmp_path_factory.mktemp("xss-docs")
    (folder / "xss.txt").write_text(XSS_ARTICLE, encoding="utf-8")  # .txt: the markup stays text
    kb = KnowledgeBase(make_settings(), embedder=embedder)
    report = kb.ingest([str(folder)])
    assert report.added == ["xss.txt"], report
    answer = kb.ask(XSS_QUESTION)
    assert answer.found and all(p in answer.text for p in PAYLOADS), answer.text  # the markup is cited
    return start_app(kb)


def assert_not_executed(page, *containers: str) -> None:
    page.wait_for_timeout(300)  # time for an injected <img> to fail to load and fire onerror
    assert page.evaluate("typeof window.__xss") == "undefined"
    for container in containers:
        assert page.locator(container).locator(INJECTED_ELEMENTS).count() == 0, container


def test_document_markup_shows_as_text_in_the_chat(page, js_errors, xss_url):
    from playwright.sync_api import expect

    open_chat(page, xss_url)
    ask(page, XSS_QUESTION)
    reply = page.locator("#kb-chat .message.bot").last
    for payload in PAYLOADS:  # textContent holds the tags only if they are text, not elements
        expect(reply).to_contain_text(payload)
        expect(page.locator("#kb-sources")).to_contain_text(payload)
    expect(page.locator("#kb-sources")).to_contain_text('网页安全<svg onload="window.__xss=3">测试说明')
    ask(page, MARKUP_QUESTION)
    expect(page.locator("#kb-chat .message.bot")).to_have_count(2)
    expect(page.locator("#kb-chat .message.user").last).to_contain_text(MARKUP_QUESTION)
    assert_not_executed(page, "#kb-chat", "#kb-sources")
    assert js_errors == []


def test_document_markup_shows_as_text_in_the_widget(page, js_errors, xss_url):
    from playwright.sync_api import expect

    page.goto(xss_url + "/widget", wait_until="load")
    page.locator(".fab").click()
    page.locator(".panel textarea").fill(XSS_QUESTION)
    page.locator(".panel textarea").press("Enter")
    answer = page.locator(".panel .a").last
    for payload in PAYLOADS:
        expect(answer).to_contain_text(payload)
    answer.locator(".cite", has_text="[1]").first.click()
    source = answer.locator(".src")
    expect(source).to_contain_text(PAYLOADS[1])
    expect(source).to_contain_text('<svg onload="window.__xss=3">')
    page.locator(".panel textarea").fill(MARKUP_QUESTION)
    page.locator(".panel textarea").press("Enter")
    expect(page.locator(".panel .a")).to_have_count(2)
    expect(page.locator(".panel .q").last).to_have_text(MARKUP_QUESTION)
    assert_not_executed(page, ".panel")
    assert js_errors == []


def widget_ask(page, question: str) -> None:
    page.locator(".panel textarea").fill(question)
    page.locator(".panel textarea").press("Enter")


def test_widget_sends_its_conversation_and_shows_how_it_understood_a_follow_up(page, js_errors, app_url):
    import json

    from playwright.sync_api import expect

    page.goto(app_url + "/widget", wait_until="load")
    page.locator(".fab").click()
    with page.expect_request(lambda r: r.url.endswith("/api/ask")) as first:
        widget_ask(page, SEED_QUESTION)
    answers = page.locator(".panel .a")
    expect(answers.first).to_contain_text("开放数据资源")
    assert json.loads(first.value.post_data) == {"question": SEED_QUESTION, "history": []}
    first_answer = first.value.response().json()["answer"]
    with page.expect_request(lambda r: r.url.endswith("/api/ask")) as second:
        widget_ask(page, "其中第二个开放是什么？")
    expect(answers).to_have_count(2)
    assert json.loads(second.value.post_data) == {
        "question": "其中第二个开放是什么？",
        "history": [{"role": "user", "content": SEED_QUESTION}, {"role": "assistant", "content": first_answer}],
    }
    expect(answers.nth(1)).to_contain_text("鼓励企业利用锦州市非涉密类政务数据资源")
    expect(page.locator(".panel .understood")).to_have_text("理解为：锦州的开放数据资源是什么？")
    expect(page.locator(".panel .understood")).to_have_count(1)  # a question that stood alone: no line
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "widget-follow-up.png"))
    assert js_errors == []


def test_widget_keeps_its_conversation_within_the_apps_bounds(page, js_errors, make_settings, embedder, start_app):
    """A knowledge base that takes 2 earlier messages: the widget sends the last question and
    answer only, and every follow-up is answered (no 422 for too long a history)."""
    import json

    from playwright.sync_api import expect

    from kbqa.knowledge_base import KnowledgeBase

    kb = KnowledgeBase(make_settings(max_history_messages=2, rate_limit_per_minute=0), embedder=embedder)
    kb.ensure_seeded()
    page.goto(start_app(kb) + "/widget", wait_until="load")
    page.locator(".fab").click()
    questions = [SEED_QUESTION, "华为与锦州在2017年签署了什么协议？", "其中第二个开放是什么？"]
    bodies = []
    for question in questions:
        with page.expect_request(lambda r: r.url.endswith("/api/ask")) as request:
            widget_ask(page, question)
        expect(page.locator(".panel form button")).to_be_enabled()  # the reply is in
        bodies.append(json.loads(request.value.post_data))
    assert [len(b["history"]) for b in bodies] == [0, 2, 2]
    assert bodies[2]["history"][0] == {"role": "user", "content": questions[1]}
    expect(page.locator(".panel .a.err")).to_have_count(0)
    assert js_errors == []


@pytest.mark.parametrize("html_tag, script_tag, lang", [
    ('<html lang="en-US">', '<script src="/widget.js" defer></script>', "en"),
    ('<html lang="zh-CN">', '<script src="/widget.js" data-lang="en" defer></script>', "en"),
    ("<html>", '<script src="/widget.js" defer></script>', "zh"),
])
def test_widget_labels_follow_data_lang_or_the_pages_lang(page, js_errors, app_url, html_tag, script_tag, lang):
    from playwright.sync_api import expect

    # A page of the app's own origin, served by the browser itself: the widget's script and
    # answers come from the app.
    body = f'<!doctype html>{html_tag}<head><meta charset="utf-8"><title>x</title></head><body><p>x</p>{script_tag}</body></html>'
    page.route(app_url + "/embedding-page", lambda route: route.fulfill(body=body, content_type="text/html; charset=utf-8"))
    page.goto(app_url + "/embedding-page", wait_until="load")
    fab = page.locator(".fab")
    expect(fab).to_have_text({"en": "Ask", "zh": "问答"}[lang])
    fab.click()
    expect(page.locator(".panel form button")).to_have_text({"en": "Send", "zh": "发送"}[lang])
    expect(page.locator(".panel textarea")).to_have_attribute(
        "placeholder", {"en": "Ask a question, press Enter", "zh": "输入问题，回车发送"}[lang])
    widget_ask(page, "锦州2024年的GDP是多少？")
    expect(page.locator(".panel .a")).to_contain_text("抱歉")  # the answer speaks its question's language
    assert js_errors == []


def fonts_drawing(page, selector: str) -> set[tuple[str, bool]]:
    """The fonts Chromium drew ``selector``'s text with (DevTools' platform fonts): each
    family's name, and whether it is one of the page's web fonts (else the machine's)."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("DOM.enable")
    cdp.send("CSS.enable")
    root = cdp.send("DOM.getDocument", {"depth": -1})["root"]["nodeId"]
    node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
    fonts = cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
    return {(font["familyName"], font["isCustomFont"]) for font in fonts}


def test_the_english_page_is_english_in_one_font(page, js_errors, app_url, seed_kb):
    """Issue 21 §3: /?lang=en wrote the sources' Chinese placeholder, offered Chinese example
    questions, and drew semibold words ("Q&A", "Send") in two fonts."""
    from playwright.sync_api import expect

    page.goto(app_url + "/?lang=en", wait_until="load")
    expect(page.locator("#kb-send")).to_have_text("Send")
    expect(page.locator("#kb-sources")).to_have_text("Ask a question: the passages its answer cites are listed here.")
    offered = page.locator("#kb-examples button")
    expect(offered).to_have_count(4)
    english = [b.inner_text().strip() for b in offered.all()]
    assert english == seed_kb.example_questions(4, lang="en")
    assert all(q.isascii() for q in english), english
    page.evaluate("document.fonts.ready")
    for selector in ("#kb-send", "h1"):
        drawn = fonts_drawing(page, selector)  # was DejaVu Sans Bold (the machine's) with a few glyphs served
        assert drawn and all(served for _, served in drawn), (selector, drawn)
    offered.first.click()  # an English example is answered, with a citation
    expect(page.locator("#kb-chat .message.bot").last.locator("a.kb-cite").first).to_be_visible()
    page.locator("#kb-lang").click()  # in Chinese, the knowledge base's own (Chinese) questions
    expect(offered.first).to_have_text(seed_kb.example_questions(4)[0])
    assert js_errors == []
