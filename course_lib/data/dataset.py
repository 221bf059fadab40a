"""``MelanomaDataset``: decode and resize in DataLoader workers (notebook ``01_lesion_data``).

A Dataset runs inside DataLoader workers. It must never move tensors to a GPU (the
Paperspace tutorial calls ``.cuda()`` in ``__getitem__``: that breaks worker processes and
serialises the pipeline); the loader moves whole batches instead.

The course splits the pipeline at the batch: a worker decodes a file (JPEG *draft* mode
skips detail the training size cannot show) and resizes it to a fixed square, returning
``uint8`` tensors — four times less to move between processes and to the GPU than floats —
and the random augmentation runs later, on whole batches on the training device
(:mod:`course_lib.data.augment`, :mod:`course_lib.data.loaders`). A per-image ``transform``
(torchvision v2) is still accepted, for teaching and for comparison.
"""

from __future__ import annotations

import pandas as pd
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

from .errors import DataError
from .images import read_mask, read_rgb

__all__ = ["MelanomaDataset", "read_rgb"]


class MelanomaDataset(Dataset):
    """Images (and optionally lesion masks) of a marking frame from :func:`load_melanoma`.

    Each item is ``(image, target)``, or ``(image, target, mask)`` with ``with_mask=True``;
    ``target`` is a float scalar (0. benign, 1. malignant), ready for ``BCEWithLogitsLoss``.

    - With ``image_size`` and no ``transform`` (what :func:`make_loaders` builds): ``image`` is a
      ``uint8`` tensor ``(3, S, S)`` resized (antialiased) to ``image_size``, ``mask`` a ``uint8``
      tensor ``(1, S, S)`` in {0, 1} (nearest neighbour). No randomness: augmentation comes later.
    - With a per-image ``transform``: it receives ``tv_tensors.Image`` (and ``tv_tensors.Mask``,
      which follows every geometric change) and its output is returned; masks come back as
      float tensors in {0, 1}.
    """

    def __init__(
        self,
        frame: pd.DataFrame,
        transform=None,
        with_mask: bool = False,
        draft_size: int | None = None,
        image_size: int | None = None,
    ):
        missing = [
            c
            for c in ("path", "target") + (("mask_path",) if with_mask else ())
            if c not in frame.columns
        ]
        if missing:
            raise DataError(
                f"the frame lacks column(s) {', '.join(missing)}: build it with load_melanoma()"
            )
        if with_mask and frame["mask_path"].isna().any():
            raise DataError(
                f"{int(frame['mask_path'].isna().sum())} image(s) have no mask; with_mask needs one each"
            )
        if image_size is not None and image_size < 1:
            raise ValueError(f"image_size must be positive, got {image_size}")
        self.paths = frame["path"].tolist()
        self.targets = torch.tensor(frame["target"].to_numpy(dtype="float32"))
        self.mask_paths = frame["mask_path"].tolist() if with_mask else None
        self.transform = transform
        self.with_mask = with_mask
        self.image_size = image_size
        self.draft_size = draft_size or image_size

    def __len__(self) -> int:
        return len(self.paths)

    def _resized(self, tensor: torch.Tensor, nearest: bool = False) -> torch.Tensor:
        if self.image_size is None or tuple(tensor.shape[-2:]) == (
            self.image_size,
            self.image_size,
        ):
            return tensor
        mode = InterpolationMode.NEAREST if nearest else InterpolationMode.BILINEAR
        return F.resize(
            tensor,
            [self.image_size, self.image_size],
            interpolation=mode,
            antialias=not nearest,
        )

    def __getitem__(self, index: int):
        image = self._resized(
            F.pil_to_tensor(read_rgb(self.paths[index], self.draft_size))
        )
        target = self.targets[index]
        mask = None
        if self.with_mask:
            path = self.mask_paths[index]
            mask = torch.from_numpy(read_mask(path)).to(torch.uint8)[None]
            if self.image_size is None and mask.shape[-2:] != image.shape[-2:]:
                raise DataError(
                    f"mask {path} is {tuple(mask.shape[-2:])}, its image {tuple(image.shape[-2:])}"
                )
            mask = self._resized(mask, nearest=True)
        if self.transform is None:
            return (image, target) if mask is None else (image, target, mask)
        if mask is None:
            return self.transform(tv_tensors.Image(image)), target
        image, mask = self.transform(
            tv_tensors.Image(image), tv_tensors.Mask(mask.bool())
        )
        return image, target, mask.to(torch.float32)
