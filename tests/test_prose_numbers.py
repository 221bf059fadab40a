"""Every run-specific number in a chapter's prose comes from the run (glued or printed).

The rule, on the markdown cells of every chapter (their .py twins):

- a number that reads like a measured result — a decimal (``0.914``), a signed difference
  (``+0.18``, ``−0.09``), a multiple (``2.6 times``) — must not be typed into the prose
  (whole multiples such as "4× the positions" are the arithmetic of shapes, and pass);
- allowed are: numbers inside code spans, mathematics and links (a ``{glue:text}`` role's
  target is a code span: that is how a run's number gets into a sentence); numbers in a
  sentence that cites its source (``{cite:p}``, a URL, an authors' repository
  ``owner/name``); headings and the "Expected run time" line (measured by
  ``benchmarks/notebook_times.py``, rendered in the performance page); an unsigned number
  that the chapter's code writes as a literal (a setting, or a threshold the chapter
  asserts) — a signed difference or a multiple never counts as a setting;
- and the constants listed in ``ALLOWED``, each with the reason it cannot change from one
  run to the next.

CONTRIBUTING.md ("Numbers in the prose") says the same for contributors.
"""

import re
from pathlib import Path

import jupytext
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))

RESULT = re.compile(r"(?<![\w.,/])(?:[+\-−±]\s?)?\d+\.\d+(?:\s*(?:times\b|×))?(?!\d)")
HIDDEN = re.compile(
    r"`[^`]*`"  # code spans, and the targets of glue roles
    r"|\$[^$]*\$"  # mathematics
    r"|\{doc\}`[^`]*`|\[[^\]]*\]\([^)]*\)|<https?://[^>]*>"  # links
)
OUR_FILES = r"(?:benchmarks|course_lib|notebooks|tests|book|tools)/"
CITED = re.compile(
    rf"\{{cite:[pt]\}}|https?://|`(?!{OUR_FILES})[\w-]+/[\w.-]+`"
)  # a paper, a web page, an authors' repository
NOT_A_SETTING = re.compile(r"^[+\-−±]|times|×")

#: Constants of the architecture or of a definition: (chapter, number) -> why it is fixed.
ALLOWED = {
    ("02", "102.8"): "25,088 × 4,096 + 4,096 weights of VGG16's first FC layer",
    ("02", "15.5"): "VGG16's multiply-accumulates at 224 px, counted in section 4",
    ("03", "2.5"): "3,136² × 256 weights of a fully connected map: arithmetic",
    ("04", "2.36"): "9 × 512 × 512 + 512 weights of a 3×3 convolution",
    ("04", "0.5"): "sigmoid(0): an untrained gate's value",
    ("04", "500×"): "1/512: the average of 512 softmax gates",
    ("05", "0.01"): "the BatchNorm momentum of the authors' code (a setting)",
    ("07", "2.3"): "28 × 28 × 768 float32 values: arithmetic",
    ("10", "0.25 ×"): "the tutorial's constant alpha: the cell asserts the ratio",
    ("10", "0.46"): "the gates' parameters at full width, asserted by the chapter",
    ("10", "15.18"): "AttnVGG's parameters at full width, asserted by the chapter",
    ("11", "1.5 times"): "the threshold of course_lib.saliency.verdicts (a setting)",
    ("12", "0.5"): "a cell half covered by lesion: a definition",
}


def sentences(text: str) -> list[str]:
    return re.split(r"(?<=[.!?:;])\s+(?=[A-Z(*])|\n\s*\n|\n(?=\s*[-|#])", text)


def literals(code: str) -> set[str]:
    """The numbers the code writes (settings, asserted thresholds); comments left out."""
    return set(re.findall(r"\d+\.\d+|\d+", re.sub(r"#[^\n]*", "", code)))


def typed_numbers(markdown: list[str], code: str, chapter: str) -> list[tuple]:
    """``(number, sentence)`` for each result-like number typed into ``markdown``."""
    known, found = literals(code), []
    for cell in markdown:
        for sentence in sentences(cell):
            if sentence.lstrip().startswith(("#", "**Expected run time")):
                continue
            if CITED.search(sentence):
                continue
            for match in RESULT.finditer(HIDDEN.sub(" ", sentence)):
                token = " ".join(match.group(0).split())
                number = re.search(r"\d+(?:\.\d+)?", token).group(0)
                if (chapter, token) in ALLOWED or (chapter, number) in ALLOWED:
                    continue
                if number in known and not NOT_A_SETTING.search(token):
                    continue
                found.append((token, " ".join(sentence.split())[:160]))
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_run_specific_number_is_typed_into_the_prose(path):
    notebook = jupytext.read(path)
    markdown = [c.source for c in notebook.cells if c.cell_type == "markdown"]
    code = "\n".join(c.source for c in notebook.cells if c.cell_type == "code")
    typed = typed_numbers(markdown, code, path.stem[:2])
    assert not typed, (
        "glue these numbers from the run (course_lib.notebook.glue and {glue:text}), "
        f"cite their source, or list a true constant in ALLOWED: {typed}"
    )


@pytest.mark.parametrize(
    "sentence",
    [
        # the reader review's list (D14): numbers of one run, typed by hand
        "The model trained with it scored 0.914 with rulers and 0.910 without.",
        "In the book's run the detector's Grad-CAM put 2.6 times a random map's energy.",
        "Attention pooling found the same patient better (mAP +0.18), the class worse (−0.09).",
        "Its energy on the lesion ranged from 0.17 to 2.8 times the random map's.",
        "The ink added between 0.05 and 0.06 AUC for the model trained with it.",
    ],
)
def test_the_rule_catches_the_reviews_hand_typed_numbers(sentence):
    # a threshold of 0.05 in the code does not excuse a signed or multiple number, and
    # these sentences' numbers are not all settings
    assert typed_numbers([sentence], "EXPECT = {'x': 0.05}\nfigsize=(9, 2.6)", "99")


@pytest.mark.parametrize(
    "sentence, code",
    [
        ("The test AUC is {glue:text}`ch02_test_auc`, from this run.", ""),
        ("Focal loss uses $\\gamma = 2.0$ and `alpha=0.25`.", ""),
        ("The paper reports 0.914 on ISIC {cite:p}`jetley2018learn`.", ""),
        ("AttnMel's code (`SaoYan/IPMI2019-AttnMel`) uses momentum 0.01.", ""),
        ("We train with a learning rate of 0.001.", "OptimizerSpec(lr=0.001)"),
        ("### 8.1 Where the time goes", ""),
    ],
)
def test_the_rule_allows_glued_cited_and_set_numbers(sentence, code):
    assert not typed_numbers([sentence], code, "99")


def test_a_hand_typed_number_is_not_excused_by_our_own_benchmark_file():
    sentence = (
        "Over six trainings (`benchmarks/lesson_spread.py`) it put 0.09 on the lesion."
    )
    assert typed_numbers([sentence], "", "99")
