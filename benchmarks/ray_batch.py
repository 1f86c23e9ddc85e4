"""Ray Data batch detection vs the plain local Detector loop, same images, same run.

    python -m edgedet.benchmarks.ray_batch --images 200 --out benchmarks/results/ray_batch

The reference model (D0, 256 px) on generated shapes images; images/s of a plain loop (one Detector, all cores),
then Ray Data with 1 and 2 actors (cores split between actors). On a 2-core machine this measures Ray's overhead,
not scaling; the projection for more cores is a stated model, printed with the result."""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--out")
    a = ap.parse_args(argv)
    import ray

    from edgedet.api import build
    from edgedet.data.synthetic import generate
    from edgedet.integrations.ray_data import detect_dataset, image_dataset
    from edgedet.runtimes import Detector

    from .environment import environment
    ref = Path(__file__).resolve().parents[1] / "tests" / "assets" / "reference_d0_shapes_fp16.pth"
    tmp = Path(tempfile.mkdtemp(prefix="edgedet-raybatch-"))
    generate(tmp, "val", a.images, size=256, seed=11)
    folder = tmp / "images"
    artifact = str(build("d0", "onnxruntime", weights=str(ref), imgsz=256).path)
    files = sorted(folder.iterdir())
    det = Detector.load(artifact)
    det(str(files[0]))
    t0 = time.perf_counter()
    for f in files:
        det(str(f))
    plain = len(files) / (time.perf_counter() - t0)
    det.close()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    rows = [{"mode": "plain loop", "actors": 0, "images_per_s": round(plain, 2), "vs_plain": 1.0}]
    for actors in (1, 2):
        detect_dataset(image_dataset([str(folder)]).limit(8), artifact, actors=actors).materialize()  # warm
        t0 = time.perf_counter()
        n = detect_dataset(image_dataset([str(folder)]), artifact, actors=actors, batch_size=8).materialize().count()
        rate = n / (time.perf_counter() - t0)
        rows.append({"mode": f"ray data, {actors} actor(s)", "actors": actors, "images_per_s": round(rate, 2),
                     "vs_plain": round(rate / plain, 3)})
    ray.shutdown()
    for r in rows:
        print(f"{r['mode']:<24} {r['images_per_s']:8.2f} images/s  ({r['vs_plain']:.2f}x plain)")
    model = ("with one actor per core and threads=1 each, throughput scales with cores as long as decoding and "
             "inference dominate: expected images/s ~= cores x (plain-loop images/s of one thread) x the "
             "2-actor/plain ratio measured here; this is a model, not a measurement")
    print(model)
    if a.out:
        from edgedet.fileio import write_json_atomic
        write_json_atomic(Path(a.out) / "ray_batch.json", {
            "command": "python -m edgedet.benchmarks.ray_batch " + " ".join(sys.argv[1:] if argv is None else argv),
            "rows": rows, "projection": model, "environment": environment(),
            "date": time.strftime("%Y-%m-%d %H:%M:%S")})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
