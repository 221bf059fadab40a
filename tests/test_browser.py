"""The rendered book as a reader meets it, in headless chromium (tests/browser.py).

Every page of the smoke build is opened over HTTP: no traceback, every image loads, notebook
pages show executed output and link Colab to their own committed .ipynb; the search page
finds "attention". A screenshot of each page goes to _build/screenshots/. The checks are
themselves tested on pages broken on purpose.
"""

import base64
from pathlib import Path

import pytest
from book_build import SCREENSHOTS
from browser import browser, page_problems, search_results, serve

pytestmark = pytest.mark.slow

# Sphinx's generated index pages
SKIPPED_PAGES = {
    "genindex.html",
    "search.html",
    "py-modindex.html",
}


def _pages(html_root: Path) -> list[Path]:
    return sorted(
        p
        for p in html_root.rglob("*.html")
        if p.name not in SKIPPED_PAGES
        and not any(part.startswith("_") for part in p.relative_to(html_root).parts)
    )


@pytest.fixture(scope="module")
def site(built_book):
    with serve(built_book) as url, browser() as driver:
        yield built_book, url, driver


def test_every_page_renders_for_a_reader(site):
    html_root, url, driver = site
    pages = _pages(html_root)
    notebooks = sorted(
        p.stem
        for p in (Path(__file__).resolve().parents[1] / "notebooks").glob(
            "[0-9][0-9]_*.ipynb"
        )
    )
    assert {p.stem for p in pages} >= set(notebooks) | {
        "intro",
        "references",
        "performance",
        "glossary",
    }
    problems = {}
    for page in pages:
        relative = page.relative_to(html_root)
        notebook = page.stem if relative.parts[0] == "notebooks" else None
        found = page_problems(
            driver,
            f"{url}/{relative.as_posix()}",
            notebook=notebook,
            screenshot=SCREENSHOTS / relative.with_suffix(".png"),
        )
        if found:
            problems[str(relative)] = found
    assert not problems, problems
    assert (SCREENSHOTS / "book" / "intro.png").stat().st_size > 10_000
    assert (
        SCREENSHOTS / "notebooks" / "10_attnvgg_melanoma.png"
    ).stat().st_size > 10_000


@pytest.mark.parametrize("chapter", ["10_attnvgg_melanoma", "12_going_further"])
def test_math_is_typeset_offline(site, chapter):
    """MathJax comes from the book's own _static folder; the machine has no network to a CDN."""
    from selenium.webdriver.common.by import By

    html_root, url, driver = site
    assert (html_root / "_static" / "mathjax" / "tex-svg.js").stat().st_size > 1_000_000
    driver.get(f"{url}/notebooks/{chapter}.html")
    from browser import math_problems

    assert math_problems(driver, f"{url}/notebooks/{chapter}.html") == []
    assert len(driver.find_elements(By.CSS_SELECTOR, "mjx-container")) >= 3


def test_search_finds_attention(site):
    _, url, driver = site
    titles = search_results(driver, url, "attention")
    assert len(titles) >= 5, titles


# a 1x1 PNG, for the page that must pass
_PIXEL = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNk+A8AAQUBAScY42YAAAAASUVORK5CYII="
)


def test_the_checks_catch_what_a_reader_would_see_broken(tmp_path):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "pixel.png").write_bytes(_PIXEL)
    colab = "https://colab.research.google.com/github/o/r/blob/main/notebooks/{}.ipynb"
    (tmp_path / "notebooks" / "01_good.html").write_text(
        f'<html><body><a href="{colab.format("01_good")}">Colab</a><img src="../pixel.png">'
        '<div class="cell_output"><pre>42</pre></div></body></html>'
    )
    (tmp_path / "notebooks" / "02_bad.html").write_text(
        f'<html><body><a href="{colab.format("01_good")}">Colab</a><img src="../missing.png">'
        "<pre>Traceback (most recent call last):\n  ValueError</pre></body></html>"
    )
    (tmp_path / "notebooks" / "03_no_colab.html").write_text(
        '<html><body><div class="cell_output">1</div></body></html>'
    )
    (tmp_path / "raw_tex.html").write_text(
        '<html><body><span class="math notranslate">\\(x^2\\)</span></body></html>'
    )
    (tmp_path / "cdn_tex.html").write_text(
        '<html><head><script src="https://cdn.example.org/mathjax/tex-svg.js">'
        "</script></head><body><p>no formulas</p></body></html>"
    )
    with serve(tmp_path) as url, browser() as driver:
        assert (
            page_problems(driver, f"{url}/notebooks/01_good.html", notebook="01_good")
            == []
        )
        bad = " | ".join(
            page_problems(driver, f"{url}/notebooks/02_bad.html", notebook="02_bad")
        )
        assert "traceback" in bad
        assert "images that do not load: ../missing.png" in bad
        assert "without any executed output" in bad
        assert "do not end with /blob/main/notebooks/02_bad.ipynb" in bad
        assert page_problems(
            driver, f"{url}/notebooks/03_no_colab.html", notebook="03_no_colab"
        ) == ["no Colab link"]
        assert page_problems(driver, f"{url}/raw_tex.html") == [
            "1 formulas shown as raw TeX (MathJax did not typeset them)"
        ]
        assert page_problems(driver, f"{url}/cdn_tex.html") == [
            "MathJax loaded from another site: https://cdn.example.org/mathjax/tex-svg.js"
        ]
