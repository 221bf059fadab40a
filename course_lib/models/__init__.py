"""Models of the course: configurable VGG16 with attention slots (notebooks 02, 04–09) and AttnVGG (10).

:func:`build_model` maps the command line's model names to constructors: ``vgg16`` (GAP head),
``vgg16-fc``, ``vgg16-dualpool``, ``attnvgg``, and ``vgg16-<name>`` for every attention module
of the registry (:data:`course_lib.attention.ATTENTION`).
"""

from __future__ import annotations

from ..attention import ATTENTION
from .attnvgg import AttnVGG
from .vgg import VGG, VGG16_STAGES, vgg16

__all__ = [
    "AttnVGG",
    "VGG",
    "VGG16_STAGES",
    "vgg16",
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


def build_model(name: str, num_classes: int = 1, width: float = 1.0):
    """A fresh model by its command-line name (see :data:`MODEL_NAMES`)."""
    if name == "attnvgg":
        return AttnVGG(num_classes, normalize_attn=True, width=width)
    if name in _HEADS:
        return vgg16(num_classes, width=width, head=_HEADS[name])
    attention = name.removeprefix("vgg16-")
    if name.startswith("vgg16-") and attention in ATTENTION:
        return vgg16(num_classes, width=width, head="gap", attention=attention)
    raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
