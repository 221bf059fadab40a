"""Shared fixtures: small synthetic data sets, generated once per session."""

import pytest

from course_lib.data import make_synthetic_lesions


@pytest.fixture(scope="session")
def lesion_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("lesions")
    make_synthetic_lesions(root, n_images=96, image_size=64, seed=3)
    return root
