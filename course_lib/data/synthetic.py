"""Synthetic skin lesions with masks, following the ABCD rule (introduced in ``01_lesion_data``).

Doctors screen a pigmented lesion by eye with the clinical ABCD rule (Friedman, Rigel & Kopf,
1985): **A**symmetry, **B**order irregularity, **C**olour variety and **D**iameter. (The ABCD
rule of dermatoscopy, Nachbar et al. 1994, has D for differential structures instead.) The generator draws every lesion from a
latent *severity* whose distribution depends on the label, and derives the four ABCD traits
from it, so that:

- benign lesions tend to be small, round, symmetric and of one even brown;
- malignant lesions tend to be larger, asymmetric, ragged and multi-coloured;
- the two classes overlap, so a good model reaches a high but not perfect AUC.

Images come in *patients*: a patient's images share skin tone, skin texture, hairiness and a
camera colour cast, and melanoma patients tend to have several malignant lesions. This is
what makes a random image-level split leak (notebook 01 measures it). An option adds a
**spurious cue** — a ruler or ink marks drawn far more often on malignant images — for the
shortcut experiment of notebook 11; its pixels are saved as a separate mask.

Output is the course's simple layout (:mod:`course_lib.data.melanoma` reads it)::

    root/marking.csv            image_id, patient_id, sex, age_approx,
                                anatom_site_general_challenge, source, target (+ cue)
    root/images/{image_id}.jpg
    root/masks/{image_id}.png   binary lesion mask (0 / 255)
    root/cues/{image_id}.png    binary mask of the spurious cue (only with a cue)
"""

from __future__ import annotations

import inspect
import json
import math
import multiprocessing
import os
import sys
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFilter

from ..files import staged_folder
from .errors import DataError

__all__ = [
    "make_synthetic_lesions",
    "ensure_synthetic_lesions",
    "default_data_dir",
    "read_stamp",
    "available_cores",
    "SEPARATION",
    "GENERATOR_VERSION",
]

#: Distance between the class means of the latent severity, in standard deviations.
#: Together with the per-trait noise it sets how hard the task is (see notebook 01).
SEPARATION = 2.4

_SITES = ("torso", "lower extremity", "upper extremity", "head/neck", "palms/soles")
# dark brown, black, blue-grey, red, light brown
_MALIGNANT_COLOURS = np.array(
    [[60, 35, 25], [25, 18, 20], [95, 105, 135], [150, 60, 55], [115, 75, 50]],
    dtype=np.float32,
)


@dataclass(frozen=True)
class _Patient:
    patient_id: str
    skin: np.ndarray  # RGB base tone
    cast: np.ndarray  # camera colour cast, multiplicative
    texture: float  # strength of the skin's low-frequency texture
    hair_rate: float  # mean number of hairs per image
    risky: bool  # melanoma patient: most of their lesions are malignant
    sex: str
    age: float
    site: str


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Low-frequency noise in [-1, 1]: a ``cells x cells`` random grid upsampled bicubically."""
    grid = rng.uniform(0, 255, (cells, cells)).astype(np.uint8)
    up = Image.fromarray(grid).resize((size, size), Image.BICUBIC)
    return np.asarray(up, dtype=np.float32) / 127.5 - 1.0


def _make_patients(rng, n_patients, risky_fraction, prefix) -> list[_Patient]:
    patients = []
    for k in range(n_patients):
        lightness = rng.uniform(0.35, 1.0)  # from dark to light skin
        skin = np.array([235, 190, 160], np.float32) * lightness + np.array(
            [40, 25, 15]
        ) * (1 - lightness)
        patients.append(
            _Patient(
                patient_id=f"{prefix}_P{k:05d}",
                skin=skin,
                cast=rng.uniform(0.94, 1.06, 3).astype(np.float32),
                texture=rng.uniform(4, 14),
                hair_rate=rng.choice([0.0, 1.0, 4.0], p=[0.5, 0.3, 0.2]),
                risky=bool(rng.random() < risky_fraction),
                sex=str(rng.choice(["male", "female"])),
                age=float(5 * rng.integers(4, 18)),
                site=str(rng.choice(_SITES)),
            )
        )
    return patients


def _lesion_traits(rng, target: int, separation: float):
    """ABCD traits from a latent severity s ~ N(separation * target, 1)."""
    s = rng.normal(separation * target, 1.0)
    z = lambda: s + rng.normal(0, 0.9)  # each trait is a noisy view of s  # noqa: E731
    sig = lambda v: 1 / (1 + math.exp(-(v - separation / 2)))  # noqa: E731
    return {
        "diameter": 0.20 + 0.16 * sig(z()),  # as a fraction of the image side
        "asymmetry": 0.05 + 0.35 * sig(z()),  # amplitude of low-order shape harmonics
        "border": 0.01 + 0.07 * sig(z()),  # amplitude of high-order (ragged) harmonics
        "colours": 1 + min(3, int(4 * sig(z()) ** 2)),  # 1 (even brown) .. 4 colours
        "darkness": 0.55 + 0.3 * sig(z()),
    }


def _radius(
    theta: np.ndarray, rng, base: float, asymmetry: float, border: float
) -> np.ndarray:
    """Lesion outline in polar form: smooth low harmonics (A) plus ragged high harmonics (B)."""
    r = np.ones_like(theta)
    for k in (1, 2, 3):
        r += (
            asymmetry / k * rng.normal() * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
        )
    for k in range(4, 13):
        r += (
            border
            * rng.normal()
            * 4
            / k
            * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
        )
    return base * np.clip(r, 0.35, None)


def _draw_cue(size: int, rng, kind: str) -> Image.Image:
    """A ruler (tick marks along one edge) or ink dots/strokes near the border, as a 0/255 mask."""
    cue = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(cue)
    edge = rng.integers(4)
    if kind == "ruler":
        band = max(3, size // 10)
        ticks = np.arange(rng.integers(2, 5), size, max(3, size // 16))
        for i, t in enumerate(ticks):
            length = band if i % 4 == 0 else band // 2
            xy = [(t, 0), (t, length)] if edge % 2 == 0 else [(0, t), (length, t)]
            draw.line(xy, fill=255, width=max(1, size // 64))
        draw.line(
            [(0, 1), (size, 1)] if edge % 2 == 0 else [(1, 0), (1, size)],
            fill=255,
            width=max(1, size // 48),
        )
    elif kind == "ink":
        for _ in range(rng.integers(2, 5)):
            cx, cy = rng.uniform(0.05, 0.3) * size, rng.uniform(0.1, 0.9) * size
            if edge % 2:
                cx, cy = cy, cx
            r = rng.uniform(0.02, 0.045) * size
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    else:
        raise ValueError(f"spurious_cue must be 'ruler', 'ink' or None, not {kind!r}")
    if edge >= 2:  # mirror to the opposite edge
        cue = cue.transpose(
            Image.FLIP_TOP_BOTTOM if edge == 2 else Image.FLIP_LEFT_RIGHT
        )
    return cue


def _render(
    rng, size: int, patient: _Patient, traits: dict, cue_kind: str | None, cue_rng=None
):
    """One image, its lesion mask and its cue mask (None without a cue); the cue is drawn with ``cue_rng``."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    # skin: base tone, low-frequency texture, fine grain, camera cast
    tex = (
        _smooth_noise(rng, size, 6) * patient.texture + _smooth_noise(rng, size, 24) * 3
    )
    img = patient.skin[None, None, :] + tex[..., None]
    # lesion outline, placed off-centre
    base = traits["diameter"] * size / 2
    cx, cy = size / 2 + rng.normal(0, 0.08, 2) * size
    theta = np.arctan2(yy - cy, xx - cx)
    dist = np.hypot(yy - cy, xx - cx)
    radius = _radius(theta, rng, base, traits["asymmetry"], traits["border"])
    mask = dist <= radius
    # pigment: one even brown, or a patchwork of several colours (C of ABCD)
    brown = np.array([120, 78, 52], np.float32) * (1.25 - traits["darkness"])
    pigment = np.broadcast_to(brown, img.shape).copy()
    if traits["colours"] > 1:
        chosen = _MALIGNANT_COLOURS[
            rng.choice(len(_MALIGNANT_COLOURS), traits["colours"], replace=False)
        ]
        field = _smooth_noise(rng, size, 5)
        bins = (
            np.quantile(field[mask], np.linspace(0, 1, traits["colours"] + 1)[1:-1])
            if mask.any()
            else []
        )
        pigment = chosen[np.digitize(field, bins)]
    # soft edge: opacity falls off over a couple of pixels at the border
    edge = np.clip((radius - dist) / max(1.0, size / 48) + 0.5, 0, 1)
    alpha = (edge * (0.85 + 0.15 * _smooth_noise(rng, size, 8)))[..., None]
    img = img * (1 - alpha) + pigment * alpha
    img = img * patient.cast + rng.normal(0, 3, img.shape)
    image = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    # hairs: thin dark curves over skin and lesion alike
    draw = ImageDraw.Draw(image)
    for _ in range(rng.poisson(patient.hair_rate)):
        x0, y0 = rng.uniform(0, size, 2)
        angle, length = rng.uniform(0, 2 * np.pi), rng.uniform(0.3, 0.9) * size
        bend = rng.normal(0, 0.3)
        pts = [
            (
                x0 + t * length * math.cos(angle + bend * t),
                y0 + t * length * math.sin(angle + bend * t),
            )
            for t in np.linspace(0, 1, 8)
        ]
        draw.line(pts, fill=(40, 28, 22), width=1)
    cue = None
    if cue_kind is not None:
        cue = _draw_cue(size, cue_rng, cue_kind)
        # black ticks, violet ink
        colour = (20, 20, 30) if cue_kind == "ruler" else (70, 40, 140)
        image.paste(
            Image.new("RGB", image.size, colour),
            mask=cue.filter(ImageFilter.GaussianBlur(0.4)),
        )
    return image, Image.fromarray((mask * 255).astype(np.uint8)), cue


#: Bumped whenever the generator's output changes, so cached sets are made anew.
#: 2: the cue draws from its own random stream; 3: every image from its own stream (parallel).
GENERATOR_VERSION = 3

#: The file that marks a folder as written by this generator (its parameters, as JSON).
STAMP = "parameters.json"
_GENERATOR = "course_lib.data.make_synthetic_lesions"


def _image_streams(seed: int, index: int):
    """The two random streams of image ``index``: its lesion and skin, and its spurious cue.

    Derived from ``(seed, index)`` alone (NumPy's ``SeedSequence``), so an image is the same
    whichever process draws it and in whatever order; the cue's stream is separate, so a
    set with a cue holds exactly the lesions of the set without one.
    """
    return np.random.default_rng([seed, 0, index]), np.random.default_rng(
        [seed, 1, index]
    )


def _write_images(
    folder: str,
    seed: int,
    image_size: int,
    separation: float,
    spurious_cue,
    cue_rates,
    jpeg_quality: int,
    jobs,
) -> list[dict]:
    """Render and save the images ``jobs`` = [(index, image_id, patient, target), ...]; their rows."""
    folder = Path(folder)
    rows = []
    for index, image_id, patient, target in jobs:
        rng, cue_rng = _image_streams(seed, index)
        traits = _lesion_traits(rng, target, separation)
        cue_kind = (
            spurious_cue
            if spurious_cue and cue_rng.random() < cue_rates[target]
            else None
        )
        image, mask, cue = _render(rng, image_size, patient, traits, cue_kind, cue_rng)
        image.save(folder / "images" / f"{image_id}.jpg", quality=jpeg_quality)
        mask.save(folder / "masks" / f"{image_id}.png")
        if cue is not None:
            cue.save(folder / "cues" / f"{image_id}.png")
        rows.append(
            dict(
                image_id=image_id,
                patient_id=patient.patient_id,
                sex=patient.sex,
                age_approx=patient.age,
                anatom_site_general_challenge=patient.site,
                source="SYNTH",
                target=target,
                cue=int(cue is not None),
                **traits,
            )
        )
    return rows


def available_cores() -> int:
    """CPU cores this process may use (its affinity where the OS tells it, else all)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _can_fork() -> bool:

    return (
        sys.platform.startswith("linux")
        and "fork" in multiprocessing.get_all_start_methods()
    )


def _pool(workers: int):
    """A process pool. On Linux its processes are forked, as PyTorch's DataLoader workers are:
    they only run NumPy and Pillow, and, unlike spawned ones, they never re-run the calling
    script (a script without ``if __name__ == "__main__":`` works)."""
    return ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("fork" if _can_fork() else "spawn"),
    )


def _check_writable_target(root: Path) -> None:
    if root.exists() and not root.is_dir():
        raise DataError(
            f"{root} is a file, not a folder: choose a new folder for the synthetic lesions"
        )
    if root.is_dir() and any(root.iterdir()):
        raise DataError(
            f"{root} is not empty: make_synthetic_lesions writes only into a new or empty folder, "
            "so that it never overwrites data (use ensure_synthetic_lesions to reuse or refresh "
            "a set it generated)"
        )


def make_synthetic_lesions(
    root: str | Path,
    n_images: int,
    image_size: int = 96,
    seed: int = 0,
    *,
    malignant_fraction: float = 0.3,
    images_per_patient: float = 4.0,
    separation: float = SEPARATION,
    spurious_cue: str | None = None,
    cue_rates: tuple[float, float] = (0.1, 0.9),
    jpeg_quality: int = 92,
    num_workers: int | None = None,
) -> pd.DataFrame:
    """Write ``n_images`` synthetic lesions (simple layout) into ``root`` and return the marking table.

    Deterministic for a ``seed``: the files are byte for byte the same whatever ``num_workers``
    (processes that render in parallel; default: the cores available), because every image
    draws from its own random stream derived from ``(seed, index)``. ``separation`` sets the
    difficulty (larger: easier). ``spurious_cue`` ("ruler" or "ink") draws that cue on a
    malignant image with probability ``cue_rates[1]`` and on a benign one with ``cue_rates[0]``;
    everything else (patients, labels, lesions, masks) is the same as without a cue for the
    same ``seed``. Train on a set with a cue and score on the cue-free twin to expose shortcut
    learning (notebook 11).

    ``root`` must be new or empty: the set is written into a temporary folder beside it and
    renamed into place when complete, so an interrupted run leaves nothing that looks whole.
    The folder gets a ``parameters.json`` stamp (see :func:`ensure_synthetic_lesions`).
    """
    if n_images < 1:
        raise ValueError(f"n_images must be positive, got {n_images}")
    if image_size < 32:
        raise ValueError(f"image_size must be at least 32 pixels, got {image_size}")
    if spurious_cue not in (None, "ruler", "ink"):
        raise ValueError(
            f"spurious_cue must be 'ruler', 'ink' or None, not {spurious_cue!r}"
        )
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    root = Path(root)
    _check_writable_target(root)
    return _publish(
        root,
        n_images,
        image_size,
        seed,
        num_workers,
        malignant_fraction=malignant_fraction,
        images_per_patient=images_per_patient,
        separation=separation,
        spurious_cue=spurious_cue,
        cue_rates=cue_rates,
        jpeg_quality=jpeg_quality,
    )


def _parameters(n_images: int, image_size: int, seed: int, **options) -> dict:
    """Every parameter of a set, defaults filled in, as JSON would store them (unknown names: TypeError)."""
    bound = inspect.signature(make_synthetic_lesions).bind(
        None, n_images, image_size, seed, **options
    )
    bound.apply_defaults()
    params = {
        k: v for k, v in bound.arguments.items() if k not in ("root", "num_workers")
    }
    return json.loads(json.dumps(params))


def _publish(
    root: Path, n_images: int, image_size: int, seed: int, num_workers, **options
) -> pd.DataFrame:
    """Generate into a staging folder beside ``root``, stamp it, and rename it to ``root``."""
    params = _parameters(n_images, image_size, seed, **options)
    with staged_folder(root) as staging:
        frame = _generate(staging, num_workers=num_workers, **params)
        stamp = {"generator": _GENERATOR, "version": GENERATOR_VERSION, **params}
        (staging / STAMP).write_text(json.dumps(stamp, indent=1) + "\n")
    return frame


def _generate(
    folder: Path,
    *,
    n_images,
    image_size,
    seed,
    num_workers,
    malignant_fraction,
    images_per_patient,
    separation,
    spurious_cue,
    cue_rates,
    jpeg_quality,
) -> pd.DataFrame:
    for sub in ("images", "masks") + (("cues",) if spurious_cue else ()):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    # who and which label: a few draws per image from one stream, cheap and sequential
    rng = np.random.default_rng(seed)
    n_patients = max(1, round(n_images / images_per_patient))
    # p(malignant | risky) = 0.8 and p(malignant | not risky) = 0.05 give the requested overall rate
    risky_fraction = float(np.clip((malignant_fraction - 0.05) / 0.75, 0, 1))
    patients = _make_patients(rng, n_patients, risky_fraction, prefix=f"SYN{seed}")
    owners = (
        np.concatenate(
            [np.arange(n_patients), rng.integers(0, n_patients, n_images - n_patients)]
        )
        if n_images >= n_patients
        else rng.permutation(n_patients)[:n_images]
    )
    jobs = []
    for i, owner in enumerate(np.sort(owners)):
        patient = patients[owner]
        target = int(rng.random() < (0.8 if patient.risky else 0.05))
        jobs.append((i, f"{patient.patient_id}_I{i:06d}", patient, target))
    # the pictures: each from its own stream, in as many processes as asked
    # small sets are drawn in this process unless asked; where processes must be spawned (macOS,
    # Windows), only when asked, since spawning re-runs the calling script
    default = min(available_cores(), n_images // 256) if _can_fork() else 1
    workers = num_workers if num_workers is not None else default
    workers = max(1, min(workers, n_images))
    common = (
        str(folder),
        seed,
        image_size,
        separation,
        spurious_cue,
        tuple(cue_rates),
        jpeg_quality,
    )
    if workers == 1:
        rows = _write_images(*common, jobs)
    else:
        # interleaved: equal work per chunk
        chunks = [jobs[k :: workers * 4] for k in range(workers * 4)]
        with warnings.catch_warnings(), _pool(workers) as pool:
            # Python 3.12+ warns that forking a multi-threaded process (torch's thread pool) may
            # deadlock a child that uses those threads' locks; these children never touch torch
            warnings.filterwarnings(
                "ignore", message=".*fork.*", category=DeprecationWarning
            )
            parts = list(
                pool.map(_write_images, *zip(*[(*common, chunk) for chunk in chunks]))
            )
        rows = sorted(
            (row for part in parts for row in part), key=lambda r: r["image_id"]
        )
    frame = pd.DataFrame(rows)
    frame.to_csv(folder / "marking.csv", index=False)
    return frame


def read_stamp(root: str | Path) -> dict | None:
    """The generator's stamp of ``root`` (its parameters), or None when ``root`` holds no set it wrote.

    Sets written before version 3 carry a shorter stamp (``version``, ``n_images``,
    ``image_size``, ``seed``, options); it is recognised too.
    """
    try:
        record = json.loads((Path(root) / STAMP).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict):
        return None
    if record.get("generator") == _GENERATOR:
        return record
    legacy = {"version", "n_images", "image_size", "seed"} <= record.keys() and record[
        "version"
    ] in (1, 2)
    return record if legacy else None


def default_data_dir() -> Path:
    """Where the course keeps data: ``$COURSE_DATA_DIR``, else ``~/.cache/attention-course``."""
    return Path(
        os.environ.get("COURSE_DATA_DIR", Path.home() / ".cache" / "attention-course")
    )


def ensure_synthetic_lesions(
    n_images: int,
    image_size: int,
    seed: int = 0,
    root: str | Path | None = None,
    num_workers: int | None = None,
    **options,
) -> Path:
    """Generate a synthetic set once and reuse it: notebooks of one profile share their data.

    The set lives in ``root`` (default: a folder named after its parameters under
    :func:`default_data_dir`). A folder that holds this set already is returned as it is; one
    that holds a set this generator wrote with other parameters or an older version is
    replaced; anything else — a folder this generator did not write, such as a copy of the
    Kaggle data — is never touched: :class:`DataError` names it.
    """
    if root is None:
        extras = "".join(f"-{k}{v}" for k, v in sorted(options.items()))
        root = (
            default_data_dir()
            / f"synthetic-n{n_images}-s{image_size}-seed{seed}{extras}"
        )
    root = Path(root)
    wanted = _parameters(n_images, image_size, seed, **options)
    stamp = read_stamp(root)
    if (
        stamp is not None
        and stamp.get("version") == GENERATOR_VERSION
        and all(stamp.get(k) == v for k, v in wanted.items())
    ):
        return root
    if stamp is None and root.exists() and (root.is_file() or any(root.iterdir())):
        raise DataError(
            f"{root} exists and was not written by the synthetic-lesion generator (no "
            f"{STAMP} stamp of its own): it is left as it is. Pass another root, or remove "
            "the folder yourself if you no longer need what it holds"
        )
    # an outdated set of this generator, or an empty folder: (re)generate it, atomically
    _publish(root, n_images, image_size, seed, num_workers, **options)
    return root
