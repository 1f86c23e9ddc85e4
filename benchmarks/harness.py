"""The benchmark harness behind `edgedet bench`.

Per (model, backend, precision) row: build/convert through the artifact cache (timed), cold start
(load + first inference), network-only latency (runner call on a prepared batch), end-to-end latency
(Detector: letterbox + infer + decode/NMS on real images), throughput (async requests / streams where
the backend has them), params and multiply-adds from the model, FPS per GFLOP. Every number is a
statistic of per-iteration times measured in this run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgedet.errors import InputError
from edgedet.manifest import Manifest
from edgedet.registry import BackendSpec, backend_for

from .environment import environment
from .images import sample_images
from .stats import summarize, time_calls


@dataclass
class BenchConfig:
    models: list[str]
    backends: list[BackendSpec]  # parsed once, at the edge (parse_backends)
    precision: str = "fp32"
    batch: int = 1
    imgsz: int | None = None
    iters: int = 50
    warmup: int = 5
    mode: str = "latency"  # latency | throughput
    data: str | None = None
    weights: str | None = None
    conf: float = 0.25
    device: str | None = None
    baseline: bool = True
    backend_options: dict = field(default_factory=dict)
    artifacts: list[str] = field(default_factory=list)  # existing artifacts (e.g. INT8 from calibrate) to time too

    def __post_init__(self):
        from edgedet.registry import parse_backends

        self.backends = parse_backends(self.backends) if self.backends else []

    def validate(self) -> None:
        if self.iters < 1:
            raise InputError("--iters must be >= 1")
        if self.warmup < 0:
            raise InputError("--warmup must be >= 0")
        if self.batch < 1:
            raise InputError("--batch must be >= 1")
        if self.mode not in ("latency", "throughput"):
            raise InputError("--mode must be latency or throughput")


def _run_options(spec: BackendSpec, mode: str, cfg: BenchConfig) -> dict:
    """The backend's own options for this bench mode (from its BACKENDS row), then the user's."""
    return {**spec.options_for(mode), **cfg.backend_options.get(spec.name, {})}


def _load(model: str, spec: BackendSpec, cfg: BenchConfig, batch: int, mode: str):
    from edgedet.api import build
    from edgedet.runtimes import Detector

    built = build(
        model,
        spec,
        device=cfg.device if spec.build_format.device_specific else None,
        precision=cfg.precision,
        weights=cfg.weights,
        imgsz=cfg.imgsz,
        batch=batch,
    )
    t0 = time.perf_counter()
    det = Detector.load(
        built.path, backend=spec, device=cfg.device, score_threshold=cfg.conf, **_run_options(spec, mode, cfg)
    )
    return det, built, t0


def _cost(manifest):
    """Params and FLOPs recorded in the manifest at export (no torch needed here)."""
    if manifest.cost is None:
        raise InputError(
            f"{manifest.artifact.file if manifest.artifact else 'artifact'} has no cost section "
            "(exported by an older edgedet): re-export it"
        )
    return manifest.cost


def artifact_row(path: str, cfg: BenchConfig, images: list[np.ndarray]) -> dict:
    """Time an existing artifact (its manifest gives model, precision, cost; its format the backend)."""
    from pathlib import Path

    from edgedet.converters.pipeline import BuildResult
    from edgedet.manifest import Manifest
    from edgedet.runtimes import Detector

    p = Path(path)
    m = Manifest.read(p)
    spec = backend_for(p)
    t0 = time.perf_counter()
    det = Detector.load(
        p, backend=spec, device=cfg.device, score_threshold=cfg.conf, **_run_options(spec, "latency", cfg)
    )
    row = _measure(det, BuildResult(p, True, 0.0), t0, m.model["name"], spec.name, m.precision, cfg, images, _cost(m))
    row["artifact"] = str(p)
    row["weights"] = (m.weights or {}).get("source", "unknown")
    return row


def bench_row(model: str, spec: BackendSpec, cfg: BenchConfig, images: list[np.ndarray]) -> dict:
    """Cost comes from the built artifact's manifest: a checkpoint's class count changes the head's FLOPs
    (5 classes vs COCO's 90), so the name alone does not say what was timed."""
    det, built, t_load = _load(model, spec, cfg, 1, "latency")
    row = _measure(det, built, t_load, model, spec.name, cfg.precision, cfg, images, _cost(det.manifest))
    row["throughput"] = (
        measure_throughput(model, spec, cfg, images) if cfg.mode == "throughput" or cfg.batch > 1 else None
    )
    return row


def _measure(det, built, t_load, model, backend, precision, cfg, images, cost) -> dict:
    """Cold start, then end-to-end iterations; `net` is the inference call timed inside those same iterations
    (so net <= e2e always holds), pre and post likewise."""
    det(images[0])
    cold_ms = (time.perf_counter() - t_load) * 1e3
    batch = det.preprocess([images[0]])[0].copy()
    # GPU backends: compute alone (CUDA events, input already on the device), apart from copies and pre/post
    device_ms = det.runner.device_time_ms({det.input_name: batch}, cfg.iters, cfg.warmup)
    cycle = {"i": 0}
    stages = {"pre": [], "infer": [], "post": []}

    def e2e_call():
        img = images[cycle["i"] % len(images)]
        cycle["i"] += 1
        det(img)
        for k in stages:
            stages[k].append(getattr(det.timing, k))

    e2e = time_calls(e2e_call, cfg.iters, cfg.warmup)
    for v in stages.values():
        del v[: cfg.warmup]
    n_det = len(det(images[0]))
    device, executed = det.device, det.runner.execution_precision
    accuracy = evaluate_row(det, cfg)
    det.close()
    e2e_s, net_s = summarize(e2e), summarize(stages["infer"])
    fps_b1 = 1000.0 / e2e_s["p50"]
    achieved = cost.gflops / (net_s["p50"] / 1e3)
    return {
        "model": model,
        "backend": backend,
        "precision": precision,
        "executed_precision": executed,
        "batch": 1,
        "device": device,
        "input_size": list(det.image_size),
        "weights": cfg.weights or "random-init (timing only)",
        "net_ms": net_s,
        "e2e_ms": e2e_s,
        "device_ms": summarize(device_ms) if device_ms else None,
        "stage_ms_p50": {k: round(float(np.median(v)), 3) for k, v in stages.items()},
        "fps_b1": round(fps_b1, 2),
        "net_fps_b1": round(1000.0 / net_s["p50"], 2),
        "throughput": None,
        "params": cost.params,
        "gmacs": round(cost.gmacs, 4),
        "gflops": round(cost.gflops, 4),
        "fps_per_gflop": round(fps_b1 / cost.gflops, 3),
        "achieved_gflops_per_s": round(achieved, 2),
        "build_s": round(built.seconds, 2),
        "artifact_cached": built.cached,
        "cold_start_ms": round(cold_ms, 1),
        "detections_on_first_image": n_det,
        "score_threshold": cfg.conf,
        **accuracy,
    }


def evaluate_row(det, cfg: BenchConfig) -> dict:
    """With a COCO json as --data: AP and AP50 of this row's artifact, through the same code as `edgedet eval`."""
    if not cfg.data or not str(cfg.data).endswith(".json"):
        return {}
    from edgedet.evaluation import evaluate_detector

    stats = evaluate_detector(det, cfg.data)
    return {"AP": stats["AP"], "AP50": stats["AP50"], "eval_images": stats["images"]}


def measure_throughput(model: str, spec: BackendSpec, cfg: BenchConfig, images) -> dict:
    """Network-only images/s at --batch, with requests in flight through the runner's async queue (the one
    Detector.stream uses): every backend is measured the same way."""
    det, built, _ = _load(model, spec, cfg, cfg.batch, "throughput")
    try:
        frames = [images[i % len(images)] for i in range(cfg.batch)]
        feeds = {det.input_name: det.preprocess(frames)[0].copy()}
        requests = max(cfg.iters // 2, 4)
        for _ in range(max(cfg.warmup, 1)):
            det.runner(feeds)
        queue = det.runner.async_queue()
        done = []
        t0 = time.perf_counter()
        for _ in range(requests):
            queue.submit(feeds, lambda outputs: done.append(1))
        queue.wait_all()
        elapsed = time.perf_counter() - t0
        queue.close()
    finally:
        det.close()
    return {
        "batch": cfg.batch,
        "fps": round(len(done) * cfg.batch / elapsed, 2),
        "requests": requests,
        "how": f"async queue, {queue.capacity} request(s) in flight",
    }


def _torch_device(cfg: BenchConfig):
    """The baseline runs on the rows' device: CUDA when the rows run on a CUDA GPU, else the CPU."""
    import torch

    from edgedet.devices import parse_device

    dev = parse_device(cfg.device)
    return torch.device("cuda", dev.ordinal) if dev.kind == "cuda" else torch.device("cpu")


def baseline_row(model: str, cfg: BenchConfig, images) -> dict | None:
    """effdet's eager PyTorch model with its own post-processing (DetBenchPredict), our letterbox in front,
    on the same device as the rows."""
    try:
        import torch
        from effdet import DetBenchPredict
        from effdet import create_model as effdet_create
    except ImportError:
        return None
    from edgedet.configs import get_config
    from edgedet.model import create_model
    from edgedet.model.cost import model_cost
    from edgedet.preprocess import Preprocessor

    mcfg = get_config(model, image_size=cfg.imgsz)
    if mcfg.effdet_name is None:
        return None
    ours = create_model(model, weights=cfg.weights, image_size=cfg.imgsz)
    ref = effdet_create(
        mcfg.effdet_name,
        pretrained=False,
        pretrained_backbone=False,
        num_classes=ours.config.num_classes,
        image_size=mcfg.image_size,
    )
    ref.load_state_dict(ours.state_dict())
    cost = model_cost(ours.config)
    device = _torch_device(cfg)
    ref = ref.to(device).eval()
    bench = DetBenchPredict(ref).eval()
    pre = Preprocessor(mcfg.image_size, mcfg.mean, mcfg.std)
    cycle = {"i": 0}

    @torch.inference_mode()
    def e2e_call():
        img = images[cycle["i"] % len(images)]
        cycle["i"] += 1
        x, _ = pre([img])
        out = bench(torch.from_numpy(x).to(device))
        out.cpu().numpy()

    x0 = torch.from_numpy(pre([images[0]])[0]).to(device)
    with torch.inference_mode():
        net = time_calls(lambda: ref(x0), max(cfg.iters // 2, 5), min(cfg.warmup, 3))
    e2e = time_calls(e2e_call, max(cfg.iters // 2, 5), min(cfg.warmup, 3))
    e2e_s = summarize(e2e)
    return {
        "model": model,
        "backend": "effdet-eager (baseline)",
        "precision": "fp32",
        "batch": 1,
        "device": "CPU" if device.type == "cpu" else f"{device} ({torch.cuda.get_device_name(device)})",
        "input_size": list(mcfg.image_size),
        "net_ms": summarize(net),
        "e2e_ms": e2e_s,
        "fps_b1": round(1000.0 / e2e_s["p50"], 2),
        "params": cost.params,
        "gmacs": round(cost.gmacs, 4),
        "gflops": round(cost.gflops, 4),
        "fps_per_gflop": round(1000.0 / e2e_s["p50"] / cost.gflops, 3),
        "torch_threads": torch.get_num_threads(),
    }


def run_bench(cfg: BenchConfig, on_row=None, progress=None) -> dict:
    """Run every row; on Ctrl-C return what was measured so far with interrupted=True."""
    from edgedet.configs import get_config

    cfg.validate()
    for spec in cfg.backends:
        spec.runner_class()  # fail fast, naming the extra, before any work
    for path in cfg.artifacts:  # and on a missing or damaged artifact, before timing anything
        if not Path(path).is_file():
            raise InputError(f"--artifact {path}: file not found")
        backend_for(path).runner_class()
        Manifest.read(path)
    models = [get_config(m, image_size=cfg.imgsz).name for m in cfg.models]
    images = sample_images(cfg.data)
    report = {
        "config": {
            **{k: v for k, v in vars(cfg).items() if k != "backends"},
            "backends": [b.name for b in cfg.backends],
        },
        "environment": environment(),
        "gemm_peak": gemm_peak(),
        "rows": [],
        "baselines": [],
        "interrupted": False,
    }
    # (table, job): each job measures one row
    jobs = [("rows", lambda m=m, b=b: bench_row(m, b, cfg, images)) for m in models for b in cfg.backends]
    jobs += [("rows", lambda a=a: artifact_row(a, cfg, images)) for a in cfg.artifacts]
    jobs += [("baselines", lambda m=m: baseline_row(m, cfg, images)) for m in models] if cfg.baseline else []
    started = time.time()
    try:
        for table, job in progress(jobs) if progress else jobs:
            row = job()
            if row is None:
                continue
            report[table].append(row)
            if on_row:
                on_row(row)
    except KeyboardInterrupt:
        report["interrupted"] = True
    report["seconds"] = round(time.time() - started, 1)
    report["ratios"] = ratios(report)
    peak = report["gemm_peak"]["gflops_per_s"]
    for row in report["rows"]:
        if "achieved_gflops_per_s" in row:
            row["fraction_of_gemm_peak"] = round(row["achieved_gflops_per_s"] / peak, 4)
    return report


def gemm_peak(n: int = 1024, iters: int = 10) -> dict:
    """This machine's FP32 GEMM rate now, measured in the same run (numpy's BLAS, all cores): the reference for
    each row's achieved GFLOP/s."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n), np.float32), rng.standard_normal((n, n), np.float32)
    a @ b
    times = time_calls(lambda: a @ b, iters, 2)
    best = min(times) / 1e3
    return {"gflops_per_s": round(2 * n**3 / best / 1e9, 1), "how": f"numpy float32 {n}x{n} matmul, best of {iters}"}


def ratios(report: dict) -> list[dict]:
    """Per model: best edgedet row vs the effdet eager baseline, both measured above (p50 end-to-end)."""
    out = []
    for base in report["baselines"]:
        rows = [r for r in report["rows"] if r["model"] == base["model"]]
        if not rows:
            continue
        best = min(rows, key=lambda r: r["e2e_ms"]["p50"])
        out.append(
            {
                "model": base["model"],
                "best_backend": best["backend"],
                "best_precision": best["precision"],
                "best_e2e_p50_ms": best["e2e_ms"]["p50"],
                "baseline_e2e_p50_ms": base["e2e_ms"]["p50"],
                "speedup_vs_effdet_eager": round(base["e2e_ms"]["p50"] / best["e2e_ms"]["p50"], 2),
                "best_device": best.get("device"),
                "baseline_device": base.get("device"),
            }
        )
    return out
