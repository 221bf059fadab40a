"""``python -m course_lib.train``: the training command line of :mod:`course_lib.cli`."""

from ..cli import main

raise SystemExit(main())
