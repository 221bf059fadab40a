"""Pictures of what a network looks at (notebooks ``10_attnvgg_melanoma`` and ``11_seeing_attention``).

- :func:`to_display` turns a normalised image tensor back into the picture the camera took
  (the Paperspace tutorial plotted min-max rescaled tensors, which shifts every colour);
- :func:`overlay` lays a saliency map of any size over its image: the map is upsampled
  bilinearly to the image, min-max scaled, coloured and alpha-blended;
- :func:`attention_grid` draws one row per image and one column per map
  (image | pool-3 attention | pool-4 attention | Grad-CAM | mask), with the lesion outline on
  every overlay so the eye can judge whether a map sits on the lesion;
- :func:`plot_history` draws the training curves ``fit`` returns;
- :func:`use_course_style` sets the look every notebook's figures share.

**Legible in the book.** The book's text column is about 800 px wide; a figure W inches
wide is scaled to fit it, so text of p points ends up about ``11·p/W`` pixels high. The
course keeps figures at most 10 inches wide and text at least 10 points (11 px or more on
the page), and renders figures at twice the pixel density ("retina"), so they stay sharp
on high-density screens and in zoomed screenshots.
"""

from __future__ import annotations

import matplotlib
import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from .data.transforms import denormalize

__all__ = [
    "to_display",
    "upsample_map",
    "overlay",
    "attention_grid",
    "plot_history",
    "use_course_style",
    "MIN_FONT_SIZE",
]

#: The smallest text size, in points, of any figure in the course (see the module's docstring).
MIN_FONT_SIZE = 10


def use_course_style() -> None:
    """Figures with legible text (at least :data:`MIN_FONT_SIZE` points), drawn at twice the
    pixel density in notebooks. Every notebook calls this once, after its imports."""
    mpl.rcParams.update(
        {
            "font.size": 11,
            "axes.titlesize": 12,
            "axes.labelsize": 11,
            "xtick.labelsize": 10,
            "ytick.labelsize": 10,
            "legend.fontsize": 10,
            "figure.titlesize": 12,
            "figure.dpi": 100,
            "savefig.dpi": 200,
            "axes.titlelocation": "left",
            "axes.spines.top": False,
            "axes.spines.right": False,
        }
    )
    try:  # inside Jupyter: PNGs at twice the resolution, displayed at their nominal size
        from matplotlib_inline.backend_inline import set_matplotlib_formats

        set_matplotlib_formats("retina")
    except ImportError:  # plain Python: nothing to configure
        pass


def _tensor(x) -> torch.Tensor:
    return (
        x.detach().cpu()
        if isinstance(x, torch.Tensor)
        else torch.as_tensor(np.asarray(x))
    )


def to_display(image, normalized: bool = True) -> np.ndarray:
    """An ``(H, W, 3)`` float array in [0, 1] for ``plt.imshow``.

    ``image`` is a ``(3, H, W)`` tensor as the loaders produce it (ImageNet normalisation
    undone when ``normalized``), a ``uint8`` ``(3, H, W)`` tensor as the Dataset's workers
    produce it, or already an ``(H, W, 3)`` array (uint8 or float in [0, 1]).
    """
    x = _tensor(image)
    if x.dim() == 3 and x.shape[0] == 3:  # a CHW tensor from the data pipeline
        if x.dtype == torch.uint8:  # a worker's picture: nothing to undo
            return (x.float() / 255).permute(1, 2, 0).numpy()
        x = denormalize(x.float()) if normalized else x.float().clamp(0, 1)
        return x.permute(1, 2, 0).numpy()
    if x.dim() == 3 and x.shape[-1] == 3:
        x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
        return x.clamp(0, 1).numpy()
    raise ValueError(
        f"expected an image shaped (3, H, W) or (H, W, 3), got {tuple(x.shape)}"
    )


def upsample_map(saliency, size: tuple[int, int]) -> np.ndarray:
    """A ``(h, w)`` or ``(1, h, w)`` map resized bilinearly to ``size`` = (H, W), as an array."""
    s = _tensor(saliency).float()
    s = s.reshape(s.shape[-2:])[None, None]
    if tuple(s.shape[-2:]) != tuple(size):
        s = F.interpolate(s, size=tuple(size), mode="bilinear", align_corners=False)
    return s[0, 0].numpy()


def overlay(
    image, saliency, alpha: float = 0.5, cmap: str = "jet", normalized: bool = True
) -> np.ndarray:
    """``image`` with ``saliency`` blended over it: an ``(H, W, 3)`` float array in [0, 1].

    The map is upsampled to the image, min-max scaled to [0, 1] (a softmax attention map
    sums to 1, so its raw values are tiny), coloured with ``cmap`` and mixed in with weight
    ``alpha``. A constant map is drawn as its colour map's lowest colour.
    """
    picture = to_display(image, normalized)
    heat = upsample_map(saliency, picture.shape[:2])
    spread = heat.max() - heat.min()
    heat = (heat - heat.min()) / spread if spread > 0 else np.zeros_like(heat)
    coloured = matplotlib.colormaps[cmap](heat)[..., :3]
    return (1 - alpha) * picture + alpha * coloured


def attention_grid(
    images,
    maps: dict,
    masks=None,
    row_titles=None,
    normalized: bool = True,
    alpha: float = 0.5,
    size: float | None = None,
    mask_title: str = "lesion mask",
):
    """A figure: one row per image; columns image | one overlay per entry of ``maps`` | mask.

    ``images`` is ``(N, 3, H, W)``; each value of ``maps`` holds N maps of any size (e.g.
    ``{"pool-3 attention": a1, "pool-4 attention": a2, "Grad-CAM": cam}``); ``masks``
    ``(N, [1,] H, W)`` adds a mask column (titled ``mask_title``) and the mask's outline
    (white) on every overlay. ``row_titles`` label the rows (e.g. "melanoma, p=0.91").
    The figure is returned closed: a notebook shows it once, as the cell's result.
    """
    images = _tensor(images)
    n = len(images)
    columns = ["image", *maps] + ([mask_title] if masks is not None else [])
    # at most 10 inches wide: legible in the book
    size = size or min(2.2, 10 / len(columns))
    fig, axes = plt.subplots(
        n, len(columns), figsize=(size * len(columns), size * n), squeeze=False
    )
    for row in range(n):
        outline = None
        if masks is not None:
            outline = _tensor(masks[row]).float().reshape(images.shape[-2:]).numpy()
        cells = [to_display(images[row], normalized)]
        cells += [
            overlay(images[row], m[row], alpha=alpha, normalized=normalized)
            for m in maps.values()
        ]
        if outline is not None:
            cells.append(outline)
        for col, (ax, cell) in enumerate(zip(axes[row], cells)):
            ax.imshow(cell, cmap="gray" if cell.ndim == 2 else None, vmin=0, vmax=1)
            if outline is not None and 0 < col <= len(maps):
                ax.contour(outline, levels=[0.5], colors="white", linewidths=0.8)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(
                    columns[col], fontsize=MIN_FONT_SIZE, loc="center", wrap=True
                )
        if row_titles is not None:
            axes[row, 0].set_ylabel(row_titles[row], fontsize=MIN_FONT_SIZE)
    fig.tight_layout()
    # closed, so that Jupyter shows it once: as the cell's result, not again at the cell's
    # end (pyplot shows every open figure); show a figure that is not the result: display(fig)
    plt.close(fig)
    return fig


def plot_history(history, axes=None, label: str | None = None):
    """Loss (train and validation) and validation AUC per epoch, from ``fit``'s history.

    Pass the ``axes`` of an earlier call and a ``label`` to draw several runs together.
    """
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    tag = f"{label}: " if label else ""
    line = axes[0].plot(
        history["epoch"], history["train_loss"], "o-", label=f"{tag}train"
    )[0]
    axes[0].plot(
        history["epoch"],
        history["val_loss"],
        "s--",
        color=line.get_color(),
        label=f"{tag}validation",
    )
    axes[1].plot(
        history["epoch"],
        history["val_auc"],
        "o-",
        color=line.get_color(),
        label=label or "validation AUC",
    )
    axes[0].set(xlabel="epoch", ylabel="loss", title="loss")
    axes[1].set(xlabel="epoch", ylabel="AUC", title="validation AUC")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    axes[0].figure.tight_layout()
    return axes
