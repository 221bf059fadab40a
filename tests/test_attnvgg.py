"""AttentionGate, AttnVGG (parameters, shapes, pretrained loading) and focal loss."""

import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import sigmoid_focal_loss

from course_lib.attention import AttentionGate
from course_lib.bench import count_parameters
from course_lib.losses import FocalLoss, focal_loss
from course_lib.models import AttnVGG
from course_lib.runspec import OptimizerSpec, TrainConfig

# ---------------------------------------------------------------- the gate


def _gate_reference(gate, local, global_, normalize):
    """The Paperspace tutorial's gate (AttnMel's grid attention; sigmoid maps averaged), written out."""
    n, c, h, w = local.shape
    g = F.interpolate(
        gate.W_g(global_),
        scale_factor=gate.up_factor,
        mode="bilinear",
        align_corners=False,
    )
    scores = gate.phi(F.relu(gate.W_l(local) + g))
    if normalize:
        a = F.softmax(scores.view(n, 1, -1), dim=2).view(n, 1, h, w)
        return a, (a.expand_as(local) * local).view(n, c, -1).sum(dim=2)
    a = torch.sigmoid(scores)
    return a, F.adaptive_avg_pool2d(a.expand_as(local) * local, 1).view(n, c)


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("size", [(28, 28), (12, 8)])
def test_gate_matches_reference(normalize, size):
    torch.manual_seed(0)
    gate = AttentionGate(32, 64, 16, up_factor=4, normalize_attn=normalize)
    local, global_ = (
        torch.randn(2, 32, *size),
        torch.randn(2, 64, size[0] // 4, size[1] // 4),
    )
    a, pooled = gate(local, global_)
    ref_a, ref_pooled = _gate_reference(gate, local, global_, normalize)
    assert a.shape == (2, 1, *size) and pooled.shape == (2, 32)
    torch.testing.assert_close(a, ref_a)
    torch.testing.assert_close(pooled, ref_pooled)
    if normalize:
        torch.testing.assert_close(a.sum(dim=(2, 3)), torch.ones(2, 1))
    else:
        assert ((a > 0) & (a < 1)).all()


def test_gate_parameter_formula():
    for cl, cg, att in ((256, 512, 256), (512, 512, 256), (32, 64, 16)):
        assert (
            count_parameters(AttentionGate(cl, cg, att, 2))
            == cl * att + cg * att + att + 1
        )


def test_gate_gradients_reach_every_parameter():
    gate = AttentionGate(16, 32, 8, up_factor=2)
    local, global_ = torch.randn(4, 16, 8, 8), torch.randn(4, 32, 4, 4)
    _, pooled = gate(local, global_)
    (pooled * torch.randn_like(pooled)).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in gate.parameters())


# ---------------------------------------------------------------- AttnVGG


def test_attnvgg_parameter_count_matches_its_breakdown():
    model = AttnVGG(num_classes=1, width=1.0)
    assert count_parameters(model) == 15_183_683
    assert count_parameters(model.features) == 14_723_136
    assert (
        count_parameters(model.attn1) == 196_865
        and count_parameters(model.attn2) == 262_401
    )
    assert count_parameters(model.classifier) == 1_281


def test_attnvgg_without_the_global_branch_classifies_from_the_gates_alone():
    model = AttnVGG(num_classes=1, width=1.0, global_branch=False)
    assert count_parameters(model.classifier) == 256 + 512 + 1
    assert count_parameters(model) == 15_183_683 - 512
    small = AttnVGG(1, width=1 / 8, global_branch=False).eval()
    x = torch.randn(2, 3, 64, 64)
    seen = {}
    small.classifier.register_forward_hook(
        lambda m, i, o: seen.__setitem__("input", i[0])
    )
    gates = [
        small.attn1.register_forward_hook(lambda m, i, o: seen.__setitem__("g1", o[1])),
        small.attn2.register_forward_hook(lambda m, i, o: seen.__setitem__("g2", o[1])),
    ]
    with torch.no_grad():
        small(x)
    for h in gates:
        h.remove()
    torch.testing.assert_close(
        seen["input"], torch.cat([seen["g1"], seen["g2"]], dim=1)
    )


def test_attnvgg_maps_at_224_and_other_sizes():
    model = AttnVGG(1, width=1 / 8).eval()
    with torch.no_grad():
        logits, a1, a2 = model(torch.randn(2, 3, 224, 224))
        assert (
            logits.shape == (2, 1)
            and a1.shape == (2, 1, 28, 28)
            and a2.shape == (2, 1, 14, 14)
        )
        for size in ((64, 64), (96, 160)):
            logits, a1, a2 = model(torch.randn(1, 3, *size))
            assert a1.shape[-2:] == (size[0] // 8, size[1] // 8) and a2.shape[-2:] == (
                size[0] // 16,
                size[1] // 16,
            )
    with pytest.raises(ValueError, match="divisible by 32"):
        model(torch.randn(1, 3, 100, 100))


@pytest.mark.parametrize("normalize", [True, False])
def test_attnvgg_normalisation(normalize):
    model = AttnVGG(3, normalize_attn=normalize, width=1 / 8, dropout=0.3).eval()
    with torch.no_grad():
        logits, a1, a2 = model(torch.randn(2, 3, 64, 64))
    assert logits.shape == (2, 3)
    if normalize:
        torch.testing.assert_close(a1.sum(dim=(2, 3)), torch.ones(2, 1))
    else:
        assert ((a1 > 0) & (a1 < 1)).all()


def test_pretrained_loads_from_the_hub_cache(tmp_path, monkeypatch):
    """A weights file placed where torchvision caches downloads is used, without any network."""
    import torchvision
    from torchvision.models import VGG16_BN_Weights

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    checkpoints = tmp_path / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.manual_seed(5)
    reference = torchvision.models.vgg16_bn()
    torch.save(
        reference.state_dict(),
        checkpoints / os.path.basename(VGG16_BN_Weights.IMAGENET1K_V1.url),
    )
    model = AttnVGG(1, pretrained=True)
    for ours, theirs in zip(
        model.features.state_dict().values(), reference.features.state_dict().values()
    ):
        assert torch.equal(ours, theirs)


def test_pretrained_without_weights_says_what_to_do(tmp_path):
    code = "from course_lib.models import AttnVGG\nAttnVGG(1, pretrained=True)\n"
    env = {**os.environ, "TORCH_HOME": str(tmp_path)}
    run = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode != 0
    assert "could not load the ImageNet VGG16-BN weights" in run.stderr
    assert str(tmp_path) in run.stderr and "COURSE_PRETRAINED=0" in run.stderr


def test_pretrained_from_a_file_named_by_course_pretrained(tmp_path, monkeypatch):
    """An offline GPU machine: the weights file copied there by hand, named by COURSE_PRETRAINED."""
    import torchvision

    from course_lib.config import get_profile

    torch.manual_seed(6)
    reference = torchvision.models.vgg16_bn()
    torch.save(reference.state_dict(), tmp_path / "vgg16_bn.pth")
    monkeypatch.setenv("COURSE_PRETRAINED", str(tmp_path / "vgg16_bn.pth"))
    # nothing to find there
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-cache"))
    assert get_profile("cpu").pretrained
    model = AttnVGG(1, pretrained=True)
    for ours, theirs in zip(
        model.features.state_dict().values(), reference.features.state_dict().values()
    ):
        assert torch.equal(ours, theirs)
    monkeypatch.setenv("COURSE_PRETRAINED", str(tmp_path / "missing.pth"))
    with pytest.raises(Exception, match="neither 0 nor 1 nor an existing weights file"):
        get_profile("gpu")


# ---------------------------------------------------------------- focal loss


def test_focal_loss_is_bce_at_gamma_zero():
    logits, targets = torch.randn(50), (torch.rand(50) > 0.5).float()
    bce = F.binary_cross_entropy_with_logits(logits, targets)
    torch.testing.assert_close(focal_loss(logits, targets, alpha=None, gamma=0.0), bce)


def test_focal_loss_follows_the_formula():
    logits, targets = (
        torch.tensor([2.0, -1.0, 0.5, -3.0]),
        torch.tensor([1.0, 1.0, 0.0, 0.0]),
    )
    p = torch.sigmoid(logits)
    p_t = p * targets + (1 - p) * (1 - targets)
    alpha_t = 0.25 * targets + 0.75 * (1 - targets)
    expected = -alpha_t * (1 - p_t) ** 2 * torch.log(p_t)
    torch.testing.assert_close(focal_loss(logits, targets, reduction="none"), expected)


@pytest.mark.parametrize(
    "alpha,gamma", [(0.25, 2.0), (0.5, 1.0), (-1, 3.0), (0.9, 0.0)]
)
def test_focal_loss_equals_torchvision(alpha, gamma):
    logits, targets = torch.randn(40) * 3, (torch.rand(40) > 0.3).float()
    ours = focal_loss(
        logits,
        targets,
        alpha=None if alpha < 0 else alpha,
        gamma=gamma,
        reduction="sum",
    )
    theirs = sigmoid_focal_loss(
        logits, targets, alpha=alpha, gamma=gamma, reduction="sum"
    )
    torch.testing.assert_close(ours, theirs)


def test_focal_loss_weights_classes_with_alpha_t():
    positive = focal_loss(
        torch.tensor([0.0]), torch.tensor([1.0]), alpha=0.25, gamma=2.0
    )
    negative = focal_loss(
        torch.tensor([0.0]), torch.tensor([0.0]), alpha=0.25, gamma=2.0
    )
    # (1 - alpha) / alpha
    torch.testing.assert_close(negative / positive, torch.tensor(3.0))


def test_focal_loss_is_stable_for_extreme_logits():
    logits = torch.tensor([-200.0, -30.0, 30.0, 200.0], requires_grad=True)
    targets = torch.tensor([1.0, 0.0, 1.0, 0.0])
    loss = FocalLoss()(logits, targets)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    with pytest.raises(ValueError, match="reduction"):
        focal_loss(logits, targets, reduction="max")


def test_focal_loss_trains_attnvgg_with_fit(lesion_root):
    from torch.utils.data import DataLoader

    from course_lib.data import MelanomaDataset, eval_transforms, load_melanoma
    from course_lib.train import fit

    loader = DataLoader(
        MelanomaDataset(load_melanoma(lesion_root), eval_transforms(64)), batch_size=16
    )
    history = fit(
        AttnVGG(1, width=1 / 16),
        loader,
        loader,
        TrainConfig(epochs=1, loss=FocalLoss(), device="cpu"),
        progress=False,
        verbose=False,
    )
    assert history.train_loss.notna().all() and history.val_auc.between(0, 1).all()


# ---------------------------------------------------------------- the lesion-mask regulariser


def test_attention_dice_loss_known_values():
    from course_lib.losses import attention_dice_loss

    masks = torch.zeros(2, 1, 8, 8)
    masks[:, :, :4, :4] = 1  # top-left quadrant
    exact = F.adaptive_avg_pool2d(masks, (4, 4))  # the mask at the map's size
    assert attention_dice_loss(exact, masks).item() == pytest.approx(0.0, abs=1e-6)
    assert attention_dice_loss(1 - exact, masks).item() == pytest.approx(1.0)
    half = torch.zeros(2, 1, 4, 4)
    half[:, :, :2, :1] = 1  # 2 of the 4 mask cells, per image
    assert attention_dice_loss(half, masks).item() == pytest.approx(1 - 2 * 4 / (4 + 8))
    # area averaging: a mask cell half covered by lesion counts 0.5
    masks_odd = torch.zeros(1, 1, 8, 8)
    masks_odd[:, :, :, :1] = 1
    assert attention_dice_loss(
        torch.ones(1, 1, 4, 4), masks_odd
    ).item() == pytest.approx(1 - 2 * 2 / (16 + 2))
    with pytest.raises(ValueError, match="N, 1, h, w"):
        attention_dice_loss(torch.ones(2, 4, 4), masks)


def test_dice_of_softmax_maps_grows_with_the_energy_inside_the_mask():
    from course_lib.losses import attention_dice_loss
    from course_lib.metrics import energy_in_mask

    torch.manual_seed(0)
    masks = (torch.rand(1, 1, 16, 16) > 0.6).float()
    losses, energies = [], []
    for _ in range(20):
        a = F.softmax(torch.randn(1, 256) * 3, dim=1).view(1, 1, 16, 16)
        losses.append(attention_dice_loss(a, masks).item())
        energies.append(float(energy_in_mask(a[0, 0], masks[0, 0])))
    order = sorted(range(20), key=lambda i: energies[i])
    assert [losses[i] for i in order] == sorted(losses, reverse=True)


def test_attention_mask_loss_weights_each_map():
    from course_lib.losses import AttentionMaskLoss, attention_dice_loss

    torch.manual_seed(1)
    masks = (torch.rand(2, 1, 32, 32) > 0.5).float()
    a1, a2 = torch.rand(2, 1, 8, 8), torch.rand(2, 1, 4, 4)
    loss = AttentionMaskLoss(weights=(0.001, 0.01))((torch.zeros(2, 1), a1, a2), masks)
    expected = 0.001 * attention_dice_loss(a1, masks) + 0.01 * attention_dice_loss(
        a2, masks
    )
    assert loss.item() == pytest.approx(expected.item())
    with pytest.raises(ValueError, match="2 weights for 1"):
        AttentionMaskLoss()((torch.zeros(2, 1), a1), masks)


def test_fit_with_the_mask_loss_pulls_attention_onto_the_lesion(lesion_root):
    """aux_loss gets the model's whole output and the batch's masks; a strong weight moves the maps."""
    from course_lib.data import load_melanoma, make_loaders
    from course_lib.losses import AttentionMaskLoss
    from course_lib.metrics import energy_in_mask
    from course_lib.train import fit

    frame = load_melanoma(lesion_root)
    train, val = make_loaders(frame, frame, 64, 16, with_mask=True)

    def energy(model):
        model.eval()
        with torch.no_grad():
            images, _, masks = next(iter(val))
            _, _, a2 = model(images)
        return energy_in_mask(a2, masks).mean()

    def trained(aux_loss):
        torch.manual_seed(0)
        model = AttnVGG(1, width=1 / 16)
        config = TrainConfig(
            epochs=2,
            optimizer=OptimizerSpec(lr=3e-3),
            aux_loss=aux_loss,
            device="cpu",
        )
        history = fit(model, train, val, config, progress=False, verbose=False)
        return model, history

    torch.manual_seed(0)
    before = energy(AttnVGG(1, width=1 / 16))
    model, history = trained(AttentionMaskLoss(weights=(1.0, 1.0)))
    assert (
        "train_aux_loss" in history
        and (history.train_aux_loss < history.train_loss).all()
    )
    assert history.train_aux_loss.iloc[-1] < history.train_aux_loss.iloc[0]
    # the same training without the mask loss is the control: the energy must rise
    # above the untrained model's and above the control's
    control, _ = trained(None)
    assert energy(model) > before + 0.05
    assert energy(model) > energy(control) + 0.05
