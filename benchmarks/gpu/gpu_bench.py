"""GPU benchmark of EfficientDet D0/D1: torch CUDA (FP16, channels-last, CUDA-graph replay), ONNX Runtime CUDA,
TensorRT (where `import tensorrt` works) and the effdet eager FP32 baseline, all on the same GPU in one run.

Per row, at batch 1: end-to-end latency p50/p90/p99 (a BGR uint8 image already in memory -> Detections:
letterbox, copies, inference, decode + NMS), the runner call alone (inference + host<->device copies), and
device compute (CUDA events, input already on the GPU) where the backend gives it. At batch 32: images/s end to
end, network-only and on the device. Each row's speed is also given as a ratio to the effdet baseline measured
in this run. Weights are random (timing only; --weights takes a checkpoint).

    python benchmarks/gpu/gpu_bench.py --out OUT_DIR                 # on the GPU machine (see run.sh)
    python benchmarks/gpu/gpu_bench.py --device cpu --models test --iters 3 --out /tmp/smoke   # smoke test

Writes OUT_DIR/bench.json (rewritten after every row, so a killed run keeps what it measured), bench.txt and
fps.png. Rows that fail are recorded with their error; the run goes on.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np

TARGET_B1_MS = 2.0  # D0 end to end at batch 1 on an H100
TARGET_B32_IPS = 3000.0  # D0 images/s at batch 32 on an H100
BACKENDS = ("torch", "effdet", "onnxruntime", "tensorrt")
MIN_SECONDS = {"torch": 20, "effdet": 20, "onnxruntime": 60, "tensorrt": 150}  # left in the budget to start a row


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="folder for bench.json, bench.txt, fps.png")
    p.add_argument("--models", default="d0,d1", help="comma list (default d0,d1; 'test' is the tiny model)")
    p.add_argument("--backends", default=",".join(BACKENDS), help=f"comma list of {', '.join(BACKENDS)}")
    p.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (cpu: a smoke test, no TensorRT)")
    p.add_argument("--iters", type=int, default=50, help="timed iterations at batch 1")
    p.add_argument("--iters32", type=int, default=None, help="timed iterations at batch 32 (default min(20, iters))")
    p.add_argument("--warmup", type=int, default=10, help="untimed iterations before each measurement")
    p.add_argument("--big-batch", type=int, default=32, help="the throughput batch (default 32)")
    p.add_argument("--weights", default=None, help="a checkpoint (default: random weights, timing only)")
    p.add_argument("--budget-s", type=float, default=420.0, help="stop starting new rows after this many seconds")
    args = p.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(args.backends) - set(BACKENDS)
    if unknown:
        p.error(f"unknown backend(s) {', '.join(sorted(unknown))}; choose from {', '.join(BACKENDS)}")
    args.iters32 = args.iters32 or min(20, args.iters)
    args.cuda = args.device.startswith("cuda")
    return args


def log(msg: str) -> None:
    print(f"[gpu_bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------- timing helpers
def summarize(times_ms) -> dict | None:
    if not times_ms:
        return None
    from edgedet.benchmarks.stats import summarize as _summarize

    return _summarize(times_ms)


def images_per_s(batch: int, times_ms) -> float | None:
    """Throughput over the whole timed run: images / total time."""
    if not times_ms:
        return None
    return round(batch * len(times_ms) * 1000.0 / float(np.sum(times_ms)), 1)


def block(batch: int, e2e, net, device) -> dict:
    """One batch size's numbers: ms statistics and images/s for end to end, runner call and device compute."""
    return {
        "batch": batch,
        "e2e_ms": summarize(e2e),
        "net_ms": summarize(net),
        "device_ms": summarize(device),
        "e2e_ips": images_per_s(batch, e2e),
        "net_ips": images_per_s(batch, net),
        "device_ips": images_per_s(batch, device),
    }


def frames_for(frames: list, batch: int) -> list:
    return [frames[i % len(frames)] for i in range(batch)]


def sample_frames() -> list[np.ndarray]:
    """The benchmark images of `edgedet bench` (scikit-image photographs), else a synthetic textured image."""
    try:
        from edgedet.benchmarks.images import sample_images

        return sample_images()
    except Exception as e:  # a missing data file must not stop the benchmark
        log(f"sample images unavailable ({e}); using a synthetic image")
        rng = np.random.default_rng(0)
        return [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)]


# ---------------------------------------------------------------- edgedet rows
# Per backend row: edgedet.load keywords (on CUDA, and always), the precision they give, and whether each batch
# size needs its own artifact (static TensorRT engines). A table, not a chain of branches.
ROWS = {
    "torch": {
        "cuda": {"half": True, "channels_last": True, "cuda_graph": True},
        "always": {},
        "precision": ("fp16", "fp32"),
        "per_batch": False,
    },
    "onnxruntime": {
        "cuda": {},
        "always": {"batch": "dynamic"},  # one dynamic-batch ONNX serves b1 and b32
        "precision": ("fp32", "fp32"),
        "per_batch": False,
    },
    "tensorrt": {
        "cuda": {},
        "always": {"precision": "fp16", "postprocess": "graph"},
        "precision": ("fp16", "fp16"),
        "per_batch": True,
    },  # one static engine per batch size
}


def load_options(backend: str, args, batch: int) -> tuple[dict, str]:
    """edgedet.load() keywords for a backend on args.device, and the precision they give."""
    row = ROWS[backend]
    opts = {
        "device": args.device,
        "weights": args.weights,
        "backend": backend,
        **row["always"],
        **(row["cuda"] if args.cuda else {}),
    }
    if row["per_batch"]:
        opts["batch"] = batch
    elif opts.get("batch") == "dynamic":
        opts["max_batch"] = args.big_batch
    return opts, row["precision"][0 if args.cuda else 1]


def measure_detector(det, frames: list, batch: int, iters: int, warmup: int) -> dict:
    """End to end (det(images)), runner call on a prepared batch, and device compute, at one batch size."""
    chunk = frames_for(frames, batch)
    cycle = {"i": 0}
    stages = {"pre": [], "infer": [], "post": []}

    def e2e_call():
        if batch == 1:
            det(frames[cycle["i"] % len(frames)])
            cycle["i"] += 1
        else:
            det(chunk)
        for k in stages:
            stages[k].append(getattr(det.timing, k))

    from edgedet.benchmarks.stats import time_calls

    e2e = time_calls(e2e_call, iters, warmup)
    x = det.preprocess(chunk)[0].copy()
    net = time_calls(lambda: det.infer(x), iters, warmup)
    device = det.runner.device_time_ms({det.input_name: x}, iters, warmup)
    out = block(batch, e2e, net, device)
    out["stage_ms_p50"] = {k: round(float(np.median(v[warmup:])), 3) for k, v in stages.items()}
    out["detections_first_image"] = len(det(frames[0]))
    return out


def edgedet_row(model: str, backend: str, args, frames: list) -> dict:
    import edgedet

    t0 = time.perf_counter()
    opts, precision = load_options(backend, args, 1)
    row = {
        "model": model,
        "backend": backend,
        "precision": precision,
        "options": {k: v for k, v in opts.items() if k not in ("device", "weights", "backend")},
    }
    det = edgedet.load(model, **opts)
    if args.cuda and "cpu" in det.device.lower():  # ONNX Runtime falls back to its CPU provider silently
        det.close()
        raise RuntimeError(f"{backend} runs on {det.device}, not on the GPU (CUDA provider libraries missing?)")
    row.update(device=det.device, input_size=list(det.image_size), load_s=round(time.perf_counter() - t0, 2))
    log(f"{model} {backend}: loaded in {row['load_s']} s on {det.device}; batch 1")
    try:
        row["b1"] = measure_detector(det, frames, 1, args.iters, args.warmup)
        if ROWS[backend]["per_batch"]:  # static engines: batch 32 is another artifact
            det.close()
            det = edgedet.load(model, **load_options(backend, args, args.big_batch)[0])
        log(f"{model} {backend}: batch {args.big_batch}")
        row["big"] = measure_detector(det, frames, args.big_batch, args.iters32, min(args.warmup, 3))
    finally:
        det.close()
    return row


# ---------------------------------------------------------------- the effdet eager baseline
def effdet_model(model: str, args):
    """effdet's own model (FP32, eager) with our weights, and DetBenchPredict (its post-processing), as
    edgedet.benchmarks.harness.baseline_row builds it; None where effdet has no such model."""
    from effdet import DetBenchPredict
    from effdet import create_model as effdet_create

    from edgedet.configs import get_config
    from edgedet.model import create_model

    cfg = get_config(model)
    if cfg.effdet_name is None:
        return None
    ours = create_model(model, weights=args.weights)
    ref = effdet_create(
        cfg.effdet_name,
        pretrained=False,
        pretrained_backbone=False,
        num_classes=ours.config.num_classes,
        image_size=cfg.image_size,
    )
    ref.load_state_dict(ours.state_dict())
    return cfg, ref, DetBenchPredict(ref)


def cuda_event_ms(fn, iters: int, warmup: int) -> list[float]:
    import torch

    times = []
    for i in range(warmup + iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        if i >= warmup:
            times.append(start.elapsed_time(end))
    return times


def measure_effdet(cfg, ref, bench, dev, frames: list, batch: int, iters: int, warmup: int) -> dict:
    """End to end: our letterbox, upload, effdet model + DetBenchPredict, download. Net: the model on an uploaded
    batch (synchronised). Device: the model alone, CUDA events."""
    import torch

    from edgedet.benchmarks.stats import time_calls
    from edgedet.preprocess import Preprocessor

    pre = Preprocessor(cfg.image_size, cfg.mean, cfg.std)
    chunk = frames_for(frames, batch)
    cycle = {"i": 0}
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def e2e_call():
        imgs = [frames[cycle["i"] % len(frames)]] if batch == 1 else chunk
        cycle["i"] += 1
        x, _ = pre(imgs)
        bench(torch.from_numpy(x).to(dev)).cpu().numpy()

    def net_call():
        ref(x_dev)
        sync()

    with torch.inference_mode():
        e2e = time_calls(e2e_call, iters, warmup)
        x_dev = torch.from_numpy(pre(chunk)[0]).to(dev)
        net = time_calls(net_call, iters, warmup)
        device = cuda_event_ms(lambda: ref(x_dev), iters, warmup) if dev.type == "cuda" else None
    return block(batch, e2e, net, device)


def effdet_row(model: str, _backend: str, args, frames: list) -> dict | None:
    import torch

    from edgedet.devices import parse_device

    t0 = time.perf_counter()
    built = effdet_model(model, args)
    if built is None:
        return None
    cfg, ref, bench = built
    d = parse_device(args.device)
    dev = torch.device("cuda", d.ordinal) if d.kind == "cuda" else torch.device("cpu")
    ref, bench = ref.to(dev).eval(), bench.to(dev).eval()
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU"
    row = {
        "model": model,
        "backend": "effdet-eager",
        "precision": "fp32",
        "options": {"baseline": True},
        "device": f"{dev} ({name})",
        "input_size": list(cfg.image_size),
        "load_s": round(time.perf_counter() - t0, 2),
    }
    log(f"{model} effdet eager baseline on {row['device']}")
    row["b1"] = measure_effdet(cfg, ref, bench, dev, frames, 1, args.iters, args.warmup)
    row["big"] = measure_effdet(cfg, ref, bench, dev, frames, args.big_batch, args.iters32, min(args.warmup, 3))
    del ref, bench
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    return row


# ---------------------------------------------------------------- environment
def _run(cmd: list[str]) -> str | None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
        return out.stdout.strip() if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def _version(module: str) -> str:
    try:
        return getattr(importlib.import_module(module), "__version__", "present")
    except Exception as e:
        return f"absent ({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''})"


def gpu_environment(args) -> dict:
    """GPU, driver, CUDA, library versions and CPU of this run (plus edgedet bench's environment())."""
    import torch

    from edgedet.benchmarks.environment import environment

    env = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "device": args.device,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "onnxruntime": _version("onnxruntime"),
        "tensorrt": _version("tensorrt"),
        "effdet": _version("effdet"),
        "timm": _version("timm"),
        "cuda_available": torch.cuda.is_available(),
    }
    if args.cuda and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        env.update(
            gpu=props.name,
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            compute_capability=f"{props.major}.{props.minor}",
        )
    smi = _run(
        [
            "nvidia-smi",
            "--query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit",
            "--format=csv,noheader",
        ]
    )
    env["nvidia_smi"] = smi
    env["driver"] = smi.splitlines()[0].split(",")[1].strip() if smi else None
    try:
        import onnxruntime as ort

        env["onnxruntime_providers"] = ort.get_available_providers()
    except Exception:
        pass
    env["git_commit"] = _run(["git", "rev-parse", "HEAD"])
    env["host"] = environment()  # CPU model, cores, flags, OS, package versions
    env["cpu"] = env["host"]["cpu"]
    return env


def prepare_onnxruntime(args) -> None:
    """ONNX Runtime's CUDA provider loads CUDA and cuDNN from the nvidia-* wheels torch brought (ORT >= 1.21)."""
    if not args.cuda:
        return
    try:
        import onnxruntime as ort

        if hasattr(ort, "preload_dlls") and "CUDAExecutionProvider" in ort.get_available_providers():
            ort.preload_dlls()
    except Exception as e:
        log(f"onnxruntime.preload_dlls failed ({e}); relying on the loader path")


def tensorrt_skip_reason(args) -> str | None:
    if not args.cuda:
        return "TensorRT needs a CUDA device"
    try:
        import tensorrt  # noqa: F401
    except Exception as e:
        return f"import tensorrt failed: {type(e).__name__}: {e}"
    return None


# ---------------------------------------------------------------- ratios, targets, reports
def _p50(row: dict, key: str, what: str) -> float | None:
    stats = (row.get(key) or {}).get(what)
    return stats["p50"] if stats else None


def add_ratios(rows: list[dict]) -> None:
    """Each row vs the effdet eager baseline of the same model in this run: batch 1 end-to-end latency
    (baseline p50 / row p50) and batch-N end-to-end images/s (row / baseline). > 1 means faster."""
    base = {r["model"]: r for r in rows if r.get("backend") == "effdet-eager" and "b1" in r}
    for r in rows:
        b = base.get(r["model"])
        if b is None or "b1" not in r:
            continue
        lat, blat = _p50(r, "b1", "e2e_ms"), _p50(b, "b1", "e2e_ms")
        ips, bips = (r.get("big") or {}).get("e2e_ips"), (b.get("big") or {}).get("e2e_ips")
        r["vs_effdet"] = {
            "b1_e2e_latency_x": round(blat / lat, 2) if lat and blat else None,
            "big_e2e_ips_x": round(ips / bips, 2) if ips and bips else None,
        }


def targets(rows: list[dict], env: dict, big_batch: int) -> dict:
    """D0 targets, judged on the best D0 row measured (no row: not met)."""
    d0 = [r for r in rows if r["model"] == "d0" and "b1" in r and r["backend"] != "effdet-eager"]
    lat = min(d0, key=lambda r: _p50(r, "b1", "e2e_ms") or float("inf"), default=None)
    thr = max(d0, key=lambda r: (r.get("big") or {}).get("e2e_ips") or 0.0, default=None)
    net = max(d0, key=lambda r: (r.get("big") or {}).get("net_ips") or 0.0, default=None)

    def check(row, value, ok, goal):
        return {
            "goal": goal,
            "best_backend": row["backend"] if row else None,
            "value": value,
            "pass": None if value is None else bool(ok(value)),
        }  # None: not measured

    lat_v = _p50(lat, "b1", "e2e_ms") if lat else None
    thr_v = (thr.get("big") or {}).get("e2e_ips") if thr else None
    net_v = (net.get("big") or {}).get("net_ips") if net else None
    return {
        "gpu": env.get("gpu"),
        "is_h100": "H100" in str(env.get("gpu") or ""),
        "d0_b1_e2e_p50_ms": check(lat, lat_v, lambda v: v < TARGET_B1_MS, f"< {TARGET_B1_MS} ms end to end, batch 1"),
        "d0_big_e2e_ips": check(
            thr, thr_v, lambda v: v >= TARGET_B32_IPS, f">= {TARGET_B32_IPS:.0f} images/s end to end, batch {big_batch}"
        ),
        "d0_big_net_ips": check(
            net,
            net_v,
            lambda v: v >= TARGET_B32_IPS,
            f">= {TARGET_B32_IPS:.0f} images/s network only (runner call), batch {big_batch}",
        ),
    }


def _fmt(v, nd=2) -> str:
    return "-" if v is None else f"{v:.{nd}f}" if isinstance(v, float) else str(v)


def table(report: dict) -> str:
    big = report["config"]["big_batch"]
    head = (
        f"{'model':6} {'backend':12} {'prec':5} | {'b1 e2e p50':>10} {'p90':>7} {'p99':>7} {'net p50':>8} "
        f"{'dev p50':>8} | {f'b{big} e2e img/s':>14} {'net img/s':>10} {'dev ms':>8} | {'x effdet b1':>11} "
        f"{f'x effdet b{big}':>12}"
    )
    lines = [head, "-" * len(head)]
    for r in report["rows"]:
        if "b1" not in r:
            why = r.get("error") or r.get("skipped") or "not measured"
            lines.append(f"{r['model']:6} {r['backend']:12} {'':5} | {why.splitlines()[0][:110]}")
            continue
        b1, bb, vs = r["b1"], r.get("big") or {}, r.get("vs_effdet") or {}
        e = b1["e2e_ms"]
        lines.append(
            f"{r['model']:6} {r['backend']:12} {r['precision']:5} | {e['p50']:>10.3f} {e['p90']:>7.3f} "
            f"{e['p99']:>7.3f} {_fmt(_p50(r, 'b1', 'net_ms'), 3):>8} "
            f"{_fmt(_p50(r, 'b1', 'device_ms'), 3):>8} | "
            f"{_fmt(bb.get('e2e_ips'), 1):>14} {_fmt(bb.get('net_ips'), 1):>10} "
            f"{_fmt(_p50(r, 'big', 'device_ms'), 3):>8} | {_fmt(vs.get('b1_e2e_latency_x')):>11} "
            f"{_fmt(vs.get('big_e2e_ips_x')):>12}"
        )
    return "\n".join(lines)


def targets_text(t: dict) -> str:
    lines = [
        f"Targets (defined for an H100; this GPU: {t['gpu'] or 'none'}"
        f"{'' if t['is_h100'] else ' - NOT an H100, so the pass/fail below is indicative only'}):"
    ]
    for key in ("d0_b1_e2e_p50_ms", "d0_big_e2e_ips", "d0_big_net_ips"):
        c = t[key]
        verdict = {True: "PASS", False: "FAIL", None: "NOT MEASURED"}[c["pass"]]
        lines.append(f"  D0 {c['goal']:58} {verdict}  (best: {_fmt(c['value'])} by {c['best_backend'] or 'no row'})")
    return "\n".join(lines)


def text_report(report: dict) -> str:
    env, cfg = report["environment"], report["config"]
    state = "" if report["complete"] else ", INCOMPLETE"
    devices = sorted({f"{r['backend']}: {r['device']}" for r in report["rows"] if r.get("device")})
    lines = [
        f"edgedet GPU benchmark  {report['date']}  ({report['seconds']} s{state})",
        f"GPU: {env.get('gpu') or 'none'}  driver: {env.get('driver')}  CUDA (torch): {env.get('torch_cuda')}  "
        f"torch {env.get('torch')}  onnxruntime {env.get('onnxruntime')}  tensorrt {env.get('tensorrt')}",
        f"CPU: {env.get('cpu')}  python {env.get('python')}  commit {env.get('git_commit')}",
        f"models {','.join(cfg['models'])}, iters {cfg['iters']} (batch 1) / {cfg['iters32']} "
        f"(batch {cfg['big_batch']}), warm-up {cfg['warmup']}, weights {cfg['weights'] or 'random (timing only)'}",
        "",
        "ms: end to end = BGR uint8 image in memory -> Detections (letterbox, copies, inference, decode+NMS);",
        "net = runner call on a prepared batch (inference + host<->device copies);",
        "dev = GPU compute alone (CUDA events, input already on the GPU).",
        "img/s = images / total time of the timed calls. x effdet = speed relative to effdet eager FP32 here.",
        "",
        table(report),
        "",
        "rows ran on: " + "; ".join(devices),
        "",
        targets_text(report["targets"]),
    ]
    for note in report.get("notes", []):
        lines.append(f"note: {note}")
    return "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> str | None:
    """Bar chart: batch-1 end-to-end images/s and batch-N images/s (end to end, network only) per row."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib not installed: no fps.png"
    rows = [r for r in report["rows"] if "b1" in r]
    if not rows:
        return "no measured rows: no fps.png"
    big = report["config"]["big_batch"]
    labels = [f"{r['model']}\n{r['backend']}\n{r['precision']}" for r in rows]
    series = {
        "batch 1, end to end": [1000.0 / _p50(r, "b1", "e2e_ms") for r in rows],
        f"batch {big}, end to end": [(r.get("big") or {}).get("e2e_ips") or 0 for r in rows],
        f"batch {big}, network only": [(r.get("big") or {}).get("net_ips") or 0 for r in rows],
    }
    x, w = np.arange(len(rows)), 0.27
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(rows)), 4.5))
    for i, (name, values) in enumerate(series.items()):
        ax.bar(x + (i - 1) * w, values, w, label=name)
    ax.axhline(TARGET_B32_IPS, color="k", ls="--", lw=0.8, label=f"D0 target {TARGET_B32_IPS:.0f} img/s (b{big})")
    ax.axhline(1000.0 / TARGET_B1_MS, color="r", ls=":", lw=0.8, label=f"D0 target {TARGET_B1_MS} ms (b1)")
    ax.set_xticks(x, labels, fontsize=7)
    ax.set_ylabel("images / s")
    ax.set_yscale("log")
    ax.set_title(f"edgedet on {report['environment'].get('gpu') or report['config']['device']}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return None


def write(report: dict, out: Path, final: bool) -> None:
    """bench.json and bench.txt after every row (a killed run keeps them); fps.png at the end."""
    report["seconds"] = round(time.time() - report["_t0"], 1)
    report["complete"] = final
    add_ratios(report["rows"])
    report["targets"] = targets(report["rows"], report["environment"], report["config"]["big_batch"])
    if final:
        note = plot(report, out / "fps.png")
        if note:
            report["notes"].append(note)
    tmp = out / "bench.json.tmp"
    tmp.write_text(json.dumps({k: v for k, v in report.items() if not k.startswith("_")}, indent=2, default=str))
    tmp.replace(out / "bench.json")
    (out / "bench.txt").write_text(text_report(report))


MEASURE = {"effdet": effdet_row}  # rows that are not edgedet backends


# ---------------------------------------------------------------- main
def jobs(args) -> list[tuple[str, str]]:
    """(model, backend) in run order: per model torch, baseline, ONNX Runtime; TensorRT (engine builds, the
    slowest) last, so the time budget cuts those first."""
    order = [(m, b) for m in args.models for b in ("torch", "effdet", "onnxruntime") if b in args.backends]
    return order + [(m, "tensorrt") for m in args.models if "tensorrt" in args.backends]


def run_job(model: str, backend: str, args, frames, report) -> dict | None:
    """One row; the effdet baseline has its own measurement (MEASURE), edgedet backends share edgedet_row."""
    skip = report["_skip"].get(backend)
    if skip:
        return {"model": model, "backend": backend, "skipped": skip}
    left = args.budget_s - (time.time() - report["_t0"])
    if left < MIN_SECONDS[backend]:
        return {
            "model": model,
            "backend": backend,
            "skipped": f"time budget ({left:.0f} s left of {args.budget_s:.0f})",
        }
    try:
        row = MEASURE.get(backend, edgedet_row)(model, backend, args, frames)
        if row is None:
            report["notes"].append(f"{model}: effdet has no matching model, no baseline")
        return row
    except Exception as e:
        log(f"{model} {backend} FAILED: {type(e).__name__}: {e}")
        return {
            "model": model,
            "backend": backend,
            "error": f"{type(e).__name__}: {e}",
            "traceback": traceback.format_exc(limit=8),
        }
    finally:
        _free_cuda(args)


def _free_cuda(args) -> None:
    if args.cuda:
        import gc

        import torch

        gc.collect()
        torch.cuda.empty_cache()


def main(argv=None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    import torch

    if args.cuda and not torch.cuda.is_available():
        log("torch sees no CUDA GPU: every CUDA row will fail (run with --device cpu for a smoke test)")
    prepare_onnxruntime(args)
    config = {k: v for k, v in vars(args).items() if k != "out"}
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "config": config,
        "environment": gpu_environment(args),
        "rows": [],
        "notes": [],
        "_t0": time.time(),
        "_skip": {"tensorrt": tensorrt_skip_reason(args)},
    }
    if report["_skip"]["tensorrt"] and "tensorrt" in args.backends:
        report["notes"].append(f"TensorRT skipped: {report['_skip']['tensorrt']}")
    frames = sample_frames()
    log(f"{len(frames)} images; rows: {', '.join(f'{m}/{b}' for m, b in jobs(args))}")
    for model, backend in jobs(args):
        row = run_job(model, backend, args, frames, report)
        if row is not None:
            report["rows"].append(row)
            write(report, out, final=False)
    write(report, out, final=True)
    print(text_report(report), flush=True)
    log(f"wrote {out / 'bench.json'}, {out / 'bench.txt'}" + ("" if (out / "fps.png").exists() else " (no plot)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
