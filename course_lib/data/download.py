"""Download the Kaggle melanoma data safely (notebooks ``01_lesion_data`` and ``10_attnvgg_melanoma``).

Three promises:

1. **No secrets in messages.** Missing credentials produce a :class:`KaggleCredentialsError`
   that says where the token goes; it never echoes a key.
2. **Nothing half-done looks whole.** The archive is downloaded and unpacked in a temporary
   folder beside ``dest``, validated with :func:`load_melanoma` — which decodes every image
   once, so an empty or corrupt file is found now — marked complete, and only then renamed to
   ``dest`` (an atomic rename on one file system). An interrupted download leaves no ``dest``.
3. **Idempotent.** A second call on a complete data set returns at once.

The ``kaggle`` package authenticates when it is *imported* and may call ``exit(1)`` when it
finds no credentials (in the 1.x releases), which would kill a script or abort a notebook cell; it
is therefore imported lazily and that ``SystemExit`` is turned into a readable error.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import zipfile
from pathlib import Path

from ..files import staged_folder
from .errors import DataError
from .melanoma import KAGGLE_IMAGE_DIR, load_melanoma

__all__ = [
    "KAGGLE_DATASET",
    "KaggleCredentialsError",
    "download_melanoma",
    "COMPLETE_MARKER",
    "scrub",
]

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


def _secrets() -> list[str]:
    """The credential values this process could hand to Kaggle (never to be printed)."""
    values = [os.environ.get(name, "") for name in ("KAGGLE_KEY", "KAGGLE_API_TOKEN")]
    for path in (
        Path.home() / ".kaggle" / "access_token",
        Path.home() / ".kaggle" / "access_token.txt",
    ):
        with contextlib.suppress(OSError, UnicodeDecodeError):
            values.append(path.read_text().strip())
    return [v for v in values if len(v) >= 4]


def scrub(text: str) -> str:
    """``text`` with every credential value replaced by ``***``."""
    for secret in _secrets():
        text = text.replace(secret, "***")
    return text


def _check_kaggle_json() -> None:
    """A ``kaggle.json`` that is there but not valid JSON is said so (kaggle itself reports
    it as missing credentials); its content is never shown."""
    import json

    folder = os.environ.get("KAGGLE_CONFIG_DIR") or Path.home() / ".kaggle"
    path = Path(folder) / "kaggle.json"
    try:
        json.loads(path.read_text())
    except (OSError, UnicodeDecodeError):
        return  # missing or unreadable: kaggle's own check says what is wrong
    except ValueError as err:
        raise KaggleCredentialsError(
            f"{path} is not valid JSON (line {getattr(err, 'lineno', '?')}): it must read "
            '{"username": "...", "key": "..."}; download a new one from Kaggle, '
            "Settings -> API -> Create New Token"
        ) from None


def _kaggle_api():
    """The authenticated ``kaggle.api``, imported lazily; credentials problems made readable.

    Versions of ``kaggle`` differ: some call ``exit(1)`` while being imported, others print
    their help, swallow that exit and leave the API unauthenticated; with an access token,
    authenticating asks Kaggle's server to check it, which fails without a network.
    Authenticating again ourselves, with its printout captured, turns every variant into one
    clear error that never shows a key.
    """
    _check_kaggle_json()
    # kaggle's own help text (it holds no secret); ours replaces it
    chatter = io.StringIO()
    try:
        with contextlib.redirect_stdout(chatter):
            # imported here: authentication happens on import, and kaggle is an optional extra
            import kaggle

            kaggle.api.authenticate()
    except SystemExit:
        raise KaggleCredentialsError(_HOW_TO) from None
    except ImportError as err:
        raise DataError(
            f"the kaggle package is not installed ({err}): pip install kaggle"
        ) from None
    except (
        Exception
    ) as err:  # a token that cannot be checked (no network), an unreadable file, ...
        text = scrub(str(err).strip().splitlines()[0] if str(err).strip() else "")
        if isinstance(err, OSError) and (
            "kaggle.json" in text or "credentials" in text.lower()
        ):
            raise KaggleCredentialsError(
                _HOW_TO
            ) from None  # old versions: OSError for a missing kaggle.json
        raise DataError(
            f"Kaggle did not accept or could not check the credentials ({type(err).__name__}: {text}). "
            "Check the network connection, then the token: KAGGLE_API_TOKEN, ~/.kaggle/access_token "
            "or ~/.kaggle/kaggle.json (a token can expire: create a new one under Settings -> API)"
        ) from None
    return kaggle.api


def _is_complete(dest: Path) -> bool:
    return (dest / COMPLETE_MARKER).is_file()


def _check_destination(dest: Path) -> None:
    """Fail before downloading 3 GB when ``dest``'s folder cannot be written."""
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(
            prefix=f".{dest.name}.write-test-", dir=dest.parent
        ):
            pass
    except OSError as err:
        raise DataError(
            f"cannot write into {dest.parent} ({err.strerror or err}): choose another destination "
            "(download_melanoma(dest=...), or set COURSE_DATA_DIR to a writable folder)"
        ) from None


def download_melanoma(
    dest: str | Path, dataset: str = KAGGLE_DATASET, api=None
) -> Path:
    """Download and unpack the Kaggle melanoma data into ``dest``; return ``dest``.

    ``api`` is an object with kaggle's ``dataset_download_files(dataset, path, unzip, quiet)``
    method; by default the real ``kaggle.api``. (The tests pass a local stand-in that serves
    a zip of a synthetic set, exercising this whole function without the network.)
    """
    dest = Path(dest)
    if _is_complete(dest):
        return dest
    if dest.exists() and not dest.is_dir():
        raise DataError(
            f"{dest} is a file: choose a folder to download the data set into"
        )
    if dest.exists() and any(dest.iterdir()):
        if not (dest / KAGGLE_IMAGE_DIR).is_dir():  # e.g. the course's synthetic set
            raise DataError(
                f"{dest} exists but is not a complete data set (it holds files, but "
                f"not the Kaggle download's layout: no {KAGGLE_IMAGE_DIR}/ folder); "
                "nothing was changed. Download into an empty or new folder"
            )
        try:  # a data set unpacked by hand is accepted once every file in it reads
            load_melanoma(dest, verify=True)
        except DataError as err:
            raise DataError(
                f"{dest} exists but is not a complete data set ({err}); "
                "remove it and download again"
            ) from err
        (dest / COMPLETE_MARKER).write_text("validated in place\n")
        return dest
    _check_destination(dest)
    if api is None:
        api = _kaggle_api()
    # the archive goes to a folder of its own, deleted afterwards; only the unpacked data is published
    with (
        tempfile.TemporaryDirectory(
            prefix=f".{dest.name}.archive-", dir=dest.parent
        ) as archive_dir,
        staged_folder(dest) as unpacked,
    ):
        try:
            api.dataset_download_files(
                dataset, path=archive_dir, unzip=False, quiet=False
            )
        except (
            Exception
        ) as err:  # network, quota, disk, unknown data set: name it, never the key
            raise DataError(
                f"downloading {dataset} failed: {type(err).__name__}: {scrub(str(err))}"
            ) from None
        archives = sorted(Path(archive_dir).glob("*.zip"))
        if len(archives) != 1:
            raise DataError(
                f"expected one zip archive from the download, found {len(archives)}"
            )
        try:
            with zipfile.ZipFile(archives[0]) as zf:
                broken = zf.testzip()
                if broken is not None:
                    raise DataError(
                        f"the downloaded archive is corrupt (first bad member: {broken})"
                    )
                zf.extractall(unpacked)
        except zipfile.BadZipFile as err:
            raise DataError(
                f"the downloaded archive {archives[0].name} is not a valid zip: {err}"
            ) from err
        # the csv, its columns, and every image decoded once
        frame = load_melanoma(unpacked, verify=True)
        (unpacked / COMPLETE_MARKER).write_text(f"{dataset}\n{len(frame)} images\n")
    return dest
