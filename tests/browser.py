"""Open a page in Debian's headless Chromium (scripts/setup installs it) through Playwright,
as a reader would, and report what rendered.

`python -m tests.browser REPORT.html SCREENSHOT.png` writes a full-page screenshot.
"""

from __future__ import annotations

import dataclasses
import pathlib
import shutil
import sys
import tempfile

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps dialling Google on a closed network.
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@dataclasses.dataclass
class Rendered:
    """What the browser made of the page."""

    images: list[dict]  # alt and naturalWidth of every <img>
    text: str
    tables: list[str]  # the inner text of each <table>
    console_errors: list[str]
    failed_requests: list[str]


def chromium() -> str | None:
    """The browser's path, or None where it isn't installed."""
    return CHROMIUM if pathlib.Path(CHROMIUM).exists() else shutil.which("chromium")


def render(html_path: str, screenshot: str | None = None) -> Rendered:
    """Load the file, wait until it has loaded, and read it back; optionally screenshot it."""
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    failed: list[str] = []
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            profile, executable_path=chromium(), args=ARGS, headless=True,
            viewport={"width": 1200, "height": 900})
        try:
            page = browser.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("requestfailed", lambda r: failed.append(r.url[:200]))
            page.goto(pathlib.Path(html_path).resolve().as_uri(), wait_until="load")
            images = page.eval_on_selector_all(
                "img", "els => els.map(e => ({alt: e.alt, naturalWidth: e.naturalWidth,"
                " complete: e.complete}))")
            tables = page.eval_on_selector_all("table", "els => els.map(e => e.innerText)")
            text = page.inner_text("body")
            if screenshot:
                page.screenshot(path=screenshot, full_page=True)
        finally:
            browser.close()
    return Rendered(images, text, tables, errors, failed)


if __name__ == "__main__":
    page = render(sys.argv[1], sys.argv[2])
    print(f"{sys.argv[2]}: {len(page.images)} images, "
          f"{sum(i['naturalWidth'] == 0 for i in page.images)} broken, "
          f"{len(page.console_errors)} console errors")
