"""The benchmark harness behind `edgedet bench`.

Per (model, backend, precision) row: build/convert through the artifact cache (timed), cold start
(load + first inference), network-only latency (runner call on a prepared batch), end-to-end latency
(Detector: letterbox + infer + decode/NMS on real images), throughput (async requests / streams where
the backend has them), params and multiply-adds from the model, FPS per GFLOP. Every number is a
statistic of per-iteration times measured in this run.

%peak divides a row's achieved GFLOP/s by the GEMM rate of the precision that row executed, measured in the same run
with that backend's own library (an OpenVINO MatMul for OpenVINO rows, ONNX Runtime's for ONNX Runtime rows: the
runner's `matmul_peak`); a backend without one falls back to numpy's f32 GEMM and the row says so. With a COCO json
as --data, a row that executes below f32 (OpenVINO's bf16 default on BF16/AMX CPUs, f16, TensorRT FP16) is also
evaluated in f32 arithmetic on the same artifact, and gated: an AP drop over --max-ap-drop fails that precision
(edgedet.precision), which the default then never runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import edgedet.precision as gates
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
    max_ap_drop: float = gates.DEFAULT_BUDGET  # the gate of precisions below f32 (with a COCO json as data)

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
        if not 0 <= self.max_ap_drop < 1:
            raise InputError("--max-ap-drop must be in [0, 1)")


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

    def f32():  # the same artifact in f32 arithmetic (the backend row's exact options)
        return Detector.load(
            p, backend=spec, device=cfg.device, **{**_run_options(spec, "latency", cfg), **spec.exact_options}
        )

    row = _measure(
        det, BuildResult(p, True, 0.0), t0, m.model["name"], spec.name, m.precision, cfg, images, _cost(m), f32
    )
    row["artifact"] = str(p)
    row["weights"] = (m.weights or {}).get("source", "unknown")
    return row


def bench_row(model: str, spec: BackendSpec, cfg: BenchConfig, images: list[np.ndarray]) -> dict:
    """Cost comes from the built artifact's manifest: a checkpoint's class count changes the head's FLOPs
    (5 classes vs COCO's 90), so the name alone does not say what was timed."""
    det, built, t_load = _load(model, spec, cfg, 1, "latency")

    def f32():
        """The same artifact with the backend's exact (f32) options, or where those cannot make it run f32 (an
        fp16 engine), the fp32 artifact of the model."""
        from edgedet.runtimes import Detector

        options = {**_run_options(spec, "latency", cfg), **spec.exact_options}
        ref = Detector.load(built.path, backend=spec, device=cfg.device, **options)
        if gates.float_part(ref.runner.execution_precision) == "f32" or cfg.precision == "fp32":
            return ref
        ref.close()
        fp32 = BenchConfig(**{**vars(cfg), "precision": "fp32", "backends": [spec]})
        return _load(model, spec, fp32, 1, "latency")[0]

    row = _measure(det, built, t_load, model, spec.name, cfg.precision, cfg, images, _cost(det.manifest), f32)
    row["throughput"] = (
        measure_throughput(model, spec, cfg, images) if cfg.mode == "throughput" or cfg.batch > 1 else None
    )
    return row


def _measure(det, built, t_load, model, backend, precision, cfg, images, cost, f32_loader=None) -> dict:
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
    peak = row_peak(det)
    accuracy = evaluate_row(det, cfg)
    if accuracy and gates.is_reduced(executed) and f32_loader is not None:
        accuracy.update(reduced_precision_gate(det, executed, f32_loader, cfg, accuracy["AP"]))
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
        "peak": peak,
        "build_s": round(built.seconds, 2),
        "artifact_cached": built.cached,
        "cold_start_ms": round(cold_ms, 1),
        "detections_on_first_image": n_det,
        "score_threshold": cfg.conf,
        **({"precision_note": det.runner.precision_note} if getattr(det.runner, "precision_note", "") else {}),
        **accuracy,
    }


_PEAKS: dict = {}  # (backend, device, executed precision) -> the backend's GEMM peak, measured once per run


def row_peak(det) -> dict | None:
    """The row's backend's own GEMM rate at the precision it executed (measured once per backend, device and
    precision in this run, right after the first such row); None where the backend has no such measurement."""
    runner = det.runner
    key = (runner.name, det.device, runner.execution_precision)
    if key not in _PEAKS:
        try:
            _PEAKS[key] = runner.matmul_peak()
        except Exception as e:  # noqa: BLE001 - a peak that cannot be measured falls back, and says why
            _PEAKS[key] = {"error": f"{type(e).__name__}: {e}"[:200]}
    peak = _PEAKS[key]
    return peak if peak and "gflops_per_s" in peak else None


def reduced_precision_gate(det, executed: str, f32_loader, cfg: BenchConfig, ap: float) -> dict:
    """A row that executed below f32: AP of the same artifact in f32 arithmetic, side by side, and the gate's
    verdict (kept on this machine, so the default never runs a failed precision)."""
    reduced = gates.float_part(executed)
    with f32_loader() as ref:
        ref_executed = ref.runner.execution_precision
        f32 = evaluate_row(ref, cfg)
    if gates.float_part(ref_executed) != "f32":
        return {"AP_f32": None, "precision_gate": {"error": f"no f32 reference here (it ran {ref_executed})"}}
    result = gates.verdict(ap, f32["AP"], cfg.max_ap_drop, precision=reduced, data=str(cfg.data), source="bench")
    gates.record(det.manifest, det.backend, reduced, result)
    return {"AP_f32": f32["AP"], "AP50_f32": f32["AP50"], "precision_gate": result}


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
    _PEAKS.clear()  # peaks are measured in this run, never remembered from another
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
    for row in report["rows"]:
        if "achieved_gflops_per_s" in row:
            set_fraction_of_peak(row, report["gemm_peak"])
    return report


def set_fraction_of_peak(row: dict, numpy_peak: dict) -> None:
    """%peak over the GEMM rate of the precision the row executed (its backend's own); where the backend has none,
    over numpy's f32 GEMM, which the row then names. A fraction above 1.0 comes with the reason."""
    own = row.get("peak")
    peak = own or {
        "gflops_per_s": numpy_peak["gflops_per_s"],
        "precision": "f32",
        "how": f"numpy f32 GEMM (no {row['backend']} peak): {numpy_peak['how']}",
    }
    row["peak"] = peak
    row["fraction_of_gemm_peak"] = round(row["achieved_gflops_per_s"] / peak["gflops_per_s"], 4)
    if row["fraction_of_gemm_peak"] > 1.0:
        if not own:
            why = f"the row executed {row.get('executed_precision')} but its peak is numpy's f32 GEMM"
        else:
            why = (
                "the GFLOPs count every multiply-add of the model at full cost, while the backend skips or fuses some "
                "(zero padding, folded BN, depthwise convs computed as cheaper kernels), and the MatMul peak is "
                "measured once, on a noisy machine"
            )
        row["peak_note"] = f"above the {peak['precision']} GEMM peak: {why}"


def gemm_peak(n: int = 1024, iters: int = 10) -> dict:
    """This machine's FP32 GEMM rate now, measured in the same run (numpy's BLAS, all cores): the reference for
    rows whose backend has no GEMM peak of its own (Runner.matmul_peak), and for the effdet baseline."""
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
                "best_executed_precision": best.get("executed_precision"),
                "best_e2e_p50_ms": best["e2e_ms"]["p50"],
                "baseline_e2e_p50_ms": base["e2e_ms"]["p50"],
                "speedup_vs_effdet_eager": round(base["e2e_ms"]["p50"] / best["e2e_ms"]["p50"], 2),
                "best_device": best.get("device"),
                "baseline_device": base.get("device"),
            }
        )
    return out
