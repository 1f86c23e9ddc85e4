"""What `edgedet tune` measured, kept in the artifact cache so a search resumes where it stopped, and how it measures.

One JSON file per candidate and machine under `<cache>/tune/points/`: the artifact, what the backend executed,
latency (or throughput) and AP on each image subset it was evaluated on. Each measurement is written as soon as it
is taken (atomically), so Ctrl-C or a crash loses at most the one in progress and the same command continues.
"""

from __future__ import annotations

import hashlib
import json
import re
import statistics
import threading
import time
from importlib import metadata
from pathlib import Path

import numpy as np

from edgedet.cpu import cpu_model, vector_flags
from edgedet.fileio import write_json_atomic
from edgedet.weights import cache_dir

from .stats import summarize


def libraries() -> list[str]:
    """The distributions whose version a measured point depends on: edgedet, NNCF (INT8), each BACKENDS row's
    library and what its pip extra installs (onnxruntime-gpu, tensorrt-cu12, ...), read from edgedet's own
    metadata (milliseconds; scanning every installed distribution takes a second and a resumed run should not)."""
    from edgedet.registry import BACKENDS

    extras = {spec.extra for spec in BACKENDS.values()} | {"onnxruntime-gpu", "jetson"}
    names = {"edgedet", "nncf"} | {spec.library for spec in BACKENDS.values()}
    try:
        requires = metadata.requires("edgedet") or []
    except metadata.PackageNotFoundError:
        requires = []
    for line in requires:
        name, _, marker = line.partition(";")
        extra = re.search(r"""extra\s*==\s*["']([^"']+)["']""", marker)
        if extra and extra.group(1) in extras:
            names.add(re.split(r"[\s<>=!~\[;(]", name.strip(), maxsplit=1)[0])
    return sorted(names)


def _gpu() -> dict | None:
    try:
        from edgedet.cuda import device_properties

        return device_properties(0)
    except Exception:  # noqa: BLE001 - no GPU, or one torch sees and cuda-python cannot name: the kind still counts
        from .tune_space import cuda_present

        return {"gpu": "cuda"} if cuda_present() else None


def machine() -> dict:
    """What a latency depends on besides the candidate: the CPU, its SIMD flags, the GPU, the libraries."""
    versions = {}
    for lib in libraries():
        try:
            versions[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            pass
    return {"cpu": cpu_model(), "flags": vector_flags(), "gpu": _gpu(), "versions": versions}


class Points:
    def __init__(self, root: Path | None = None):
        self.machine = machine()
        ident = hashlib.sha256(json.dumps(self.machine, sort_keys=True).encode()).hexdigest()[:12]
        self.root = (root or cache_dir() / "tune") / "points" / ident
        self.root.mkdir(parents=True, exist_ok=True)
        self.loaded = 0  # points found from an earlier run

    def _path(self, cand) -> Path:
        return self.root / f"{cand.key()}.json"

    def get(self, cand) -> dict:
        p = self._path(cand)
        try:
            data = json.loads(p.read_text()) if p.is_file() else {}
        except (OSError, ValueError):
            return {}  # a damaged point is measured again
        return data if isinstance(data, dict) else {}

    def put(self, cand, **fields) -> dict:
        from dataclasses import asdict

        data = {**self.get(cand), "candidate": asdict(cand), **fields}
        write_json_atomic(self._path(cand), data)
        return data

    def put_ap(self, cand, subset_key: str, stats: dict) -> dict:
        ap = {**self.get(cand).get("ap", {}), subset_key: stats}
        return self.put(cand, ap=ap)


def files_key(path: str | Path) -> str:
    """Calibration frames as given (a folder, a video, a COCO json): names, sizes and modification times, cheap
    enough to check on every run; an INT8 point made from other frames is another point."""
    p = Path(path)
    files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    listing = [(str(f.relative_to(p) if p.is_dir() else f.name), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    return hashlib.sha256(json.dumps(listing).encode()).hexdigest()[:16]


def data_key(annotation: str, images: list) -> str:
    """The evaluation data a measured AP belongs to: the annotation file's bytes and the image ids used."""
    h = hashlib.sha256(Path(annotation).read_bytes())
    h.update(json.dumps([im.id for im in images]).encode())
    return f"{h.hexdigest()[:16]}:{len(images)}"


def latency(dets: dict, frames: list, iters: int, rounds: int = 3, warmup: int = 2) -> dict:
    """End-to-end ms per Detector call (batch 1), in interleaved rounds so a drift of the machine hits every
    candidate alike: {key: p50/p90/... plus each round's median (the run-to-run spread)}."""
    times = {k: [] for k in dets}
    per_round = {k: [] for k in dets}
    calls = max(1, iters // rounds)
    for det in dets.values():
        for f in frames[:warmup]:
            det(f)
    for _ in range(rounds):
        for k, det in dets.items():
            det(frames[0])  # unmeasured: the previous candidate's threads wind down meanwhile
            round_times = []
            for i in range(calls):
                t0 = time.perf_counter()
                det(frames[i % len(frames)])
                round_times.append((time.perf_counter() - t0) * 1e3)
            times[k] += round_times
            per_round[k].append(round(statistics.median(round_times), 3))
    return {k: {**summarize(times[k]), "round_p50": per_round[k]} for k in dets}


def throughput(det, frames: list, streams: int, batch: int, calls: int) -> dict:
    """Frames per second with `streams` callers at once (each a thread calling the Detector, as streams do), or one
    caller with batches of `batch` frames: end to end, images in, detections out."""
    per_thread = max(2, calls // max(1, streams if batch == 1 else 1))
    threads = streams if batch == 1 else 1
    group = [frames[i % len(frames)] for i in range(batch)]
    det(group if batch > 1 else frames[0])  # warm-up
    done = [0]
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker():
        try:
            for i in range(per_thread):
                det(group if batch > 1 else frames[i % len(frames)])
                with lock:
                    done[0] += batch
        except BaseException as e:  # noqa: BLE001 - re-raised below, in the caller's thread
            errors.append(e)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    t0 = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    if errors:
        raise errors[0]
    elapsed = time.perf_counter() - t0
    return {"fps": round(done[0] / elapsed, 2), "streams": threads, "batch": batch, "frames": done[0]}


def evaluate(det, dataset, images: list) -> dict:
    from edgedet.evaluation import evaluate_images

    t0 = time.perf_counter()
    stats = evaluate_images(det, dataset, images)
    return {
        "AP": stats["AP"],
        "AP50": stats["AP50"],
        "images": len(images),
        "seconds": round(time.perf_counter() - t0, 2),
    }


def frames_of(dataset, n: int = 8) -> list[np.ndarray]:
    from edgedet.preprocess import read_image

    return [read_image(im.path) for im in dataset.images[:n]]
