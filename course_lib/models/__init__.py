"""Models of the course: configurable VGG16 with attention slots (notebooks 02, 04–09) and AttnVGG (10).

:func:`build_model` maps the command line's model names to constructors.
"""

from __future__ import annotations

from .attnvgg import AttnVGG
from .vgg import VGG, VGG16_STAGES, vgg16

__all__ = ["AttnVGG", "VGG", "VGG16_STAGES", "vgg16", "build_model", "MODEL_NAMES"]

_BUILDERS = {
    "vgg16": lambda num_classes, width: vgg16(num_classes, width=width, head="gap"),
    "vgg16-fc": lambda num_classes, width: vgg16(num_classes, width=width, head="fc"),
    "vgg16-se": lambda num_classes, width: vgg16(num_classes, width=width, head="gap", attention="se"),
    "vgg16-cbam": lambda num_classes, width: vgg16(num_classes, width=width, head="gap", attention="cbam"),
    "vgg16-dualpool": lambda num_classes, width: vgg16(num_classes, width=width, head="dualpool"),
    "vgg16-self": lambda num_classes, width: vgg16(num_classes, width=width, head="gap", attention="self"),
    "vgg16-triplet": lambda num_classes, width: vgg16(num_classes, width=width, head="gap", attention="triplet"),
    "attnvgg": lambda num_classes, width: AttnVGG(num_classes, normalize_attn=True, width=width),
}
MODEL_NAMES = tuple(_BUILDERS)


def build_model(name: str, num_classes: int = 1, width: float = 1.0):
    """A fresh model by its command-line name (see :data:`MODEL_NAMES`)."""
    try:
        return _BUILDERS[name](num_classes, width)
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}") from None
