"""How fast the synthetic lesion generator is: images per second on one core.

    python benchmarks/synthetic_throughput.py [--n 2000] [--size 96] [--repeats 3] [--results DIR]

Goal (issue 3): 2,000 images at 96 px in under 20 s on one core. The benchmark pins itself to
one CPU (where the OS allows) and limits math libraries to one thread, writes each run into
a fresh temporary folder (JPEG and PNG encoding included, as in real use), and prints every
run and the median.
"""

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

from course_lib.data import make_synthetic_lesions  # noqa: E402
from records import describe_machine, machine_line, save_record  # noqa: E402  (benchmarks/records.py)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--results", type=Path, help="also write the results as JSON into this folder")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    machine = describe_machine()
    machine["cores"] = 1
    print(f"{machine_line(machine)}, python {platform.python_version()}")
    seconds = []
    for repeat in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            make_synthetic_lesions(tmp, args.n, args.size, seed=repeat)
            seconds.append(time.perf_counter() - started)
        print(f"run {repeat + 1}: {args.n} images at {args.size} px in {seconds[-1]:.2f} s "
              f"({args.n / seconds[-1]:.0f} images/s)")
    median = statistics.median(seconds)
    print(f"median: {median:.2f} s, {args.n / median:.0f} images/s (goal: {args.n} in under 20 s)")
    save_record(args.results, "synthetic_throughput.json", {
        "machine": machine, "n_images": args.n, "image_size": args.size,
        "runs_s": [round(x, 2) for x in seconds], "median_s": round(median, 2),
        "images_per_s": round(args.n / median, 1), "goal_s": 20.0})


if __name__ == "__main__":
    main()
