"""Finding lesions, not only classifying them: boxes, a small detector, mAP, Grad-CAM of a detection.

Introduced in notebook ``13_beyond_classification``.

- **Boxes from masks.** A synthetic lesion's box is the smallest rectangle around its mask
  (``torchvision.ops.masks_to_boxes``); each image holds one lesion, so one box. The Kaggle
  data has neither masks nor boxes: detection here runs on synthetic lesions only.
- **The detector** is torchvision's FCOS (Tian et al., ICCV 2019): anchor-free, one stage. Every
  position of a feature pyramid predicts whether it lies inside an object (a classification
  score, focal loss), the distances from it to the box's four sides (GIoU loss) and its
  "centre-ness" (how close to the box's centre it is, which down-weights poor boxes predicted
  from the rim). Its backbone is the course's VGG16 at the profile's width, no downloaded
  weights, with a feature pyramid on stages 3–5 (strides 8, 16, 32, and 64 by max-pooling).
- **Quality** is the mean average precision at IoU 0.5 (mAP@0.5), from ``torchmetrics``.
- **Explaining one detection** with Grad-CAM: the target is the ``grad-cam`` package's
  ``FasterRCNNBoxScoreTarget`` (for the detected box: its IoU with the box the model predicts
  now plus that box's score), and a tensor-valued target layer (the package records gradients
  of tensors only) — by default the backbone's stage 4 (:func:`default_detection_layer`).
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import FasterRCNNBoxScoreTarget
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchmetrics.detection import MeanAveragePrecision
from torchvision import tv_tensors
from torchvision.models.detection import FCOS
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.fcos import FCOSHead
from torchvision.ops import masks_to_boxes
from torchvision.transforms import v2

from .config import get_device
from .data import IMAGENET_MEAN, IMAGENET_STD, MelanomaDataset
from .models.vgg import VGG16_STAGES, init_weights, scaled, vgg16_features

__all__ = [
    "boxes_from_masks",
    "LesionBoxes",
    "detection_loaders",
    "lesion_detector",
    "train_detector",
    "detect",
    "detection_map",
    "detection_grad_cam",
    "default_detection_layer",
    "LESION",
]

#: The one object class (FCOS counts the background as class 0).
LESION = 1


def boxes_from_masks(masks: torch.Tensor) -> torch.Tensor:
    """``(N, 4)`` boxes ``(x0, y0, x1, y1)`` around ``(N, [1,] H, W)`` masks (pixel edges, as torchvision).

    ``masks_to_boxes`` returns the corners of the first and last pixel; a box around a pixel
    extends to its far edge, so one is added to ``x1`` and ``y1``. An empty mask is an error.
    """
    masks = masks.reshape(len(masks), *masks.shape[-2:]) > 0
    empty = (~masks.flatten(1).any(1)).nonzero().flatten().tolist()
    if empty:
        raise ValueError(f"mask(s) {empty} are empty: no lesion, no box")
    boxes = masks_to_boxes(masks)
    return boxes + torch.tensor([0.0, 0.0, 1.0, 1.0])


class LesionBoxes(Dataset):
    """Images in [0, 1] (the detector normalises) with targets ``{"boxes": (1, 4), "labels": (1,)}``.

    With ``augment``, random horizontal and vertical flips move the image and its box together
    (``torchvision.transforms.v2`` knows what a ``BoundingBoxes`` is).
    """

    def __init__(self, frame: pd.DataFrame, image_size: int, augment: bool = False):
        self.items = MelanomaDataset(frame, with_mask=True, image_size=image_size)
        self.flip = (
            v2.Compose([v2.RandomHorizontalFlip(), v2.RandomVerticalFlip()])
            if augment
            else None
        )

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        image, _, mask = self.items[index]
        size = tuple(image.shape[-2:])
        boxes = tv_tensors.BoundingBoxes(
            boxes_from_masks(mask[None]), format="XYXY", canvas_size=size
        )
        image = tv_tensors.Image(image.float() / 255)
        if self.flip is not None:
            image, boxes = self.flip(image, boxes)
        return image.as_subclass(torch.Tensor), {
            "boxes": boxes.as_subclass(torch.Tensor),
            "labels": torch.tensor([LESION]),
        }


def _collate(batch):
    # detection models take lists: images and targets may differ in size
    return tuple(zip(*batch))


def detection_loaders(
    train_frame: pd.DataFrame, val_frame: pd.DataFrame, image_size: int, batch_size: int
):
    """Training (shuffled, flipped) and validation loaders of :class:`LesionBoxes`."""
    train = DataLoader(
        LesionBoxes(train_frame, image_size, augment=True),
        batch_size=batch_size,
        shuffle=True,
        collate_fn=_collate,
        drop_last=len(train_frame) > batch_size,
    )
    val = DataLoader(
        LesionBoxes(val_frame, image_size), batch_size=batch_size, collate_fn=_collate
    )
    return train, val


def lesion_detector(
    width: float = 0.25,
    image_size: int = 64,
    fpn_channels: int = 64,
    head_convs: int = 2,
) -> nn.Module:
    """FCOS with the course's VGG16-BN (``width``) as backbone and a light feature pyramid and head.

    The pyramid reads stages 3, 4 and 5 (strides 8, 16, 32) and adds a max-pooled level (64).
    FCOS's head normalises with ``GroupNorm(32, fpn_channels)``: keep ``fpn_channels`` at 64 or
    more, or a single image's smallest level (1×1 at 64 px) leaves one value per group.
    Images are not resized (``min_size = max_size = image_size``): at the default 800 px
    torchvision would first enlarge a 64 px lesion image twelve times.
    """
    body = vgg16_features(width)  # VGG16-BN's stages 1-5, as AttnVGG's
    init_weights(body, conv_mode="fan_out")  # as torchvision's VGG
    channels = [scaled(VGG16_STAGES[i][-1], width) for i in (2, 3, 4)]
    backbone = BackboneWithFPN(
        body,
        return_layers={"2": "p3", "3": "p4", "4": "p5"},
        in_channels_list=channels,
        out_channels=fpn_channels,
    )
    strides = (8, 16, 32, 64)
    anchors = AnchorGenerator(
        sizes=tuple((s,) for s in strides), aspect_ratios=((1.0,),) * len(strides)
    )
    head = FCOSHead(fpn_channels, num_anchors=1, num_classes=2, num_convs=head_convs)
    return FCOS(
        backbone,
        num_classes=2,
        min_size=image_size,
        max_size=image_size,
        image_mean=list(IMAGENET_MEAN),
        image_std=list(IMAGENET_STD),
        anchor_generator=anchors,
        head=head,
        score_thresh=0.05,
        detections_per_img=10,
    )


def train_detector(
    model: nn.Module,
    loader,
    epochs: int,
    lr: float = 1e-3,
    device=None,
    verbose: bool = True,
) -> pd.DataFrame:
    """Train a torchvision detector (its losses summed) with AdamW and a cosine schedule.

    Returns one row per epoch: the mean of each loss the model reports, their sum, and the
    seconds the epoch took. Stops with ``FloatingPointError`` naming epoch and step if a loss
    becomes non-finite.
    """
    device = torch.device(device) if device is not None else get_device()
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    rows = []
    for epoch in range(1, epochs + 1):
        started, sums, steps = time.perf_counter(), {}, 0
        for step, (images, targets) in enumerate(loader):
            images = [image.to(device) for image in images]
            targets = [
                {k: v.to(device) for k, v in target.items()} for target in targets
            ]
            losses = model(images, targets)
            loss = sum(losses.values())
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"the detector's loss became non-finite at epoch {epoch}, step {step}"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            for name, value in losses.items():
                sums[name] = sums.get(name, 0.0) + float(value.detach())
            steps += 1
        schedule.step()
        row = {
            "epoch": epoch,
            **{k: v / steps for k, v in sums.items()},
            "loss": sum(sums.values()) / steps,
            "seconds": time.perf_counter() - started,
        }
        rows.append(row)
        if verbose:
            print(
                f"epoch {epoch}/{epochs}  loss {row['loss']:.3f}  ({row['seconds']:.0f} s)"
            )
    return pd.DataFrame(rows)


@torch.no_grad()
def detect(model: nn.Module, images, device=None) -> list[dict]:
    """The model's detections (``boxes``, ``scores``, ``labels``) of a list or batch of images, on the CPU."""
    device = (
        torch.device(device) if device is not None else next(model.parameters()).device
    )
    model.eval()
    outputs = model([image.to(device) for image in images])
    return [{k: v.cpu() for k, v in out.items()} for out in outputs]


def detection_map(model: nn.Module, loader, device=None) -> dict[str, float]:
    """Mean average precision of ``model`` over ``loader`` (torchmetrics, COCO rules).

    Returns ``map_50`` (IoU 0.5, the figure the chapter reports), ``map`` (IoU 0.5:0.95)
    and ``mar_1`` (recall with one detection per image).
    """
    metric = MeanAveragePrecision(iou_type="bbox")
    for images, targets in loader:
        metric.update(
            detect(model, images, device),
            [{k: v for k, v in t.items()} for t in targets],
        )
    result = metric.compute()
    return {name: float(result[name]) for name in ("map_50", "map", "mar_1")}


def default_detection_layer(model: nn.Module) -> nn.Module:
    """The backbone's stage 4 (stride 16, the resolution of AttnVGG's pool-4 map): a tensor, as Grad-CAM needs.

    Chosen by measurement. On the ``cpu`` profile's detector, over 150 validation images, the
    maps of five layers put this share of their energy on the lesion, as a multiple of a random
    map's, with this many maps left without any positive value (Grad-CAM keeps the positive
    part only): backbone stage 3, 3.9× but 82 empty; **stage 4, 2.3× and 1 empty**; stage 5,
    1.7× and 96 empty; the pyramid's P3 output, 1.6× and 96 empty; its P3 lateral, 0.7×.
    """
    return model.backbone.body["3"]


def detection_grad_cam(
    model: nn.Module, image: torch.Tensor, box_index: int = 0, target_layer=None
):
    """Grad-CAM of one detection: ``(cam, box, score)``, with ``cam`` an ``(H, W)`` map in [0, 1].

    ``image`` is ``(3, H, W)`` in [0, 1]; ``box_index`` picks a detection (0 is the highest
    score). The target is the ``grad-cam`` package's ``FasterRCNNBoxScoreTarget``: for the
    detected box, the IoU of the box the model predicts now plus that box's score.
    """
    device = next(model.parameters()).device
    (found,) = detect(model, [image], device)
    if box_index >= len(found["boxes"]):
        raise ValueError(
            f"the model found {len(found['boxes'])} box(es) in this image, not {box_index + 1}"
        )
    box, label = found["boxes"][box_index], int(found["labels"][box_index])
    layer = target_layer if target_layer is not None else default_detection_layer(model)
    target = FasterRCNNBoxScoreTarget(labels=[label], bounding_boxes=[box.numpy()])
    if float(target(found)[0]) == 0:
        # the package's target takes the predicted box of highest overlap; when that is the
        # same box detected as the other class, it scores 0 and there is nothing to explain
        raise ValueError(
            f"detection {box_index} (class {label}) overlaps most with a detection of "
            "another class, so grad-cam's FasterRCNNBoxScoreTarget cannot single it out "
            "(common for an untrained detector): choose another box_index"
        )
    model.eval()
    with GradCAM(model=model, target_layers=[layer]) as cam:
        maps = cam(input_tensor=image[None].to(device), targets=[target])
    return np.asarray(maps[0], dtype=np.float32), box, float(found["scores"][box_index])
