"""course_lib: the shared code of the course *Attention mechanisms for image classification*.

Each sub-module is introduced by one notebook of the course and reused by the later ones:

- :mod:`course_lib.config` (00_setup): run profiles, device choice, seeding.
- :mod:`course_lib.data` (01_lesion_data): synthetic lesions, the Kaggle data, patient splits,
  the Dataset, augmentation, the download.
- :mod:`course_lib.models` (02_vgg16_baseline): configurable VGG16.
- :mod:`course_lib.bench` (02): parameters and FLOPs.
- :mod:`course_lib.metrics`, :mod:`course_lib.checkpoint`, :mod:`course_lib.train` (02):
  classification metrics, atomic checkpoints, ``fit`` / ``evaluate``;
  :mod:`course_lib.files` (atomic files and folders), :mod:`course_lib.runs` (a run folder
  and its manifest), :mod:`course_lib.cli` (``python -m course_lib.train``).
- :mod:`course_lib.attention` (03–09): SE, CBAM, dual pooling, self-attention, triplet
  attention, and ``make_attention``, the registry that builds them by name; the attention
  gate (10); ECA (12).
- :mod:`course_lib.distributed` (10): ``fit`` under ``torchrun``.
- :mod:`course_lib.losses` (10, 12): focal loss; the lesion-mask regulariser of attention maps.
- :mod:`course_lib.recipes` (10): the AttnVGG recipe that chapters 11 and 12 reuse.
- :mod:`course_lib.viz` (10, 11): overlays, attention grids, training curves.
- :mod:`course_lib.gradcam`, :mod:`course_lib.saliency` (11): Grad-CAM through the
  ``grad-cam`` package; maps over a data set, baselines, the localisation table
  (its measures are in :mod:`course_lib.metrics`).
- :mod:`course_lib.detection`, :mod:`course_lib.retrieval` (13): the same backbone as a
  lesion detector (FCOS) and as an image-retrieval descriptor.

``course_lib.setup_notebook()`` (:mod:`course_lib.notebook`) starts every chapter: profile,
device, seed, figure style, and on Colab where trained models are kept.

Importing the package is cheap: heavy libraries (torch, torchvision) are imported by the
sub-modules that need them, so ``python -m course_lib.config`` works before torch is installed.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    # setup_notebook is imported on first use: `import course_lib` stays cheap (no torch)
    if name == "setup_notebook":
        from .notebook import setup_notebook

        return setup_notebook
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
