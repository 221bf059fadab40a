"""Download the Kaggle melanoma data safely (notebooks ``01_lesion_data`` and ``10_attnvgg_melanoma``).

Three promises:

1. **No secrets in messages.** Missing credentials produce a :class:`KaggleCredentialsError`
   that says where the token goes; it never echoes a key.
2. **Nothing half-done looks whole.** The archive is downloaded and unpacked in a temporary
   folder beside ``dest``, validated with :func:`load_melanoma`, marked complete, and only
   then renamed to ``dest`` (an atomic rename on one file system). An interrupted download
   leaves no ``dest`` at all.
3. **Idempotent.** A second call on a complete data set returns at once.

The ``kaggle`` package authenticates when it is *imported* and may call ``exit(1)`` when it
finds no credentials (COURSE.md §7), which would kill a script or abort a notebook cell; it
is therefore imported lazily and that ``SystemExit`` is turned into a readable error.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
import zipfile
from pathlib import Path

from ..checkpoint import staged_folder
from .errors import DataError
from .melanoma import load_melanoma

__all__ = ["KAGGLE_DATASET", "KaggleCredentialsError", "download_melanoma", "COMPLETE_MARKER"]

KAGGLE_DATASET = "shonenkov/melanoma-merged-external-data-512x512-jpeg"
COMPLETE_MARKER = ".download-complete"

_HOW_TO = (
    "Kaggle credentials are missing. Create an API token on kaggle.com (Settings -> API) and give it "
    "to the kaggle package in one of these ways:\n"
    "  1. set the environment variable KAGGLE_API_TOKEN to the token, or save it as ~/.kaggle/access_token;\n"
    "  2. with a legacy token file kaggle.json: save it as ~/.kaggle/kaggle.json (or in $KAGGLE_CONFIG_DIR) "
    "and run `chmod 600` on it, or set KAGGLE_USERNAME and KAGGLE_KEY;\n"
    "  3. on Colab: store the values as Secrets and copy them into os.environ before downloading.\n"
    "Never paste a key into a notebook you share."
)


class KaggleCredentialsError(DataError):
    """The ``kaggle`` package found no usable credentials."""


def _kaggle_api():
    """The authenticated ``kaggle.api``, imported lazily; credentials problems made readable.

    Versions of ``kaggle`` differ: some call ``exit(1)`` while being imported, others print
    their help, swallow that exit and leave the API unauthenticated. Authenticating again
    ourselves, with its printout captured, turns every variant into one clear error.
    """
    chatter = io.StringIO()  # kaggle's own help text (it holds no secret); ours replaces it
    try:
        with contextlib.redirect_stdout(chatter):
            import kaggle

            kaggle.api.authenticate()
    except SystemExit:
        raise KaggleCredentialsError(_HOW_TO) from None
    except OSError as err:  # old versions raise OSError for a missing kaggle.json
        if "kaggle.json" in str(err) or "credentials" in str(err).lower():
            raise KaggleCredentialsError(_HOW_TO) from None
        raise
    return kaggle.api


def _is_complete(dest: Path) -> bool:
    return (dest / COMPLETE_MARKER).is_file()


def download_melanoma(dest: str | Path, dataset: str = KAGGLE_DATASET, api=None) -> Path:
    """Download and unpack the Kaggle melanoma data into ``dest``; return ``dest``.

    ``api`` is an object with kaggle's ``dataset_download_files(dataset, path, unzip, quiet)``
    method; by default the real ``kaggle.api``. (The tests pass a local stand-in that serves
    a zip of a synthetic set, exercising this whole function without the network.)
    """
    dest = Path(dest)
    if _is_complete(dest):
        return dest
    if dest.exists() and any(dest.iterdir()):
        try:  # a data set unpacked by hand is accepted once it validates
            load_melanoma(dest)
        except DataError as err:
            raise DataError(f"{dest} exists but is not a complete data set ({err}); "
                            "remove it and download again") from err
        (dest / COMPLETE_MARKER).write_text("validated in place\n")
        return dest
    if api is None:
        api = _kaggle_api()
    dest.parent.mkdir(parents=True, exist_ok=True)
    # the archive goes to a folder of its own, deleted afterwards; only the unpacked data is published
    with tempfile.TemporaryDirectory(prefix=f".{dest.name}.archive-", dir=dest.parent) as archive_dir, \
            staged_folder(dest) as unpacked:
        try:
            api.dataset_download_files(dataset, path=archive_dir, unzip=False, quiet=False)
        except Exception as err:  # network, quota, unknown data set: name it, never the key
            raise DataError(f"downloading {dataset} failed: {type(err).__name__}: {err}") from None
        archives = sorted(Path(archive_dir).glob("*.zip"))
        if len(archives) != 1:
            raise DataError(f"expected one zip archive from the download, found {len(archives)}")
        try:
            with zipfile.ZipFile(archives[0]) as zf:
                broken = zf.testzip()
                if broken is not None:
                    raise DataError(f"the downloaded archive is corrupt (first bad member: {broken})")
                zf.extractall(unpacked)
        except zipfile.BadZipFile as err:
            raise DataError(f"the downloaded archive {archives[0].name} is not a valid zip: {err}") from err
        frame = load_melanoma(unpacked)  # validates csv, columns and every image file
        (unpacked / COMPLETE_MARKER).write_text(f"{dataset}\n{len(frame)} images\n")
    return dest
