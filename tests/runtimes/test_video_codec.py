"""Playable video: `detect --save out.mp4` writes H.264 through PyAV when it is installed (the 'video' extra) and
OpenCV's mp4v otherwise, and says which. The written file is probed with PyAV's demuxer."""

import json

import cv2
import numpy as np
import pytest

from edgedet.cli import main
from edgedet.runtimes import sinks


def _video(path, n=12, size=(98, 74)):
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, size)
    rng = np.random.default_rng(0)
    for _ in range(n):
        w.write(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    w.release()
    return path


def _probe(path):
    av = pytest.importorskip("av")
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        frames = sum(1 for _ in c.decode(stream))
        return stream.codec_context.name, frames, (stream.codec_context.width, stream.codec_context.height)


def _detect(artifacts, tmp_path, capsys):
    src = _video(tmp_path / "in.mp4")
    out = tmp_path / "out.mp4"
    assert main(["detect", "--model", str(artifacts["onnx"]), "--source", str(src), "--save", str(out), "--json"]) == 0
    return out, json.loads(capsys.readouterr().out)


def test_detect_save_writes_h264_with_pyav(artifacts, tmp_path, capsys):
    pytest.importorskip("av")
    out, summary = _detect(artifacts, tmp_path, capsys)
    codec, frames, size = _probe(out)
    assert codec == "h264" and frames == 12 and size == (98, 74)
    assert summary["video_codecs"] == {str(out): "H.264 (PyAV)"}


def test_odd_frame_sizes_are_padded_to_even(tmp_path):
    pytest.importorskip("av")
    sink = sinks.VideoSink(tmp_path / "odd.mp4", fps=12.5)
    for i in range(3):
        sink.write(np.full((75, 99, 3), 40 * i, np.uint8))  # yuv420p needs even sizes
    sink.close()
    assert _probe(tmp_path / "odd.mp4") == ("h264", 3, (100, 76))


def test_without_pyav_it_is_mp4v_and_says_so(artifacts, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sinks, "_pyav_h264", lambda: None)  # as on an install without the 'video' extra
    out, summary = _detect(artifacts, tmp_path, capsys)
    assert "mp4v (OpenCV; pip install 'edgedet[video]' for H.264)" == summary["video_codecs"][str(out)]
    if pytest.importorskip("av"):
        codec, frames, _ = _probe(out)
        assert codec == "mpeg4" and frames == 12
