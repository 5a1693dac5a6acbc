"""The chat page and the widget in headless Chromium, against the real app on the seed KB."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

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


def test_chat_refuses_and_reports_bad_questions_in_the_conversation(page, js_errors, app_url):
    from playwright.sync_api import expect

    open_chat(page, app_url)
    page.get_by_text("锦州2024年的GDP是多少？").click()  # the example fills the textbox
    expect(page.locator("#kb-question textarea")).to_have_value("锦州2024年的GDP是多少？")
    page.locator("#kb-send").click()
    expect(page.locator("#kb-chat .message.bot").last).to_contain_text("没有找到")
    expect(page.locator("#kb-sources mark")).to_have_count(0)
    expect(page.locator("#kb-sources")).not_to_contain_text("数字锦州的味道")

    ask(page, "问" * 2500)  # longer than max_question_chars: a QuestionError, shown as a message
    expect(page.locator("#kb-chat .message.bot").last).to_contain_text("抱歉，这个问题无法处理")
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
