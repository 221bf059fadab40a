"""Models of the course: configurable VGG16 with attention slots (notebooks 02, 04–09), AttnVGG
(10), and a vision transformer written by hand (:class:`ViT`).

:func:`build_model` maps the command line's model names to constructors: ``vgg16`` (GAP head),
``vgg16-fc``, ``vgg16-dualpool``, ``attnvgg``, and ``vgg16-<name>`` for every attention module
of the registry (:data:`course_lib.attention.ATTENTION`).
"""

from __future__ import annotations

from ..attention import ATTENTION
from .attnvgg import AttnVGG, load_imagenet_features
from .vgg import VGG, VGG16_STAGES, vgg16
from .vit import ViT, vit_parameter_count

__all__ = [
    "logits_of",
    "AttnVGG",
    "VGG",
    "VGG16_STAGES",
    "vgg16",
    "ViT",
    "vit_parameter_count",
    "build_model",
    "MODEL_NAMES",
    "COMPARED_MODELS",
]

_HEADS = {"vgg16": "gap", "vgg16-fc": "fc", "vgg16-dualpool": "dualpool"}
MODEL_NAMES = (*_HEADS, *(f"vgg16-{name}" for name in ATTENTION), "attnvgg")

#: The models chapter 09 compares (and ``benchmarks/module_cost.py`` measures), by label.
COMPARED_MODELS = {
    "baseline (GAP)": "vgg16",
    "SE": "vgg16-se",
    "CBAM": "vgg16-cbam",
    "dual pooling": "vgg16-dualpool",
    "self-attention": "vgg16-self",
    "triplet": "vgg16-triplet",
}


def logits_of(output):
    """The logits of a model's output: the output itself, or the first item of a tuple
    (AttnVGG returns ``(logits, a1, a2)``)."""
    return output[0] if isinstance(output, (tuple, list)) else output


def build_model(name: str, num_classes: int = 1, width: float = 1.0, **options):
    """A fresh model by its command-line name (see :data:`MODEL_NAMES`).

    ``options`` go to the constructor: :class:`AttnVGG`'s (``normalize_attn``, default True,
    ``global_branch``, ``pretrained``, ``dropout``) or :func:`vgg16`'s (``dropout``,
    ``attention_stages``, ``batch_norm``); ``pretrained=True`` also starts a plain VGG16's
    convolutions from ImageNet (width 1; not with attention inside the stages).
    :class:`course_lib.runspec.ModelSpec` builds through here.
    """
    if name == "attnvgg":
        options.setdefault("normalize_attn", True)
        return AttnVGG(num_classes, width=width, **options)
    pretrained = options.pop("pretrained", False)
    attention = name.removeprefix("vgg16-")
    if name in _HEADS:
        model = vgg16(num_classes, width=width, head=_HEADS[name], **options)
    elif name.startswith("vgg16-") and attention in ATTENTION:
        model = vgg16(
            num_classes, width=width, head="gap", attention=attention, **options
        )
    else:
        raise ValueError(
            f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}"
        )
    if pretrained:  # torchvision's ImageNet VGG16-BN convolutions
        load_imagenet_features(model.features)
    return model
