"""Retrieving similar lesions with attention-pooled descriptors (notebook ``13_beyond_classification``).

A classifier's pooled features are a *descriptor* of the image: images whose descriptors
point the same way (cosine similarity) look alike to the network. Retrieval asks, for a
query image, which images of a collection are most similar — "show me lesions like this
one" — and is scored by whether those are *relevant* (of the same class, or of the same
patient).

AttnVGG gives several descriptors of one image, and for pool-3 and pool-4 the same feature
map pooled two ways: uniformly (global average pooling) and by the gate's attention. Comparing
the two isolates what attention pooling changes, as DELF (Noh et al., ICCV 2017) does for
landmark retrieval with learned attention over local features.

Metrics (:func:`retrieval_metrics`), with every image a query and the query itself left out
of its own results:

- ``recall@k``: the share of queries with at least one relevant image among the k most
  similar (the usual "Recall@K" of metric learning);
- ``mAP``: the mean over queries of the average precision of the whole ranking.

Queries with no relevant image in the collection (a patient with a single image) have no
answer to find and are left out; :func:`retrieval_metrics` reports how many were scored.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "attnvgg_descriptors",
    "similarities",
    "retrieve",
    "retrieval_metrics",
    "average_precisions",
    "DESCRIPTORS",
]

#: The descriptors :func:`attnvgg_descriptors` returns, uniform and attention pooling side by side.
DESCRIPTORS = (
    "GAP pool-3",
    "attention pool-3",
    "GAP pool-4",
    "attention pool-4",
    "GAP pool-5 (global)",
)


@torch.no_grad()
def attnvgg_descriptors(model, loader, device=None) -> dict[str, np.ndarray]:
    """The :data:`DESCRIPTORS` of every image of ``loader`` (``(N, C)`` arrays, in the loader's order).

    ``model`` is an :class:`~course_lib.models.AttnVGG`; uniform pooling averages a feature map
    over positions, attention pooling is the gate's pooled vector (the softmax-weighted sum).
    """
    device = (
        torch.device(device) if device is not None else next(model.parameters()).device
    )
    model.eval()
    parts: dict[str, list] = {name: [] for name in DESCRIPTORS}
    for batch in loader:
        f = model.forward_features(batch[0].to(device))
        values = (
            f["pool3"].mean((2, 3)),
            f["g1"],
            f["pool4"].mean((2, 3)),
            f["g2"],
            f["pool5"].mean((2, 3)),
        )
        for name, value in zip(DESCRIPTORS, values):
            parts[name].append(value.float().cpu().numpy())
    return {name: np.concatenate(chunks) for name, chunks in parts.items()}


def similarities(descriptors) -> np.ndarray:
    """``(N, N)`` cosine similarities, with each image's similarity to itself set to -inf."""
    d = F.normalize(
        torch.as_tensor(np.asarray(descriptors), dtype=torch.float64), dim=1
    )
    s = (d @ d.T).numpy()
    np.fill_diagonal(s, -np.inf)
    return s


def retrieve(descriptors, query: int, k: int = 5) -> np.ndarray:
    """Indices of the ``k`` images most similar to image ``query`` (itself excluded), best first."""
    return np.argsort(-similarities(descriptors)[query], kind="stable")[:k]


def _rankings(descriptors, labels):
    """Per query, whether each result of its ranking is relevant (N, N-1), the query left out."""
    labels = np.asarray(labels)
    if len(labels) != len(np.asarray(descriptors)):
        raise ValueError(
            f"{len(np.asarray(descriptors))} descriptors but {len(labels)} labels"
        )
    # the query (-inf) is last
    order = np.argsort(-similarities(descriptors), axis=1, kind="stable")[:, :-1]
    return labels[order] == labels[:, None]


def average_precisions(descriptors, labels) -> np.ndarray:
    """Each query's average precision over its whole ranking; NaN for a query with no
    relevant image in the collection. Their mean over the answerable queries is the mAP
    of :func:`retrieval_metrics`; one value per query is what a paired comparison of two
    descriptors needs (chapter ``13``)."""
    relevant = _rankings(descriptors, labels)
    ranks = np.arange(1, relevant.shape[1] + 1)
    hits = relevant.sum(axis=1)
    precision_at_hits = np.cumsum(relevant, axis=1) / ranks
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(
            hits > 0, (precision_at_hits * relevant).sum(axis=1) / hits, np.nan
        )


def retrieval_metrics(descriptors, labels, ks=(1, 5)) -> dict[str, float]:
    """``recall@k`` for each k in ``ks``, ``mAP``, and ``queries`` (how many were scored).

    ``labels`` says which images are relevant to each other (equal labels: same class, or
    same patient). Ties in similarity are broken by index.
    """
    relevant = _rankings(descriptors, labels)
    answerable = relevant.any(axis=1)
    if not answerable.any():
        raise ValueError(
            "no query has a relevant image in the collection: nothing to retrieve"
        )
    average_precision = average_precisions(descriptors, labels)[answerable]
    relevant = relevant[answerable]
    result = {f"recall@{k}": float(relevant[:, :k].any(axis=1).mean()) for k in ks}
    result.update(mAP=float(average_precision.mean()), queries=int(answerable.sum()))
    return result
