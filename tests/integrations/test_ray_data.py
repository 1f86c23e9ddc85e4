"""Ray Data batch detection: the same detections as a local Detector loop, corrupt images reported in their row,
a killed actor retried with every input exactly once. Ray is started once per test session with 2 CPUs."""

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

ray = pytest.importorskip("ray")

from edgedet.cli import main  # noqa: E402
from edgedet.integrations.ray_data import detect_dataset, image_dataset  # noqa: E402
from edgedet.runtimes import Detector  # noqa: E402


@pytest.fixture(scope="module")
def folder(tmp_path_factory, images):
    d = tmp_path_factory.mktemp("ray_images")
    rng = np.random.default_rng(0)
    for i in range(200):
        img = images[i % len(images)]
        h, w = img.shape[:2]
        y, x = rng.integers(0, h // 3), rng.integers(0, w // 3)
        cv2.imwrite(str(d / f"{i:03d}.jpg"), img[y : y + h // 2, x : x + w // 2])
    return d


def test_two_actors_give_the_local_detections(local_ray, folder, artifacts):
    rows = detect_dataset(
        image_dataset([str(folder)]), artifacts["onnx"], actors=2, batch_size=8, score_threshold=0.3
    ).to_pandas()
    assert len(rows) == 200 and rows["path"].is_unique and (rows["error"] == "").all()
    det = Detector.load(artifacts["onnx"], score_threshold=0.3)
    for _, r in rows.iterrows():
        d = det(r["path"])
        assert list(r["class_ids"]) == d.class_ids.tolist()
        np.testing.assert_allclose(np.asarray(list(r["boxes"]), np.float32).reshape(-1, 4), d.xyxy, atol=1e-4)
        np.testing.assert_allclose(np.asarray(r["scores"], np.float32), d.scores, atol=1e-6)


def test_corrupt_image_is_reported_in_its_row(local_ray, tmp_path, artifacts, images):
    cv2.imwrite(str(tmp_path / "good.jpg"), images[0])
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    rows = detect_dataset(image_dataset([str(tmp_path)]), artifacts["onnx"], actors=1).to_pandas()
    bad = rows[rows["path"].str.endswith("bad.jpg")].iloc[0]
    good = rows[rows["path"].str.endswith("good.jpg")].iloc[0]
    assert "cannot read image" in bad["error"] and len(good["boxes"]) > 0 and good["error"] == ""


class _DiesOnce:
    """Kills its own actor process the first time it sees the marked image (a worker lost mid-job)."""

    def __init__(self, marker: str, **kw):
        from edgedet.integrations.ray_data import DetectActor

        self.inner, self.marker = DetectActor(**kw), marker

    def __call__(self, batch):
        if batch["path"].str.endswith("/050.jpg").any() and not os.path.exists(self.marker):
            Path(self.marker).write_text("died")
            os._exit(1)
        return self.inner(batch)


def test_killed_actor_is_retried_and_each_input_appears_once(local_ray, folder, artifacts, tmp_path):
    marker = str(tmp_path / "died")
    ds = image_dataset([str(folder)]).map_batches(
        _DiesOnce,
        fn_constructor_kwargs={"marker": marker, "artifact": str(artifacts["onnx"])},
        batch_size=8,
        batch_format="pandas",
        compute=ray.data.ActorPoolStrategy(size=2),
        num_cpus=0.5,
    )  # Ray's default retries
    rows = ds.to_pandas()
    assert Path(marker).exists()  # an actor did die
    assert len(rows) == 200 and rows["path"].is_unique


def test_batch_cli_writes_parquet(local_ray, folder, artifacts, tmp_path, capsys):
    out = tmp_path / "results.parquet"
    assert (
        main(
            [
                "batch",
                "--model",
                str(artifacts["onnx"]),
                "--source",
                str(folder),
                "--out",
                str(out),
                "--actors",
                "2",
                "--json",
            ]
        )
        == 0
    )
    import pandas as pd

    df = pd.read_parquet(out)
    assert len(df) == 200 and set(df.columns) >= {"path", "boxes", "scores", "class_ids", "labels", "error"}


def test_batch_cli_bad_inputs_are_one_line(tmp_path, capsys):
    assert (
        main(
            [
                "batch",
                "--model",
                str(tmp_path / "none.onnx"),
                "--source",
                str(tmp_path),
                "--out",
                str(tmp_path / "r.parquet"),
            ]
        )
        == 2
    )
    assert "no manifest for none.onnx" in capsys.readouterr().err
    assert main(["batch", "--model", "x.onnx", "--source", str(tmp_path), "--out", str(tmp_path / "r.csv")]) == 2
    assert "--out must end in" in capsys.readouterr().err
