"""A vision transformer small enough to read (Dosovitskiy et al., 2021), written by hand
(for the vision-transformer chapter, not yet in the book).

The pieces, in the order an image meets them:

1. **patch embedding** — a ``patch_size``-strided convolution cuts the image into
   ``(image_size / patch_size)²`` patches and maps each to a ``dim``-vector (a linear map
   of the patch's pixels: the convolution is that map, applied patch by patch);
2. a learned **class token** is put in front; the network reads its final state;
3. learned **positional embeddings** are added: attention is permutation-equivariant, so
   without them the model could not tell where a patch came from;
4. ``depth`` **pre-norm blocks**: ``x + attention(norm(x))``, then ``x + mlp(norm(x))``,
   with multi-head scaled dot-product attention written out (queries, keys and values
   from one linear map, scores ``q·k / sqrt(d_head)``, softmax over the keys);
5. a final layer norm and a linear head on the class token.

The layout follows torchvision's ``VisionTransformer`` (the same parameters, in the same
shapes, LayerNorm's eps 1e-6, GELU), so :meth:`ViT.from_torchvision` copies a torchvision
model's weights and gives the same logits: the hand version is checked against the
library one.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["MultiHeadSelfAttention", "TransformerBlock", "ViT", "vit_parameter_count"]


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{name} must be an integer >= 1; got {value!r}")
    return int(value)


class MultiHeadSelfAttention(nn.Module):
    """``heads`` scaled dot-product attentions side by side, over a ``(N, T, dim)`` input.

    ``qkv`` holds the query, key and value projections stacked (as
    ``nn.MultiheadAttention.in_proj_weight`` does); ``out`` mixes the heads' outputs.
    ``forward`` returns the output and the attention weights ``(N, heads, T, T)`` (each row
    a distribution over the keys).
    """

    def __init__(self, dim: int, heads: int):
        super().__init__()
        dim, heads = _positive_int("dim", dim), _positive_int("heads", heads)
        if dim % heads:
            raise ValueError(f"dim ({dim}) must be a multiple of heads ({heads})")
        self.heads, self.head_dim = heads, dim // heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, tokens, dim = x.shape
        # (N, T, 3 * dim) -> three of (N, heads, T, head_dim)
        q, k, v = (
            self.qkv(x)
            .reshape(n, tokens, 3, self.heads, self.head_dim)
            .permute(2, 0, 3, 1, 4)
        )
        # scores of every query against every key; 1/sqrt(d) keeps their variance near 1
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)
        weights = scores.softmax(dim=-1)  # (N, heads, T, T)
        mixed = (weights @ v).transpose(1, 2).reshape(n, tokens, dim)
        return self.out(mixed), weights


class TransformerBlock(nn.Module):
    """Pre-norm: ``x + attention(norm(x))``, then ``x + mlp(norm(x))``."""

    def __init__(self, dim: int, heads: int, mlp_dim: int, dropout: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attention = MultiHeadSelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(
            nn.Linear(dim, _positive_int("mlp_dim", mlp_dim)),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(mlp_dim, dim),
            nn.Dropout(dropout),
        )
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        attended, weights = self.attention(self.norm1(x))
        x = x + self.dropout(attended)
        return x + self.mlp(self.norm2(x)), weights


def vit_parameter_count(
    image_size: int,
    patch_size: int,
    num_classes: int,
    dim: int,
    depth: int,
    mlp_dim: int,
) -> int:
    """The formula: patch embedding, class token, positions, blocks, final norm, head."""
    tokens = (image_size // patch_size) ** 2 + 1
    patch = 3 * patch_size**2 * dim + dim
    block = 2 * 2 * dim + (3 * dim * dim + 3 * dim) + (dim * dim + dim)
    block += (dim * mlp_dim + mlp_dim) + (mlp_dim * dim + dim)
    return (
        patch
        + dim
        + tokens * dim
        + depth * block
        + 2 * dim
        + dim * num_classes
        + num_classes
    )


class ViT(nn.Module):
    """A vision transformer: ``forward(x)`` gives ``(N, num_classes)`` logits;
    ``forward(x, return_attention=True)`` gives ``(logits, attentions)``, one
    ``(N, heads, tokens, tokens)`` tensor per block (token 0 is the class token, then the
    patches row by row)."""

    def __init__(
        self,
        image_size: int = 64,
        patch_size: int = 8,
        num_classes: int = 1,
        dim: int = 64,
        depth: int = 4,
        heads: int = 4,
        mlp_dim: int = 128,
        dropout: float = 0.0,
    ):
        super().__init__()
        image_size = _positive_int("image_size", image_size)
        patch_size = _positive_int("patch_size", patch_size)
        if image_size % patch_size:
            raise ValueError(
                f"image_size ({image_size}) must be a multiple of patch_size ({patch_size})"
            )
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1); got {dropout}")
        self.image_size, self.patch_size = image_size, patch_size
        self.grid = image_size // patch_size
        dim = _positive_int("dim", dim)
        self.patch_embedding = nn.Conv2d(3, dim, patch_size, stride=patch_size)
        self.class_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.positions = nn.Parameter(torch.empty(1, self.grid**2 + 1, dim))
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(dim, heads, mlp_dim, dropout)
            for _ in range(_positive_int("depth", depth))
        )
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, _positive_int("num_classes", num_classes))
        self._init_weights()

    def _init_weights(self) -> None:
        """As torchvision: positions N(0, 0.02), patch map by its fan-in, MLPs Xavier, head 0."""
        nn.init.normal_(self.positions, std=0.02)
        fan_in = self.patch_embedding.in_channels * self.patch_size**2
        nn.init.trunc_normal_(self.patch_embedding.weight, std=math.sqrt(1 / fan_in))
        nn.init.zeros_(self.patch_embedding.bias)
        for block in self.blocks:
            for layer in (block.mlp[0], block.mlp[3]):
                nn.init.xavier_uniform_(layer.weight)
                nn.init.normal_(layer.bias, std=1e-6)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(N, 3, S, S)`` -> tokens ``(N, 1 + grid², dim)``: class token first."""
        if (
            x.dim() != 4
            or x.shape[1] != 3
            or tuple(x.shape[2:]) != (self.image_size,) * 2
        ):
            raise ValueError(
                f"ViT expects images of shape (N, 3, {self.image_size}, {self.image_size}); "
                f"got {tuple(x.shape)}"
            )
        patches = self.patch_embedding(x).flatten(2).transpose(1, 2)  # (N, grid², dim)
        cls = self.class_token.expand(len(x), -1, -1)
        return self.dropout(torch.cat([cls, patches], dim=1) + self.positions)

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        x = self.tokens(x)
        attentions = []
        for block in self.blocks:
            x, weights = block(x)
            attentions.append(weights)
        logits = self.head(self.norm(x)[:, 0])
        return (logits, attentions) if return_attention else logits

    @classmethod
    def from_torchvision(cls, model) -> ViT:
        """A ViT with the weights of ``model``, a ``torchvision.models.VisionTransformer``
        (no representation layer); the same logits, to rounding."""
        layers = list(model.encoder.layers)
        head = model.heads.head
        vit = cls(
            image_size=model.image_size,
            patch_size=model.patch_size,
            num_classes=head.out_features,
            dim=model.hidden_dim,
            depth=len(layers),
            heads=layers[0].self_attention.num_heads,
            mlp_dim=model.mlp_dim,
        )
        with torch.no_grad():
            vit.patch_embedding.load_state_dict(model.conv_proj.state_dict())
            vit.class_token.copy_(model.class_token)
            vit.positions.copy_(model.encoder.pos_embedding)
            for mine, theirs in zip(vit.blocks, layers):
                mine.norm1.load_state_dict(theirs.ln_1.state_dict())
                mine.norm2.load_state_dict(theirs.ln_2.state_dict())
                attention = theirs.self_attention
                mine.attention.qkv.weight.copy_(attention.in_proj_weight)
                mine.attention.qkv.bias.copy_(attention.in_proj_bias)
                mine.attention.out.load_state_dict(attention.out_proj.state_dict())
                mine.mlp[0].load_state_dict(theirs.mlp[0].state_dict())
                mine.mlp[3].load_state_dict(theirs.mlp[3].state_dict())
            vit.norm.load_state_dict(model.encoder.ln.state_dict())
            vit.head.load_state_dict(head.state_dict())
        return vit
