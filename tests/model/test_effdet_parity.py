"""State-dict compatibility with effdet and identical outputs (raw heads and DetBenchPredict detections)."""

import numpy as np
import pytest
import torch

effdet = pytest.importorskip("effdet")

from edgedet.anchors import generate_anchors
from edgedet.model import create_model
from edgedet.model.export import FlatHeads
from edgedet.postprocess import postprocess
from tests.conftest import randomize_


@pytest.fixture(scope="module", params=["d0", "d1", "lite0"])
def pair(request):
    name = request.param
    torch.manual_seed(1)
    ref = effdet.create_model(f"tf_efficientdet_{name}", pretrained=False, pretrained_backbone=False).eval()
    state = randomize_(ref.state_dict(), seed=1, class_bias=0.0)
    ref.load_state_dict(state)
    ours = create_model(name)
    ours.load_state_dict(state, strict=True)  # effdet keys load strictly
    return name, ref, ours


def test_state_dict_keys_identical(pair):
    _, ref, ours = pair
    a, b = ref.state_dict(), ours.state_dict()
    assert list(a) == list(b)
    assert all(a[k].shape == b[k].shape for k in a)
    assert sum(p.numel() for p in ref.parameters()) == sum(p.numel() for p in ours.parameters())


def test_raw_outputs_equal(pair):
    _, ref, ours = pair
    size = ours.config.image_size
    x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        (rc, rb), (oc, ob) = ref(x), ours(x)
    assert len(rc) == len(oc) == ours.config.num_levels
    diff = max((r - o).abs().max().item() for r, o in zip(rc + rb, oc + ob))
    assert diff <= 1e-4


def test_detections_equal_detbenchpredict(pair):
    _, ref, ours = pair
    bench = effdet.DetBenchPredict(ref).eval()
    size = ours.config.image_size
    x = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = bench(x)[0].numpy()  # (100, 6): x1 y1 x2 y2 score class(1-based)
        logits, deltas = FlatHeads(ours)(x)
    anchors = generate_anchors(size, anchor_scale=ours.config.anchor_scale)
    np.testing.assert_allclose(anchors, bench.anchors.boxes.numpy(), rtol=0, atol=1e-3)
    boxes, scores, classes = postprocess(
        logits[0].numpy(),
        deltas[0].numpy(),
        anchors,
        score_threshold=0.0,
        max_candidates=5000,
        max_det=100,
        clip_hw=None,
    )
    n = int((expected[:, 4] > 0).sum())
    assert len(scores) == n > 0
    np.testing.assert_array_equal(classes + 1, expected[:n, 5].astype(int))
    np.testing.assert_allclose(scores, expected[:n, 4], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(boxes, expected[:n, :4], rtol=1e-4, atol=1e-3)
