"""download_melanoma against a local stand-in for Kaggle, and the real `kaggle` import without credentials.

The stand-in implements kaggle's ``dataset_download_files`` by copying a zip of a synthetic set
in the Kaggle layout into the requested folder: everything after the network call — unpacking,
validation, the atomic rename, idempotence — runs for real.
"""

import os
import shutil
import subprocess
import sys
import zipfile

import pandas as pd
import pytest

from course_lib.data import KAGGLE_DATASET, DataError, download_melanoma, load_melanoma
from course_lib.data.melanoma import KAGGLE_IMAGE_DIR


@pytest.fixture(scope="module")
def kaggle_zip(lesion_root, tmp_path_factory):
    """A zip laid out like the Kaggle archive, made from the synthetic set."""
    path = (
        tmp_path_factory.mktemp("kaggle-server")
        / "melanoma-merged-external-data-512x512-jpeg.zip"
    )
    frame = pd.read_csv(lesion_root / "marking.csv")
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("marking.csv", frame.drop(columns=["cue"]).to_csv(index=False))
        for image_id in frame.image_id:
            zf.write(
                lesion_root / "images" / f"{image_id}.jpg",
                f"{KAGGLE_IMAGE_DIR}/{image_id}.jpg",
            )
    return path


class LocalKaggle:
    """Serves a local zip through kaggle's ``dataset_download_files`` signature."""

    def __init__(self, archive, fail_after_bytes=None):
        self.archive, self.fail_after_bytes, self.calls = archive, fail_after_bytes, 0

    def dataset_download_files(self, dataset, path, unzip=False, quiet=True):
        assert dataset == KAGGLE_DATASET and not unzip
        self.calls += 1
        target = os.path.join(path, os.path.basename(self.archive))
        if self.fail_after_bytes is None:
            shutil.copy(self.archive, target)
            return
        with open(self.archive, "rb") as src, open(target, "wb") as dst:
            dst.write(src.read(self.fail_after_bytes))
        raise KeyboardInterrupt  # the reader pressed stop mid-download


def test_download_unpacks_validates_and_is_idempotent(kaggle_zip, tmp_path):
    dest = tmp_path / "melanoma"
    server = LocalKaggle(kaggle_zip)
    assert download_melanoma(dest, api=server) == dest
    frame = load_melanoma(dest)
    assert len(frame) == 96 and (dest / KAGGLE_IMAGE_DIR).is_dir()
    assert server.calls == 1
    download_melanoma(dest, api=server)  # complete: nothing to do
    assert server.calls == 1
    assert [p.name for p in tmp_path.iterdir()] == ["melanoma"], (
        "no staging folder left behind"
    )


def test_interrupted_download_leaves_nothing_that_looks_whole(kaggle_zip, tmp_path):
    dest = tmp_path / "melanoma"
    with pytest.raises(KeyboardInterrupt):
        download_melanoma(dest, api=LocalKaggle(kaggle_zip, fail_after_bytes=5000))
    assert not dest.exists()
    assert list(tmp_path.iterdir()) == [], "the partial download was cleaned up"
    server = LocalKaggle(kaggle_zip)
    download_melanoma(dest, api=server)  # the next call starts over and completes
    assert server.calls == 1 and len(load_melanoma(dest)) == 96


def test_corrupt_archive_is_reported(tmp_path):
    bad = tmp_path / "server" / "bad.zip"
    bad.parent.mkdir()
    bad.write_bytes(b"PK\x03\x04 this is not really a zip")
    with pytest.raises(DataError, match="not a valid zip"):
        download_melanoma(tmp_path / "melanoma", api=LocalKaggle(bad))
    assert not (tmp_path / "melanoma").exists()


def test_existing_incomplete_folder_is_not_mistaken_for_data(tmp_path, kaggle_zip):
    dest = tmp_path / "melanoma"
    dest.mkdir()
    (dest / "marking.csv").write_text("image_id,patient_id,target\nX,P,0\n")
    with pytest.raises(DataError, match="not a complete data set"):
        download_melanoma(dest, api=LocalKaggle(kaggle_zip))


def _download_in_subprocess(tmp_path, **env_extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE")}
    home = tmp_path / "home"  # no ~/.kaggle of the machine's user can leak in
    home.mkdir(exist_ok=True)
    env.update(HOME=str(home), KAGGLE_CONFIG_DIR=str(home / ".kaggle"), **env_extra)
    code = (
        "from course_lib.data import download_melanoma\n"
        f"download_melanoma({str(tmp_path / 'melanoma')!r})\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_missing_credentials_say_how_to_provide_them(tmp_path):
    run = _download_in_subprocess(tmp_path)
    assert run.returncode == 1
    assert "KaggleCredentialsError" in run.stderr, run.stderr[-2000:]
    assert "kaggle.json" in run.stderr and "KAGGLE_API_TOKEN" in run.stderr
    assert "SystemExit" not in run.stderr
    assert not (tmp_path / "melanoma").exists()


def test_a_malformed_kaggle_json_is_said_so_without_its_content(tmp_path):
    """Review caveat KG02: it used to be reported as missing credentials."""
    kaggle = tmp_path / "home" / ".kaggle"
    kaggle.mkdir(parents=True)
    (kaggle / "kaggle.json").write_text('{"username": "me", "key": "s3cr3tkey"')
    (kaggle / "kaggle.json").chmod(0o600)
    run = _download_in_subprocess(tmp_path)
    assert run.returncode == 1 and "is not valid JSON" in run.stderr, run.stderr[-2000:]
    assert "s3cr3tkey" not in run.stderr + run.stdout


def test_a_failed_download_never_prints_the_key(tmp_path):
    secret = "s3cr3t-kaggle-key-0123456789"
    run = _download_in_subprocess(
        tmp_path, KAGGLE_USERNAME="course-test", KAGGLE_KEY=secret
    )
    assert run.returncode != 0  # no network here: the download itself fails
    assert "downloading" in run.stderr or "Kaggle" in run.stderr, run.stderr[-2000:]
    assert secret not in run.stdout + run.stderr
    assert not (tmp_path / "melanoma").exists()
