"""The built smoke book, read as a reader reads it: every page opened in headless Chromium.

A page fails when a resource (image, script, style, font) does not load, when it asks for anything outside the
book (the book must read offline), when an image is broken, when a glued value is empty, or when it shows a
Python traceback. Screenshots of every page are kept under the test's temporary folder (path printed on failure).

Chromium is Debian's package, installed by ``make test`` (the README's test command). Set ``FASHION_LIB_NO_BROWSER=1``
to skip this test on a machine where it cannot be installed.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Flags the workplace's probe found necessary: no sandbox as root, and no background traffic to Google's hosts.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(bool(os.environ.get("FASHION_LIB_NO_BROWSER")), reason="FASHION_LIB_NO_BROWSER is set"),
]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass


@pytest.fixture(scope="module")
def served_book(smoke_book):
    """The smoke book's HTML served on a free loopback port; yields the base URL and the HTML folder."""
    html = smoke_book.summary.html
    handler = functools.partial(_QuietHandler, directory=str(html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", html
    finally:
        server.shutdown()
        server.server_close()


def book_pages(html: Path) -> list[str]:
    """Every content page of the book (Sphinx's generated index and search pages excluded)."""
    pages = sorted(p.relative_to(html).as_posix() for p in html.rglob("*.html"))
    return [p for p in pages if p not in ("genindex.html", "search.html", "py-modindex.html")
            and not p.startswith("_")]


def check_page(page, url: str, base: str) -> list[str]:
    """Open ``url``; return the problems a reader would see."""
    problems: list[str] = []
    page.on("requestfailed", lambda r: problems.append(f"failed request {r.url} ({r.failure})"))
    page.on("response", lambda r: problems.append(f"HTTP {r.status} for {r.url}") if r.status >= 400 else None)
    page.on("request", lambda r: problems.append(f"request outside the book: {r.url}")
            if not r.url.startswith((base, "data:", "blob:", "about:")) else None)
    page.on("pageerror", lambda e: problems.append(f"JavaScript error: {e}"))
    page.goto(url, wait_until="networkidle")
    broken = page.eval_on_selector_all(
        "img", "imgs => imgs.filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)")
    problems += [f"broken image {src}" for src in broken]
    empty = page.eval_on_selector_all(
        ".pasted-text, .pasted-inline", "els => els.filter(e => e.textContent.trim() === '').length")
    if empty:
        problems.append(f"{empty} empty glued value(s)")
    text = page.inner_text("body")
    if "Traceback (most recent call last)" in text or "Error Traceback" in text:
        problems.append("a Python traceback is shown")
    return problems


def test_every_page_of_the_smoke_book_loads_offline_and_whole(served_book, tmp_path):
    if CHROMIUM is None:
        pytest.fail("Chromium is not installed: run the README's test command (make test), which installs Debian's "
                    "chromium, or set FASHION_LIB_NO_BROWSER=1")
    from playwright.sync_api import sync_playwright

    base, html = served_book
    pages = book_pages(html)
    assert "book/intro.html" in pages and "book/results/provenance.html" in pages
    shots = tmp_path / "screenshots"
    shots.mkdir()
    report: dict[str, list[str]] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        for rel in pages:
            page = context.new_page()
            problems = check_page(page, f"{base}/{rel}", base)
            page.screenshot(path=str(shots / (rel.replace("/", "__") + ".png")), full_page=False)
            page.close()
            if problems:
                report[rel] = problems
        browser.close()
    assert len(list(shots.glob("*.png"))) == len(pages)
    assert not report, f"pages with problems (screenshots in {shots}):\n" + "\n".join(
        f"{rel}: {'; '.join(p[:5])}" for rel, p in report.items())


def test_the_checker_catches_a_broken_image_and_an_empty_glue_value(served_book, tmp_path):
    """The browser check must be able to fail: a page with a missing image and an empty glued value."""
    if CHROMIUM is None:
        pytest.fail("Chromium is not installed (see the module docstring)")
    from playwright.sync_api import sync_playwright

    base, html = served_book
    bad = html / "_test_bad_page.html"
    bad.write_text('<html><body><img src="no-such.png"><span class="pasted-text"></span>'
                   '<pre>Traceback (most recent call last):</pre></body></html>')
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page()
            problems = check_page(page, f"{base}/_test_bad_page.html", base)
            browser.close()
    finally:
        bad.unlink()
    text = " | ".join(problems)
    assert "HTTP 404" in text and "broken image" in text
    assert "1 empty glued value" in text and "traceback" in text
