"""The trained reference model: recipe, fp16 packing, and its evaluation across backends.

Recipe (CPU, 2 cores: about two hours; the run that made the committed weights is recorded in
benchmarks/results/reference_model.json):
    python -m edgedet.data.synthetic data/shapes --train 2000 --val 200 --size 256 --seed 0
    python -m edgedet.data.synthetic data/shapes_test --train 0 --val 200 --size 256 --seed 7   # held out
    edgedet train --model d0 --imgsz 256 --data data/shapes/train.json --val-data data/shapes/val.json \
        --epochs 26 --batch 8 --lr 2e-3 --out runs/d0_shapes
    python -m benchmarks.studies.reference_model pack runs/d0_shapes/best.pth tests/assets/reference_d0_shapes_fp16.pth
    python -m benchmarks.studies.reference_model eval tests/assets/reference_d0_shapes_fp16.pth data/shapes/val.json \
        --test data/shapes_test/val.json --out benchmarks/results/reference_model.json

`best.pth` is the epoch with the best validation mAP, so the validation split takes part in model selection;
the test split (another seed, never seen in training or selection) gives the unbiased figure.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REFERENCE = Path(__file__).resolve().parents[1] / "tests" / "assets" / "reference_d0_shapes_fp16.pth"  # noqa: E501 (a source checkout)


def pack(src: str, dst: str) -> None:
    """Keep the EMA weights as fp16 (half the size) with the class names; loads like any effdet checkpoint."""
    import torch

    from edgedet.fileio import atomic_path

    ck = torch.load(src, map_location="cpu", weights_only=False)
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in ck["state_dict"].items()}
    keep = {k: ck[k] for k in ("class_names", "category_ids", "model", "image_size", "val") if k in ck}
    with atomic_path(dst) as tmp:
        torch.save({"state_dict": state, **keep}, tmp)


def evaluate_backends(weights: str, val_json: str, backends=("torch", "onnxruntime", "openvino")) -> dict:
    """mAP of the same weights through each backend's artifact (OpenVINO at f32 inference precision)."""
    import torch

    from edgedet.converters.pipeline import BuildRequest, export_artifact
    from edgedet.evaluation import evaluate_detector
    from edgedet.registry import get_backend
    from edgedet.runtimes import Detector

    meta = torch.load(weights, map_location="cpu", weights_only=False)
    names = tuple(meta.get("class_names") or ())
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for spec in map(get_backend, backends):
            path = export_artifact(
                BuildRequest(
                    meta.get("model", "d0"),
                    spec.build_format.name,
                    weights=weights,
                    imgsz=meta.get("image_size", [256])[0],
                    class_names=names or None,
                ),
                Path(tmp) / spec.name,
            )
            with Detector.load(path, backend=spec, **spec.exact_options) as det:
                stats = evaluate_detector(det, val_json)
            out[spec.name] = {k: stats[k] for k in ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large")}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack")
    p.add_argument("src")
    p.add_argument("dst")
    e = sub.add_parser("eval")
    e.add_argument("weights")
    e.add_argument("val")
    e.add_argument("--test", help="held-out split (not used for training or model selection)")
    e.add_argument("--out")
    a = ap.parse_args(argv)
    if a.cmd == "pack":
        pack(a.src, a.dst)
        return 0
    import json
    import time

    res = {"test": evaluate_backends(a.weights, a.test)} if a.test else {}
    res["val"] = evaluate_backends(a.weights, a.val)
    print(json.dumps(res, indent=2))
    if a.out:
        from edgedet.benchmarks.environment import environment
        from edgedet.fileio import write_json_atomic

        write_json_atomic(
            a.out,
            {
                "command": "python -m benchmarks.studies.reference_model " + " ".join(sys.argv[1:]),
                "weights": a.weights,
                "val": a.val,
                "test": a.test,
                "results": res.get("test", res["val"]),
                "val_results": res["val"],
                "environment": environment(),
                "date": time.strftime("%Y-%m-%d %H:%M:%S"),
            },
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
