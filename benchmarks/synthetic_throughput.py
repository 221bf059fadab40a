"""How fast the synthetic lesion generator is, in one process and in several.

    python benchmarks/synthetic_throughput.py [--n 2000] [--size 96] [--workers 1 2] [--repeats 3] [--results DIR]

Each repeat generates the same set once per worker count, alternating (so a slow moment of a
shared machine hits every count alike), into fresh temporary folders, JPEG and PNG encoding
included as in real use; math libraries use one thread per process. It prints every run, the
medians and the speed-up of the largest worker count over one worker, and checks that every
worker count wrote the same bytes. Goals: 2,000 images at 96 px in under 20 s in one process;
at least 1.5x faster with 2 workers than with 1.
"""

import argparse
import filecmp
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

from records import describe_machine, machine_line, save_record  # noqa: E402  (benchmarks/records.py)

from course_lib.data import make_synthetic_lesions  # noqa: E402


def same_files(a: Path, b: Path) -> bool:
    names = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    if names != sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file()):
        return False
    return all(filecmp.cmp(a / name, b / name, shallow=False) for name in names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--results", type=Path, help="also write the results as JSON into this folder"
    )
    args = parser.parse_args()
    machine = describe_machine()
    print(f"{machine_line(machine)}, python {platform.python_version()}")
    seconds: dict[int, list[float]] = {w: [] for w in args.workers}
    identical = True
    for repeat in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            for workers in args.workers:
                started = time.perf_counter()
                make_synthetic_lesions(
                    Path(tmp) / f"w{workers}",
                    args.n,
                    args.size,
                    seed=repeat,
                    num_workers=workers,
                )
                seconds[workers].append(time.perf_counter() - started)
                print(
                    f"run {repeat + 1}, {workers} worker(s): {args.n} images at {args.size} px in "
                    f"{seconds[workers][-1]:.2f} s ({args.n / seconds[workers][-1]:.0f} images/s)"
                )
            identical &= all(
                same_files(Path(tmp) / f"w{args.workers[0]}", Path(tmp) / f"w{w}")
                for w in args.workers[1:]
            )
    medians = {w: statistics.median(s) for w, s in seconds.items()}
    one, most = min(args.workers), max(args.workers)
    speedup = medians[one] / medians[most]
    for workers, median in medians.items():
        print(
            f"median, {workers} worker(s): {median:.2f} s, {args.n / median:.0f} images/s"
        )
    print(
        f"{most} workers vs {one}: {speedup:.2f}x faster; the same bytes with every worker count: {identical}"
    )
    save_record(
        args.results,
        "synthetic_throughput.json",
        {
            "machine": machine,
            "n_images": args.n,
            "image_size": args.size,
            "runs_s": {str(w): [round(x, 2) for x in s] for w, s in seconds.items()},
            "median_s": {str(w): round(m, 2) for w, m in medians.items()},
            "images_per_s": {str(w): round(args.n / m, 1) for w, m in medians.items()},
            "speedup": round(speedup, 2),
            "identical_files": identical,
            "goal_s": 20.0,
            "goal_speedup": 1.5,
        },
    )


if __name__ == "__main__":
    main()
