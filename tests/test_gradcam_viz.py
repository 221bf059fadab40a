"""course_lib.gradcam (through the grad-cam package) and course_lib.viz."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from course_lib.data import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from course_lib.gradcam import LogitsOnly, default_target_layer, grad_cam  # noqa: E402
from course_lib.models import AttnVGG, vgg16  # noqa: E402
from course_lib.viz import (  # noqa: E402
    attention_grid,
    overlay,
    plot_history,
    to_display,
    upsample_map,
)


@pytest.fixture(scope="module")
def attnvgg():
    torch.manual_seed(0)
    model = AttnVGG(1, width=0.125).eval()
    for m in model.modules():  # non-trivial BatchNorm statistics, as after training
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    return model


def _grad_cam_by_hand(model, images, layer, sign):
    """Selvaraju et al.'s recipe, written out with autograd: the independent reference."""
    store = {}
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    for m in relus:
        m.inplace = False
    handle = layer.register_forward_hook(
        lambda mod, inp, out: store.__setitem__("a", out)
    )
    try:
        logits = model(images)[0][:, 0]
        (grads,) = torch.autograd.grad((logits * sign).sum(), store["a"])
    finally:
        handle.remove()
        for m in relus:
            m.inplace = True
    weights = grads.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * store["a"]).sum(dim=1, keepdim=True))
    cam = F.interpolate(
        cam, size=images.shape[-2:], mode="bilinear", align_corners=False
    )[:, 0]
    low = cam.flatten(1).amin(1)[:, None, None]
    high = cam.flatten(1).amax(1)[:, None, None]
    return ((cam - low) / (high - low + 1e-7)).detach().numpy()


def test_grad_cam_matches_a_hand_written_grad_cam(attnvgg):
    torch.manual_seed(1)
    images = torch.randn(4, 3, 64, 64)
    layer = default_target_layer(attnvgg)
    for target, sign in (("melanoma", 1.0), ("benign", -1.0)):
        ours = grad_cam(attnvgg, images, target=target)
        reference = _grad_cam_by_hand(attnvgg, images, layer, sign)
        assert ours.shape == (4, 64, 64) and ours.dtype == np.float32
        np.testing.assert_allclose(ours, reference, atol=2e-3)


def test_predicted_target_explains_each_images_own_class(attnvgg):
    torch.manual_seed(2)
    images = torch.randn(6, 3, 64, 64)
    with torch.no_grad():
        positive = attnvgg(images)[0][:, 0] >= 0
    predicted = grad_cam(attnvgg, images, target="predicted")
    melanoma, benign = (
        grad_cam(attnvgg, images, target="melanoma"),
        grad_cam(attnvgg, images, target="benign"),
    )
    for i, pos in enumerate(positive.tolist()):
        np.testing.assert_allclose(
            predicted[i], (melanoma if pos else benign)[i], atol=1e-5
        )
    by_class = grad_cam(attnvgg, images, target=positive.long().tolist())
    np.testing.assert_allclose(by_class, predicted, atol=1e-5)
    with pytest.raises(ValueError, match="target"):
        grad_cam(attnvgg, images, target="lesion")
    with pytest.raises(ValueError, match="2 target classes for 6 images"):
        grad_cam(attnvgg, images, target=[0, 1])


def test_grad_cam_restores_in_place_relus_and_works_on_vgg(attnvgg):
    grad_cam(attnvgg, torch.randn(1, 3, 64, 64))
    assert all(m.inplace for m in attnvgg.modules() if isinstance(m, nn.ReLU))
    model = vgg16(1, width=0.125, head="gap", attention="cbam").eval()
    assert isinstance(default_target_layer(model), nn.ReLU)
    assert grad_cam(model, torch.randn(2, 3, 64, 64)).shape == (2, 64, 64)
    wrapped = LogitsOnly(attnvgg)
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(wrapped(x), attnvgg(x)[0])


def test_to_display_undoes_the_normalisation():
    picture = torch.rand(3, 8, 8)
    mean, std = (
        torch.tensor(IMAGENET_MEAN)[:, None, None],
        torch.tensor(IMAGENET_STD)[:, None, None],
    )
    shown = to_display((picture - mean) / std)
    np.testing.assert_allclose(shown, picture.permute(1, 2, 0).numpy(), atol=1e-6)
    np.testing.assert_allclose(to_display(np.full((4, 4, 3), 255, np.uint8)), 1.0)
    with pytest.raises(ValueError, match="image shaped"):
        to_display(torch.zeros(4, 8, 8))


def test_overlay_upsamples_scales_and_blends():
    image = torch.zeros(3, 16, 16)
    # softmax-sized values: scaled before colouring
    coarse = torch.tensor([[0.0, 0.0], [0.0, 0.002]])
    assert upsample_map(coarse, (16, 16)).shape == (16, 16)
    blended = overlay(image, coarse, alpha=1.0, cmap="gray", normalized=False)
    assert blended.shape == (16, 16, 3)
    assert blended[-1, -1].min() == pytest.approx(1.0) and blended[
        0, 0
    ].max() == pytest.approx(0.0)
    half = overlay(
        torch.ones(3, 16, 16), coarse, alpha=0.5, cmap="gray", normalized=False
    )
    assert half[0, 0, 0] == pytest.approx(0.5) and half[-1, -1, 0] == pytest.approx(1.0)
    flat = overlay(image, torch.ones(4, 4), alpha=1.0, cmap="gray", normalized=False)
    assert flat.max() == pytest.approx(0.0)  # a constant map has nothing to show


def test_attention_grid_lays_out_rows_and_columns():
    images = torch.randn(3, 3, 32, 32)
    masks = torch.zeros(3, 1, 32, 32)
    masks[:, :, 8:24, 8:24] = 1
    maps = {
        "pool-3": torch.rand(3, 1, 4, 4),
        "pool-4": torch.rand(3, 1, 2, 2),
        "Grad-CAM": np.random.rand(3, 32, 32),
    }
    fig = attention_grid(images, maps, masks=masks, row_titles=["a", "b", "c"])
    axes = np.array(fig.axes).reshape(3, 5)
    assert [ax.get_title() for ax in axes[0]] == [
        "image",
        "pool-3",
        "pool-4",
        "Grad-CAM",
        "lesion mask",
    ]
    assert axes[2, 0].get_ylabel() == "c"
    assert len(axes[1, 1].collections) == 1  # the lesion outline on each overlay
    fig = attention_grid(images[:2], {"pool-3": torch.rand(2, 4, 4)})
    assert len(fig.axes) == 4


def test_a_notebook_shows_the_attention_grid_once():
    """Review (rendered book): the figure used to appear twice, once as the cell's result
    and once more when the inline backend showed every open figure."""
    import nbformat
    from nbclient import NotebookClient

    cell = nbformat.v4.new_code_cell(
        "import torch\n"
        "from course_lib.viz import attention_grid\n"
        "attention_grid(torch.randn(2, 3, 16, 16), {'map': torch.rand(2, 4, 4)})"
    )
    notebook = nbformat.v4.new_notebook(cells=[cell])
    NotebookClient(notebook, timeout=120, kernel_name="python3").execute(
        cwd=str(Path(__file__).resolve().parents[1])
    )
    images = [o for o in notebook.cells[0].outputs if "image/png" in o.get("data", {})]
    assert len(images) == 1, notebook.cells[0].outputs


def test_plot_history_draws_several_runs_on_one_pair_of_axes():
    history = pd.DataFrame(
        {
            "epoch": [1, 2],
            "train_loss": [0.6, 0.5],
            "val_loss": [0.7, 0.6],
            "val_auc": [0.7, 0.8],
        }
    )
    axes = plot_history(history, label="softmax")
    plot_history(history, axes=axes, label="sigmoid")
    assert len(axes[0].lines) == 4 and len(axes[1].lines) == 2
