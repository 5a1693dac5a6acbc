"""The chat page's 管理 tab and 👍/👎 in headless Chromium, against the real app on a knowledge
base of this module's own (the seed KB stays as it is)."""

from __future__ import annotations

import re
import sqlite3

import httpx
import pytest

from tests.web import test_chat_browser as chat_browser
from tests.web.test_chat_browser import ARTIFACTS, CHROMIUM, ask, open_chat

# The chat's browser fixtures (one Chromium per module, a fresh page per test), used here too.
browser, page, js_errors = chat_browser.browser, chat_browser.page, chat_browser.js_errors

KEY = "browser-admin-key-0123456789abcdef"
FACT = "# 丹东简介\n\n丹东的市花是杜鹃花。丹东位于辽宁省东南部，是中国海岸线北端的起点城市。\n"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install chromium fonts-noto-cjk)"),
]


@pytest.fixture(scope="module")
def admin_app(make_settings, embedder, start_app):
    from kbqa.knowledge_base import KnowledgeBase

    settings = make_settings(admin_key=KEY, rate_limit_per_minute=0)
    kb = KnowledgeBase(settings, embedder=embedder)
    kb.ensure_seeded()
    return start_app(kb), settings


def test_the_admin_tab_uploads_a_file_that_becomes_answerable(page, js_errors, admin_app, tmp_path):
    from playwright.sync_api import expect

    url, _ = admin_app
    upload = tmp_path / "丹东 简介.md"
    upload.write_text(FACT, encoding="utf-8")
    # Issue 21 §6: a visitor's page has no 管理 tab; the admin's address (/admin) has.
    open_chat(page, url)
    expect(page.get_by_role("tab", name="简报")).to_be_visible()
    expect(page.get_by_role("tab", name="管理")).to_have_count(0)
    redirect = httpx.get(url + "/admin", timeout=30)
    assert redirect.status_code == 307 and redirect.headers["location"] == "./?admin"
    page.goto(url + "/admin", wait_until="load")
    assert page.url == url + "/?admin"
    assert KEY not in page.content() and KEY not in httpx.get(url + "/config", timeout=30).text
    page.get_by_role("tab", name="管理").click()
    admin = page.locator("#kb-admin")
    admin.locator("input[type=password]").fill("not-the-key-000000000")
    admin.locator(".kb-admin-login button").click()
    expect(admin.locator(".kb-admin-msg")).to_have_text("密钥不正确")
    expect(admin.locator(".kb-admin-panel")).to_be_hidden()
    admin.locator("input[type=password]").fill(KEY)
    admin.locator(".kb-admin-login button").click()
    expect(admin.locator(".kb-admin-panel")).to_be_visible()
    expect(admin.locator(".kb-admin-login")).to_be_hidden()
    expect(admin.locator(".kb-admin-docs tbody tr")).to_have_count(1)  # the seed
    admin.locator(".kb-admin-upload input[type=file]").set_input_files(str(upload))
    admin.locator(".kb-admin-upload button").click()
    done = admin.locator(".kb-job-done")
    expect(done).to_contain_text("新增 uploads/丹东 简介.md", timeout=120_000)
    # Each job says when it was submitted and finished (two uploads of one file look apart).
    expect(done).to_contain_text(re.compile(r"^提交于 \d{4}/\d{1,2}/\d{1,2} \d{2}:\d{2}:\d{2} · 完成于 \d{4}/"))
    row = admin.locator(".kb-admin-docs tbody tr", has_text="uploads/丹东 简介.md")
    expect(row).to_contain_text("丹东简介")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "admin-upload.png"), full_page=True)

    page.get_by_role("tab", name="问答").click()
    ask(page, "丹东的市花是什么？")
    reply = page.locator("#kb-chat .message.bot").last
    expect(reply).to_contain_text("杜鹃花")
    expect(page.locator("#kb-sources")).to_contain_text("丹东简介")

    # Deleting it from the tab takes it out of the knowledge base again.
    page.get_by_role("tab", name="管理").click()
    asked: list[str] = []

    def answer(dialog, accept: bool) -> None:
        asked.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    page.once("dialog", lambda dialog: answer(dialog, False))  # a click alone deletes nothing
    row.locator("button.kb-admin-delete").click()
    page.wait_for_timeout(500)
    expect(admin.locator(".kb-admin-docs tbody tr")).to_have_count(2)
    assert asked == ["从知识库删除“丹东简介”（uploads/丹东 简介.md）？删除后不能撤销。"]
    page.once("dialog", lambda dialog: answer(dialog, True))
    row.locator("button.kb-admin-delete").click()
    expect(admin.locator(".kb-admin-msg")).to_contain_text("已删除")
    expect(admin.locator(".kb-admin-docs tbody tr")).to_have_count(1)
    assert js_errors == []


def test_the_admin_tab_speaks_the_pages_language(page, js_errors, admin_app):
    from playwright.sync_api import expect

    url, _ = admin_app
    page.goto(url + "/?admin", wait_until="load")
    page.locator("#kb-question textarea").wait_for()
    page.locator("#kb-lang").click()
    expect(page.locator("#kb-lang")).to_have_text("中文")
    page.get_by_role("tab", name="Admin").click()
    admin = page.locator("#kb-admin")
    expect(page.get_by_text("With the admin key")).to_be_visible()
    expect(admin.locator(".kb-admin-login button")).to_have_text("Sign in")
    expect(admin.locator("input[type=password]")).to_have_attribute("placeholder", "Admin key (KB_ADMIN_KEY)")
    admin.locator("input[type=password]").fill("not-the-key-000000000")
    admin.locator(".kb-admin-login button").click()
    expect(admin.locator(".kb-admin-msg")).to_have_text("Wrong key")
    admin.locator("input[type=password]").fill(KEY)
    admin.locator(".kb-admin-login button").click()
    expect(admin.locator(".kb-admin-docs thead")).to_contain_text("Ingested")
    expect(admin.locator(".kb-admin-docs button.kb-admin-delete").first).to_have_text("Delete")
    # Back to Chinese: the panel follows without a reload, the key still in the page's memory.
    page.locator("#kb-lang").click()
    page.get_by_role("tab", name="管理").click()
    expect(admin.locator(".kb-admin-docs thead")).to_contain_text("导入时间")
    expect(admin.locator(".kb-admin-reindex")).to_have_text("从来源重新索引")
    expect(admin.locator(".kb-admin-panel")).to_be_visible()
    assert js_errors == []


def test_a_thumb_under_an_answer_is_stored(page, js_errors, admin_app):
    from playwright.sync_api import expect

    url, settings = admin_app
    open_chat(page, url)
    ask(page, "锦州的“三个开放”是什么？")
    expect(page.locator("#kb-chat .message.bot").last).to_contain_text("开放数据资源")
    page.locator("#kb-chat button[aria-label='踩']").last.click()  # "Dislike" in the page's zh-CN
    db = settings.store / "feedback.sqlite3"
    for _ in range(50):
        if db.exists() and sqlite3.connect(db).execute("SELECT COUNT(*) FROM feedback").fetchone()[0]:
            break
        page.wait_for_timeout(100)
    rows = sqlite3.connect(db).execute("SELECT question, answer, vote FROM feedback").fetchall()
    assert rows[-1][0] == "锦州的“三个开放”是什么？" and "开放数据资源" in rows[-1][1] and rows[-1][2] == -1
    assert js_errors == []


def test_without_an_admin_key_the_page_has_no_admin_tab(page, js_errors, app_url):
    from playwright.sync_api import expect

    open_chat(page, app_url)
    expect(page.get_by_role("tab", name="简报")).to_be_visible()
    expect(page.get_by_role("tab", name="管理")).to_have_count(0)
    assert "kb-admin" not in httpx.get(app_url + "/config", timeout=30).text
    assert js_errors == []
