"""Write each notebook's "Expected run time" line from the measured notebook times.

    python tools/run_times.py          # rewrite the lines in notebooks/*.py, then `make sync`
    python tools/run_times.py --check  # exit 1 when a notebook's line differs (as the tests do)

The figures come from ``benchmarks/results/notebook_times-smoke.json``,
``notebook_times-cpu-fp32.json`` and, where a GPU measured it, ``notebook_times-gpu.json``
(``benchmarks/notebook_times.py``), never from memory; the line names the machine and the
precision they were measured with. A notebook says its
lesson-specific notes (what it trains, what it reuses) on the lines after this one.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
MARK = "# **Expected run time**"
SOURCES = {"smoke": "notebook_times-smoke.json", "cpu": "notebook_times-cpu-fp32.json"}
# optional: only where a GPU was lent to measure it
GPU_SOURCE = "notebook_times-gpu.json"


def about(seconds: float) -> str:
    """A rounded duration: to 5 s under a minute and a half, to half minutes above."""
    if seconds < 90:
        return f"about {max(5, 5 * round(seconds / 5))} s"
    minutes = round(seconds / 30) / 2
    return f"about {minutes:g} min"


def load_times() -> dict[str, dict]:
    records = {
        profile: json.loads((RESULTS / name).read_text())
        for profile, name in SOURCES.items()
    }
    if (RESULTS / GPU_SOURCE).is_file():
        records["gpu"] = json.loads((RESULTS / GPU_SOURCE).read_text())
    return records


def gpu_part(stem: str, record: dict | None) -> str:
    """The line's `gpu` entry: the measured time and what measured it, or "not measured yet"."""
    if record is None or stem not in record["seconds"]:
        return "`gpu` not measured yet"
    gpu = record["machine"]["gpu"].replace("NVIDIA ", "")
    start = "from scratch" if record.get("pretrained") is False else "ImageNet weights"
    return f"`gpu` {about(record['seconds'][stem])} (one {gpu}, bf16, {start})"


def run_time_line(stem: str, records: dict[str, dict]) -> str:
    """The line for notebook ``stem`` (e.g. ``10_attnvgg_melanoma``)."""
    cpu = records["cpu"]["machine"]
    bf16 = "with" if cpu.get("native_bf16") else "without"
    machine = f"{cpu['cores']} cores of an {cpu['cpu']} {bf16} native bf16, in float32"
    times = " · ".join(
        f"`{profile}` {about(records[profile]['seconds'][stem])}" for profile in SOURCES
    )
    return (
        f"{MARK} ({machine}; {{doc}}`../book/performance`): {times} · "
        f"{gpu_part(stem, records.get('gpu'))}."
    )


def notebook_lines(path: Path) -> list[int]:
    return [
        i
        for i, line in enumerate(path.read_text().splitlines())
        if line.startswith(MARK)
    ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report differences")
    args = parser.parse_args(argv)
    records, stale = load_times(), []
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py")):
        lines = path.read_text().splitlines(keepends=True)
        (index,) = notebook_lines(path)
        wanted = run_time_line(path.stem, records) + "\n"
        if lines[index] != wanted:
            stale.append(path.name)
            lines[index] = wanted
            if not args.check:
                path.write_text("".join(lines))
    if stale:
        verb = "differ" if args.check else "rewritten (now run `make sync`)"
        print(f"run-time lines {verb}: {', '.join(stale)}")
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
