"""Each chapter's ``cpu``-profile thresholds hold across the seeds and precisions measured.

``benchmarks/lesson_spread.py`` trains what the chapters train with several seeds, in float32
and in bf16, and records every quantity the chapters assert
(``benchmarks/results/lesson_spread-cpu.json``). A chapter's ``EXPECT`` must name only
quantities of that record, and each threshold must sit beyond the worst value measured: a
lower bound below the smallest, an upper bound (a name ending ", at most") above the largest.
So a lesson the book asserts is one that held in every measured run, not in one.
"""

import ast
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RECORD = ROOT / "benchmarks" / "results" / "lesson_spread-cpu.json"
sys.path.insert(0, str(ROOT / "benchmarks"))
from lesson_spread import AT_MOST, asserted_spread  # noqa: E402


def cpu_expectations(notebook: Path) -> dict:
    """The ``cpu`` entry of the notebook's ``EXPECT = {...}.get(profile.name)``, or {}."""
    for node in ast.walk(ast.parse(notebook.read_text())):
        if (
            isinstance(node, ast.Assign)
            and [getattr(t, "id", None) for t in node.targets] == ["EXPECT"]
            and isinstance(node.value, ast.Call)
        ):
            return ast.literal_eval(node.value.func.value).get("cpu", {})
    return {}


record = json.loads(RECORD.read_text())
CHAPTERS = sorted(record["asserted"])


def test_the_record_covers_at_least_three_seeds_in_each_precision():
    assert set(record["runs"]) == {"fp32", "bf16"}
    assert all(len(by_seed) >= 3 for by_seed in record["runs"].values())
    # the summary is what the runs say (no value edited by hand)
    assert asserted_spread(record["runs"]) == record["asserted"]


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_thresholds_sit_beyond_every_measured_run(chapter):
    (notebook,) = (ROOT / "notebooks").glob(f"{chapter}_*.py")
    expect = cpu_expectations(notebook)
    spread = record["asserted"][chapter]
    assert set(expect) == set(spread), (
        f"{notebook.name}: EXPECT and the record name different quantities"
    )
    for name, threshold in expect.items():
        if name.endswith(AT_MOST):
            assert threshold > spread[name]["max"], (name, threshold, spread[name])
        else:
            assert threshold < spread[name]["min"], (name, threshold, spread[name])


def test_cpu_expectations_reads_a_notebook(tmp_path):
    nb = tmp_path / "99_x.py"
    nb.write_text('EXPECT = {"cpu": {"a": 1.0}, "gpu": {}}.get(profile.name)\n')
    assert cpu_expectations(nb) == {"a": 1.0}
    nb.write_text("x = 1\n")
    assert cpu_expectations(nb) == {}


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_expectation_is_used_and_every_use_is_defined(chapter):
    """A renamed key fails here in a second, not in the book's chapter after minutes."""
    (notebook,) = (ROOT / "notebooks").glob(f"{chapter}_*.py")
    used = set(re.findall(r"EXPECT\[\s*[\"']([^\"']+)[\"']\s*\]", notebook.read_text()))
    assert used == set(cpu_expectations(notebook))
