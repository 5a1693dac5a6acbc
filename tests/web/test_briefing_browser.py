"""The 简报 tab in headless Chromium against the real app on the seed KB: the topic in, the
briefing rendered (footnote marks as superscripts, no links or images), the .md and the Word
file downloadable."""

from __future__ import annotations

from pathlib import Path

import docx
import pytest
from docx.oxml.ns import qn

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TOPIC = "锦州数字政府建设"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install chromium)"),
]


def test_briefing_tab(app_url, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
            page = context.new_page()
            page.set_default_timeout(30_000)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(app_url + "/", wait_until="load")
            page.locator("#kb-question textarea").wait_for()  # the chat tab is first and open
            page.get_by_role("tab", name="简报").click()
            page.locator("#kb-brief-topic textarea").fill(TOPIC)
            page.locator("#kb-brief-make").click()
            page.locator("#kb-brief sup").first.wait_for()
            view = page.locator("#kb-brief")
            assert view.locator("h1").inner_text() == f"简报：{TOPIC}"
            assert view.locator("li").count() >= 3
            assert view.locator("a, img, script, iframe").count() == 0
            assert "数字锦州的味道 · 2023-08-05" in view.inner_text()
            links = page.locator("#kb-brief-download a.kb-download")
            assert links.count() == 3
            with page.expect_download() as download:
                links.nth(0).click()  # a link to GET /api/brief.md
            assert download.value.suggested_filename == f"{TOPIC}.md"
            saved = tmp_path / "brief.md"
            download.value.save_as(saved)
            assert saved.read_text(encoding="utf-8").startswith(f"# 简报：{TOPIC}\n")
            with page.expect_download() as download:
                links.nth(1).click()  # a link to GET /api/brief.txt: the same briefing, no Markdown
            assert download.value.suggested_filename == f"{TOPIC}.txt"
            saved = tmp_path / "brief.txt"
            download.value.save_as(saved)
            plain = saved.read_text(encoding="utf-8")
            assert plain.startswith(f"简报：{TOPIC}") and "[^" not in plain and "\\" not in plain
            with page.expect_download() as download:
                links.nth(2).click()  # a link to GET /api/brief.docx
            assert download.value.suggested_filename == f"{TOPIC}.docx"
            saved = tmp_path / "brief.docx"
            download.value.save_as(saved)
            document = docx.Document(str(saved))
            assert document.paragraphs[0].text == f"简报：{TOPIC}"
            assert "关键数据" in [p.text for p in document.paragraphs if p.style.name == "Heading 1"]
            assert list(document.element.body.iter(qn("w:footnoteReference")))  # Word's own footnotes
            assert errors == []
        finally:
            browser.close()
