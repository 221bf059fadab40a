"""Checks of rendered pages in a real browser: Debian's chromium, driven by selenium.

``serve(folder)`` serves a folder on 127.0.0.1; ``browser()`` starts headless chromium;
``page_problems(driver, url, ...)`` loads one page and lists what a reader would see broken:
a Python traceback, a notebook page without executed output, an image that does not load, a
Colab link to the wrong notebook, formulas left as raw TeX or a MathJax fetched from the
network (the book must read offline). Used by tests/test_browser.py on the built book, and on
deliberately broken pages to show that each check fires.
"""

from __future__ import annotations

import functools
import http.server
import shutil
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WINDOW = (1280, 1000)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output clean
        pass


@contextmanager
def serve(folder: Path):
    """Serve ``folder`` over HTTP on a free port of 127.0.0.1; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def browser():
    """Headless chromium under selenium (no network access needed, a fresh profile)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        raise RuntimeError(
            f"{', '.join(missing)} not found: `make test` installs Debian's chromium and "
            "chromium-driver (apt-get install chromium chromium-driver)"
        )
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


# every image on the page, lazy ones included, settled (loaded or failed); returns the broken ones
_BROKEN_IMAGES = """
const done = arguments[arguments.length - 1];
const images = Array.from(document.images);
images.forEach(img => { img.loading = "eager"; });
Promise.all(images.map(img => img.complete ? Promise.resolve() :
    new Promise(resolve => { img.addEventListener("load", resolve); img.addEventListener("error", resolve); })))
  .then(() => done(images.filter(img => !(img.complete && img.naturalWidth > 0))
                         .map(img => img.getAttribute("src"))));
"""


# formulas on the page, how many MathJax typeset (waiting for it), and where MathJax came from
_MATH = """
const done = arguments[arguments.length - 1];
const formulas = document.querySelectorAll("span.math, div.math").length;
const sources = Array.from(document.scripts).map(s => s.src).filter(src => /mathjax/i.test(src));
const report = () => done({formulas: formulas, typeset: document.querySelectorAll("mjx-container").length,
                           sources: sources});
if (formulas && window.MathJax && MathJax.startup && MathJax.startup.promise) {
  MathJax.startup.promise.then(report, report);
} else { report(); }
"""


def math_problems(driver, url: str) -> list[str]:
    """Formulas left as raw TeX, or MathJax fetched from another site (the book must work offline)."""
    found = driver.execute_async_script(_MATH)
    problems = []
    if found["formulas"] and found["typeset"] == 0:
        problems.append(
            f"{found['formulas']} formulas shown as raw TeX (MathJax did not typeset them)"
        )
    origin = url.split("/", 3)[:3]
    foreign = [src for src in found["sources"] if src.split("/", 3)[:3] != origin]
    if foreign:
        problems.append(f"MathJax loaded from another site: {', '.join(foreign)}")
    return problems


def page_problems(
    driver, url: str, notebook: str | None = None, screenshot: Path | None = None
) -> list[str]:
    """What is wrong with the page at ``url``, as a list of sentences (empty: nothing).

    ``notebook`` is the stem (``10_attnvgg_melanoma``) when the page renders a notebook: it
    must then show executed output and link Colab to ``.../blob/main/notebooks/<stem>.ipynb``.
    Formulas must be typeset by a MathJax served from the book itself.
    """
    from selenium.webdriver.common.by import By

    driver.get(url)
    problems = math_problems(driver, url)
    text = driver.find_element(By.TAG_NAME, "body").get_attribute("innerText")
    if "Traceback (most recent call last)" in text:
        problems.append("shows a Python traceback")
    broken = driver.execute_async_script(_BROKEN_IMAGES)
    if broken:
        problems.append(f"images that do not load: {', '.join(map(str, broken))}")
    if notebook is not None:
        if not driver.find_elements(By.CSS_SELECTOR, ".cell_output"):
            problems.append("a notebook page without any executed output")
        links = [
            a.get_attribute("href")
            for a in driver.find_elements(
                By.CSS_SELECTOR, "a[href*='colab.research.google.com']"
            )
        ]
        expected = f"/blob/main/notebooks/{notebook}.ipynb"
        if not links:
            problems.append("no Colab link")
        wrong = [link for link in links if not link.endswith(expected)]
        if wrong:
            problems.append(
                f"Colab links that do not end with {expected}: {', '.join(wrong)}"
            )
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(screenshot))
    return problems


def search_results(driver, base_url: str, query: str, timeout: float = 30) -> list[str]:
    """The titles the book's search page lists for ``query`` (Sphinx searches in the browser)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(f"{base_url}/search.html?q={query}")
    # noqa: E731
    # Sphinx lists the results one by one and writes its summary line only after the
    # last (or "did not match any"): wait for that line, not for the first result
    finished = lambda d: any(
        (p.get_attribute("innerText") or "").strip()
        for p in d.find_elements(By.CSS_SELECTOR, "#search-results p.search-summary")
    )
    WebDriverWait(driver, timeout).until(finished)
    return [
        li.get_attribute("innerText").splitlines()[0]
        for li in driver.find_elements(By.CSS_SELECTOR, "#search-results ul.search li")
    ]
