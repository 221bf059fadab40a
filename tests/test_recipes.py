"""course_lib.recipes: the AttnVGG recipe's run folders know what they hold."""

import pandas as pd
import pytest

from course_lib.config import get_profile
from course_lib.data import load_melanoma, split_by_patient
from course_lib.recipes import eval_loader, profile_loaders, train_attnvgg


@pytest.fixture
def smoke_runs(lesion_root, tmp_path, monkeypatch):
    # runs/ is relative to the working directory, as in the notebooks
    monkeypatch.chdir(tmp_path)
    profile = get_profile("smoke")
    train, val, _ = split_by_patient(
        load_melanoma(lesion_root), 0.25, test_fraction=0, seed=0
    )
    return profile, train, val


def test_a_finished_run_is_reloaded_and_another_seed_or_data_never_reuses_it(
    smoke_runs,
):
    profile, train, val = smoke_runs
    loaders = profile_loaders(profile, train, val, device="cpu")
    first, history = train_attnvgg(
        profile, *loaders, tag="t", seed=0, device="cpu", verbose=False
    )
    again, history_again = train_attnvgg(
        profile, *loaders, tag="t", seed=0, device="cpu", verbose=False
    )
    assert history_again.attrs["run_dir"] == history.attrs["run_dir"]
    # reloaded, not retrained (same seconds too)
    pd.testing.assert_frame_equal(history_again, history)
    _, other_seed = train_attnvgg(
        profile, *loaders, tag="t", seed=1, device="cpu", verbose=False
    )
    assert (
        other_seed.attrs["run_dir"] != history.attrs["run_dir"]
        and "seed1" in other_seed.attrs["run_dir"]
    )
    fewer = profile_loaders(profile, train.iloc[:-8], val, device="cpu")
    _, other_data = train_attnvgg(
        profile, *fewer, tag="t", seed=0, device="cpu", verbose=False
    )
    assert other_data.attrs["run_dir"] not in (
        history.attrs["run_dir"],
        other_seed.attrs["run_dir"],
    )
    _, other_option = train_attnvgg(
        profile,
        *loaders,
        tag="t",
        seed=0,
        device="cpu",
        verbose=False,
        global_branch=False,
    )
    assert other_option.attrs["run_dir"] != history.attrs["run_dir"]


def test_eval_loader_reads_every_image_in_order_without_augmentation(smoke_runs):
    profile, train, val = smoke_runs
    loader = eval_loader(profile, val, with_mask=True, device="cpu")
    first = [batch[0] for batch in loader]
    second = [batch[0] for batch in loader]
    assert sum(len(b) for b in first) == len(val)
    assert all((a == b).all() for a, b in zip(first, second)), (
        "no randomness in evaluation"
    )
    images, targets, masks = next(iter(loader))
    assert images.shape[-1] == profile.image_size and masks.shape[1] == 1
    assert targets.tolist() == val.target.iloc[: len(targets)].astype(float).tolist()
