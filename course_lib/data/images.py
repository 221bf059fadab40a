"""Reading image and mask files, and checking a whole data set's files at once (notebook ``01_lesion_data``).

Every reader names the file it could not read: a missing, truncated or corrupt image is a
:class:`DataError` with its path, never a bare decoder traceback from a DataLoader worker.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import DataError

__all__ = ["read_rgb", "read_mask", "verify_images"]


def _to_8bit(img: Image.Image) -> Image.Image:
    """High-bit-depth gray images (16-bit PNG, 32-bit int or float) scaled to 8 bits.

    Pillow's own ``convert`` clips such values at 255, which turns a 16-bit image white.
    """
    if img.mode.startswith("I;16"):
        scale = 1 / 257  # 65535 -> 255
    elif img.mode == "I":  # how some Pillow versions open 16-bit PNGs
        values = np.asarray(img)
        scale = 1 / 257 if values.max(initial=0) > 255 else 1.0
    elif img.mode == "F":
        values = np.asarray(img)
        scale = 255.0 if values.max(initial=0) <= 1.0 else 1.0
    else:
        return img
    values = np.asarray(img, dtype=np.float64) * scale
    return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), mode="L")


def read_rgb(path: str, draft_size: int | None = None) -> Image.Image:
    """Open an image as 8-bit RGB, whatever its mode (gray, 16-bit gray, RGBA, LA, CMYK, palette).

    ``draft_size`` lets the JPEG decoder skip detail it would throw away: a 512 px JPEG
    read for a 96 px model decodes at 1/4 scale, several times faster.
    Raises :class:`DataError` naming the file when it is missing, corrupt or truncated.
    """
    try:
        with Image.open(path) as img:
            if draft_size and img.format == "JPEG":
                img.draft("RGB", (draft_size, draft_size))
            img.load()  # decode now, so a truncated file fails here, with its name
            return _to_8bit(img).convert("RGB")
    except FileNotFoundError as err:
        raise DataError(f"image file not found: {path}") from err
    except Image.DecompressionBombError as err:  # a few KB that decode to gigabytes
        raise DataError(
            f"cannot decode image {path}: {err} (Pillow refuses images this large)"
        ) from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(
            f"cannot decode image {path}: {err} (the file is corrupt or truncated)"
        ) from err


def read_mask(path: str) -> np.ndarray:
    """A lesion mask as a boolean array: inside where the (8-bit) gray value is above 127."""
    try:
        with Image.open(path) as m:
            m.load()
            return np.asarray(_to_8bit(m).convert("L")) > 127
    except FileNotFoundError as err:
        raise DataError(f"mask file not found: {path}") from err
    except Image.DecompressionBombError as err:  # a few KB that decode to gigabytes
        raise DataError(
            f"cannot read mask {path}: {err} (Pillow refuses images this large)"
        ) from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(
            f"cannot read mask {path}: {err} (the file is corrupt or truncated)"
        ) from err


def _problem(path: str, reader) -> str | None:
    try:
        reader(path)
    except DataError as err:
        return str(err)
    return None


def verify_images(paths, masks=(), workers: int = 8) -> None:
    """Decode every image (and mask) once, in parallel threads; report *all* bad files in one error.

    Raises :class:`DataError` listing each file that is missing, empty, truncated or corrupt
    (the first ten in full, then a count). Decoding releases Python's lock, so threads run
    in parallel on all cores.
    """
    jobs = [(p, read_rgb) for p in paths] + [
        (p, read_mask) for p in masks if isinstance(p, str)
    ]
    if not jobs:
        return
    with ThreadPoolExecutor(max(1, min(workers, len(jobs)))) as pool:
        problems = [msg for msg in pool.map(lambda job: _problem(*job), jobs) if msg]
    if problems:
        shown = "\n  ".join(problems[:10])
        more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise DataError(
            f"{len(problems)} of {len(jobs)} file(s) cannot be read:\n  {shown}{more}"
        )
