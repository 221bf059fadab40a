"""Serve MathJax 3 from the built book itself, so formulas are typeset without a network.

Sphinx loads MathJax from a CDN by default: offline (a laptop on a train, a hospital
network, the course's own CI) a reader would see raw TeX. This extension copies MathJax's
single-file SVG build, ``tex-svg.js`` (fonts included as paths, nothing else to fetch), from
the ``django-static-mathjax`` package — MathJax 3 shipped on PyPI, no Django needed — into
the build's ``_static/mathjax/``. ``_config.yml`` points ``mathjax_path`` at that copy.
"""

from __future__ import annotations

import shutil
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

RELATIVE = "mathjax/tex-svg.js"  # mathjax_path, relative to _static


def mathjax_source() -> Path:
    try:
        path = Path(
            distribution("django-static-mathjax").locate_file(
                "mathjax/static/mathjax/es5/tex-svg.js"
            )
        )
    except PackageNotFoundError as err:
        raise RuntimeError(
            "MathJax for the offline book is missing: pip install django-static-mathjax "
            "(part of the course's `book` extra)"
        ) from err
    if not path.is_file():
        raise RuntimeError(f"the MathJax package has no {path}")
    return path


def _copy(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    target = Path(app.outdir) / "_static" / RELATIVE
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(mathjax_source(), target)


def _check(app, config) -> None:
    mathjax_source()  # fail early, before hours of notebook execution, if the file is missing
    if config.mathjax_path != RELATIVE:
        raise RuntimeError(
            f"set `sphinx: config: mathjax_path: {RELATIVE}` in _config.yml"
        )


def setup(app):
    app.connect("config-inited", _check)
    app.connect("build-finished", _copy)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
