"""Shared fixtures: small synthetic data sets, generated once per session, and the built book."""

import shutil

import pytest
from book_build import ROOT, SMOKE_OUT, make_book

from course_lib.data import make_synthetic_lesions


@pytest.fixture(scope="session")
def lesion_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("lesions")
    make_synthetic_lesions(root, n_images=96, image_size=64, seed=3)
    return root


@pytest.fixture(scope="session")
def built_book():
    """The whole book, built once per session (smoke profile); the path of its HTML."""
    shutil.rmtree(SMOKE_OUT, ignore_errors=True)
    run = make_book(ROOT, SMOKE_OUT)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    return SMOKE_OUT / "_build" / "html"
