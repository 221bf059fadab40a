"""Every run-time statement comes from the recorded measurements, and they keep the promise.

The records are written by ``benchmarks/notebook_times.py`` (``make bench``); the notebooks'
"Expected run time" lines by ``tools/run_times.py`` from those records. When a notebook is
added or becomes slower, re-measure and re-write the lines; these tests say which.
"""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"

RESULTS = ROOT / "benchmarks" / "results"
BUDGET_PER_NOTEBOOK_S = 5 * 60  # the cpu profile's promise, on 2 cores in float32
BUDGET_BOOK_S = 30 * 60


def _tool():
    spec = importlib.util.spec_from_file_location(
        "run_times", ROOT / "tools" / "run_times.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _stems():
    return sorted(p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.py"))


def test_every_notebook_was_measured_in_every_profile():
    tool = _tool()
    records = tool.load_times()
    for profile in tool.SOURCES:
        missing = set(_stems()) - set(records[profile]["seconds"])
        assert not missing, f"{profile}: no measured time for {sorted(missing)}"


def test_a_partial_gpu_record_says_why_each_notebook_is_missing():
    records = _tool().load_times()
    if "gpu" not in records:
        pytest.skip("no gpu notebook times recorded (no GPU measured them)")
    gpu = records["gpu"]
    missing = set(_stems()) - set(gpu["seconds"])
    assert missing == set(gpu.get("not_measured", {})), (
        "every notebook without a gpu time is listed, with a reason, under not_measured"
    )
    assert all(gpu["not_measured"].values())


def test_the_cpu_measurements_are_float32_on_two_cores():
    machine = json.loads((RESULTS / "notebook_times-cpu-fp32.json").read_text())
    assert machine["precision"] == "fp32" and machine["profile"] == "cpu"
    assert machine["machine"]["cores"] == 2


def test_the_cpu_profile_keeps_its_budget():
    seconds = _tool().load_times()["cpu"]["seconds"]
    over = {stem: s for stem, s in seconds.items() if s > BUDGET_PER_NOTEBOOK_S}
    assert not over, f"over 5 minutes in the cpu profile: {over}"
    assert sum(seconds.values()) <= BUDGET_BOOK_S


def test_each_notebook_states_its_measured_run_time():
    tool = _tool()
    records = tool.load_times()
    for stem in _stems():
        path = NOTEBOOKS / f"{stem}.py"
        lines = path.read_text().splitlines()
        stated = [line for line in lines if line.startswith(tool.MARK)]
        assert stated == [tool.run_time_line(stem, records)], (
            f"{path.name}: run `python tools/run_times.py` and `make sync`"
        )


def test_readme_states_the_measured_book_time():
    records = _tool().load_times()
    total = sum(records["cpu"]["seconds"].values())
    readme = (ROOT / "README.md").read_text()
    assert f"{round(total / 60)} minutes" in readme, (
        f"README should give the cpu book time measured: {round(total / 60)} minutes"
    )


def test_durations_are_rounded_as_a_reader_reads_them():
    about = _tool().about
    assert about(3.2) == "about 5 s" and about(16) == "about 15 s"
    assert about(89) == "about 90 s" and about(291) == "about 5 min"
    assert about(200) == "about 3.5 min"
