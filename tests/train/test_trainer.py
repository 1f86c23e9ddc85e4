"""Training: anchor matching/encoding, the loss goes down, checkpoints, interrupt and resume."""

import json

import numpy as np
import pytest
import torch

from edgedet.anchors import generate_anchors
from edgedet.data.synthetic import generate
from edgedet.postprocess import decode_boxes
from edgedet.train import TrainConfig, train
from edgedet.train import trainer as trainer_mod
from edgedet.train.targets import AnchorMatcher


def test_matching_and_encoding_roundtrip():
    anchors = generate_anchors((128, 128))
    matcher = AnchorMatcher(anchors)
    a = anchors[500]
    gt = torch.tensor([[a[1] + 1, a[0] - 2, a[3] + 3, a[2] + 1]])  # xyxy near anchor 500
    cls, box = matcher(gt, torch.tensor([3]))
    pos = torch.nonzero(cls >= 0).flatten()
    assert 500 in pos.tolist() and (cls[pos] == 3).all()
    decoded = decode_boxes(box[pos].numpy(), anchors[pos.numpy()])
    np.testing.assert_allclose(decoded, gt.numpy().repeat(len(pos), 0), atol=1e-3)
    cls_empty, _ = matcher(torch.zeros((0, 4)), torch.zeros(0, dtype=torch.long))
    assert (cls_empty == -1).all()


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("syn")
    return generate(root, "train", 16, size=128, seed=0), generate(root, "val", 8, size=128, seed=0)


def _cfg(tiny_data, out, **kw):
    train_json, val_json = tiny_data
    base = dict(
        model="test",
        data=str(train_json),
        val_data=str(val_json),
        out=str(out),
        epochs=2,
        batch=4,
        workers=0,
        lr=3e-3,
        warmup_steps=5,
    )
    base.update(kw)
    return TrainConfig(**base)


def test_loss_decreases_and_checkpoints(tiny_data, tmp_path):
    result = train(_cfg(tiny_data, tmp_path, epochs=6), log=lambda m: None)
    losses = [h["loss"] for h in result["history"]]
    assert losses[-1] < losses[0] * 0.85
    best = torch.load(tmp_path / "best.pth", weights_only=False)
    assert best["class_names"] == ["circle", "square", "triangle", "cross", "ring"]
    from edgedet.model import create_model

    model = create_model("test", weights=tmp_path / "best.pth")  # effdet layout under 'state_dict'
    assert model.config.num_classes == 5
    assert json.loads((tmp_path / "history.json").read_text())[-1]["epoch"] == 6
    assert "val_AP" in result["history"][0]


def test_interrupt_and_resume(tiny_data, tmp_path, monkeypatch):
    real = trainer_mod.detection_loss
    calls = {"n": 0}

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 6:  # epoch 2 (4 steps per epoch), second step
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(trainer_mod, "detection_loss", flaky)
    logs = []
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(tiny_data, tmp_path, epochs=3), log=logs.append)
    state = torch.load(tmp_path / "last.pth", weights_only=False)
    assert state["epoch"] == 1 and len(state["history"]) == 1
    assert "resume at epoch 2" in logs[-1]
    monkeypatch.setattr(trainer_mod, "detection_loss", real)
    logs.clear()
    result = train(_cfg(tiny_data, tmp_path, epochs=3), log=logs.append)
    assert logs[0].startswith("resumed from") and "epoch 2" in logs[0]
    assert [h["epoch"] for h in result["history"]] == [1, 2, 3]


def test_cli_without_validation_reports_no_ap(tiny_data, tmp_path, capsys):
    """Without --val-data the CLI printed 'best validation AP -1.0000'."""
    from edgedet.cli import main

    train_json, _ = tiny_data
    args = ["train", "--model", "test", "--data", str(train_json), "--epochs", "1", "--batch", "8", "--workers", "0"]
    assert main([*args, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "-1.0000" not in out and "no validation set (--val-data), no AP measured" in out
