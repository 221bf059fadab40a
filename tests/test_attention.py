"""course_lib.attention: shapes, parameter formulas, gates, gradients, independent references."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import SqueezeExcitation

from course_lib.attention import (
    ATTENTION,
    CBAM,
    ECA,
    ChannelAttention,
    DualPooling,
    SEBlock,
    SelfAttention2d,
    SpatialAttention,
    TripletAttention,
    make_attention,
)
from course_lib.attention.eca import eca_kernel_size
from course_lib.bench import count_parameters
from course_lib.models import vgg16

SHAPES = [(1, 16, 8, 8), (2, 16, 12, 7), (3, 32, 5, 9), (1, 64, 1, 1)]
FACTORIES = {
    "se": lambda c: SEBlock(c, reduction=8),
    "channel": lambda c: ChannelAttention(c, reduction=8),
    "spatial": lambda c: SpatialAttention(7),
    "cbam": lambda c: CBAM(c, reduction=8),
    "cbam-spatial-first": lambda c: CBAM(c, reduction=8, order="spatial-channel"),
    "cbam-parallel": lambda c: CBAM(c, reduction=8, order="parallel"),
    "self": lambda c: SelfAttention2d(c),
    "triplet": lambda c: TripletAttention(c, kernel_size=7),
    "eca": lambda c: ECA(c),
}


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", FACTORIES)
def test_shape_is_preserved(name, shape):
    module = FACTORIES[name](shape[1]).eval()
    assert module(torch.randn(shape)).shape == shape


@pytest.mark.parametrize("shape", SHAPES)
def test_dual_pooling_shape_and_values(shape):
    x = torch.randn(shape)
    out = DualPooling()(x)
    assert out.shape == (shape[0], 2 * shape[1])
    expected = torch.cat(
        [
            F.adaptive_avg_pool2d(x, 1).flatten(1),
            F.adaptive_max_pool2d(x, 1).flatten(1),
        ],
        1,
    )
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("channels,reduction", [(64, 16), (512, 16), (256, 8)])
def test_parameter_formulas(channels, reduction):
    c, h = channels, channels // reduction
    assert count_parameters(SEBlock(c, reduction)) == 2 * c * h + h + c
    assert count_parameters(ChannelAttention(c, reduction)) == 2 * c * h
    assert (
        count_parameters(SelfAttention2d(c))
        == 2 * (c * (c // 8) + c // 8) + c * c + c + 1
    )
    for k in (3, 7):
        assert count_parameters(SpatialAttention(k)) == 2 * k * k
        assert count_parameters(CBAM(c, reduction, k)) == 2 * c * h + 2 * k * k
        assert count_parameters(TripletAttention(kernel_size=k)) == 3 * (2 * k * k + 2)


def test_reference_figures_of_the_course():
    assert count_parameters(SEBlock(512, 16)) == 33_312
    se = SEBlock(512, 16)
    assert (
        sum(p.numel() for n, p in se.named_parameters() if n.endswith("weight"))
        == 32_768
    )
    assert count_parameters(ChannelAttention(512, 16)) == 32_768
    assert count_parameters(CBAM(512, 16, 7)) == 32_768 + 98
    assert (
        count_parameters(TripletAttention(512))
        == count_parameters(TripletAttention(16))
        == 300
    )
    assert count_parameters(SelfAttention2d(512)) == 328_321
    assert count_parameters(SelfAttention2d(64)) == 5_201


def _gates(module, x):
    if isinstance(module, (SEBlock, ChannelAttention, SpatialAttention, ECA)):
        return [module.gate(x)]
    if isinstance(module, CBAM):
        return [module.channel.gate(x), module.spatial.gate(x)]
    if isinstance(module, TripletAttention):
        p1, p2 = module.ROTATIONS
        return [
            module.ch.gate(x.permute(*p1)),
            module.cw.gate(x.permute(*p2)),
            module.hw.gate(x),
        ]
    raise TypeError(module)


@pytest.mark.parametrize("name", ["se", "channel", "spatial", "cbam", "triplet", "eca"])
def test_gates_lie_strictly_between_0_and_1(name):
    module = FACTORIES[name](32).train()
    for gate in _gates(module, torch.randn(4, 32, 9, 6)):
        assert (gate > 0).all() and (gate < 1).all()


@pytest.mark.parametrize("name", FACTORIES)
def test_gradients_reach_every_parameter(name):
    torch.manual_seed(0)
    # 32 channels and a batch of 8: with a 2-unit bottleneck a tiny batch can leave every
    # ReLU of the excitation MLP dead, and then fc1 rightly gets no gradient
    module = FACTORIES[name](32).train()
    if isinstance(module, SelfAttention2d):
        # at gamma = 0 only gamma itself gets a gradient
        nn.init.constant_(module.gamma, 0.5)
    x = torch.randn(8, 32, 6, 5, requires_grad=True)
    # a random projection: no symmetric cancellation
    (module(x) * torch.randn(8, 32, 6, 5)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for pname, p in module.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, (
            f"{name}: no gradient for {pname}"
        )


# ---------------------------------------------------------------- independent references


@pytest.mark.parametrize("channels,reduction", [(64, 16), (32, 4)])
def test_se_equals_torchvision_squeeze_excitation(channels, reduction):
    ours = SEBlock(channels, reduction)
    theirs = SqueezeExcitation(channels, channels // reduction)
    theirs.load_state_dict(ours.state_dict())  # same names: fc1, fc2
    x = torch.randn(2, channels, 7, 5)
    torch.testing.assert_close(ours(x), theirs(x))


def _cbam_channel_reference(module, x):
    mlp = module.mlp
    avg = mlp(F.adaptive_avg_pool2d(x, 1))
    mx = mlp(F.adaptive_max_pool2d(x, 1))
    return x * torch.sigmoid(avg + mx)


def _cbam_spatial_reference(module, x):
    stacked = torch.stack([x.mean(1), x.max(1).values], dim=1)
    return x * torch.sigmoid(
        F.conv2d(stacked, module.conv.weight, padding=module.conv.padding)
    )


def test_cbam_channel_spatial_and_composed():
    torch.manual_seed(1)
    x = torch.randn(2, 32, 10, 7)
    cbam = CBAM(32, reduction=4, kernel_size=7)
    torch.testing.assert_close(
        cbam.channel(x), _cbam_channel_reference(cbam.channel, x)
    )
    torch.testing.assert_close(
        cbam.spatial(x), _cbam_spatial_reference(cbam.spatial, x)
    )
    after_channel = _cbam_channel_reference(cbam.channel, x)
    torch.testing.assert_close(
        cbam(x), _cbam_spatial_reference(cbam.spatial, after_channel)
    )
    for order, expected in (
        (
            "spatial-channel",
            _cbam_channel_reference(
                cbam.channel, _cbam_spatial_reference(cbam.spatial, x)
            ),
        ),
        (
            "parallel",
            (
                _cbam_channel_reference(cbam.channel, x)
                + _cbam_spatial_reference(cbam.spatial, x)
            )
            / 2,
        ),
    ):
        cbam.order = order
        torch.testing.assert_close(cbam(x), expected)
    with pytest.raises(ValueError, match="order"):
        CBAM(8, order="random")


def _sagan_reference(module, x, scale=1.0):
    """SAGAN written out with bmm and softmax, as in the paper's code."""
    n, c, h, w = x.shape
    q = module.query(x).view(n, -1, h * w).permute(0, 2, 1)  # (N, HW, C')
    k = module.key(x).view(n, -1, h * w)  # (N, C', HW)
    v = module.value(x).view(n, -1, h * w)  # (N, C, HW)
    # (N, HW, HW): row i attends over j
    attention = torch.softmax(torch.bmm(q, k) * scale, dim=-1)
    out = torch.bmm(v, attention.permute(0, 2, 1)).view(n, c, h, w)
    return module.gamma * out + x


@pytest.mark.parametrize("shape", [(2, 16, 6, 6), (1, 64, 7, 4), (3, 32, 1, 9)])
def test_self_attention_equals_bmm_reference(shape):
    torch.manual_seed(2)
    module = SelfAttention2d(shape[1])
    nn.init.constant_(module.gamma, 0.7)
    x = torch.randn(shape)
    torch.testing.assert_close(
        module(x), _sagan_reference(module, x), atol=1e-5, rtol=1e-5
    )
    scaled = SelfAttention2d(shape[1], scale=None)
    scaled.load_state_dict(module.state_dict())
    d = module.query.out_channels
    torch.testing.assert_close(
        scaled(x), _sagan_reference(module, x, scale=d**-0.5), atol=1e-5, rtol=1e-5
    )


def test_self_attention_starts_as_identity():
    module = SelfAttention2d(32)
    x = torch.randn(2, 32, 5, 6)
    assert module.gamma.item() == 0.0
    assert torch.equal(module(x), x)


def _triplet_branch_reference(branch, x, permutation):
    rotated = x.permute(*permutation) if permutation else x
    z = torch.cat(
        [rotated.max(dim=1, keepdim=True).values, rotated.mean(dim=1, keepdim=True)],
        dim=1,
    )
    g = torch.sigmoid(
        branch.bn(F.conv2d(z, branch.conv.weight, padding=branch.conv.padding))
    )
    out = rotated * g
    return out.permute(*permutation) if permutation else out


@pytest.mark.parametrize("shape", [(2, 16, 9, 6), (1, 8, 5, 5), (3, 4, 7, 11)])
def test_triplet_branches_equal_direct_computation(shape):
    torch.manual_seed(3)
    module = TripletAttention(kernel_size=7).eval()
    for branch in (module.ch, module.cw, module.hw):  # non-trivial BatchNorm statistics
        branch.bn.running_mean.uniform_(-0.5, 0.5)
        branch.bn.running_var.uniform_(0.5, 2.0)
        nn.init.uniform_(branch.bn.weight, 0.5, 1.5)
    x = torch.randn(shape)
    expected = [
        # H to the front: gates the C-W plane
        _triplet_branch_reference(module.ch, x, (0, 2, 1, 3)),
        # W to the front: gates the H-C plane
        _triplet_branch_reference(module.cw, x, (0, 3, 2, 1)),
        _triplet_branch_reference(module.hw, x, None),  # spatial
    ]
    for got, want in zip(module.branches(x), expected):
        torch.testing.assert_close(got, want)
    torch.testing.assert_close(module(x), sum(expected) / 3)


def test_triplet_has_no_query_key_value():
    names = [n for n, _ in TripletAttention().named_modules()]
    assert not any(k in n for n in names for k in ("query", "key", "value"))


# ---------------------------------------------------------------- placement in VGG16


@pytest.mark.parametrize(
    "kind,cls,stages",
    [
        ("se", SEBlock, 5),
        ("cbam", CBAM, 5),
        ("triplet", TripletAttention, 5),
        ("self", SelfAttention2d, 1),
    ],
)
def test_vgg16_places_attention_before_each_pool(kind, cls, stages):
    model = vgg16(1, width=1 / 8, head="gap", attention=kind)
    placed = [
        (i, stage)
        for i, stage in enumerate(model.features, 1)
        if isinstance(stage[-2], cls)
    ]
    assert len(placed) == stages
    assert all(isinstance(stage[-1], nn.MaxPool2d) for _, stage in placed)
    if kind == "self":
        assert [i for i, _ in placed] == [4]
        # backbone init leaves it alone
        assert model.features[3][-2].gamma.item() == 0.0
    assert model.eval()(torch.randn(2, 3, 64, 96)).shape == (2, 1)


def test_vgg16_dualpool_head_and_unknown_attention():
    model = vgg16(3, width=1 / 8, head="dualpool")
    assert model.classifier[-1].in_features == 2 * model.out_channels
    assert model.eval()(torch.randn(1, 3, 64, 64)).shape == (1, 3)
    with pytest.raises(ValueError, match="attention must be"):
        vgg16(1, attention="transformer")


def test_self_attention_fused_and_unfused_agree():
    torch.manual_seed(4)
    fused = SelfAttention2d(32)
    nn.init.constant_(fused.gamma, 1.0)
    plain = SelfAttention2d(32, fused=False)
    plain.load_state_dict(fused.state_dict())
    x = torch.randn(2, 32, 9, 7)
    torch.testing.assert_close(fused(x), plain(x), atol=1e-5, rtol=1e-5)


def test_triplet_batchnorm_follows_the_authors_momentum():
    """landskape-ai/triplet-attention uses BatchNorm2d(momentum=0.01): one training step moves
    the running mean by 1 % of the batch mean (PyTorch's default would move it by 10 %)."""
    module = TripletAttention(kernel_size=7).train()
    torch.manual_seed(0)
    x = torch.randn(4, 8, 6, 6) + 3
    with torch.no_grad():
        pooled = module.hw.conv(module.hw.pool(x))
        module(x)
    torch.testing.assert_close(
        module.hw.bn.running_mean, 0.01 * pooled.mean().reshape(1), rtol=1e-4, atol=1e-6
    )


# ---------------------------------------------------------------- ECA and the registry


@pytest.mark.parametrize(
    "channels, k", [(16, 3), (64, 3), (128, 5), (256, 5), (512, 5), (2048, 7)]
)
def test_eca_kernel_follows_the_paper_and_is_its_only_parameter(channels, k):
    """k = |(log2 C + 1) / 2| made odd (Wang et al. 2020, Eq. 12 with gamma = 2, b = 1)."""
    assert eca_kernel_size(channels) == k
    assert count_parameters(ECA(channels)) == k


def test_eca_equals_a_direct_sum_over_neighbouring_channels():
    """The authors' eca_layer: a 1-D convolution of the channel averages (zero padding), sigmoid, scale."""
    torch.manual_seed(2)
    module = ECA(64, kernel_size=5)
    x = torch.randn(3, 64, 6, 5)
    averages = x.mean(dim=(2, 3))
    padded = F.pad(averages, (2, 2))
    weights = module.conv.weight.view(5)
    scores = torch.stack(
        [(padded[:, c : c + 5] * weights).sum(1) for c in range(64)], dim=1
    )
    torch.testing.assert_close(module(x), x * torch.sigmoid(scores)[:, :, None, None])
    with pytest.raises(ValueError, match="odd"):
        ECA(64, kernel_size=4)


@pytest.mark.parametrize(
    "name, cls",
    [
        ("se", SEBlock),
        ("cbam", CBAM),
        ("triplet", TripletAttention),
        ("self", SelfAttention2d),
        ("eca", ECA),
    ],
)
def test_make_attention_builds_every_module_by_name_channels_first(name, cls):
    module = make_attention(name, 32)
    assert isinstance(module, cls) and ATTENTION[name].factory is cls
    assert module.eval()(torch.randn(2, 32, 6, 6)).shape == (2, 32, 6, 6)
    with pytest.raises(ValueError, match="unknown attention 'transformer'"):
        make_attention("transformer", 32)


def test_a_registered_module_reaches_vgg16_and_the_command_line():
    """One registry line is all a module needs: vgg16(attention=...) and the model names follow."""
    from course_lib.models import MODEL_NAMES, build_model

    assert {f"vgg16-{name}" for name in ATTENTION} <= set(MODEL_NAMES)
    model = build_model("vgg16-eca", width=1 / 8)
    assert (
        sum(isinstance(m, ECA) for m in model.modules())
        == len(ATTENTION["eca"].stages)
        == 5
    )
    with pytest.raises(ValueError, match="unknown model"):
        build_model("vgg16-transformer")
