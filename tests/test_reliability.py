"""Nothing lost, nothing silently wrong: the library's behaviour on hostile but legal input.

One test per defect a new user found (data loss, silent wrong results, tracebacks), each
written to fail on the code before its fix.
"""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from course_lib.checkpoint import load_checkpoint, save_atomic
from course_lib.data import (
    DataError,
    download_melanoma,
    ensure_synthetic_lesions,
    load_melanoma,
    make_loaders,
    make_synthetic_lesions,
    read_rgb,
    split_by_patient,
)
from course_lib.data.melanoma import KAGGLE_IMAGE_DIR
from course_lib.models import vgg16
from course_lib.runs import RunFolderError
from course_lib.runspec import OptimizerSpec, TrainConfig
from course_lib.train import evaluate, fit


def _snapshot(folder: Path) -> dict:
    return {
        p.relative_to(folder): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _tiny_model(seed=0):
    torch.manual_seed(seed)
    return vgg16(1, width=1 / 16, head="gap")


@pytest.fixture(scope="module")
def loaders(lesion_root):
    train, val, _ = split_by_patient(
        load_melanoma(lesion_root), 0.25, test_fraction=0, seed=0
    )
    return make_loaders(train, val, image_size=64, batch_size=16, device="cpu")


# ------------------------------------------------------------------ 1. a finished run is never overwritten


def test_fit_refuses_a_folder_that_holds_a_run(loaders, tmp_path):
    fit(
        _tiny_model(),
        *loaders,
        TrainConfig(epochs=2, device="cpu"),
        out_dir=tmp_path,
        progress=False,
        verbose=False,
    )
    before = _snapshot(tmp_path)
    with pytest.raises(RunFolderError, match="already holds a run .2 epoch"):
        fit(
            _tiny_model(),
            *loaders,
            TrainConfig(epochs=1, device="cpu"),
            out_dir=tmp_path,
            progress=False,
            verbose=False,
        )
    assert _snapshot(tmp_path) == before
    (tmp_path / "notes.txt").write_text("mine")
    fit(
        _tiny_model(),
        *loaders,
        TrainConfig(epochs=1, device="cpu"),
        out_dir=tmp_path,
        overwrite=True,
        progress=False,
        verbose=False,
    )
    assert (
        len(pd.read_csv(tmp_path / "metrics.csv")) == 1
        and (tmp_path / "notes.txt").read_text() == "mine"
    )


# ------------------------------------------------------------------ 2. a folder is never wiped


def test_ensure_synthetic_lesions_leaves_a_foreign_folder_alone(lesion_root, tmp_path):
    foreign = tmp_path / "kaggle-copy"
    shutil.copytree(lesion_root / "images", foreign / KAGGLE_IMAGE_DIR)
    shutil.copy(lesion_root / "marking.csv", foreign / "marking.csv")
    (foreign / "notes.txt").write_text("where I got this data")
    before = _snapshot(foreign)
    with pytest.raises(
        DataError, match=f"{foreign}.*not written by the synthetic-lesion generator"
    ):
        ensure_synthetic_lesions(20, 64, seed=1, root=foreign)
    assert _snapshot(foreign) == before
    with pytest.raises(DataError, match="not empty"):
        make_synthetic_lesions(foreign, 20, 64)
    assert _snapshot(foreign) == before


def test_ensure_synthetic_lesions_refreshes_only_its_own_sets(tmp_path):
    root = ensure_synthetic_lesions(20, 64, seed=1, root=tmp_path / "set")
    first = _snapshot(root)
    assert (
        ensure_synthetic_lesions(20, 64, seed=1, root=root) == root
        and _snapshot(root) == first
    )
    # other parameters: its own set, replaced
    ensure_synthetic_lesions(24, 64, seed=1, root=root)
    assert len(load_melanoma(root)) == 24
    (root / "parameters.json").write_text(
        '{"version": 2, "n_images": 20, "image_size": 64, "seed": 1}'
    )
    # a stamp of an older version: replaced
    ensure_synthetic_lesions(20, 64, seed=1, root=root)
    assert len(load_melanoma(root)) == 20 and not [
        p for p in tmp_path.iterdir() if ".partial-" in p.name
    ]


# ------------------------------------------------------------------ 3. exact resume whatever the workers


def test_device_loader_draws_each_epoch_from_seed_and_epoch_alone(lesion_root):
    """Epoch 3 read directly equals epoch 3 read after epochs 1 and 2, with two persistent workers."""
    train, val, _ = split_by_patient(
        load_melanoma(lesion_root), 0.25, test_fraction=0, seed=0
    )

    def epoch_batches(loader, epoch):
        loader.set_epoch(epoch, seed=7)
        return [(x.clone(), y.clone()) for x, y, *_ in loader]

    warm, _ = make_loaders(train, val, 64, 16, num_workers=2, device="cpu")
    for epoch in (1, 2):
        epoch_batches(warm, epoch)
    fresh, _ = make_loaders(train, val, 64, 16, num_workers=2, device="cpu")
    got, expected = epoch_batches(fresh, 3), epoch_batches(warm, 3)
    assert len(got) == len(expected)
    for (x1, y1), (x2, y2) in zip(got, expected):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    other = epoch_batches(fresh, 4)
    assert not torch.equal(other[0][0], got[0][0]), (
        "another epoch draws other crops and order"
    )


# ------------------------------------------------------------------ 4. 16-bit and unusual image modes


def test_sixteen_bit_grayscale_is_scaled_not_saturated(tmp_path):
    ramp = (np.linspace(0, 65535, 64 * 64).reshape(64, 64)).astype(np.uint16)
    path = tmp_path / "sixteen.png"
    Image.fromarray(ramp).save(path)
    assert Image.open(path).mode.startswith("I")
    pixels = np.asarray(read_rgb(str(path)))
    expected = np.rint(ramp / 257).astype(np.uint8)
    assert (
        pixels.shape == (64, 64, 3)
        and np.abs(pixels[..., 0].astype(int) - expected).max() <= 1
    )
    assert 120 < pixels.mean() < 135, (
        "a ramp over the whole range averages mid-gray, not white"
    )


@pytest.mark.parametrize("mode", ["I", "F", "RGBA", "LA", "P", "L", "1", "CMYK"])
def test_other_modes_keep_their_values(tmp_path, mode):
    base = Image.new("RGB", (32, 32), (200, 100, 50))
    if mode == "I":
        image = Image.fromarray(np.full((32, 32), 40000, dtype=np.int32), mode="I")
        expected_gray = round(40000 / 257)
    elif mode == "F":
        image = Image.fromarray(np.full((32, 32), 0.5, dtype=np.float32), mode="F")
        expected_gray = 128
    else:
        image, expected_gray = base.convert(mode), None
    path = (
        tmp_path
        / f"x.{'tif' if mode in ('I', 'F') else 'jpg' if mode == 'CMYK' else 'png'}"
    )
    image.save(path)
    pixels = np.asarray(read_rgb(str(path)))
    assert pixels.shape == (32, 32, 3) and pixels.dtype == np.uint8
    if expected_gray is not None:
        assert abs(int(pixels.mean()) - expected_gray) <= 1
    elif mode in ("RGBA", "P", "PA", "CMYK"):
        assert np.abs(pixels.reshape(-1, 3).mean(0) - (200, 100, 50)).max() < 8


# ------------------------------------------------------------------ 5. non-finite weights after the last step


class _LastStepOverflows(nn.Module):
    """Finite losses at every step; the last update makes the weight infinite."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))

    def forward(self, x):
        return x[:, :1] * self.w


def test_non_finite_weights_after_the_last_step_stop_with_epoch_and_step(tmp_path):
    torch.manual_seed(0)
    loader = DataLoader(
        TensorDataset(100 * torch.randn(8, 2), torch.tensor([0.0, 1.0] * 4)),
        batch_size=8,
    )
    model = _LastStepOverflows()
    # the one update of the epoch overflows to inf
    sgd = OptimizerSpec("sgd", lr=3e38, weight_decay=0, momentum=0, schedule="constant")
    with pytest.raises(
        FloatingPointError,
        match=r"weights became non-finite at epoch 1, in its last update \(step 0\)",
    ):
        fit(
            model,
            loader,
            loader,
            TrainConfig(epochs=1, optimizer=sgd, device="cpu"),
            out_dir=tmp_path,
            progress=False,
            verbose=False,
        )
    assert not (tmp_path / "best.pt").exists() and not (tmp_path / "last.pt").exists()


def test_evaluate_reports_non_finite_outputs_instead_of_a_scikit_learn_error():
    model = _LastStepOverflows()
    with torch.no_grad():
        model.w.fill_(float("nan"))
    loader = DataLoader(
        TensorDataset(torch.randn(6, 2), torch.tensor([0.0, 1.0] * 3)), batch_size=3
    )
    with pytest.raises(FloatingPointError, match="not finite for 6 of 6 images"):
        evaluate(model, loader, device="cpu")


# ------------------------------------------------------------------ 6. legal input that used to crash


def _copy_with(lesion_root, tmp_path, edit, rename=None):
    root = tmp_path / "data"
    shutil.copytree(lesion_root, root)
    frame = pd.read_csv(root / "marking.csv", dtype={"image_id": str})
    if rename:
        for old, new in rename(frame).items():
            for sub, ext in (("images", "jpg"), ("masks", "png")):
                (root / sub / f"{old}.{ext}").rename(root / sub / f"{new}.{ext}")
    edit(frame).to_csv(root / "marking.csv", index=False)
    return root


def test_ids_with_leading_zeros_stay_text(lesion_root, tmp_path):
    new_ids = {
        old: f"{i:07d}"
        for i, old in enumerate(pd.read_csv(lesion_root / "marking.csv").image_id)
    }

    def edit(frame):
        frame["image_id"] = frame["image_id"].map(new_ids)
        frame["patient_id"] = [f"00{i // 4:03d}" for i in range(len(frame))]
        return frame

    frame = load_melanoma(
        _copy_with(lesion_root, tmp_path, edit, rename=lambda f: new_ids)
    )
    assert (
        frame["image_id"].iloc[0] == "0000000"
        and frame["patient_id"].iloc[0] == "00000"
    )
    assert Path(frame["mask_path"].iloc[5]).name == "0000005.png"


@pytest.mark.parametrize("patients", ["all missing", "numeric with gaps"])
def test_missing_patient_ids_of_any_type(lesion_root, tmp_path, patients):
    def edit(frame):
        if patients == "all missing":
            frame["patient_id"] = np.nan
        else:
            frame["patient_id"] = [
                float(i // 3) if i % 5 else np.nan for i in range(len(frame))
            ]
        return frame

    frame = load_melanoma(_copy_with(lesion_root, tmp_path, edit))
    assert frame["patient_id"].map(type).eq(str).all()
    lonely = frame["patient_id"].str.startswith("NOPATIENT_")
    assert lonely.all() if patients == "all missing" else 0 < lonely.sum() < len(frame)
    train, val, _ = split_by_patient(frame, 0.25, test_fraction=0, seed=0)
    assert set(train.patient_id).isdisjoint(val.patient_id)


def test_one_class_is_refused_before_training(lesion_root):
    frame = load_melanoma(lesion_root).assign(target=0)
    with pytest.raises(DataError, match=r"one class only \(96 benign, 0 melanoma\)"):
        split_by_patient(frame, 0.2)
    only_benign = DataLoader(
        TensorDataset(torch.randn(4, 3, 32, 32), torch.zeros(4)), batch_size=2
    )
    only_benign.dataset.targets = torch.zeros(4)
    with pytest.raises(ValueError, match="one class only"):
        fit(
            _tiny_model(),
            only_benign,
            only_benign,
            TrainConfig(epochs=1, device="cpu"),
            progress=False,
            verbose=False,
        )


def test_an_empty_training_loader_is_an_error_not_a_zero_loss():
    images, targets = torch.randn(3, 3, 32, 32), torch.tensor([0.0, 1.0, 0.0])
    empty = DataLoader(TensorDataset(images, targets), batch_size=8, drop_last=True)
    val = DataLoader(TensorDataset(images, targets), batch_size=8)
    with pytest.raises(
        ValueError, match=r"the training loader yielded no batches \(3 images"
    ):
        fit(
            _tiny_model(),
            empty,
            val,
            TrainConfig(epochs=1, device="cpu"),
            progress=False,
            verbose=False,
        )


# ------------------------------------------------------------------ 7. validation fractions


@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.3, 0.5, 0.7, 0.9])
def test_split_gives_the_asked_validation_share(fraction, tmp_path_factory):
    root = tmp_path_factory.getbasetemp() / "split-400"
    if not root.exists():
        make_synthetic_lesions(root, 400, 32, seed=0, images_per_patient=2.0)
    frame = load_melanoma(root)
    train, val, _ = split_by_patient(frame, fraction, test_fraction=0, seed=0)
    assert abs(len(val) / len(frame) - fraction) < 0.06
    assert set(train.patient_id).isdisjoint(val.patient_id) and len(train) + len(
        val
    ) == len(frame)


# ------------------------------------------------------------------ 9. every image checked when it matters


def test_verify_reports_every_bad_file_at_once(lesion_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(lesion_root, root)
    images = sorted((root / "images").iterdir())
    images[0].write_bytes(b"")
    images[1].write_bytes(images[1].read_bytes()[:300])
    images[2].write_bytes(b"GIF89a not really")
    sorted((root / "masks").iterdir())[3].write_bytes(b"\x89PNG broken")
    load_melanoma(root)  # without verify: only the files' presence is checked
    with pytest.raises(DataError) as info:
        load_melanoma(root, verify=True)
    message = str(info.value)
    assert message.startswith("4 of 192 file(s) cannot be read")
    for path in (*images[:3], sorted((root / "masks").iterdir())[3]):
        assert path.name in message


def test_a_download_with_an_empty_jpeg_is_not_marked_complete(lesion_root, tmp_path):
    archive = tmp_path / "server" / "melanoma.zip"
    archive.parent.mkdir()
    frame = pd.read_csv(lesion_root / "marking.csv")
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("marking.csv", frame.to_csv(index=False))
        for i, image_id in enumerate(frame.image_id):
            name = f"{KAGGLE_IMAGE_DIR}/{image_id}.jpg"
            zf.writestr(name, b"") if i == 7 else zf.write(
                lesion_root / "images" / f"{image_id}.jpg", name
            )

    class Server:
        def dataset_download_files(self, dataset, path, unzip=False, quiet=True):
            shutil.copy(archive, path)

    dest = tmp_path / "melanoma"
    with pytest.raises(DataError, match=f"{frame.image_id[7]}.jpg"):
        download_melanoma(dest, api=Server())
    assert not dest.exists() and [p.name for p in tmp_path.iterdir()] == ["server"]


@pytest.mark.parametrize("where", ["a file", "inside a file", "unwritable"])
def test_download_destination_problems_are_named_before_downloading(tmp_path, where):
    (tmp_path / "file").write_text("x")
    dest = {
        "a file": tmp_path / "file",
        "inside a file": tmp_path / "file" / "melanoma",
        "unwritable": Path("/sys/attention-course-test/melanoma"),
    }[where]

    class Server:
        calls = 0

        def dataset_download_files(self, *args, **kwargs):
            Server.calls += 1

    with pytest.raises(DataError, match="is a file|cannot write into"):
        download_melanoma(dest, api=Server())
    assert Server.calls == 0, "nothing is downloaded into a place that cannot keep it"


@pytest.mark.parametrize("token_place", ["KAGGLE_API_TOKEN", "~/.kaggle/access_token"])
def test_an_access_token_that_cannot_be_checked_is_one_line(tmp_path, token_place):
    """With a token and no network, kaggle's own check fails; the command says so in one line, secret-free."""
    secret = "KGAT_0123456789abcdef-secret"
    home = tmp_path / "home"
    (home / ".kaggle").mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE")}
    env.update(
        HOME=str(home),
        KAGGLE_CONFIG_DIR=str(home / ".kaggle"),
        COURSE_DATA_DIR=str(tmp_path / "data"),
    )
    if token_place == "KAGGLE_API_TOKEN":
        env["KAGGLE_API_TOKEN"] = secret
    else:
        (home / ".kaggle" / "access_token").write_text(secret + "\n")
    run = subprocess.run(
        [sys.executable, "-m", "course_lib.data", "download"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert run.returncode == 2, run.stderr[-3000:]
    assert (
        lines and lines[-1].startswith("error: ") and "Traceback" not in run.stderr
    ), run.stderr[-3000:]
    assert "credentials" in lines[-1] and "KAGGLE_API_TOKEN" in lines[-1]
    assert secret not in run.stdout + run.stderr
    assert not (tmp_path / "data" / "kaggle-melanoma").exists()


# ------------------------------------------------------------------ 10. smaller ones


def test_bad_target_message_counts_only_bad_values(lesion_root, tmp_path):
    def edit(frame):
        frame["target"] = frame["target"].astype(object)
        frame.loc[4, "target"] = "yes"
        return frame

    with pytest.raises(DataError, match=r"found 1 other value\(s\) in 96 rows: 'yes'"):
        load_melanoma(_copy_with(lesion_root, tmp_path, edit))


def test_stale_temporary_files_of_killed_writes_are_cleaned_on_the_next_save(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = [tmp_path / f".last.pt.{dead.pid}-abc_1234.tmp"]  # mkstemp's exact form
    alive = tmp_path / f".last.pt.{os.getppid()}-def_5678.tmp"  # its writer still runs
    # another file's temporary: not this save's business
    other = tmp_path / f".best.pt.{dead.pid}-ghi_9012.tmp"
    # the user's own files, however similar their names (review case R15)
    yours = [
        tmp_path / ".last.pt.backup",
        tmp_path / ".last.pt.oldstyle.tmp",
        tmp_path / f".last.pt.{dead.pid}-mine.tmp",
    ]
    for path in (*stale, alive, other, *yours):
        path.write_bytes(b"half a checkpoint")
    save_atomic({"epoch": 1}, tmp_path / "last.pt")
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in yours)
    assert (
        alive.exists()
        and other.exists()
        and load_checkpoint(tmp_path / "last.pt") == {"epoch": 1}
    )


def test_checkpoints_get_the_usual_file_mode(tmp_path):
    old = os.umask(0o022)
    try:
        save_atomic({"epoch": 1}, tmp_path / "last.pt")
        assert (tmp_path / "last.pt").stat().st_mode & 0o777 == 0o644
        os.umask(0o077)
        save_atomic({"epoch": 2}, tmp_path / "private.pt")
        assert (tmp_path / "private.pt").stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old)


def test_a_worker_whose_main_process_stopped_ends_without_a_traceback(lesion_root):
    """Seen once in ten loaded runs of test_kill_resume: after SIGTERM, a DataLoader
    worker's file-descriptor-sharing thread printed ``ConnectionResetError`` under the
    run's one-line message. The workers' init makes such a thread end quietly; a real
    error in a worker thread is still reported."""
    from course_lib.data.loaders import quiet_worker_init

    frame = load_melanoma(lesion_root)
    train_loader, _ = make_loaders(frame, frame, 32, 4, num_workers=1)
    assert train_loader.worker_init_fn is quiet_worker_init
    script = (
        "import threading, sys\n"
        "from course_lib.data.loaders import quiet_worker_init\n"
        "quiet_worker_init(0)\n"
        "def fail(error):\n"
        "    def run():\n"
        "        raise error\n"
        "    t = threading.Thread(target=run); t.start(); t.join()\n"
        "fail(ConnectionResetError(104, 'Connection reset by peer'))\n"
        "fail(BrokenPipeError(32, 'Broken pipe'))\n"
        "fail(ValueError('a real error'))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert "ConnectionResetError" not in run.stderr
    assert "BrokenPipeError" not in run.stderr
    assert "ValueError: a real error" in run.stderr
