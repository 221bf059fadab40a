"""course_lib.runspec: a run is a value, and its folder is named by every setting of it."""

import dataclasses

import pytest
import torch
from torch import nn

from course_lib.data import (
    BatchAugment,
    DeviceLoader,
    MelanomaDataset,
    load_melanoma,
    make_loaders,
    split_by_patient,
)
from course_lib.losses import AttentionMaskLoss, FocalLoss
from course_lib.runspec import (
    DataSpec,
    ModelSpec,
    OptimizerSpec,
    RunSpec,
    TrainConfig,
    describe,
)
from course_lib.train import fit, train_run


@pytest.fixture(scope="module")
def frames(lesion_root):
    return split_by_patient(load_melanoma(lesion_root), 0.25, test_fraction=0, seed=0)[
        :2
    ]


@pytest.fixture(scope="module")
def spec(frames):
    loaders = make_loaders(*frames, 64, 16, device="cpu")
    return RunSpec(
        ModelSpec("vgg16", {"width": 1 / 16}),
        DataSpec.of(*loaders),
        TrainConfig(epochs=2, device="cpu"),
    )


def _replace(spec: RunSpec, key: str, value) -> RunSpec:
    """``spec`` with the field at the dotted ``key`` ("train.optimizer.lr") set to ``value``."""
    section, *path = key.split(".")
    if section == "model":  # "model.name" or "model.options.<option>"
        model = spec.model
        model = (
            ModelSpec(value, model.options)
            if path == ["name"]
            else ModelSpec(model.name, {**model.options, path[1]: value})
        )
        return dataclasses.replace(spec, model=model)

    def into(obj, path):
        if len(path) == 1:
            return dataclasses.replace(obj, **{path[0]: value})
        return dataclasses.replace(
            obj, **{path[0]: into(getattr(obj, path[0]), path[1:])}
        )

    return dataclasses.replace(spec, **{section: into(getattr(spec, section), path)})


#: Every field of a run, and a value that changes the result. A field added to a spec (or to
#: BatchAugment) without an entry here fails test_every_field_of_a_run_is_covered.
CHANGES = {
    "model.name": "vgg16-se",
    "model.options.width": 1 / 8,
    "data.train": "another-image-list",
    "data.val": "another-image-list",
    "data.image_size": 96,
    "data.batch_size": 8,
    "data.augment.scale": (0.5, 1.0),
    "data.augment.ratio": (0.8, 1.25),
    "data.augment.degrees": 5.0,
    "data.augment.flip_p": 0.0,
    "data.augment.brightness": 0.2,
    "data.augment.contrast": 0.2,
    "data.augment.saturation": 0.1,
    "data.augment.mean": (0.5, 0.5, 0.5),
    "data.augment.std": (0.25, 0.25, 0.25),
    "data.sampler": "WeightedRandomSampler(0123456789ab, 100)",
    "data.drop_last": False,
    "train.epochs": 3,
    "train.optimizer.name": "sgd",
    "train.optimizer.lr": 3e-4,
    "train.optimizer.weight_decay": 0.0,
    "train.optimizer.momentum": 0.5,
    "train.optimizer.schedule": "constant",
    "train.loss": FocalLoss(gamma=2.0),
    "train.aux_loss": AttentionMaskLoss(),
    "train.amp": "bf16",
    "train.channels_last": True,
    "train.compile": True,
    "train.seed": 1,
    "train.device": "meta",
}
#: Fields that change no number, and are covered all the same (a conservative fingerprint).
NO_EFFECT = {"data.augment.cpu_chunk": 4}


def _leaves(spec: RunSpec) -> set:
    words = describe(spec)
    sections = {k for k in words if any(o.startswith(k + ".") for o in words)}
    return set(words) - sections


def test_every_field_of_a_run_is_covered(spec):
    assert _leaves(spec) == set(CHANGES) | set(NO_EFFECT)


@pytest.mark.parametrize("key", sorted({**CHANGES, **NO_EFFECT}))
def test_changing_any_setting_names_another_run_folder(spec, key):
    other = _replace(spec, key, {**CHANGES, **NO_EFFECT}[key])
    assert other.describe()[key] != spec.describe()[key]
    assert other.fingerprint() != spec.fingerprint()
    assert other.run_dir("t") != spec.run_dir("t")


def test_equal_settings_name_the_same_folder(frames, spec):
    again = RunSpec(
        ModelSpec("vgg16", {"width": 1 / 16}),
        DataSpec.of(*make_loaders(*frames, 64, 16, num_workers=2, device="cpu")),
        TrainConfig(epochs=2, device=torch.device("cpu")),
    )
    assert again.run_dir("t") == spec.run_dir("t")  # the workers are not part of a run


def test_loaders_that_also_deliver_masks_train_the_same_run(frames, spec):
    """Masks change nothing unless a loss reads them, and that loss is in TrainConfig."""
    with_masks = make_loaders(*frames, 64, 16, with_mask=True, device="cpu")
    assert DataSpec.of(*with_masks) == spec.data


def test_a_loss_is_identified_by_its_tensors_too():
    plain = describe(TrainConfig(epochs=1, loss=nn.BCEWithLogitsLoss(), device="cpu"))
    weighted = describe(
        TrainConfig(
            epochs=1,
            loss=nn.BCEWithLogitsLoss(pos_weight=torch.tensor(3.0)),
            device="cpu",
        )
    )
    assert plain["loss"] != weighted["loss"]  # the repr alone is the same


def test_a_spec_is_frozen(spec):
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.train.epochs = 9
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.data.augment.degrees = 0.0


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda: OptimizerSpec(lr=0), "lr must be a finite number > 0"),
        (lambda: OptimizerSpec(lr=float("inf")), "lr must be a finite number > 0"),
        (lambda: OptimizerSpec(weight_decay=-1), "weight_decay must be"),
        (lambda: OptimizerSpec(name="lamb"), "optimizer must be one of adamw"),
        (lambda: OptimizerSpec(schedule="step"), "schedule must be one of cosine"),
        (lambda: TrainConfig(epochs=0, device="cpu"), "epochs must be at least 1"),
        (lambda: TrainConfig(epochs=1.5, device="cpu"), "epochs must be an integer"),
        (lambda: TrainConfig(epochs=1, amp="fp8", device="cpu"), "amp must be"),
        (lambda: TrainConfig(epochs=1, seed=-1, device="cpu"), "seed must be"),
        (lambda: ModelSpec("resnet50"), "unknown model 'resnet50'; choose one of"),
        (lambda: BatchAugment(flip_p=2), "flip_p must be a probability"),
        (lambda: BatchAugment(scale=(1.0, 0.5)), "scale must be (low, high)"),
    ],
)
def test_impossible_settings_are_refused_by_name(make, words):
    with pytest.raises(ValueError) as err:
        make()
    assert words in str(err.value)


def test_fit_refuses_loaders_on_another_device_than_the_config(frames):
    dataset = MelanomaDataset(frames[1], image_size=64)
    on_meta = DeviceLoader(dataset, batch_size=8, device="meta")
    with pytest.raises(ValueError, match="delivers its batches on meta but the run"):
        fit(
            nn.Linear(1, 1),
            on_meta,
            on_meta,
            TrainConfig(epochs=1, device="cpu"),
            verbose=False,
        )


def test_fit_wants_a_config():
    with pytest.raises(TypeError, match="config is a TrainConfig"):
        fit(nn.Linear(1, 1), [], [], 3)


def test_a_changed_augmentation_or_learning_rate_trains_a_new_run(
    frames, tmp_path, capsys
):
    """What a reader does in a notebook: change one setting, run the cell again."""
    model = ModelSpec("vgg16", {"width": 1 / 16})
    config = TrainConfig(epochs=1, device="cpu")
    loaders = make_loaders(*frames, 64, 16, device="cpu")
    train = dict(tag="t", root=tmp_path, verbose=True)

    _, first = train_run(model, *loaders, config, **train)
    _, again = train_run(model, *loaders, config, **train)
    assert again.attrs["run_dir"] == first.attrs["run_dir"]
    assert "reloaded the finished run" in capsys.readouterr().out

    milder = make_loaders(
        *frames, 64, 16, device="cpu", augment=BatchAugment(degrees=5.0)
    )
    _, augmented = train_run(model, *milder, config, **train)
    slower = dataclasses.replace(config, optimizer=OptimizerSpec(lr=3e-4))
    _, lower_lr = train_run(model, *loaders, slower, **train)
    said = capsys.readouterr().out
    assert "reloaded" not in said and said.count("starting from scratch") == 2
    folders = {h.attrs["run_dir"] for h in (first, augmented, lower_lr)}
    assert len(folders) == 3
    assert lower_lr.train_loss.iloc[0] != first.train_loss.iloc[0]


def test_the_same_data_in_another_folder_is_the_same_run(lesion_root, tmp_path, spec):
    """Two fresh clones keep their data in different folders: the runs are still equal."""
    import shutil

    copy = tmp_path / "elsewhere"
    shutil.copytree(lesion_root, copy)
    moved = split_by_patient(load_melanoma(copy), 0.25, test_fraction=0, seed=0)[:2]
    assert DataSpec.of(*make_loaders(*moved, 64, 16, device="cpu")) == spec.data
