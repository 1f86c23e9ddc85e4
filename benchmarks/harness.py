"""The benchmark harness behind `edgedet bench`.

Per (model, backend, precision) row: build/convert through the artifact cache (timed), cold start
(load + first inference), network-only latency (runner call on a prepared batch), end-to-end latency
(Detector: letterbox + infer + decode/NMS on real images), throughput (async requests / streams where
the backend has them), params and multiply-adds from the model, FPS per GFLOP. Every number is a
statistic of per-iteration times measured in this run.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np

from edgedet.errors import InputError

from .environment import environment
from .images import sample_images
from .stats import summarize, time_calls


@dataclass
class BenchConfig:
    models: list[str]
    backends: list[str]
    precision: str = "fp32"
    batch: int = 1
    imgsz: int | None = None
    iters: int = 50
    warmup: int = 5
    mode: str = "latency"            # latency | throughput
    data: str | None = None
    weights: str | None = None
    conf: float = 0.25
    device: str | None = None
    baseline: bool = True
    backend_options: dict = field(default_factory=dict)
    artifacts: list[str] = field(default_factory=list)  # existing artifacts (e.g. INT8 from calibrate) to time too

    def validate(self) -> None:
        if self.iters < 1:
            raise InputError("--iters must be >= 1")
        if self.warmup < 0:
            raise InputError("--warmup must be >= 0")
        if self.batch < 1:
            raise InputError("--batch must be >= 1")
        if self.mode not in ("latency", "throughput"):
            raise InputError("--mode must be latency or throughput")


# Backend-specific runtime options for the best measured configuration of each backend.
_RUN_OPTIONS = {
    "openvino": lambda mode, precision: {"hint": "THROUGHPUT" if mode == "throughput" else "LATENCY"},
    "onnxruntime": lambda mode, precision: {},
    "torch": lambda mode, precision: {},
    "tensorrt": lambda mode, precision: {},
}


def _load(model, backend, cfg: BenchConfig, batch: int, hint_mode: str):
    from edgedet.converters.pipeline import BuildRequest, get_artifact
    from edgedet.runtimes import Detector

    req = BuildRequest(model=model, backend=backend, precision=cfg.precision, weights=cfg.weights, imgsz=cfg.imgsz,
                       batch=batch, device=cfg.device)
    built = get_artifact(req)
    opts = {**_RUN_OPTIONS.get(backend, lambda m, p: {})(hint_mode, cfg.precision), **cfg.backend_options.get(backend, {})}
    t0 = time.perf_counter()
    det = Detector.load(built.path, backend=backend, device=cfg.device, score_threshold=cfg.conf, **opts)
    return det, built, t0


def artifact_row(path: str, cfg: BenchConfig, images: list[np.ndarray]) -> dict:
    """Time an existing artifact (its manifest gives model, precision and backend)."""
    from pathlib import Path

    from edgedet.configs import ModelConfig
    from edgedet.converters.pipeline import BuildResult
    from edgedet.manifest import Manifest
    from edgedet.runtimes import Detector
    from edgedet.runtimes.registry import backend_for

    from .flops import model_cost

    p = Path(path)
    m = Manifest.read(p)
    backend = backend_for(p, None).name
    opts = {**_RUN_OPTIONS.get(backend, lambda a, b: {})("latency", m.precision), **cfg.backend_options.get(backend, {})}
    t0 = time.perf_counter()
    det = Detector.load(p, score_threshold=cfg.conf, **opts)
    row = _measure(det, BuildResult(p, True, 0.0), t0, m.model["name"], backend, m.precision, cfg, images,
                   model_cost(ModelConfig.from_dict(m.model)))
    row["artifact"] = str(p)
    row["weights"] = (m.weights or {}).get("source", "unknown")
    return row


def bench_row(model: str, backend: str, cfg: BenchConfig, images: list[np.ndarray], costs: dict) -> dict:
    """`costs[model]` is set from the built artifact's own config: a checkpoint's class count changes the
    head's FLOPs (5 classes vs COCO's 90), so the name alone does not say what was timed."""
    from edgedet.configs import ModelConfig
    from edgedet.runtimes.registry import get_backend

    from .flops import model_cost

    backend = get_backend(backend).name
    det, built, t_load = _load(model, backend, cfg, 1, "latency")
    cost = costs.get(model) or costs.setdefault(model, model_cost(ModelConfig.from_dict(det.manifest.model)))
    row = _measure(det, built, t_load, model, backend, cfg.precision, cfg, images, cost)
    row["throughput"] = measure_throughput(model, backend, cfg, images) if cfg.mode == "throughput" or cfg.batch > 1 \
        else None
    return row


def _measure(det, built, t_load, model, backend, precision, cfg, images, cost) -> dict:
    det(images[0])
    cold_ms = (time.perf_counter() - t_load) * 1e3

    batch = det.preprocess([images[0]])[0].copy()
    net = time_calls(lambda: det.infer(batch), cfg.iters, cfg.warmup)
    # GPU backends: compute alone (CUDA events, input already on the device), apart from copies and pre/post
    device_ms = det.runner.device_time_ms({det.input_name: batch}, cfg.iters, cfg.warmup)

    cycle = {"i": 0}
    stages = {"pre": [], "infer": [], "post": []}

    def e2e_call():
        img = images[cycle["i"] % len(images)]
        cycle["i"] += 1
        det(img)
        stages["pre"].append(det.timing.pre)
        stages["infer"].append(det.timing.infer)
        stages["post"].append(det.timing.post)

    e2e = time_calls(e2e_call, cfg.iters, cfg.warmup)
    for v in stages.values():
        del v[:cfg.warmup]
    n_det = len(det(images[0]))
    device = det.device
    det.close()

    e2e_s, net_s = summarize(e2e), summarize(net)
    fps_b1 = 1000.0 / e2e_s["p50"]
    return {
        "model": model, "backend": backend, "precision": precision, "batch": 1, "device": device,
        "input_size": list(det.image_size), "weights": cfg.weights or "random-init (timing only)",
        "net_ms": net_s, "e2e_ms": e2e_s, "device_ms": summarize(device_ms) if device_ms else None,
        "stage_ms_p50": {k: round(float(np.median(v)), 3) for k, v in stages.items()},
        "fps_b1": round(fps_b1, 2), "net_fps_b1": round(1000.0 / net_s["p50"], 2),
        "throughput": None,
        "params": cost.params, "gmacs": round(cost.gmacs, 4), "gflops": round(cost.gflops, 4),
        "fps_per_gflop": round(fps_b1 / cost.gflops, 3),
        "build_s": round(built.seconds, 2), "artifact_cached": built.cached, "cold_start_ms": round(cold_ms, 1),
        "detections_on_first_image": n_det, "score_threshold": cfg.conf,
    }


def measure_throughput(model: str, backend: str, cfg: BenchConfig, images) -> dict:
    """Network-only images/s at --batch, with the backend's async requests / streams where it has them."""
    det, built, _ = _load(model, backend, cfg, cfg.batch, "throughput")
    frames = [images[i % len(images)] for i in range(cfg.batch)]
    batch = det.preprocess(frames)[0].copy()
    feeds = {det.input_name: batch}
    requests = max(cfg.iters // 2, 4)
    for _ in range(max(cfg.warmup, 1)):
        det.infer(batch)
    run_async = getattr(det.runner, "run_async", None)
    if run_async is not None:
        elapsed, how = run_async(feeds, requests), f"async requests ({det.runner.optimal_requests()} in flight)"
    else:
        t0 = time.perf_counter()
        for _ in range(requests):
            det.infer(batch)
        elapsed, how = time.perf_counter() - t0, "sequential batches"
    det.close()
    return {"batch": cfg.batch, "fps": round(requests * cfg.batch / elapsed, 2), "requests": requests, "how": how}


def baseline_row(model: str, cfg: BenchConfig, images, cost) -> dict | None:
    """effdet's eager PyTorch model with its own post-processing (DetBenchPredict), our letterbox in front."""
    try:
        import torch
        from effdet import DetBenchPredict, create_model as effdet_create
    except ImportError:
        return None
    from edgedet.configs import get_config
    from edgedet.model import create_model
    from edgedet.preprocess import Preprocessor

    mcfg = get_config(model, image_size=cfg.imgsz)
    if mcfg.effdet_name is None:
        return None
    ours = create_model(model, weights=cfg.weights, image_size=cfg.imgsz)
    ref = effdet_create(mcfg.effdet_name, pretrained=False, pretrained_backbone=False, num_classes=ours.config.num_classes,
                        image_size=mcfg.image_size)
    ref.load_state_dict(ours.state_dict())
    bench = DetBenchPredict(ref).eval()
    pre = Preprocessor(mcfg.image_size, mcfg.mean, mcfg.std)
    cycle = {"i": 0}

    @torch.inference_mode()
    def e2e_call():
        img = images[cycle["i"] % len(images)]
        cycle["i"] += 1
        x, _ = pre([img])
        out = bench(torch.from_numpy(x))
        out.numpy()

    x0 = torch.from_numpy(pre([images[0]])[0])
    with torch.inference_mode():
        net = time_calls(lambda: ref(x0), max(cfg.iters // 2, 5), min(cfg.warmup, 3))
    e2e = time_calls(e2e_call, max(cfg.iters // 2, 5), min(cfg.warmup, 3))
    e2e_s = summarize(e2e)
    return {
        "model": model, "backend": "effdet-eager (baseline)", "precision": "fp32", "batch": 1, "device": "CPU",
        "input_size": list(mcfg.image_size), "net_ms": summarize(net), "e2e_ms": e2e_s,
        "fps_b1": round(1000.0 / e2e_s["p50"], 2), "params": cost.params, "gmacs": round(cost.gmacs, 4),
        "gflops": round(cost.gflops, 4), "fps_per_gflop": round(1000.0 / e2e_s["p50"] / cost.gflops, 3),
        "torch_threads": torch.get_num_threads(),
    }


def run_bench(cfg: BenchConfig, on_row=None, progress=None) -> dict:
    """Run every row; on Ctrl-C return what was measured so far with interrupted=True."""
    from edgedet.configs import get_config
    from edgedet.runtimes.registry import get_backend, runner_class

    from .flops import model_cost

    cfg.validate()
    for b in cfg.backends:
        runner_class(get_backend(b))  # fail fast, naming the extra, before any work
    models = [get_config(m, image_size=cfg.imgsz).name for m in cfg.models]
    images = sample_images(cfg.data)
    report = {"config": asdict(cfg), "environment": environment(), "rows": [], "baselines": [], "interrupted": False}
    jobs = [(m, b) for m in models for b in cfg.backends] + [(a, "artifact") for a in cfg.artifacts] + \
        ([(m, None) for m in models] if cfg.baseline else [])
    started = time.time()
    costs: dict = {}
    try:
        for model, backend in (progress(jobs) if progress else jobs):
            if backend == "artifact":
                row = artifact_row(model, cfg, images)
                report["rows"].append(row)
                if on_row:
                    on_row(row)
                continue
            if backend is None:
                cost = costs.get(model) or model_cost(get_config(model, image_size=cfg.imgsz))
                row = baseline_row(model, cfg, images, cost)
                if row is not None:
                    report["baselines"].append(row)
            else:
                row = bench_row(model, backend, cfg, images, costs)
                report["rows"].append(row)
            if row is not None and on_row:
                on_row(row)
    except KeyboardInterrupt:
        report["interrupted"] = True
    report["seconds"] = round(time.time() - started, 1)
    report["ratios"] = ratios(report)
    return report


def ratios(report: dict) -> list[dict]:
    """Per model: best edgedet row vs the effdet eager baseline, both measured above (p50 end-to-end)."""
    out = []
    for base in report["baselines"]:
        rows = [r for r in report["rows"] if r["model"] == base["model"]]
        if not rows:
            continue
        best = min(rows, key=lambda r: r["e2e_ms"]["p50"])
        out.append({"model": base["model"], "best_backend": best["backend"], "best_precision": best["precision"],
                    "best_e2e_p50_ms": best["e2e_ms"]["p50"], "baseline_e2e_p50_ms": base["e2e_ms"]["p50"],
                    "speedup_vs_effdet_eager": round(base["e2e_ms"]["p50"] / best["e2e_ms"]["p50"], 2)})
    return out
