"""What every chapter promises a reader, checked on the notebooks' text (their .py twins)."""

import re
import subprocess
from pathlib import Path

import jupytext
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
SECTIONS = (
    "**What you will learn**",
    "**Expected run time",
    "**Launch:**",
    "## Summary",
    "## Exercises",
    "## References",
)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_code_fits_the_page(path):
    """The book's code cells show 88 characters without scrolling sideways."""
    long = [
        line
        for cell in jupytext.read(path).cells
        if cell.cell_type == "code"
        for line in cell.source.split("\n")
        if len(line) > 88
    ]
    assert not long, long


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_chapter_has_its_parts(path):
    text = path.read_text()
    missing = [
        s
        for s in SECTIONS
        if s not in text and not (path.stem == "00_setup" and s == "## Exercises")
    ]
    assert not missing, missing
    number = path.stem[:2]
    assert f"/blob/main/notebooks/{path.stem}.ipynb" in text, (
        "the Colab link opens this notebook"
    )
    labels = re.findall(r":label: (\S+)", text)
    assert all(label.startswith(f"ex-{number}-") for label in labels), labels


def test_sources_are_named_and_the_brief_stays_outside():
    """Sources are named by what they are, never by the commissioning documents' numbers, and
    nothing points at the team's design brief, which contributors do not have."""
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    offending = []
    # "seed 004", "Seed004Module", "seed_images_per_s", "the seed model": the brief's
    # word for a source, in prose, names or record keys
    pattern = re.compile(
        r"seeds? ?00[0-4]|seed_images|seed[ _]models?\b"
        r"|the seed's (model|usage|code|module|loop)|COURSE\.md|\.\./shared",
        re.IGNORECASE,
    )
    for name in tracked:
        path = ROOT / name
        if (
            path.suffix
            not in {
                ".py",
                ".md",
                ".yml",
                ".toml",
                ".ipynb",
                ".bib",
                ".cfg",
                ".txt",
                ".json",
                "",
            }
            or not path.is_file()
        ):
            continue
        if path == Path(__file__):
            continue
        for number, line in enumerate(path.read_text(errors="ignore").splitlines(), 1):
            if pattern.search(line):
                offending.append(f"{name}:{number}: {line.strip()[:100]}")
    assert not offending, "\n".join(offending)
