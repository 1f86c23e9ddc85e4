"""Repeat the failure cases of issues 16 and 27 many times and count failures.

    python -m benchmarks.studies.reliability.run --trials 20 --out benchmarks/results/reliability
    python -m benchmarks.studies.reliability.run --cases server --trials 20 --out benchmarks/results/reliability

`--cases` picks groups (files, server) or single cases; a subset writes reliability-<groups>.json beside the full
table. The server cases (hostile HTTP clients against `edgedet serve`) are described in server.py.

Cases (each `--trials` times, on the tiny `test` model so a trial takes seconds):
- kill9-export:   `edgedet export` over a valid artifact, killed with SIGKILL at a random moment; the artifact
                  in place must still load (the old one or the new one, never a broken pair).
- kill9-detect:   `edgedet detect VIDEO --save out.mp4 --jsonl out.jsonl` killed with SIGKILL mid-run; no
                  out.mp4/out.jsonl may exist (they are published together at the end), and the next run in
                  that folder must remove the leftovers and publish a video with as many frames as JSON lines.
- race:           two processes build the same cold cache entry at once; both must get a loadable artifact.
- full-disk:      `detect` with --save/--jsonl on a tmpfs filled to a random level; either exit 2 with nothing
                  published, or exit 0 with a video whose decodable frames equal the JSON lines.
- shared-detector: 4 threads call one Detector (ONNX Runtime and OpenVINO); every result must equal the
                  sequential one. Also reports 1-thread vs 2-thread throughput on the shared instance.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

PY = sys.executable


def _cli(*args, **kw):
    return subprocess.Popen(
        [PY, "-m", "edgedet", *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw
    )


def _loads(path: Path) -> bool:
    from edgedet.runtimes import Detector

    try:
        Detector.load(path).close()
        return True
    except Exception:
        return False


def kill9_export(work: Path, weights: Path, rng) -> str | None:
    out = work / "export"
    if not (out / "test.onnx").is_file():  # a valid artifact in place before the first trial
        subprocess.run(
            [PY, "-m", "edgedet", "export", "--model", "test", "--weights", str(weights), "--out", str(out)],
            check=True,
            capture_output=True,
        )
    p = _cli("export", "--model", "test", "--weights", weights, "--out", out, "--postprocess", "graph")
    time.sleep(rng.uniform(0.5, 6.0))
    p.send_signal(signal.SIGKILL)
    p.communicate()
    return None if _loads(out / "test.onnx") else "artifact in place does not load after kill -9"


def kill9_detect(work: Path, model: Path, video: Path, rng) -> str | None:
    folder = work / "detect"
    folder.mkdir(exist_ok=True)
    before = {n: (folder / n).read_bytes() for n in ("out.mp4", "out.jsonl") if (folder / n).exists()}
    p = _cli(
        "detect", "--model", model, "--source", video, "--save", folder / "out.mp4", "--jsonl", folder / "out.jsonl"
    )
    time.sleep(rng.uniform(1.0, 4.0))
    p.send_signal(signal.SIGKILL)
    p.communicate()
    if p.returncode != -signal.SIGKILL:
        return None  # finished before the kill: nothing to check here
    after = {n: (folder / n).read_bytes() for n in ("out.mp4", "out.jsonl") if (folder / n).exists()}
    if after != before:
        return "a final output changed after kill -9 (half-written or unpaired)"
    r = subprocess.run(
        [
            PY,
            "-m",
            "edgedet",
            "detect",
            "--model",
            str(model),
            "--source",
            str(video),
            "--save",
            str(folder / "out.mp4"),
            "--jsonl",
            str(folder / "out.jsonl"),
        ],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        return f"re-run failed: {r.stderr.strip().splitlines()[-1:]}"
    if [f.name for f in folder.iterdir() if f.name.startswith(".")]:
        return "leftovers not cleaned on the next run"
    return _outputs_agree(folder)


def _outputs_agree(folder: Path) -> str | None:
    from edgedet.runtimes.sinks import count_frames

    lines = len((folder / "out.jsonl").read_text().splitlines())
    frames = count_frames(folder / "out.mp4")
    return None if frames == lines > 0 else f"video has {frames} frames for {lines} JSON lines"


RACE = (
    "import sys, pathlib; from edgedet.converters.pipeline import BuildRequest, get_artifact; "
    "from edgedet.runtimes import Detector; "
    "r = get_artifact(BuildRequest('test', 'onnx', weights=sys.argv[2]), root=pathlib.Path(sys.argv[1])); "
    "Detector.load(r.path).close()"
)


def race(work: Path, weights: Path, rng) -> str | None:
    root = work / f"cache{rng.integers(1 << 30)}"
    procs = [
        subprocess.Popen(
            [PY, "-c", RACE, str(root), str(weights)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    errs = [p.communicate()[1] for p in procs]
    bad = [e.strip().splitlines()[-1] for p, e in zip(procs, errs) if p.returncode != 0]
    return f"a racing build failed: {bad[0]}" if bad else None


def full_disk(work: Path, model: Path, video: Path, rng) -> str | None:
    mnt = work / "small"
    mnt.mkdir(exist_ok=True)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)]).returncode != 0:
        return "SKIP"
    try:
        st = os.statvfs(mnt)
        left = int(rng.uniform(8e3, 1.2e6))
        (mnt / "filler").write_bytes(b"\0" * max(0, st.f_bavail * st.f_frsize - left))
        r = subprocess.run(
            [
                PY,
                "-m",
                "edgedet",
                "detect",
                "--model",
                str(model),
                "--source",
                str(video),
                "--save",
                str(mnt / "out.mp4"),
                "--jsonl",
                str(mnt / "out.jsonl"),
            ],
            capture_output=True,
            text=True,
        )
        published = [f.name for f in mnt.iterdir() if f.name != "filler"]
        if r.returncode == 2:
            err = r.stderr.strip().splitlines()
            if published:
                return f"exit 2 but left {published}"
            return None if err and "Traceback" not in r.stderr else "exit 2 without one clear line"
        if r.returncode == 0:
            return _outputs_agree(mnt)
        return f"exit {r.returncode}: {r.stderr.strip().splitlines()[-1:]}"
    finally:
        subprocess.run(["umount", "-l", str(mnt)])


def shared_detector(model_paths: dict, images, rng) -> str | None:
    from edgedet.registry import get_backend
    from edgedet.runtimes import Detector

    for key, path in model_paths.items():
        spec = get_backend(key)
        det = Detector.load(path, backend=spec, **spec.exact_options)
        frames = [np.roll(images[i % len(images)], int(rng.integers(0, 200)), axis=1) for i in range(8)]
        want = [det(f, score_threshold=0.3) for f in frames]
        with ThreadPoolExecutor(4) as pool:
            got = list(pool.map(lambda f: det(f, score_threshold=0.3), frames * 2))
        det.close()
        for g, w in zip(got, want * 2):
            if not (np.array_equal(g.class_ids, w.class_ids) and np.allclose(g.xyxy, w.xyxy, atol=1e-4)):
                return f"{key}: a thread got another image's detections"
    return None


def throughput(model_paths: dict, images, seconds: float = 4.0) -> list[dict]:
    """Images/s of one shared Detector called from 1 and from 2 threads, and the per-call cost of the
    thread-local buffer lookup against the whole call."""
    import timeit

    from edgedet.runtimes import Detector

    rows = []
    for key, path in model_paths.items():
        det = Detector.load(path)
        det(images[0])
        row = {"backend": key}
        for threads in (1, 2):
            stop = time.perf_counter() + seconds
            counts = [0] * threads

            def loop(i):
                while time.perf_counter() < stop:
                    det(images[counts[i] % len(images)])
                    counts[i] += 1

            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(loop, range(threads)))
            row[f"images_per_s_{threads}_thread"] = round(sum(counts) / seconds, 1)
        lookup_ns = timeit.timeit(lambda: det._buffer(1), number=100_000) / 100_000 * 1e9
        call_ms = 1000.0 / row["images_per_s_1_thread"]
        row.update(
            buffer_lookup_ns=round(lookup_ns, 1), buffer_lookup_share_of_call=f"{lookup_ns / (call_ms * 1e6):.2e}"
        )
        row["ratio_2_over_1"] = round(row["images_per_s_2_thread"] / row["images_per_s_1_thread"], 3)
        det.close()
        rows.append(row)
    return rows


def _prepare(work: Path):
    import torch

    from benchmarks.studies.streaming import make_video
    from edgedet.converters.pipeline import BuildRequest, export_artifact
    from edgedet.model import create_model

    torch.manual_seed(0)
    weights = work / "test.pth"
    torch.save(create_model("test").state_dict(), weights)
    models = {
        "onnxruntime": export_artifact(BuildRequest("test", "onnx", weights=str(weights)), work / "m"),
        "openvino": export_artifact(BuildRequest("test", "openvino", weights=str(weights)), work / "m"),
    }
    video = make_video(work / "clip.mp4", 150, size=(320, 240))
    from edgedet.benchmarks.images import sample_images

    return weights, models, video, sample_images(None)


def main(argv=None) -> int:
    from . import server as server_cases

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--out")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cases", default="files,server", help="groups (files, server) or case names, comma-separated")
    a = ap.parse_args(argv)
    rng = np.random.default_rng(a.seed)
    work = Path(tempfile.mkdtemp(prefix="edgedet-reliability-"))
    os.environ["EDGEDET_CACHE"] = str(work / "cache")
    weights, models, video, images = _prepare(work)
    files = {
        "kill9-export": lambda: kill9_export(work, weights, rng),
        "kill9-detect": lambda: kill9_detect(work, models["onnxruntime"], video, rng),
        "race": lambda: race(work, weights, rng),
        "full-disk": lambda: full_disk(work, models["onnxruntime"], video, rng),
        "shared-detector": lambda: shared_detector(models, images, rng),
    }
    groups = {"files": list(files), "server": list(server_cases.CASES)}
    wanted = [c for name in a.cases.split(",") for c in groups.get(name.strip(), [name.strip()])]
    unknown = [c for c in wanted if c not in files and c not in server_cases.CASES]
    if unknown:
        ap.error(
            f"unknown case {unknown[0]}; groups: {', '.join(groups)}; cases: {', '.join(sum(groups.values(), []))}"
        )
    cases = {c: files[c] for c in wanted if c in files}
    server, measured = None, {}
    if any(c in server_cases.CASES for c in wanted):
        from edgedet.runtimes import Detector

        server = server_cases.Server(models["onnxruntime"], work)
        det = Detector.load(models["onnxruntime"], score_threshold=0.25)
        for c in wanted:
            if c in server_cases.CASES:
                measured[c] = {}
                kw = {"det": det} if c == "concurrent" else {}
                cases[c] = lambda c=c, kw=kw: server_cases.CASES[c](server, images, rng, measured[c], **kw)
    table = []
    try:
        for name, case in cases.items():
            failures, skipped, t0 = [], 0, time.perf_counter()
            for _ in range(a.trials):
                result = case()
                skipped += result == "SKIP"
                if result and result != "SKIP":
                    failures.append(result)
            table.append(
                {
                    "case": name,
                    "trials": a.trials - skipped,
                    "failures": len(failures),
                    "examples": failures[:3],
                    "seconds": round(time.perf_counter() - t0, 1),
                    **({"measured": server_cases.summary(measured[name])} if name in measured else {}),
                }
            )
            print(
                f"{name:<16} trials {a.trials - skipped:>3}  failures {len(failures):>3}  "
                f"({table[-1]['seconds']}s){'  e.g. ' + failures[0] if failures else ''}",
                flush=True,
            )
            for key, v in table[-1].get("measured", {}).items():
                print(f"    {key:<22} median {v['median']:>9}  max {v['max']:>9}", flush=True)
    finally:
        if server is not None:
            server.close()
    rows = throughput(models, images) if "shared-detector" in cases else []
    for r in rows:
        print(
            f"shared Detector {r['backend']:<12} 1 thread {r['images_per_s_1_thread']:7.1f} img/s, 2 threads "
            f"{r['images_per_s_2_thread']:7.1f} img/s ({r['ratio_2_over_1']}x); buffer lookup "
            f"{r['buffer_lookup_ns']} ns = {r['buffer_lookup_share_of_call']} of a call"
        )
    if a.out:
        from edgedet.benchmarks.environment import environment
        from edgedet.fileio import write_json_atomic

        everything = set(wanted) == set(sum(groups.values(), []))
        name = "reliability.json" if everything else f"reliability-{a.cases.replace(',', '-')}.json"
        write_json_atomic(
            Path(a.out) / name,
            {
                "command": "python -m benchmarks.studies.reliability.run "
                + " ".join(sys.argv[1:] if argv is None else argv),
                "cases": table,
                "shared_detector_throughput": rows,
                "environment": environment(),
                "date": time.strftime("%Y-%m-%d %H:%M:%S"),
            },
        )
    shutil.rmtree(work, ignore_errors=True)
    return 1 if any(r["failures"] for r in table) else 0


if __name__ == "__main__":
    raise SystemExit(main())
