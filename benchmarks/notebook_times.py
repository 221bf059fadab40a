"""How long each notebook takes to run in a profile, executed as the book executes it.

    python benchmarks/notebook_times.py --profile cpu [--notebooks 02 10] [--results DIR]

Each notebook runs top to bottom in a Jupyter kernel (``nbclient``) with ``COURSE_PROFILE``
set, in a scratch copy of ``notebooks/``: checkpoints of earlier runs under
``notebooks/runs/`` are not reused, so training cells are timed for real. The synthetic data
sets are cached between notebooks (``$COURSE_DATA_DIR``), as they are for a reader.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from records import describe_machine, machine_line, save_record  # benchmarks/records.py

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", required=True, choices=("smoke", "cpu", "gpu"))
    parser.add_argument("--notebooks", nargs="*", help="number prefixes to run (default: all)")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    parser.add_argument("--results", type=Path, help="also write the results as JSON into this folder")
    args = parser.parse_args(argv)
    os.environ["COURSE_PROFILE"] = args.profile
    import torch

    machine = describe_machine("cuda" if torch.cuda.is_available() else "cpu")
    print(machine_line(machine), f"profile {args.profile}")
    paths = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if args.notebooks:
        paths = [p for p in paths if p.name[:2] in args.notebooks]
    seconds = {}
    with tempfile.TemporaryDirectory(prefix="notebook-times-") as scratch:
        work = Path(scratch) / "notebooks"
        work.mkdir()
        for path in paths:
            shutil.copy(path, work / path.name)
        for path in paths:
            nb = nbformat.read(work / path.name, as_version=4)
            started = time.perf_counter()
            NotebookClient(nb, timeout=args.timeout, kernel_name="python3", resources={"metadata": {"path": str(work)}}).execute()
            seconds[path.stem] = round(time.perf_counter() - started, 1)
            print(f"{seconds[path.stem]:8.1f} s  {path.stem}", flush=True)
    print(f"{sum(seconds.values()):8.1f} s  total")
    record = {"machine": machine, "profile": args.profile, "seconds": seconds}
    save_record(args.results, f"notebook_times-{args.profile}.json", record)
    return record


if __name__ == "__main__":
    main()
