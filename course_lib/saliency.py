"""Saliency maps over a whole data set, and how well they localise (notebooks ``11`` and ``12``).

:func:`collect_maps` runs a model over a loader that yields ``(images, targets, masks)``
(``make_loaders(..., with_mask=True)``) and keeps, for every image, its predicted
probability, AttnVGG's two attention maps, a Grad-CAM map and the mask.
:func:`baseline_maps` makes maps that know nothing about the image — uniform noise, and a
fixed blob at the image centre (lesions are photographed near the centre, so a centre prior
is the bar a map must clear to show it has found *this* lesion).
:func:`localisation_table` scores any set of maps with the three measures of
:mod:`course_lib.metrics`; :func:`verdicts` reads its energy column against the random map's,
with a paired bootstrap interval over the images when given the maps themselves.
For a vision transformer (:class:`course_lib.models.ViT`), :func:`attention_rollout` follows
the attention through all blocks and :func:`class_token_map` turns the class token's row into
a map over the patches.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .evaluation import paired_mean_ci
from .gradcam import grad_cam
from .metrics import binarized_jaccard, energy_in_mask, pointing_game, predicted_class

__all__ = [
    "collect_maps",
    "baseline_maps",
    "localisation_table",
    "verdicts",
    "energies",
    "attention_rollout",
    "class_token_map",
    "MAP_NAMES",
]

#: The keys under which :func:`collect_maps` returns each kind of map.
MAP_NAMES = ("pool-3 attention", "pool-4 attention", "Grad-CAM")


def collect_maps(
    model, loader, device=None, gradcam: bool = True, target: str = "predicted"
) -> dict:
    """Probabilities, targets, masks and maps of every image in ``loader``, as numpy arrays.

    Keys: ``probability`` (N,), ``target`` (N,), ``mask`` (N, H, W) and one entry per name
    in :data:`MAP_NAMES` — the attention maps at their own size (N, h, w), Grad-CAM at the
    image size (``gradcam=False`` leaves it out). ``model`` returns ``(logits, a1, a2)``.
    """
    device = (
        torch.device(device) if device is not None else next(model.parameters()).device
    )
    model.eval()
    parts: dict[str, list] = {
        k: []
        for k in ("probability", "target", "mask", *MAP_NAMES[: 3 if gradcam else 2])
    }
    for batch in loader:
        if len(batch) < 3:
            raise ValueError(
                "the loader yields no masks: build it with make_loaders(..., with_mask=True)"
            )
        images, targets, masks = batch[:3]
        with torch.no_grad():
            logits, a1, a2 = model(images.to(device))
        parts["probability"].append(
            torch.sigmoid(logits.float()).reshape(len(images), -1)[:, 0].cpu().numpy()
        )
        # a loader built with device="cuda" delivers its batches on the GPU
        parts["target"].append(targets.cpu().numpy())
        parts["mask"].append(
            masks.reshape(len(masks), *masks.shape[-2:]).cpu().numpy() > 0.5
        )
        parts["pool-3 attention"].append(a1.float()[:, 0].cpu().numpy())
        parts["pool-4 attention"].append(a2.float()[:, 0].cpu().numpy())
        # "predicted": the classes of the logits above, not another forward pass
        if gradcam:
            predicted = predicted_class(logits).tolist()
            parts["Grad-CAM"].append(
                grad_cam(
                    model, images, target=predicted if target == "predicted" else target
                )
            )
    return {k: np.concatenate(v) for k, v in parts.items()}


def baseline_maps(
    n: int, size: tuple[int, int], kind: str = "random", seed: int = 0
) -> np.ndarray:
    """``n`` maps of ``size`` that ignore the image: "random" (uniform noise) or "centre"
    (a Gaussian blob at the centre, standard deviation a quarter of the side)."""
    h, w = size
    if kind == "random":
        return np.random.default_rng(seed).random((n, h, w), dtype=np.float32)
    if kind == "centre":
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        blob = np.exp(
            -(((yy - (h - 1) / 2) / (h / 4)) ** 2 + ((xx - (w - 1) / 2) / (w / 4)) ** 2)
            / 2
        )
        return np.broadcast_to(blob, (n, h, w)).copy()
    raise ValueError(f"kind must be 'random' or 'centre', not {kind!r}")


def localisation_table(maps: dict, masks, tolerance: float = 0) -> pd.DataFrame:
    """One row per entry of ``maps`` ({name: (N, h, w) maps}); columns: the mean pointing game
    (with ``tolerance`` pixels), energy in mask and binarised Jaccard over the N images.

    A map with no positive value (Grad-CAM keeps only the positive part, and can be zero
    everywhere) has no energy to share out: such images are left out of that row's means and
    counted in the column "maps without signal".
    """
    masks = np.asarray(masks)
    rows = {}
    for name, m in maps.items():
        m = np.asarray(m, dtype=np.float32)
        signal = np.clip(m, 0, None).reshape(len(m), -1).sum(axis=1) > 0
        if not signal.any():  # nothing to average (Grad-CAM after one epoch, say)
            rows[name] = dict.fromkeys(
                ("pointing game", "energy in mask", "binarised Jaccard"), np.nan
            )
            rows[name]["maps without signal"] = len(m)
            continue
        kept, kept_masks = m[signal], masks[signal]
        rows[name] = {
            "pointing game": float(
                np.mean(pointing_game(kept, kept_masks, tolerance=tolerance))
            ),
            "energy in mask": float(np.mean(energy_in_mask(kept, kept_masks))),
            "binarised Jaccard": float(np.mean(binarized_jaccard(kept, kept_masks))),
            "maps without signal": int((~signal).sum()),
        }
    return pd.DataFrame(rows).T.astype({"maps without signal": int})


def energies(m, masks) -> np.ndarray:
    """Each image's energy in its mask; NaN for a map without positive mass."""
    m, masks = np.asarray(m, dtype=np.float32), np.asarray(masks)
    signal = np.clip(m, 0, None).reshape(len(m), -1).sum(axis=1) > 0
    out = np.full(len(m), np.nan)
    if signal.any():
        out[signal] = np.asarray(energy_in_mask(m[signal], masks[signal]))
    return out


def verdicts(
    table: pd.DataFrame,
    random_row: str = "random map",
    maps: dict | None = None,
    masks=None,
    groups=None,
) -> pd.DataFrame:
    """Each row's energy in mask as a multiple of the random map's, with a verdict in words.

    At least 1.5 times random: "on the lesion"; below 2/3 of it: "avoids the lesion";
    in between: "no better than random". Rows without an energy (NaN) are left out.

    With ``maps`` and ``masks`` (those given to :func:`localisation_table`) the verdict also
    needs the evidence: each map's energy is compared with the random map's **image by
    image**, and :func:`course_lib.evaluation.paired_mean_ci` gives the 95 % interval of the
    mean difference (over patients with ``groups``). "On the lesion" then needs the interval
    above 0 as well, "avoids the lesion" below 0; an interval that holds 0 is "no better than
    random" whatever the ratio; a ratio between 2/3 and 1.5 with an interval clear of 0 reads
    "a little above random" or "a little below random". A map with signal in fewer than two
    images has no interval: "too few maps with signal".
    """
    random_energy = table.loc[random_row, "energy in mask"]
    ratio = (table["energy in mask"] / random_energy).dropna()
    words = ratio.map(
        lambda r: (
            "on the lesion"
            if r >= 1.5
            else "avoids the lesion"
            if r < 2 / 3
            else "no better than random"
        )
    )
    result = pd.DataFrame({"energy / random": ratio, "verdict": words})
    if maps is None:
        return result
    chance = energies(maps[random_row], masks)
    low, high = {}, {}
    for name in ratio.index:
        if name == random_row or name not in maps:  # e.g. a row of reference values
            continue
        energy = energies(maps[name], masks)
        if np.count_nonzero(~np.isnan(energy)) < 2:  # e.g. Grad-CAM after one epoch
            words[name] = "too few maps with signal"
            continue
        difference = paired_mean_ci(energy, chance, groups=groups)
        low[name], high[name] = difference.low, difference.high
        r = ratio[name]
        if difference.low <= 0 <= difference.high:
            words[name] = "no better than random"
        elif 2 / 3 <= r < 1.5:
            above = difference.low > 0
            words[name] = f"a little {'above' if above else 'below'} random"
    result["verdict"] = words
    result["energy − random, 95 % interval"] = pd.Series(
        {n: f"[{low[n]:+.3f}, {high[n]:+.3f}]" for n in low}
    )
    return result


_HEAD_FUSIONS = {
    "mean": lambda a: a.mean(dim=1),
    "max": lambda a: a.amax(dim=1),
    "min": lambda a: a.amin(dim=1),
}


def attention_rollout(
    attentions, head_fusion: str = "mean", discard_ratio: float = 0.0
) -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema, 2020): how much each token's final state draws on
    each input token, through every block.

    ``attentions`` holds one ``(N, heads, T, T)`` tensor per block (``ViT(...)(x,
    return_attention=True)[1]``). Per block the heads are fused (``"mean"``, ``"max"`` or
    ``"min"``); with ``discard_ratio`` > 0 that share of the smallest weights of each image is
    set to 0 (never the class token's attention to itself), as in Jacob Gildenblat's
    ``vit-explain``; the residual connection is accounted for as ``(A + I) / 2``, rows
    renormalised; the blocks are multiplied through, the last on the left. Returns the
    ``(N, T, T)`` rollout; each row sums to 1.
    """
    if head_fusion not in _HEAD_FUSIONS:
        raise ValueError(
            f"head_fusion must be one of {', '.join(_HEAD_FUSIONS)}; got {head_fusion!r}"
        )
    if not 0 <= discard_ratio < 1:
        raise ValueError(f"discard_ratio must be in [0, 1); got {discard_ratio}")
    attentions = list(attentions)
    if not attentions:
        raise ValueError(
            "attentions is empty: pass one (N, heads, T, T) tensor per block"
        )
    shape = attentions[0].shape
    for i, a in enumerate(attentions):
        if a.dim() != 4 or a.shape[-1] != a.shape[-2] or a.shape != shape:
            raise ValueError(
                f"attentions[{i}] has shape {tuple(a.shape)}; every block's must be "
                f"(N, heads, T, T), the same for all (the first is {tuple(shape)})"
            )
    n, tokens = shape[0], shape[-1]
    eye = torch.eye(tokens, dtype=torch.float32, device=attentions[0].device)
    rollout = eye.expand(n, tokens, tokens)
    for a in attentions:
        fused = _HEAD_FUSIONS[head_fusion](a.detach().float())
        if discard_ratio:
            flat = fused.reshape(n, -1).clone()
            lowest = flat.topk(int(flat.shape[1] * discard_ratio), dim=1, largest=False)
            # zero the smallest, except entry 0: the class token's attention to itself
            class_self = lowest.indices == 0
            flat.scatter_(
                1, lowest.indices, flat.gather(1, lowest.indices) * class_self
            )
            fused = flat.reshape(n, tokens, tokens)
        step = (fused + eye) / 2
        step = step / step.sum(dim=-1, keepdim=True)
        rollout = step @ rollout
    return rollout


def class_token_map(matrix: torch.Tensor, grid: int | None = None) -> torch.Tensor:
    """The class token's row of a ``(N, T, T)`` matrix (a rollout, or one block's attention
    with the heads fused), without its own entry, as an ``(N, grid, grid)`` map over the
    patches (row by row, as the patch embedding orders them)."""
    if matrix.dim() != 3 or matrix.shape[1] != matrix.shape[2]:
        raise ValueError(f"matrix must be (N, T, T); got {tuple(matrix.shape)}")
    patches = matrix.shape[-1] - 1
    grid = int(round(patches**0.5)) if grid is None else grid
    if grid * grid != patches:
        raise ValueError(
            f"{patches} patch tokens do not form a {grid}x{grid} grid (T = 1 + grid²)"
        )
    return matrix[:, 0, 1:].reshape(len(matrix), grid, grid)
