"""course_lib.models.ViT against torchvision's VisionTransformer (weights copied), its hand
multi-head attention against torch.nn.MultiheadAttention, and attention rollout on
hand-made attention matrices."""

import pytest
import torch
import torchvision

from course_lib.models import ViT, vit_parameter_count
from course_lib.models.vit import MultiHeadSelfAttention
from course_lib.saliency import attention_rollout, class_token_map


def torchvision_vit(seed=0, **shape):
    torch.manual_seed(seed)
    config = dict(image_size=32, patch_size=8, num_layers=3, num_heads=4, hidden_dim=32)
    config |= dict(mlp_dim=64, num_classes=2) | shape
    model = torchvision.models.VisionTransformer(**config).eval()
    with torch.no_grad():  # torchvision zeroes the head: give every weight a value
        for p in model.parameters():
            p.normal_(std=0.05)
    return model


def test_the_hand_multi_head_attention_is_torchs():
    torch.manual_seed(0)
    library = torch.nn.MultiheadAttention(32, 4, batch_first=True).eval()
    with torch.no_grad():
        library.in_proj_bias.normal_()
    hand = MultiHeadSelfAttention(32, 4)
    with torch.no_grad():
        hand.qkv.weight.copy_(library.in_proj_weight)
        hand.qkv.bias.copy_(library.in_proj_bias)
        hand.out.load_state_dict(library.out_proj.state_dict())
    x = torch.randn(3, 17, 32)
    out, weights = hand(x)
    expected, expected_weights = library(x, x, x, average_attn_weights=False)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(weights, expected_weights, rtol=1e-5, atol=1e-6)
    assert weights.shape == (3, 4, 17, 17)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 4, 17))


@pytest.mark.parametrize(
    "shape", [{}, dict(image_size=48, patch_size=16, num_heads=2, num_classes=5)]
)
def test_from_torchvision_gives_torchvisions_logits(shape):
    theirs = torchvision_vit(**shape)
    mine = ViT.from_torchvision(theirs).eval()
    x = torch.randn(4, 3, theirs.image_size, theirs.image_size)
    with torch.no_grad():
        difference = (mine(x) - theirs(x)).abs().max().item()
    assert difference < 1e-5, difference
    count = sum(p.numel() for p in mine.parameters())
    assert count == sum(p.numel() for p in theirs.parameters())


@pytest.mark.parametrize(
    "image_size, patch_size, classes, dim, depth, heads, mlp",
    [(64, 8, 1, 64, 4, 4, 128), (32, 4, 3, 48, 2, 6, 96), (16, 16, 1, 8, 1, 1, 8)],
)
def test_shapes_and_the_parameter_formula(
    image_size, patch_size, classes, dim, depth, heads, mlp
):
    model = ViT(image_size, patch_size, classes, dim, depth, heads, mlp)
    assert sum(p.numel() for p in model.parameters()) == vit_parameter_count(
        image_size, patch_size, classes, dim, depth, mlp
    )
    x = torch.randn(2, 3, image_size, image_size)
    logits, attentions = model(x, return_attention=True)
    tokens = (image_size // patch_size) ** 2 + 1
    assert logits.shape == (2, classes) and len(attentions) == depth
    assert all(a.shape == (2, heads, tokens, tokens) for a in attentions)
    assert torch.equal(model(x), logits)
    assert torch.count_nonzero(logits) == 0, "the head starts at zero, as torchvision's"


def test_without_positions_a_transformer_cannot_tell_where_a_patch_was():
    """Permutation equivariance: shuffle the patch tokens, and the blocks shuffle the
    outputs the same way, so only the positional embeddings carry where."""
    torch.manual_seed(0)
    model = ViT(32, 8, 1, 32, 2, 4, 64).eval()
    tokens = torch.randn(2, 17, 32)
    order = torch.cat([torch.tensor([0]), 1 + torch.randperm(16)])
    x, y = tokens, tokens[:, order]
    with torch.no_grad():
        for block in model.blocks:
            x, y = block(x)[0], block(y)[0]
    torch.testing.assert_close(y, x[:, order], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda: ViT(image_size=60, patch_size=8), "multiple of patch_size"),
        (lambda: ViT(dim=30, heads=4), "multiple of heads"),
        (lambda: ViT(num_classes=0), "num_classes must be an integer >= 1"),
        (lambda: ViT(depth=1.5), "depth must be an integer >= 1"),
        (lambda: ViT(dropout=1), "dropout must be in [0, 1)"),
        (lambda: ViT(64, 8)(torch.randn(1, 3, 32, 32)), "(N, 3, 64, 64)"),
    ],
)
def test_impossible_arguments_are_refused_by_name(make, words):
    with pytest.raises(ValueError) as err:
        make()
    assert words in str(err.value)


def uniform(n=2, heads=3, tokens=5):
    return torch.full((n, heads, tokens, tokens), 1 / tokens)


def test_rollout_of_identity_attention_is_the_identity():
    eye = torch.eye(5).expand(2, 3, 5, 5)
    torch.testing.assert_close(
        attention_rollout([eye, eye]), torch.eye(5).expand(2, 5, 5)
    )


def test_rollout_of_one_block_is_attention_and_residual_averaged():
    rollout = attention_rollout([uniform()])
    expected = (torch.full((5, 5), 0.2) + torch.eye(5)) / 2
    torch.testing.assert_close(rollout, expected.expand(2, 5, 5))


def test_rollout_multiplies_the_blocks_last_on_the_left():
    torch.manual_seed(0)
    blocks = [torch.rand(1, 2, 4, 4).softmax(-1) for _ in range(3)]
    steps = []
    for a in blocks:
        step = (a.mean(1) + torch.eye(4)) / 2
        steps.append(step / step.sum(-1, keepdim=True))
    expected = steps[2] @ steps[1] @ steps[0]
    rollout = attention_rollout(blocks)
    torch.testing.assert_close(rollout, expected)
    torch.testing.assert_close(rollout.sum(-1), torch.ones(1, 4))
    fused_max = attention_rollout(blocks[:1], head_fusion="max")
    step = (blocks[0].amax(1) + torch.eye(4)) / 2
    torch.testing.assert_close(fused_max, step / step.sum(-1, keepdim=True))


def test_discarding_keeps_the_class_token_and_drops_the_smallest():
    a = torch.tensor([[0.05, 0.6, 0.35], [0.1, 0.2, 0.7], [0.5, 0.4, 0.1]])
    # the 3 smallest of 9 (discard_ratio 1/3): (0, 0) = 0.05, (1, 0) = 0.1, (2, 2) = 0.1;
    # (0, 0) is the class token's attention to itself and is kept
    kept = a.clone()
    kept[1, 0] = kept[2, 2] = 0
    step = (kept + torch.eye(3)) / 2
    rollout = attention_rollout([a.expand(1, 1, 3, 3)], discard_ratio=1 / 3)
    torch.testing.assert_close(rollout[0], step / step.sum(-1, keepdim=True))


def test_the_class_token_map_is_its_row_over_the_patch_grid():
    with pytest.raises(ValueError, match="do not form"):
        class_token_map(torch.rand(2, 11, 11))  # 10 patch tokens: no square grid
    square = torch.rand(2, 17, 17)
    grid = class_token_map(square)
    assert grid.shape == (2, 4, 4)
    torch.testing.assert_close(grid[:, 1, 2], square[:, 0, 1 + 1 * 4 + 2])


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: attention_rollout([uniform()], head_fusion="sum"), "head_fusion"),
        (lambda: attention_rollout([uniform()], discard_ratio=1), "discard_ratio"),
        (lambda: attention_rollout([]), "empty"),
        (lambda: attention_rollout([uniform(), uniform(tokens=4)]), "attentions[1]"),
        (lambda: attention_rollout([torch.rand(2, 5, 5)]), "attentions[0]"),
    ],
)
def test_rollout_refuses_what_is_not_attention(call, words):
    with pytest.raises(ValueError) as err:
        call()
    assert words in str(err.value)


def test_rollout_of_a_trained_shape_vit_runs_end_to_end():
    model = ViT(32, 8, 1, 32, 2, 4, 64).eval()
    with torch.no_grad():
        _, attentions = model(torch.randn(3, 3, 32, 32), return_attention=True)
    heat = class_token_map(attention_rollout(attentions))
    assert heat.shape == (3, 4, 4) and torch.isfinite(heat).all()
