"""How long each notebook takes to run in a profile, executed as the book executes it.

    python benchmarks/notebook_times.py --profile cpu [--precision fp32|bf16] [--notebooks 02 10]
                                        [--results DIR] [--executed DIR]
    python benchmarks/notebook_times.py --profile cpu --precision fp32 --from-log BUILD.log

Each notebook runs top to bottom in a Jupyter kernel (``nbclient``) with ``COURSE_PROFILE`` set,
in order, in one scratch copy of ``notebooks/``: checkpoints of earlier runs under
``notebooks/runs/`` are not reused, while runs made by an earlier chapter of the same pass are,
as in the book (chapters 11–13 reuse chapter 10's model). The synthetic data sets are cached
between notebooks (``$COURSE_DATA_DIR``), as they are for a reader.

``--precision`` sets ``COURSE_AMP`` for the kernels: ``fp32`` turns mixed precision off (what a
CPU without native bfloat16 runs), ``bf16`` turns it on; without it, each machine does what
``course_lib.config.fast_mixed_precision`` decides. The record notes the CPU and whether it has
native bf16; it is written to ``notebook_times-<profile>[-<precision>].json``.

``--from-log`` reads the times from the log of a ``make book`` run on this machine instead
(Jupyter Book's "Executed notebook in S seconds" lines: the book's own execution, e.g. the
one ``.ci/run`` does on a fresh clone), so the README's figure can come from that very run;
with ``--profile smoke``, from the notebook tests' table of a ``make test`` log.
"""

from __future__ import annotations

import argparse
import os
import re
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
    parser.add_argument(
        "--precision", choices=("fp32", "bf16"), help="default: as the machine decides"
    )
    parser.add_argument(
        "--notebooks", nargs="*", help="number prefixes to run (default: all)"
    )
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    parser.add_argument(
        "--results", type=Path, help="also write the results as JSON into this folder"
    )
    parser.add_argument(
        "--from-log",
        type=Path,
        help="take the times from this make book log (same machine) instead of running",
    )
    parser.add_argument(
        "--executed",
        type=Path,
        help="also keep the executed notebooks, with their outputs, in this folder",
    )
    args = parser.parse_args(argv)
    os.environ["COURSE_PROFILE"] = args.profile
    if args.precision:
        os.environ["COURSE_AMP"] = "1" if args.precision == "bf16" else "0"
    import torch

    from course_lib.config import fast_mixed_precision, native_bf16

    device = "cuda" if torch.cuda.is_available() else "cpu"
    machine = describe_machine(device)
    machine["native_bf16"] = native_bf16(device)
    precision = args.precision or ("mixed" if fast_mixed_precision(device) else "fp32")
    print(
        machine_line(machine),
        f"profile {args.profile}, {precision}, native bf16: {machine['native_bf16']}",
    )
    suffix = f"-{args.precision}" if args.precision else ""
    filename = f"notebook_times-{args.profile}{suffix}.json"
    if args.from_log is not None:
        log = args.from_log.read_text()
        found = (
            re.findall(  # the book build (make book), or the notebook tests (make test)
                r"notebooks/(\d\d_\w+)\.ipynb: Executed notebook in ([\d.]+) seconds",
                log,
            )
            if args.profile != "smoke"
            else [
                (stem, t)
                for t, stem in re.findall(
                    r"^ +([\d.]+) s  notebooks/(\d\d_\w+)\.ipynb$", log, flags=re.M
                )
            ]
        )
        if not found:
            raise SystemExit(f"error: no executed notebook in {args.from_log}")
        record = {
            "machine": machine,
            "profile": args.profile,
            "precision": precision,
            "source": f"make book log ({args.from_log.name})",
            "seconds": {stem: round(float(t), 1) for stem, t in found},
        }
        save_record(args.results, filename, record)
        print(f"{sum(record['seconds'].values()):8.1f} s  total, from {args.from_log}")
        return record
    paths = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if args.notebooks:
        paths = [p for p in paths if p.name[:2] in args.notebooks]
    seconds, record = {}, {}
    with tempfile.TemporaryDirectory(prefix="notebook-times-") as scratch:
        work = Path(scratch) / "notebooks"
        work.mkdir()
        for path in paths:
            shutil.copy(path, work / path.name)
        for path in paths:
            nb = nbformat.read(work / path.name, as_version=4)
            started = time.perf_counter()
            client = NotebookClient(
                nb,
                timeout=args.timeout,
                kernel_name="python3",
                resources={"metadata": {"path": str(work)}},
            )
            client.execute()
            seconds[path.stem] = round(time.perf_counter() - started, 1)
            if args.executed is not None:
                args.executed.mkdir(parents=True, exist_ok=True)
                nbformat.write(nb, args.executed / path.name)
            print(f"{seconds[path.stem]:8.1f} s  {path.stem}", flush=True)
            # written after every notebook, so that a pass cut short keeps what it measured
            record = {
                "machine": machine,
                "profile": args.profile,
                "precision": precision,
                "seconds": seconds,
            }
            save_record(args.results, filename, record)
    print(f"{sum(seconds.values()):8.1f} s  total")
    return record


if __name__ == "__main__":
    main()
