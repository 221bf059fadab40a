"""course_lib.models.vgg16 and course_lib.bench: shapes, parameter counts, FLOPs."""

import pytest
import torch
import torchvision

from course_lib.bench import count_flops, count_parameters
from course_lib.models import build_model, vgg16


def test_full_width_matches_torchvision_exactly():
    for batch_norm, expected, reference in (
        (False, 138_357_544, torchvision.models.vgg16),
        (True, 138_365_992, torchvision.models.vgg16_bn),
    ):
        ours = vgg16(1000, batch_norm=batch_norm, head="fc")
        theirs = reference(weights=None)
        assert count_parameters(ours) == expected == count_parameters(theirs)
        # same tensors in the same order: torchvision's ImageNet weights can be copied in order
        assert [t.shape for t in ours.state_dict().values()] == [
            t.shape for t in theirs.state_dict().values()
        ]


def test_gap_head_is_one_linear_layer():
    model = vgg16(1, head="gap")
    assert count_parameters(model.classifier) == 512 + 1
    assert count_parameters(model) == count_parameters(model.features) + 513


@pytest.mark.parametrize("size", [(32, 32), (64, 96), (96, 64), (160, 224)])
@pytest.mark.parametrize("head", ["fc", "gap"])
def test_any_size_divisible_by_32(size, head):
    model = vgg16(3, width=1 / 16, head=head).eval()
    assert model(torch.randn(1, 3, *size)).shape == (1, 3)


def test_size_not_divisible_by_32_is_refused():
    with pytest.raises(ValueError, match="multiples of 32"):
        vgg16(1, width=1 / 16)(torch.randn(1, 3, 50, 64))


def test_width_scales_every_stage():
    model = vgg16(1, width=0.25, head="gap")
    convs = [m for m in model.features.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [
        16,
        16,
        32,
        32,
        64,
        64,
        64,
        128,
        128,
        128,
        128,
        128,
        128,
    ]
    stage_out = torch.randn(1, 3, 64, 64)
    for stage, side in zip(model.features, (32, 16, 8, 4, 2)):
        stage_out = stage(stage_out)
        assert stage_out.shape[-1] == side


def test_flops_of_vgg16_at_224():
    flops = count_flops(vgg16(1000, batch_norm=False), (1, 3, 224, 224))
    assert (
        abs(flops / 2 - 15.47e9) / 15.47e9 < 0.005
    )  # 15.47 GMACs, the published figure


def test_build_model_names():
    assert build_model("vgg16", width=1 / 8).head == "gap"
    assert build_model("vgg16-fc", width=1 / 8).head == "fc"
    with pytest.raises(ValueError, match="unknown model"):
        build_model("resnet")


def test_peak_memory_counts_the_attention_matrix():
    from course_lib.bench import latency_ms, peak_memory_bytes

    hw = 48 * 48
    q, k, v = torch.randn(1, hw, 8), torch.randn(1, hw, 8), torch.randn(1, hw, 64)
    naive = peak_memory_bytes(
        lambda: torch.bmm(torch.softmax(torch.bmm(q, k.transpose(1, 2)), -1), v)
    )
    matrix = hw * hw * 4
    # the scores and the softmax, each (HW)^2 floats
    assert matrix <= naive <= 3 * matrix
    small = peak_memory_bytes(lambda: torch.ones(1000))
    assert 4000 <= small < 10_000
    assert (
        latency_ms(
            torch.mm, torch.randn(64, 64), torch.randn(64, 64), min_run_time=0.05
        )
        > 0
    )


def test_the_backbone_is_passed_in_as_torchvision_does():
    """VGG(features, ...) is given its features; vgg16() is features plus a head, drawing
    its initial weights in the same order as before the split (chapters 02 and 09 train
    the same models)."""
    from course_lib.models.vgg import HEADS, VGG, vgg16_features

    for head in HEADS:
        torch.manual_seed(0)
        built = vgg16(1, width=1 / 8, head=head)
        torch.manual_seed(0)
        given = VGG(vgg16_features(1 / 8), 1, head=head, width=1 / 8)
        for (name, a), (_, b) in zip(
            built.state_dict().items(), given.state_dict().items()
        ):
            assert torch.equal(a, b), (head, name)
    given = VGG(vgg16_features(1 / 8, attention="se"), 1, head="gap", width=1 / 8)
    assert given.attention == "se"  # the features say what they hold


def test_attnvgg_and_the_detector_are_built_on_the_vgg16_features():
    from course_lib.detection import lesion_detector
    from course_lib.models import AttnVGG
    from course_lib.models.vgg import vgg16_features

    features = vgg16_features(1 / 8)
    assert str(AttnVGG(1, width=1 / 8).features) == str(features)
    body = lesion_detector(width=1 / 8).backbone.body
    shapes = [tuple(t.shape) for t in features.state_dict().values()]
    assert [tuple(t.shape) for t in body.state_dict().values()] == shapes
    assert not any(isinstance(m, torch.nn.Linear) for m in body.modules())
    assert [type(m).__name__ for m in AttnVGG(1, width=1 / 8).modules()].count(
        "Linear"
    ) == 1  # its classifier: the VGG head its features came with is not kept


def test_every_vgg16_body_starts_as_torchvisions_vgg16_bn():
    """VGG16, AttnVGG and the detector draw their convolutions as torchvision's VGG16-BN
    (Kaiming-normal, fan-out; BatchNorm 1 and 0; biases 0): each layer's weight spread is
    torchvision's, layer by layer. PyTorch's default (Kaiming-uniform with a = sqrt(5))
    gives 1.9x torchvision's spread at the first convolution and 0.4-0.6x at the other
    twelve, and fails here."""
    from course_lib.detection import lesion_detector
    from course_lib.models import AttnVGG

    def convs(module):
        return [m for m in module.modules() if isinstance(m, torch.nn.Conv2d)]

    torch.manual_seed(0)
    reference = [
        c.weight.std().item() for c in convs(torchvision.models.vgg16_bn().features)
    ]
    bodies = {
        "VGG16": vgg16(1, width=1.0, head="gap").features,
        "AttnVGG": AttnVGG(1, width=1.0).features,
        "detector": lesion_detector(width=1.0).backbone.body,
    }
    for name, body in bodies.items():
        spread = [c.weight.std().item() for c in convs(body)]
        assert len(spread) == len(reference) == 13, name
        for layer, (ours, theirs) in enumerate(zip(spread, reference)):
            assert ours == pytest.approx(theirs, rel=0.05), (name, layer)
        assert all(c.bias is None or not c.bias.any() for c in convs(body)), name
        norms = [m for m in body.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        assert all((n.weight == 1).all() and not n.bias.any() for n in norms), name
