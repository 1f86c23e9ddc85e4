"""Nothing lost, nothing silently wrong on the file system (issue 16): a full disk, a read-only cache, unusable
stream outputs and leftovers of killed runs each give one clear line and exit 2, and nothing under a final name
that looks complete."""

import errno
import subprocess
import sys

import cv2
import numpy as np
import pytest

from edgedet.benchmarks.images import make_video
from edgedet.cli import main


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("clip") / "clip.mp4", 40, size=(320, 240))


def _one_line(capsys) -> str:
    err = [l for l in capsys.readouterr().err.splitlines() if l.strip() and "%" not in l]
    assert err and "Traceback" not in "\n".join(err)
    return err[-1]


def test_full_disk_video_and_jsonl_exit_2_and_leave_nothing(small_fs, artifacts, clip, capsys):
    """#1: on a nearly full real filesystem the video cannot be completed: exit 2, no out.mp4, no half JSONL."""
    folder, fill = small_fs
    fill(64 * 1024)
    rc = main(
        [
            "detect",
            "--model",
            str(artifacts["onnx"]),
            "--source",
            str(clip),
            "--save",
            str(folder / "out.mp4"),
            "--jsonl",
            str(folder / "out.jsonl"),
        ]
    )
    assert rc == 2, capsys.readouterr()
    line = _one_line(capsys)
    assert "edgedet detect: error:" in line and ("No space left" in line or "incomplete" in line)
    assert sorted(p.name for p in folder.iterdir()) == ["filler.bin"]


def test_enospc_double_on_jsonl(tmp_path, artifacts, clip, capsys, monkeypatch):
    """#1 without a mountable filesystem: a writer that raises ENOSPC after a few lines."""
    from edgedet.runtimes import sinks

    real = sinks.JsonLines.write
    calls = {"n": 0}

    def write(self, record):
        calls["n"] += 1
        if calls["n"] > 5:
            raise OSError(errno.ENOSPC, "No space left on device", str(self.path))
        real(self, record)

    monkeypatch.setattr(sinks.JsonLines, "write", write)
    rc = main(
        ["detect", "--model", str(artifacts["onnx"]), "--source", str(clip), "--jsonl", str(tmp_path / "o.jsonl")]
    )
    assert rc == 2 and "No space left on device" in _one_line(capsys)
    assert not any(p.name.startswith(("o.jsonl", ".o.jsonl")) for p in tmp_path.iterdir())


def test_full_disk_export_and_annotated_images(small_fs, test_weights, artifacts, tmp_path, capsys):
    """#8: disk full during ONNX export and during --save of images: one line, exit 2, no partial files."""
    folder, fill = small_fs
    fill(32 * 1024)
    rc = main(["export", "--model", "test", "--weights", str(test_weights), "--out", str(folder / "m")])
    assert rc == 2 and "No space left on device" in _one_line(capsys)
    assert not list((folder / "m").glob("*.onnx*")) if (folder / "m").exists() else True
    img = tmp_path / "a.png"
    cv2.imwrite(str(img), np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8))
    (folder / "filler.bin").unlink()
    fill(4 * 1024)
    rc = main(["detect", "--model", str(artifacts["onnx"]), "--source", str(img), "--save", str(folder / "vis")])
    assert rc == 2 and "No space left on device" in _one_line(capsys)
    assert not list((folder / "vis").iterdir())


def test_read_only_cache_is_one_line(tmp_path, test_weights, monkeypatch, capsys):
    """#8: a read-only EDGEDET_CACHE (a read-only mount: root ignores file modes)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(ro)]).returncode != 0:
        pytest.skip("cannot mount a read-only tmpfs here")
    try:
        monkeypatch.setenv("EDGEDET_CACHE", str(ro))
        img = tmp_path / "a.png"
        cv2.imwrite(str(img), np.zeros((64, 64, 3), np.uint8))
        rc = main(["detect", "--model", "test", "--weights", str(test_weights), "--source", str(img)])
        assert rc == 2 and "Read-only file system" in _one_line(capsys)
    finally:
        subprocess.run(["umount", "-l", str(ro)])


@pytest.mark.parametrize("flag", ["--save", "--jsonl"])
def test_unusable_stream_outputs_fail_before_reading(tmp_path, artifacts, clip, flag):
    """#9: a folder where a file is needed: one line, exit 2 (not SIGABRT), checked before threads start."""
    target = tmp_path / "a_folder"
    target.mkdir()
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgedet",
            "detect",
            "--model",
            str(artifacts["onnx"]),
            "--source",
            str(clip),
            flag,
            str(target),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2, r.stderr[-1500:]
    assert "is a folder; give a file name" in r.stderr and "Traceback" not in r.stderr


def test_leftovers_of_killed_runs_are_cleaned(tmp_path, artifacts, clip):
    """#12: stale partial files of a dead process are removed on the next run in that folder; outputs of a
    run that is killed with -9 never appear under their final names."""
    dead = 2**22 + 12345
    stale = [tmp_path / f".o.mp4.partial-{dead}-1.mp4", tmp_path / f".o.jsonl.partial-{dead}-1.jsonl"]
    for p in stale:
        p.write_bytes(b"junk")
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edgedet",
            "detect",
            "--model",
            str(artifacts["onnx"]),
            "--source",
            str(clip),
            "--save",
            str(tmp_path / "o.mp4"),
            "--jsonl",
            str(tmp_path / "o.jsonl"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert p.wait(timeout=120) == 0
    assert not any(s.exists() for s in stale)
    assert (tmp_path / "o.mp4").is_file() and (tmp_path / "o.jsonl").is_file()
