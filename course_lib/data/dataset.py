"""``MelanomaDataset``: decode, convert, augment — on the CPU (notebook ``01_lesion_data``).

A Dataset runs inside DataLoader workers. It must never move tensors to a GPU (seed 000
calls ``.cuda()`` in ``__getitem__``: that breaks worker processes and serialises the
pipeline); the training loop moves whole batches instead.
"""

from __future__ import annotations

import pandas as pd
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F

from .errors import DataError

__all__ = ["MelanomaDataset", "read_rgb", "make_loaders"]


def read_rgb(path: str, draft_size: int | None = None) -> Image.Image:
    """Open an image as RGB, whatever its mode (grayscale, RGBA, CMYK, palette).

    ``draft_size`` lets the JPEG decoder skip detail it would throw away: a 512 px JPEG
    read for a 96 px model decodes at 1/4 scale, several times faster.
    Raises :class:`DataError` naming the file when it is missing, corrupt or truncated.
    """
    try:
        with Image.open(path) as img:
            if draft_size and img.format == "JPEG":
                img.draft("RGB", (draft_size, draft_size))
            img.load()  # decode now, so a truncated file fails here, with its name
            return img.convert("RGB")
    except FileNotFoundError as err:
        raise DataError(f"image file not found: {path}") from err
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise DataError(f"cannot decode image {path}: {err} (the file is corrupt or truncated)") from err


class MelanomaDataset(Dataset):
    """Images (and optionally lesion masks) of a marking frame from :func:`load_melanoma`.

    Each item is ``(image, target)``, or ``(image, target, mask)`` with ``with_mask=True``:
    ``image`` a float tensor ``(3, H, W)`` after ``transform``; ``target`` a float scalar
    (0. benign, 1. malignant), ready for ``BCEWithLogitsLoss``; ``mask`` a float tensor
    ``(1, H, W)`` in {0, 1} that went through the same geometric transforms as the image.
    """

    def __init__(self, frame: pd.DataFrame, transform=None, with_mask: bool = False, draft_size: int | None = None):
        missing = [c for c in ("path", "target") + (("mask_path",) if with_mask else ()) if c not in frame.columns]
        if missing:
            raise DataError(f"the frame lacks column(s) {', '.join(missing)}: build it with load_melanoma()")
        if with_mask and frame["mask_path"].isna().any():
            raise DataError(f"{int(frame['mask_path'].isna().sum())} image(s) have no mask; with_mask needs one each")
        self.paths = frame["path"].tolist()
        self.targets = torch.tensor(frame["target"].to_numpy(dtype="float32"))
        self.mask_paths = frame["mask_path"].tolist() if with_mask else None
        self.transform = transform
        self.with_mask = with_mask
        self.draft_size = draft_size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        image = tv_tensors.Image(F.pil_to_tensor(read_rgb(self.paths[index], self.draft_size)))
        if not self.with_mask:
            if self.transform is not None:
                image = self.transform(image)
            return image, self.targets[index]
        path = self.mask_paths[index]
        try:
            with Image.open(path) as m:
                mask = tv_tensors.Mask(F.pil_to_tensor(m.convert("L")) > 127)
        except (OSError, UnidentifiedImageError) as err:
            raise DataError(f"cannot read mask {path}: {err}") from err
        if mask.shape[-2:] != image.shape[-2:]:
            raise DataError(f"mask {path} is {tuple(mask.shape[-2:])}, its image {tuple(image.shape[-2:])}")
        if self.transform is not None:
            image, mask = self.transform(image, mask)
        return image, self.targets[index], mask.to(torch.float32)


def make_loaders(train_frame: pd.DataFrame, val_frame: pd.DataFrame, image_size: int, batch_size: int,
                 num_workers: int = 0, with_mask: bool = False, sampler=None):
    """Training and validation ``DataLoader`` s with the course's transforms.

    Decoding happens in ``num_workers`` worker processes (kept alive between epochs);
    batches are pinned when CUDA is present so the copy to the GPU can overlap compute.
    Training shuffles (or uses ``sampler``) and drops its last incomplete batch, so
    BatchNorm never sees a batch of one.
    """
    from torch.utils.data import DataLoader

    from .transforms import eval_transforms, train_transforms

    common = dict(batch_size=batch_size, num_workers=num_workers, persistent_workers=num_workers > 0,
                  pin_memory=torch.cuda.is_available())
    train = MelanomaDataset(train_frame, train_transforms(image_size), with_mask=with_mask, draft_size=image_size)
    val = MelanomaDataset(val_frame, eval_transforms(image_size), with_mask=with_mask, draft_size=image_size)
    train_loader = DataLoader(train, shuffle=sampler is None, sampler=sampler,
                              drop_last=len(train) > batch_size, **common)
    return train_loader, DataLoader(val, **common)
