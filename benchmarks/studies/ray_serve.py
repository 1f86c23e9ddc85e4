"""Ray Serve: requests/s and latency at 1 and 8 concurrent clients, with @serve.batch on and off, same run.

    python -m benchmarks.studies.ray_serve --out benchmarks/results/ray_serve

The reference model (D0, 256 px, dynamic batch up to 8, ONNX Runtime) on generated JPEG images, one replica on a
local Ray. Each client posts images back to back over HTTP (keep-alive off, as urllib does); latency is the
client's, from sending the body to the parsed JSON. A plain local Detector loop on the same decoded images is
measured first, as the floor. Batching off: each request runs its own Detector call; on: up to 8 requests that
arrive within 10 ms share one call (one batched inference)."""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np


def _post(url: str, body: bytes) -> float:
    t0 = time.perf_counter()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "image/jpeg"})
    with urllib.request.urlopen(req, timeout=120) as r:
        r.read()
    return time.perf_counter() - t0


def _load(url: str, bodies: list[bytes], clients: int, requests: int) -> dict:
    """`clients` threads post `requests` images in all; requests/s over the wall time, client latencies."""
    work = [bodies[i % len(bodies)] for i in range(requests)]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        lat = np.asarray(list(pool.map(lambda b: _post(url, b), work))) * 1000
    wall = time.perf_counter() - t0
    return {
        "requests": requests,
        "requests_per_s": round(requests / wall, 2),
        "p50_ms": round(float(np.percentile(lat, 50)), 1),
        "p99_ms": round(float(np.percentile(lat, 99)), 1),
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=96, help="requests per measured point")
    ap.add_argument("--out")
    a = ap.parse_args(argv)
    import ray
    from ray import serve

    from edgedet.api import build
    from edgedet.benchmarks.environment import environment
    from edgedet.data.synthetic import generate
    from edgedet.integrations.ray_serve import detector_app
    from edgedet.preprocess import read_image
    from edgedet.runtimes import Detector

    ref = Path(__file__).resolve().parents[1] / "tests" / "assets" / "reference_d0_shapes_fp16.pth"
    tmp = Path(tempfile.mkdtemp(prefix="edgedet-rayserve-"))
    generate(tmp, "val", 32, size=256, seed=5)
    files = sorted((tmp / "images").iterdir())
    bodies = [f.read_bytes() for f in files]
    artifact = str(build("d0", "onnxruntime", weights=str(ref), imgsz=256, batch="dynamic", max_batch=8).path)

    det = Detector.load(artifact)
    frames = [read_image(f) for f in files]
    det(frames[0])
    lat = []
    for i in range(a.requests):
        t0 = time.perf_counter()
        det(frames[i % len(frames)])
        lat.append((time.perf_counter() - t0) * 1000)
    det.close()
    plain = {
        "mode": "plain Detector loop (decoded images, no HTTP)",
        "clients": 1,
        "requests_per_s": round(1000 / float(np.mean(lat)), 2),
        "p50_ms": round(float(np.median(lat)), 1),
        "p99_ms": round(float(np.percentile(lat, 99)), 1),
    }
    rows = [plain]
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    port = _free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    url = f"http://127.0.0.1:{port}/detect"
    for label, max_batch in (("@serve.batch off", 1), ("@serve.batch on (max 8, 10 ms)", 8)):
        serve.run(detector_app(artifact, max_batch=max_batch, batch_wait_s=0.01), name="bench", route_prefix="/")
        _load(url, bodies, 8, 16)  # warm
        for clients in (1, 8):
            rows.append({"mode": label, "clients": clients, **_load(url, bodies, clients, a.requests)})
        serve.delete("bench")
    serve.shutdown()
    ray.shutdown()
    for r in rows:
        print(
            f"{r['mode']:<46} clients {r['clients']}  {r['requests_per_s']:7.2f} req/s  "
            f"p50 {r['p50_ms']:7.1f} ms  p99 {r['p99_ms']:7.1f} ms"
        )
    if a.out:
        from edgedet.fileio import write_json_atomic

        write_json_atomic(
            Path(a.out) / "ray_serve.json",
            {
                "command": "python -m benchmarks.studies.ray_serve " + " ".join(sys.argv[1:] if argv is None else argv),
                "artifact": "reference d0 (tests/assets/reference_d0_shapes_fp16.pth), 256 px, ONNX Runtime, "
                "dynamic batch <= 8, one replica",
                "rows": rows,
                "environment": environment(),
                "date": time.strftime("%Y-%m-%d %H:%M:%S"),
            },
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
