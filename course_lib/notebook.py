"""What every chapter's first code cell calls: :func:`setup_notebook` (notebook ``00_setup``).

    profile, device = course_lib.setup_notebook()

It does what chapter 00 teaches step by step: the run profile (``COURSE_PROFILE``), the
device, seeding, the course's figure style — and, on Colab, where trained models go.
:func:`glue` hands a number of the executed run to the prose (chapter ``02`` on).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .config import get_device, get_profile, seed_everything
from .viz import use_course_style

__all__ = ["setup_notebook", "on_colab", "link_runs_to_drive", "glue"]

#: ``COURSE_RUNS_ON_DRIVE=1`` asks for runs/ on Google Drive, as ``keep_runs_on_drive=True``.
DRIVE_VAR = "COURSE_RUNS_ON_DRIVE"


def on_colab() -> bool:
    """Whether this kernel runs on Google Colab."""
    return "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ


def link_runs_to_drive(runs: Path = Path("runs")) -> Path:
    """Mount Google Drive and make ``runs`` a link to ``MyDrive/attention-course/runs``.

    Colab wipes its disk when the runtime resets; on Drive, trained models survive it.
    ``COURSE_DRIVE_MOUNT`` changes where Drive is mounted (``/content/drive``).
    """
    from google.colab import drive

    mount = os.environ.get("COURSE_DRIVE_MOUNT", "/content/drive")
    drive.mount(mount)
    kept = Path(mount, "MyDrive", "attention-course", "runs")
    kept.mkdir(parents=True, exist_ok=True)
    runs.symlink_to(kept, target_is_directory=True)
    return kept


def setup_notebook(seed: int = 0, keep_runs_on_drive: bool | None = None):
    """Start a chapter: returns ``(profile, device)``, with every generator seeded from
    ``seed`` and the course's figure style set.

    On Colab, trained models (``runs/``) vanish when the runtime resets; with
    ``keep_runs_on_drive=True`` (or ``COURSE_RUNS_ON_DRIVE=1``) they go to Google Drive.
    """
    profile, device = get_profile(), get_device()
    seed_everything(seed)
    use_course_style()
    if keep_runs_on_drive is None:
        keep_runs_on_drive = os.environ.get(DRIVE_VAR) == "1"
    if on_colab() and not Path("runs").exists():
        if keep_runs_on_drive:
            kept = link_runs_to_drive()
            print(f"runs/ is {kept}: trained models survive a runtime reset")
        else:
            print(
                "Trained models go to runs/ on this Colab machine and vanish when its "
                "runtime resets; call course_lib.setup_notebook(keep_runs_on_drive=True) "
                "to keep them on Google Drive."
            )
    return profile, device


def glue(name: str, value, fmt: str = "") -> str:
    """Format ``value`` with ``fmt`` and glue the text under ``name`` for the book's prose.

    The markdown cites it as ``{glue:text}`name```, so the sentence shows the number of the
    run that was executed, never one typed by hand (myst-nb's ``glue``; ``display=False``:
    the cell prints what it wants the reader to see). Without myst-nb (a bare Jupyter or
    Colab kernel) nothing is glued and the text is just returned.
    """
    text = format(value, fmt)
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        return text
    myst_glue(name, text, display=False)
    return text
