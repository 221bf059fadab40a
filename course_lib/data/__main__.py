"""``python -m course_lib.data``: download, check or generate a data set from the shell.

    python -m course_lib.data download [DEST]          # the Kaggle data (default: $COURSE_DATA_DIR/kaggle-melanoma)
    python -m course_lib.data verify ROOT              # decode every image and mask once
    python -m course_lib.data synthetic ROOT --n-images N --image-size S [--seed S] [--workers W]

Errors are one line on stderr with exit status 2, as for ``python -m course_lib.train``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..cli_args import (
    INTERRUPTED,
    USAGE_ERROR,
    Parser,
    number,
    one_line,
    seed_number,
    write_failure,
)


def _parser() -> Parser:
    p = Parser(
        prog="python -m course_lib.data",
        description="Download, check or generate a melanoma data set.",
    )
    commands = p.add_subparsers(dest="command", required=True)
    download = commands.add_parser(
        "download", help="download and unpack the Kaggle data, checking every image"
    )
    download.add_argument("dest", nargs="?", type=Path, default=None)
    verify = commands.add_parser(
        "verify", help="decode every image and mask of a data set once"
    )
    verify.add_argument("root", type=Path)
    synthetic = commands.add_parser(
        "synthetic", help="generate synthetic lesions into a new folder"
    )
    synthetic.add_argument("root", type=Path)
    synthetic.add_argument(
        "--n-images", required=True, type=number(int, 1, what="a positive number")
    )
    synthetic.add_argument(
        "--image-size", required=True, type=number(int, 32, what="at least 32")
    )
    synthetic.add_argument("--seed", type=seed_number(), default=0)
    synthetic.add_argument(
        "--workers", type=number(int, 1, what="a positive number"), default=None
    )
    for sub in (download, verify, synthetic):
        sub.error = p.error  # one-line errors in every sub-command
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as stop:
        return int(stop.code or 0)
    # imported only now: --help and a usage error above load none of the data code
    from . import (
        DataError,
        default_data_dir,
        download_melanoma,
        load_melanoma,
        make_synthetic_lesions,
    )

    try:
        if args.command == "download":
            dest = download_melanoma(
                args.dest or default_data_dir() / "kaggle-melanoma"
            )
            print(f"complete: {dest}")
        elif args.command == "verify":
            frame = load_melanoma(args.root, verify=True)
            print(f"{len(frame)} images in {args.root}: every file reads")
        else:
            frame = make_synthetic_lesions(
                args.root,
                args.n_images,
                args.image_size,
                seed=args.seed,
                num_workers=args.workers,
            )
            print(f"{len(frame)} synthetic lesions written to {args.root}")
    except (DataError, ValueError) as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print(
            "interrupted: nothing half-done was left behind; run the command again",
            file=sys.stderr,
        )
        return INTERRUPTED
    except OSError as err:
        words = write_failure(err)
        if words is None:
            raise
        print(
            f"error: {words}; nothing half-written was left behind (a data set is "
            "filled in a staging folder and renamed into place only when complete)",
            file=sys.stderr,
        )
        return USAGE_ERROR
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
