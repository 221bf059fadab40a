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


def test_gradient_installs_the_clone_it_runs_in(bare_python, tmp_path):
    _uninstall(bare_python)
    clone = tmp_path / "attention-course"
    subprocess.run(
        ["git", "clone", "-q", str(ROOT), str(clone)], check=True, capture_output=True
    )
    run = _run_cell(bare_python, clone / "notebooks", PAPERSPACE_NOTEBOOK_ID="nb-test")
    assert run.returncode == 0, run.stderr
    assert _installed_location(bare_python)


def test_gradient_outside_a_clone_installs_from_the_repository(bare_python, tmp_path):
    _uninstall(bare_python)
    run = _run_cell(bare_python, tmp_path, PAPERSPACE_NOTEBOOK_ID="nb-test")
    assert run.returncode == 0, run.stderr
    assert "site-packages" in (_installed_location(bare_python) or "")


def test_the_setup_cell_is_short():
    """Install where missing, nothing else: the rest is one call, setup_notebook()."""
    lines = _setup_cell().splitlines()
    assert len(lines) <= 15, f"the setup cell has {len(lines)} lines"


def test_the_published_location_is_one_setting():
    """_config.yml's repository.url is the setting; the setup cell (every notebook's copy) and the
    README's Colab link carry the same value (tools/set_repository.py writes all of them)."""
    import re

    url = re.search(
        r"^repository:\n  url: (\S+)", (ROOT / "_config.yml").read_text(), flags=re.M
    ).group(1)
    default = re.search(r'^REPO = "([^"]+)"$', _setup_cell(), flags=re.M).group(1)
    assert default == url
    assert (
        f"colab.research.google.com/github/{url.removeprefix('https://github.com/')}/blob/main/"
        in (ROOT / "README.md").read_text()
    )


def _setup_notebook(cwd, *arguments, **env):
    """``course_lib.setup_notebook(*arguments)`` in a fresh interpreter started in ``cwd``."""
    call = f"import course_lib; course_lib.setup_notebook({', '.join(arguments)})"
    return subprocess.run(
        [sys.executable, "-c", call],
        cwd=cwd,
        env=_clean_env(COURSE_PROFILE="smoke", **env),
        capture_output=True,
        text=True,
    )


def test_colab_offers_to_keep_runs_on_drive(tmp_path):
    run = _setup_notebook(tmp_path, COLAB_RELEASE_TAG="release-colab-test")
    assert run.returncode == 0, run.stderr
    assert "setup_notebook(keep_runs_on_drive=True)" in run.stdout
    assert not (tmp_path / "runs").exists()


def test_outside_colab_setup_notebook_says_nothing(tmp_path):
    run = _setup_notebook(tmp_path)
    assert run.returncode == 0 and run.stdout == "", run.stdout + run.stderr


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_colab_keeps_runs_on_google_drive(tmp_path, how):
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
    arguments = ["keep_runs_on_drive=True"] if how == "argument" else []
    env = dict(
        COLAB_RELEASE_TAG="release-colab-test",
        COURSE_DRIVE_MOUNT=str(mount),
        PYTHONPATH=str(tmp_path / "stub"),
        **({"COURSE_RUNS_ON_DRIVE": "1"} if how == "environment" else {}),
    )
    run = _setup_notebook(work, *arguments, **env)
    assert run.returncode == 0, run.stderr
    assert (work / "runs").is_symlink() and (
        work / "runs"
    ).resolve() == mount / "MyDrive" / "attention-course" / "runs"
    run = _setup_notebook(work, *arguments, **env)
    assert run.returncode == 0 and run.stdout == "", (
        "a second run finds runs/ in place and says nothing"
    )
