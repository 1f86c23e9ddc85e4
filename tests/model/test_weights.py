"""Checkpoint loading: wrappers, prefixes, custom class count, wrong/corrupt/missing files, downloads."""

import hashlib

import pytest
import torch

from edgedet import weights as W
from edgedet.errors import ArtifactError
from edgedet.model import create_model


@pytest.fixture(scope="module")
def state():
    return create_model("test").state_dict()


@pytest.mark.parametrize("wrap", ["plain", "state_dict", "model", "module_prefix", "bench_prefix"])
def test_wrapped_checkpoints_load(tmp_path, state, wrap):
    obj = {
        "plain": state,
        "state_dict": {"state_dict": state, "epoch": 3},
        "model": {"model": state},
        "module_prefix": {f"module.{k}": v for k, v in state.items()},
        "bench_prefix": {**{f"model.{k}": v for k, v in state.items()}, "anchors.boxes": torch.zeros(3, 4)},
    }[wrap]
    path = tmp_path / "w.pth"
    torch.save(obj, path)
    model = create_model("test", weights=path)
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k


def test_custom_num_classes_reinitialises_class_head(tmp_path, state):
    path = tmp_path / "w.pth"
    torch.save(state, path)
    with pytest.warns(UserWarning, match="class head is re-initialised"):
        model = create_model("test", weights=path, num_classes=3)
    assert model.config.num_classes == 3
    assert model.class_net.predict.conv_pw.out_channels == 3 * 9
    assert torch.equal(model.state_dict()["box_net.predict.conv_pw.weight"], state["box_net.predict.conv_pw.weight"])


def test_checkpoint_with_its_own_class_count_is_taken_as_is(tmp_path):
    small = create_model("test", num_classes=5).state_dict()
    path = tmp_path / "w5.pth"
    torch.save(small, path)
    assert create_model("test", weights=path).config.num_classes == 5


def test_wrong_checkpoint_for_model(tmp_path):
    path = tmp_path / "lite0.pth"
    torch.save(create_model("lite0").state_dict(), path)
    with pytest.raises(ArtifactError, match=r"do not match model 'test'.*BiFPN width 64"):
        create_model("test", weights=path)


def test_corrupt_and_missing_weights(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ArtifactError, match="not a valid PyTorch checkpoint"):
        create_model("test", weights=bad)
    with pytest.raises(ArtifactError, match="not found"):
        create_model("test", weights=tmp_path / "missing.pth")
    torch.save({"a": 1}, tmp_path / "nottensors.pth")
    with pytest.raises(ArtifactError, match="state dict of tensors"):
        create_model("test", weights=tmp_path / "nottensors.pth")


def test_download_verifies_hash(tmp_path, monkeypatch):
    payload = b"checkpoint bytes"
    digest = hashlib.sha256(payload).hexdigest()
    good, bad = f"ckpt-{digest[:8]}.pth", "ckpt-deadbeef.pth"
    src = tmp_path / "server"
    src.mkdir()
    (src / good).write_bytes(payload)
    (src / bad).write_bytes(payload)
    monkeypatch.setattr(W, "_BASE", src.as_uri() + "/")
    monkeypatch.setenv("EDGEDET_CACHE", str(tmp_path / "cache"))
    path = W.download_checkpoint(good)
    assert path.read_bytes() == payload
    with pytest.raises(ArtifactError, match="refusing to use it"):
        W.download_checkpoint(bad)
    assert not (tmp_path / "cache" / "weights" / bad).exists()  # nothing half-kept


def test_download_offline_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(W, "_BASE", "http://127.0.0.1:9/")
    monkeypatch.setenv("EDGEDET_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ArtifactError, match="offline"):
        W.download_checkpoint("tf_efficientdet_d0_34-f153e0cf.pth", timeout=2)
