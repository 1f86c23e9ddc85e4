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


# ---------------------------------------------------------------- hostile inputs (issue 27)
def _detect_jsonl(artifact, video, out) -> list[dict]:
    assert main(["detect", "--model", str(artifact), "--source", str(video), "--jsonl", str(out), "--conf", "0.3"]) == 0
    import json

    return [json.loads(line) for line in out.read_text().splitlines()]


@pytest.mark.parametrize("kind", ["claims-0", "claims-1e8", "raw-mjpeg"])
def test_batch_on_a_video_whose_header_lies_gives_the_frames_detect_decodes(
    local_ray, artifacts, tmp_path, kind, capsys
):
    """A header saying 0 frames gave 0 rows (detect reads 24), a raw MJPEG 1 row of 24, a header claiming 10^8
    frames ran for minutes. Frames are now counted by decoding: batch rows = detect's frames, detection for
    detection; the seekable video is split into tasks of --frames-per-task frames."""
    from edgedet.integrations.ray_data import plan_video
    from tests.hostile import lying_avi, raw_mjpeg

    video = (
        raw_mjpeg(tmp_path / "v.mjpeg", 24)
        if kind == "raw-mjpeg"
        else lying_avi(tmp_path / "v.avi", 24, 0 if kind == "claims-0" else 10**8)
    )
    want = _detect_jsonl(artifacts["onnx"], video, tmp_path / "d.jsonl")
    assert [w["frame"] for w in want] == list(range(24))
    out = tmp_path / "r.parquet"
    args = ["batch", "--model", str(artifacts["onnx"]), "--source", str(video), "--out", str(out)]
    import time

    import pandas as pd

    t0 = time.perf_counter()
    assert main([*args, "--frames-per-task", "10", "--actors", "1", "--conf", "0.3", "--json"]) == 0
    assert time.perf_counter() - t0 < 60  # 10^8 claimed frames: 333,334 tasks of 300 took 3 minutes for 24 frames

    rows = pd.read_parquet(out).sort_values("frame")
    assert rows["frame"].tolist() == list(range(24)) and (rows["error"] == "").all()
    for (_, r), w in zip(rows.iterrows(), want):
        assert list(r["class_ids"]) == w["class_ids"]
        np.testing.assert_allclose(np.asarray(list(r["boxes"]), np.float32).reshape(-1, 4), w["boxes"], atol=0.02)
    ranges = [(p["start"], p["stop"]) for p in plan_video(str(video), 10, 10**9)]
    assert ranges == ([(0, 10), (10, 20), (20, 24)] if kind == "claims-1e8" else [(0, 24)])


def test_batch_replaces_the_dataset_whole_and_checks_out_before_detecting(local_ray, folder, artifacts, tmp_path):
    """Re-running into the same --out mixed the previous run's rows into the dataset; an unwritable --out was found
    only after all inference. Now the dataset is replaced whole, and --out is refused before Ray runs anything."""
    import time

    import pandas as pd

    names = sorted(p.name for p in folder.iterdir())
    first, small = tmp_path / "first", tmp_path / "small"
    for sub, n in ((first, 5), (small, 3)):
        sub.mkdir()
        for name in names[:n]:
            (sub / name).write_bytes((folder / name).read_bytes())
    out = tmp_path / "r.parquet"
    base = ["batch", "--model", str(artifacts["onnx"]), "--out", str(out), "--actors", "1"]
    assert main([*base, "--source", str(first)]) == 0
    assert len(pd.read_parquet(out)) == 5
    assert main([*base, "--source", str(small)]) == 0
    assert len(pd.read_parquet(out)) == 3  # the new run's rows only
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".r.parquet")]  # no temporary left
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    t0 = time.perf_counter()
    bad = ["batch", "--model", str(artifacts["onnx"]), "--source", str(folder), "--out", str(blocker / "r.parquet")]
    assert main(bad) == 2
    assert time.perf_counter() - t0 < 5.0  # 200 images were not detected first
    (tmp_path / "other").mkdir()
    (tmp_path / "other.parquet").mkdir()
    (tmp_path / "other.parquet" / "notes.txt").write_text("mine")
    assert main([*base[:-4], "--out", str(tmp_path / "other.parquet"), "--source", str(small)]) == 2
    assert (tmp_path / "other.parquet" / "notes.txt").read_text() == "mine"  # never replaced


def test_a_bomb_in_a_batch_is_an_error_in_its_row_refused_fast_and_small(local_ray, tmp_path, artifacts, images):
    """A decompression bomb aborted a whole batch job (cv2.error) or cost gigabytes; it is now refused from its
    header, in its row, in under 100 ms and 50 MB."""
    import pandas as pd

    from edgedet.integrations.ray_data import DetectActor
    from tests.hostile import jpeg_bomb, png_header_only, refusal_cost

    actor = DetectActor(str(artifacts["onnx"]))
    with refusal_cost() as cost:
        row = actor(pd.DataFrame({"path": ["bomb.jpg"], "bytes": [jpeg_bomb()]})).iloc[0]
    assert "pixel budget" in row["error"] and row["boxes"] == []
    assert cost["seconds"] < 0.1 and cost["heap_mb"] < 50 and cost["rss_mb"] < 50, cost
    cv2.imwrite(str(tmp_path / "good.jpg"), images[0])
    (tmp_path / "bomb.jpg").write_bytes(jpeg_bomb())
    (tmp_path / "over_opencv.png").write_bytes(png_header_only(40000, 40000))
    rows = detect_dataset(image_dataset([str(tmp_path)]), artifacts["onnx"], actors=1).to_pandas()
    errors = dict(zip(rows["path"].map(lambda p: Path(p).name), rows["error"]))
    assert errors["good.jpg"] == "" and "pixel budget" in errors["bomb.jpg"]
    assert "cannot read image" in errors["over_opencv.png"]
