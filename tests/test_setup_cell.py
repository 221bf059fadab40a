"""The notebooks' setup cell, run for real in a fresh virtual environment without course_lib.

Colab and Gradient are recognised by their environment variables; the repository is served
from this checkout's committed HEAD through a file:// URL (COURSE_REPO_URL), so pip and git
do exactly what they do on those services, minus the network. PIP_NO_DEPS keeps pip from
re-installing torch: Colab and Gradient images already have it.
"""

import os
import subprocess
import sys
import venv
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _setup_cell() -> str:
    nb = nbformat.read(ROOT / "notebooks" / "00_setup.ipynb", as_version=4)
    return next(
        c.source for c in nb.cells if "course-setup" in c.metadata.get("tags", [])
    )


def _clean_env(**extra):
    # extra= adds back
    drop = (
        "COLAB",
        "PAPERSPACE",
        "VIRTUAL_ENV",
        "PYTHONPATH",
        "PYTHONHOME",
        "COURSE_",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(
        PIP_NO_DEPS="1",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        COURSE_REPO_URL=f"file://{ROOT}",
    )
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory):
    if subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True
    ).returncode:
        pytest.fail("the setup-cell test installs the committed HEAD: commit first")
    folder = tmp_path_factory.mktemp("bare-venv")
    venv.EnvBuilder(with_pip=True).create(folder)
    return folder / "bin" / "python"


def _run_cell(python, cwd, **env):
    return subprocess.run(
        [str(python), "-c", _setup_cell()],
        cwd=cwd,
        env=_clean_env(**env),
        capture_output=True,
        text=True,
    )


def _installed_location(python):
    run = subprocess.run(
        [str(python), "-c", "import course_lib.config as c; print(c.__file__)"],
        env=_clean_env(),
        capture_output=True,
        text=True,
        cwd="/",
    )
    return run.stdout.strip() if run.returncode == 0 else None


def _uninstall(python):
    subprocess.run(
        [str(python), "-m", "pip", "uninstall", "-y", "-q", "course-lib"],
        env=_clean_env(),
    )


def test_local_without_library_explains_what_to_do(bare_python, tmp_path):
    run = _run_cell(bare_python, tmp_path)
    assert run.returncode != 0
    assert "ModuleNotFoundError" in run.stderr and "make book" in run.stderr


def test_local_with_library_is_a_no_op(tmp_path):
    run = _run_cell(sys.executable, tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout == ""


def test_colab_installs_from_the_repository(bare_python, tmp_path):
    _uninstall(bare_python)
    run = _run_cell(bare_python, tmp_path, COLAB_RELEASE_TAG="release-colab-test")
    assert run.returncode == 0, run.stderr
    location = _installed_location(bare_python)
    assert location and "site-packages" in location


def test_gradient_clones_then_installs(bare_python, tmp_path):
    _uninstall(bare_python)
    clone = tmp_path / "attention-course"
    run = _run_cell(
        bare_python,
        tmp_path,
        PAPERSPACE_NOTEBOOK_ID="nb-test",
        COURSE_CLONE_DIR=str(clone),
    )
    assert run.returncode == 0, run.stderr
    assert (clone / "course_lib" / "config.py").is_file()
    assert _installed_location(bare_python)

    # a second session starts inside the clone: it installs that clone, no new clone
    _uninstall(bare_python)
    assert _installed_location(bare_python) is None
    run = _run_cell(
        bare_python,
        clone / "notebooks",
        PAPERSPACE_NOTEBOOK_ID="nb-test",
        COURSE_CLONE_DIR=str(tmp_path / "never-used"),
    )
    assert run.returncode == 0, run.stderr
    assert not (tmp_path / "never-used").exists()
    assert _installed_location(bare_python)


def test_the_published_location_is_one_setting():
    """_config.yml's repository.url is the setting; the setup cell (every notebook's copy) and the
    README's Colab link carry the same value (tools/set_repository.py writes all of them)."""
    import re

    url = re.search(
        r"^repository:\n  url: (\S+)", (ROOT / "_config.yml").read_text(), flags=re.M
    ).group(1)
    default = re.search(
        r'os\.environ\.get\(\s*"COURSE_REPO_URL",\s*"([^"]+)"', _setup_cell()
    ).group(1)
    assert default == url
    assert (
        f"colab.research.google.com/github/{url.removeprefix('https://github.com/')}/blob/main/"
        in (ROOT / "README.md").read_text()
    )


def test_colab_offers_to_keep_runs_on_drive(tmp_path):
    run = _run_cell(sys.executable, tmp_path, COLAB_RELEASE_TAG="release-colab-test")
    assert run.returncode == 0, run.stderr
    assert (
        "KEEP_RUNS_ON_DRIVE = True" in run.stdout and not (tmp_path / "runs").exists()
    )


def test_colab_keeps_runs_on_google_drive(tmp_path):
    """google.colab's drive module, stood in for by a local one that 'mounts' a folder."""
    stub = tmp_path / "stub" / "google" / "colab"
    stub.mkdir(parents=True)
    (stub.parent / "__init__.py").write_text("")
    (stub / "__init__.py").write_text("")
    (stub / "drive.py").write_text(
        "import pathlib\ndef mount(path):\n    pathlib.Path(path, 'MyDrive').mkdir(parents=True, exist_ok=True)\n"
    )
    work, mount = tmp_path / "content", tmp_path / "drive"
    work.mkdir()
    run = _run_cell(
        sys.executable,
        work,
        COLAB_RELEASE_TAG="release-colab-test",
        COURSE_RUNS_ON_DRIVE="1",
        COURSE_DRIVE_MOUNT=str(mount),
        PYTHONPATH=str(tmp_path / "stub"),
    )
    assert run.returncode == 0, run.stderr
    assert (work / "runs").is_symlink() and (
        work / "runs"
    ).resolve() == mount / "MyDrive" / "attention-course" / "runs"
    run = _run_cell(
        sys.executable,
        work,
        COLAB_RELEASE_TAG="release-colab-test",
        COURSE_RUNS_ON_DRIVE="1",
        COURSE_DRIVE_MOUNT=str(mount),
        PYTHONPATH=str(tmp_path / "stub"),
    )
    assert run.returncode == 0 and run.stdout == "", (
        "a second run finds runs/ in place and says nothing"
    )
