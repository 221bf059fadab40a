"""course_lib.retrieval: metrics on hand-made collections with known answers; AttnVGG's descriptors."""

import numpy as np
import pytest
import torch

from course_lib.retrieval import (
    DESCRIPTORS,
    attnvgg_descriptors,
    average_precisions,
    retrieval_metrics,
    retrieve,
)


def test_two_clean_clusters_are_retrieved_perfectly():
    d = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    m = retrieval_metrics(d, ["a", "a", "b", "b"], ks=(1, 2))
    assert m == {"recall@1": 1.0, "recall@2": 1.0, "mAP": 1.0, "queries": 4}


def test_known_average_precision_and_recall():
    """Query 0 ranks its three neighbours relevant, irrelevant, relevant: AP = (1/1 + 2/3) / 2."""
    # angles 0°, 8°, 18°, 37°
    d = np.array([[1.0, 0.0], [0.99, 0.14], [0.95, 0.31], [0.8, 0.6]])
    labels = [0, 0, 1, 0]
    assert retrieve(d, 0, k=3).tolist() == [1, 2, 3]
    ap = {}
    for q in range(4):
        order = retrieve(d, q, k=3)
        rel = np.array([labels[i] == labels[q] for i in order])
        if rel.any():
            ap[q] = np.mean([rel[: i + 1].mean() for i in np.flatnonzero(rel)])
    assert ap[0] == pytest.approx((1 + 2 / 3) / 2)
    m = retrieval_metrics(d, labels, ks=(1, 3))
    assert m["queries"] == 3, "the only image of class 1 has nothing to find"
    assert m["mAP"] == pytest.approx(np.mean(list(ap.values())))
    # query 3's nearest is of class 1
    assert m["recall@3"] == 1.0 and m["recall@1"] == pytest.approx(2 / 3)
    # one value per query, NaN where nothing is relevant; scikit-learn agrees on each
    from sklearn.metrics import average_precision_score

    per_query = average_precisions(d, labels)
    assert np.isnan(per_query[2]) and np.nanmean(per_query) == pytest.approx(m["mAP"])
    for q in (0, 1, 3):
        others = [i for i in range(4) if i != q]
        truth = [labels[i] == labels[q] for i in others]
        similarity = [float(d[q] @ d[i] / np.linalg.norm(d[i])) for i in others]
        expected = average_precision_score(truth, similarity)
        assert per_query[q] == pytest.approx(expected)


def test_the_query_never_retrieves_itself_and_scale_does_not_matter():
    d = np.random.default_rng(0).normal(size=(10, 4))
    for q in range(10):
        assert q not in retrieve(d, q, k=9)
    labels = np.arange(10) % 3
    assert retrieval_metrics(d, labels) == retrieval_metrics(d * 7.5, labels), (
        "cosine similarity"
    )


def test_errors_are_named():
    with pytest.raises(ValueError, match="3 descriptors but 2 labels"):
        retrieval_metrics(np.eye(3), [0, 1])
    with pytest.raises(ValueError, match="no query has a relevant image"):
        retrieval_metrics(np.eye(3), [0, 1, 2])


def test_attnvgg_descriptors_pool_the_same_maps_two_ways():
    from course_lib.models import AttnVGG

    torch.manual_seed(0)
    model = AttnVGG(1, width=1 / 16).eval()
    images = torch.randn(5, 3, 64, 64)
    loader = [(images[:3], torch.zeros(3)), (images[3:], torch.zeros(2))]
    d = attnvgg_descriptors(model, loader, device="cpu")
    assert tuple(d) == DESCRIPTORS and all(len(v) == 5 for v in d.values())
    f = model.forward_features(images)
    torch.testing.assert_close(
        torch.from_numpy(d["GAP pool-3"]), f["pool3"].mean((2, 3))
    )
    torch.testing.assert_close(torch.from_numpy(d["attention pool-4"]), f["g2"])
    uniform = (
        (f["pool4"] * torch.full_like(f["a2"], 1 / f["a2"][0].numel()))
        .flatten(2)
        .sum(2)
    )
    torch.testing.assert_close(
        torch.from_numpy(d["GAP pool-4"]), uniform, rtol=1e-5, atol=1e-6
    )
