"""course_lib.train: fit / evaluate, checkpoints, resume, the command line."""

import json
import math
import os

import pandas as pd
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from course_lib.checkpoint import load_checkpoint, save_atomic
from course_lib.cli import main
from course_lib.data import (
    load_melanoma,
    make_loaders,
    split_by_patient,
)
from course_lib.metrics import classification_metrics
from course_lib.models import vgg16
from course_lib.runspec import TrainConfig
from course_lib.train import evaluate, fit


@pytest.fixture(scope="module")
def loaders(lesion_root):
    """The chapters' loaders (make_loaders: batches augmented on the device), on the CPU."""
    train, val, _ = split_by_patient(
        load_melanoma(lesion_root), 0.25, test_fraction=0, seed=0
    )
    return make_loaders(train, val, 64, 16, device="cpu")


def _model(seed=0):
    torch.manual_seed(seed)
    return vgg16(1, width=1 / 16, head="gap")


def test_fit_records_history_and_checkpoints(loaders, tmp_path):
    history = fit(
        _model(),
        *loaders,
        TrainConfig(epochs=2, device="cpu"),
        out_dir=tmp_path,
        progress=False,
        verbose=False,
    )
    assert list(history["epoch"]) == [1, 2]
    for column in (
        "train_loss",
        "val_loss",
        "val_auc",
        "val_accuracy",
        "val_sensitivity",
        "val_specificity",
        "val_balanced_accuracy",
        "lr",
        "seconds",
    ):
        assert column in history.columns
    assert (
        history["train_loss"].notna().all() and history["val_auc"].between(0, 1).all()
    )
    on_disk = pd.read_csv(tmp_path / "metrics.csv")
    pd.testing.assert_frame_equal(on_disk, history, check_dtype=False)
    last = load_checkpoint(tmp_path / "last.pt")  # weights_only=True
    assert last["epoch"] == 2 and len(last["history"]) == 2
    best = load_checkpoint(tmp_path / "best.pt")
    assert best["val_auc"] == pytest.approx(history["val_auc"].max())
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_fit_is_deterministic_on_cpu(loaders):
    a = fit(
        _model(),
        *loaders,
        TrainConfig(epochs=2, seed=3, device="cpu"),
        progress=False,
        verbose=False,
    )
    b = fit(
        _model(),
        *loaders,
        TrainConfig(epochs=2, seed=3, device="cpu"),
        progress=False,
        verbose=False,
    )
    pd.testing.assert_frame_equal(a.drop(columns="seconds"), b.drop(columns="seconds"))


class _StopAtEpoch:
    """Wraps a loader; the ``stop``-th pass over it is interrupted at its first batch."""

    def __init__(self, loader, stop):
        self.loader, self.stop, self.passes = loader, stop, 0

    def __iter__(self):
        self.passes += 1
        if self.passes == self.stop:
            raise KeyboardInterrupt("simulated interruption")
        return iter(self.loader)

    def __len__(self):
        return len(self.loader)

    def __getattr__(self, name):  # set_epoch, device, dataset: the wrapped loader's
        return getattr(self.loader, name)


def test_resume_continues_where_it_stopped(loaders, tmp_path):
    train, val = loaders
    reference = fit(
        _model(),
        train,
        val,
        TrainConfig(epochs=3, seed=1, device="cpu"),
        progress=False,
        verbose=False,
    )
    with pytest.raises(KeyboardInterrupt):
        fit(
            _model(),
            _StopAtEpoch(train, stop=3),
            val,
            TrainConfig(epochs=3, seed=1, device="cpu"),
            out_dir=tmp_path,
            progress=False,
            verbose=False,
        )
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 2
    counted = _StopAtEpoch(train, stop=0)
    resumed = fit(
        _model(seed=99),
        counted,
        val,
        TrainConfig(epochs=3, seed=1, device="cpu"),
        out_dir=tmp_path,
        resume=True,
        progress=False,
        verbose=False,
    )
    assert counted.passes == 1, "only the missing epoch was trained"
    pd.testing.assert_frame_equal(
        resumed.drop(columns="seconds"), reference.drop(columns="seconds")
    )


def test_resuming_a_finished_run_trains_nothing_and_says_so(loaders, tmp_path, capsys):
    train, val = loaders
    config = TrainConfig(epochs=2, device="cpu", seed=1)
    options = dict(out_dir=tmp_path, progress=False)
    first = fit(_model(), train, val, config, verbose=False, **options)
    counted = _StopAtEpoch(train, stop=0)
    again = fit(_model(seed=99), counted, val, config, resume=True, **options)
    assert counted.passes == 0, "a finished run is reloaded, not trained"
    assert f"reloaded the finished run in {tmp_path}: 2 epochs, none left" in (
        capsys.readouterr().out
    )
    pd.testing.assert_frame_equal(again, first)


def test_tuple_outputs_and_multiclass():
    torch.manual_seed(0)
    x, y = torch.randn(60, 4), torch.arange(60) % 3

    class TupleModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(4, 3)

        def forward(self, inputs):
            # logits + a "map"
            return self.linear(inputs), torch.zeros(len(inputs), 1, 2, 2)

    loader = DataLoader(TensorDataset(x, y), batch_size=20)
    history = fit(
        TupleModel(),
        loader,
        loader,
        TrainConfig(epochs=2, device="cpu"),
        progress=False,
        verbose=False,
    )
    assert len(history) == 2 and 0 <= history["val_auc"].iloc[-1] <= 1
    result = evaluate(TupleModel(), loader, device="cpu", return_predictions=True)
    assert result["scores"].shape == (60, 3) and result["n"] == 60


def test_non_finite_loss_names_epoch_and_step():
    class Exploding(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(1))

        def forward(self, inputs):
            return (inputs[:, :1] * self.w) / 0.0 * 0.0  # NaN logits

    loader = DataLoader(TensorDataset(torch.randn(8, 2), torch.ones(8)), batch_size=4)
    with pytest.raises(FloatingPointError, match="epoch 1, step 0"):
        fit(
            Exploding(),
            loader,
            loader,
            TrainConfig(epochs=1, device="cpu"),
            progress=False,
            verbose=False,
        )


def test_metrics_on_known_predictions():
    m = classification_metrics([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9])
    assert m["auc"] == 0.75 and m["accuracy"] == 0.5
    assert (
        m["sensitivity"] == 0.5
        and m["specificity"] == 0.5
        and m["balanced_accuracy"] == 0.5
    )
    assert math.isnan(classification_metrics([1, 1], [0.2, 0.9])["auc"])


def test_a_failed_save_keeps_the_old_checkpoint(tmp_path):
    path = save_atomic({"epoch": 1}, tmp_path / "last.pt")

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("disk full, say")

    with pytest.raises(RuntimeError):
        save_atomic({"epoch": 2, "bad": Unpicklable()}, path)
    assert load_checkpoint(path) == {"epoch": 1}
    assert os.listdir(tmp_path) == ["last.pt"]


def test_command_line_trains_is_interrupted_and_resumes(tmp_path, capsys, monkeypatch):
    import course_lib.train as training

    data, out = tmp_path / "data", tmp_path / "run"
    args = [
        "--data-root",
        str(data),
        "--model",
        "vgg16",
        "--image-size",
        "64",
        "--width",
        "0.0625",
        "--out",
        str(out),
        "--profile",
        "smoke",
        "--make-synthetic",
        "--no-progress",
        "--epochs",
        "2",
    ]
    real_epoch = training.train_one_epoch

    def stop_in_epoch_2(*a, epoch, **kw):
        if epoch == 2:
            raise KeyboardInterrupt  # Ctrl-C in the middle of epoch 2
        return real_epoch(*a, epoch=epoch, **kw)

    monkeypatch.setattr(training, "train_one_epoch", stop_in_epoch_2)
    assert main(args) == 130
    assert (data / "marking.csv").is_file()
    message = capsys.readouterr().err.strip()
    assert len(message.splitlines()) == 1 and "epoch 1 is the last one saved" in message
    assert message.endswith("--epochs 2 --resume") and "--make-synthetic" not in message
    monkeypatch.setattr(training, "train_one_epoch", real_epoch)
    assert main(args + ["--resume"]) == 0
    printed = capsys.readouterr().out
    assert "resuming from" in printed and "continuing at epoch 2" in printed
    # the held-out patients are scored once, after the last epoch, with an interval
    assert "test AUC of the last epoch" in printed and "95 % interval" in printed
    test = json.loads((out / "test.json").read_text())
    assert test["low"] <= test["test_auc"] <= test["high"] and test["level"] == 0.95
    assert test["images"] > 0 and "patients" in test["method"]
    metrics = pd.read_csv(out / "metrics.csv")
    assert list(metrics["epoch"]) == [1, 2] and {
        "train_loss",
        "val_loss",
        "val_auc",
    } <= set(metrics.columns)


def test_command_line_reports_bad_data_readably(tmp_path, capsys):
    code = main(
        [
            "--data-root",
            str(tmp_path / "nothing"),
            "--model",
            "vgg16",
            "--out",
            str(tmp_path / "o"),
            "--profile",
            "smoke",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "is not a folder" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists(), (
        "nothing is created before the input is known to be good"
    )
    (tmp_path / "empty").mkdir()
    code = main(
        [
            "--data-root",
            str(tmp_path / "empty"),
            "--model",
            "vgg16",
            "--out",
            str(tmp_path / "o"),
            "--profile",
            "smoke",
        ]
    )
    assert code == 2 and "no marking.csv" in capsys.readouterr().err


@pytest.mark.parametrize("switch", ["channels_last", "compile"])
def test_speed_switches_change_speed_not_results(switch, tmp_path):
    """channels_last and torch.compile reorder memory and fuse kernels; the numbers stay (to rounding)."""
    torch.manual_seed(0)
    x = torch.randn(64, 3, 16, 16)
    loader = DataLoader(
        TensorDataset(x, (x[:, 0].mean((1, 2)) > 0).long()), batch_size=16
    )

    def model():  # no conv bias before BN: its gradient is rounding noise, which Adam would amplify
        torch.manual_seed(1)
        return nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1, bias=False),
            nn.BatchNorm2d(4),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(4, 1),
        )

    plain = fit(
        model(),
        loader,
        loader,
        TrainConfig(epochs=2, device="cpu"),
        progress=False,
        verbose=False,
    )
    fast = fit(
        model(),
        loader,
        loader,
        TrainConfig(epochs=2, device="cpu", **{switch: True}),
        out_dir=tmp_path,
        progress=False,
        verbose=False,
    )
    pd.testing.assert_frame_equal(
        plain.drop(columns="seconds"),
        fast.drop(columns="seconds"),
        check_exact=False,
        rtol=1e-4,
        atol=1e-5,
    )
    state = load_checkpoint(tmp_path / "last.pt")["model"]
    model().load_state_dict(state)  # plain keys: loads into an unwrapped model


def test_metric_conventions_at_the_edges():
    """A probability of exactly 0.5 is melanoma (the ISIC scorer says benign); rates of an absent
    class, the AUC and the balanced accuracy are NaN when one class is missing."""
    import torch

    from course_lib.metrics import predicted_class

    tie = classification_metrics([1, 0], [0.5, 0.2])
    assert tie["sensitivity"] == 1.0 and tie["specificity"] == 1.0
    assert predicted_class(torch.tensor([[0.0], [-1e-6], [3.0]])).tolist() == [1, 0, 1]
    only_melanoma = classification_metrics([1, 1, 1], [0.9, 0.4, 0.7])
    assert only_melanoma["sensitivity"] == pytest.approx(2 / 3) and math.isnan(
        only_melanoma["specificity"]
    )
    assert math.isnan(only_melanoma["auc"]) and math.isnan(
        only_melanoma["balanced_accuracy"]
    )
    only_benign = classification_metrics([0, 0], [0.1, 0.8])
    assert only_benign["specificity"] == 0.5 and math.isnan(only_benign["sensitivity"])
