"""GPU timings for the lent machine (benchmarks/gpu/check.sh runs it): EfficientDet d0 (d1 if the budget allows) at
batch 1 and 32, on one GPU, in one run:

  torch eager FP32 | torch FP16 + channels-last | + CUDA graph | + torch.compile | effdet eager FP32 (baseline)

Per row and batch: end-to-end ms (a BGR uint8 frame in memory -> Detections: letterbox, copies, network, decode,
NMS) and network-only ms (the runner on a prepared batch), p50/p90, and images/s; each row's speed-up over the effdet
baseline of the same model and batch. bench.json, bench.txt and bench.png are rewritten after every row, so a run cut
short keeps what it measured. A row that needs CUDA is skipped on a machine without it, with the reason; a row that
no longer fits the time budget is skipped, with the reason. Random weights (timing only).

    python benchmarks/gpu/bench.py --out OUT [--models d0,d1] [--budget-s 300] [--device cuda|cpu]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

# (row name, torch runner options, needs CUDA, seconds it must have left to start: compile is slow)
ROWS = (
    ("torch eager FP32", {"half": False, "channels_last": False}, False, 10),
    ("torch FP16 channels-last", {"half": True, "channels_last": True}, True, 10),
    ("torch FP16 channels-last CUDA graph", {"half": True, "channels_last": True, "cuda_graph": True}, True, 10),
    ("torch FP16 channels-last compile", {"half": True, "channels_last": True, "compile": True}, True, 90),
)
BASELINE = "effdet eager FP32"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--models", default="d0,d1", help="comma list; later models only while the budget lasts")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda where torch sees one)")
    p.add_argument("--budget-s", type=float, default=300.0)
    p.add_argument("--iters", type=int, default=50, help="batch-1 calls timed")
    p.add_argument("--iters-big", type=int, default=10, help="big-batch calls timed")
    p.add_argument("--big-batch", type=int, default=32)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--compile-on-cpu", action="store_true", help="also time torch.compile without CUDA (slow)")
    return p.parse_args(argv)


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def frames(n: int = 8) -> list[np.ndarray]:
    """Synthetic 640x480 scenes (no data set on the lent machine)."""
    from edgedet.data.synthetic import render_image

    out = []
    for i in range(n):
        img = render_image(np.random.default_rng(i), [], 640)[0]
        out.append(np.ascontiguousarray(img[80:560]))
    return out


def stats(ms: list[float], batch: int) -> dict:
    a = np.asarray(ms, float)
    p50 = float(np.percentile(a, 50))
    return {
        "p50_ms": round(p50, 3),
        "p90_ms": round(float(np.percentile(a, 90)), 3),
        "images_per_s": round(batch * 1000.0 / p50, 1),
        "n": len(ms),
    }


def timed(fn, iters: int, warmup: int, sync) -> list[float]:
    for _ in range(warmup):
        fn()
    sync()
    out = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        sync()
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def measure(call_e2e, call_net, batch: int, iters: int, warmup: int, sync) -> dict:
    t0 = time.perf_counter()
    call_e2e()  # first call: builds, captures or compiles for this shape
    first = time.perf_counter() - t0
    return {
        "first_call_s": round(first, 2),
        "e2e": stats(timed(call_e2e, iters, warmup, sync), batch),
        "net": stats(timed(call_net, iters, warmup, sync), batch),
    }


def torch_row(model: str, name: str, options: dict, device: str, frames_, args) -> dict:
    import edgedet

    det = edgedet.load(model, backend="torch", device=device, batch="dynamic", max_batch=args.big_batch, **options)
    sync = _sync(device)
    row = {"model": model, "row": name, "device": det.runner.device, "options": options}
    for batch, iters in ((1, args.iters), (args.big_batch, args.iters_big)):
        imgs = [frames_[i % len(frames_)] for i in range(batch)]
        x = det.preprocess(imgs)[0].copy()
        row[f"b{batch}"] = measure(
            lambda imgs=imgs, batch=batch: det(imgs if batch > 1 else imgs[0]),
            lambda x=x: det.runner({det.input_name: x}),
            batch,
            iters,
            args.warmup,
            sync,
        )
    det.close()
    return row


def effdet_row(model: str, device: str, frames_, args) -> dict:
    """effdet's own model and DetBenchPredict (its post-processing), eager FP32, our letterbox in front."""
    import torch
    from effdet import DetBenchPredict
    from effdet import create_model as effdet_create

    from edgedet.configs import get_config
    from edgedet.preprocess import Preprocessor

    cfg = get_config(model)
    ref = effdet_create(cfg.effdet_name, pretrained=False, pretrained_backbone=False, image_size=cfg.image_size)
    bench = DetBenchPredict(ref).to(device).eval()
    pre = Preprocessor(cfg.image_size, cfg.mean, cfg.std)
    sync = _sync(device)
    row = {"model": model, "row": BASELINE, "device": device}
    for batch, iters in ((1, args.iters), (args.big_batch, args.iters_big)):
        imgs = [frames_[i % len(frames_)] for i in range(batch)]
        x = torch.from_numpy(pre(imgs)[0]).to(device)

        @torch.inference_mode()
        def e2e(imgs=imgs):
            bench(torch.from_numpy(pre(imgs)[0]).to(device)).cpu().numpy()

        @torch.inference_mode()
        def net(x=x):
            bench(x)

        row[f"b{batch}"] = measure(e2e, net, batch, iters, args.warmup, sync)
    return row


def _sync(device: str):
    import torch

    return torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)


def environment(device: str) -> dict:
    import torch

    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "device": device,
        "cpu": platform.processor() or platform.machine(),
    }
    if device.startswith("cuda"):
        p = torch.cuda.get_device_properties(0)
        env.update(gpu=p.name, compute_capability=f"{p.major}.{p.minor}", cudnn=torch.backends.cudnn.version())
    for mod in ("timm", "effdet", "cupy", "triton", "onnxruntime", "cuda.bindings"):
        try:
            env[mod] = getattr(__import__(mod, fromlist=["_"]), "__version__", "present")
        except Exception as e:
            env[mod] = f"absent ({type(e).__name__})"
    return env


def add_ratios(rows: list[dict]) -> None:
    base = {(r["model"]): r for r in rows if r["row"] == BASELINE and "b1" in r}
    for r in rows:
        b = base.get(r["model"])
        if b is None or "b1" not in r:
            continue
        r["vs_effdet"] = {
            key: round(b[key]["e2e"]["p50_ms"] / r[key]["e2e"]["p50_ms"], 2) for key in r if key.startswith("b")
        }


def write(out: Path, result: dict) -> None:
    add_ratios(result["rows"])
    (out / "bench.json").write_text(json.dumps(result, indent=1) + "\n")
    lines = [f"# {result['env'].get('gpu', result['env']['device'])}, torch {result['env']['torch']}"]
    head = f"{'model':5} {'row':38} {'b1 e2e ms':>10} {'b1 net ms':>10} {'bN img/s':>9} {'bN net img/s':>12} {'x effdet':>9}"
    lines.append(head)
    for r in result["rows"]:
        if "skipped" in r:
            lines.append(f"{r['model']:5} {r['row']:38} skipped: {r['skipped']}")
            continue
        big = next((k for k in r if k.startswith("b") and k != "b1"), None)
        ratio = r.get("vs_effdet", {}).get("b1")
        lines.append(
            f"{r['model']:5} {r['row']:38} {r['b1']['e2e']['p50_ms']:10.2f} {r['b1']['net']['p50_ms']:10.2f} "
            f"{r[big]['e2e']['images_per_s'] if big else float('nan'):9.1f} "
            f"{r[big]['net']['images_per_s'] if big else float('nan'):12.1f} "
            f"{ratio if ratio is not None else '-':>9}"
        )
    (out / "bench.txt").write_text("\n".join(lines) + "\n")
    plot(out / "bench.png", result["rows"])


def plot(path: Path, rows: list[dict]) -> None:
    """A bar chart of batch-1 end-to-end ms per row (OpenCV: the lent machine has no matplotlib)."""
    import cv2

    done = [r for r in rows if "b1" in r]
    if not done:
        return
    h, bar, left = 40 + 34 * len(done), 26, 330
    img = np.full((h, 900, 3), 255, np.uint8)
    top = max(r["b1"]["e2e"]["p50_ms"] for r in done)
    cv2.putText(img, "batch-1 end-to-end ms (p50)", (10, 25), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1)
    for i, r in enumerate(done):
        y = 40 + 34 * i
        ms = r["b1"]["e2e"]["p50_ms"]
        w = int((900 - left - 80) * ms / top)
        color = (60, 60, 200) if r["row"] == BASELINE else (200, 120, 40)
        cv2.rectangle(img, (left, y), (left + max(w, 1), y + bar), color, -1)
        cv2.putText(img, f"{r['model']} {r['row']}"[:40], (8, y + 18), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
        cv2.putText(img, f"{ms:.2f}", (left + w + 6, y + 18), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
    cv2.imwrite(str(path), img)


def main(argv=None) -> int:
    import torch

    args = parse_args(argv)
    t_end = time.monotonic() + args.budget_s
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    cuda = device.startswith("cuda")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"command": "python benchmarks/gpu/bench.py " + " ".join(argv or []), "env": environment(device)}
    result["rows"] = []
    frames_ = frames()
    for m_i, model in enumerate(m for m in args.models.split(",") if m):
        if m_i and time.monotonic() + 60 > t_end:
            log(f"{model}: skipped, the budget is spent")
            break
        plan = [(name, opts, needs, need_s) for name, opts, needs, need_s in ROWS]
        plan.append((BASELINE, None, False, 10))
        for name, opts, needs_cuda, need_s in plan:
            left = t_end - time.monotonic()
            reason = None
            if needs_cuda and not cuda and not (opts and opts.get("compile") and args.compile_on_cpu):
                reason = "needs CUDA"
            elif left < need_s:
                reason = f"{left:.0f} s left of the budget, the row needs {need_s} s"
            if reason is None and opts and not cuda:
                opts = {k: v for k, v in opts.items() if k not in ("half", "channels_last", "cuda_graph")}
            if reason:
                log(f"{model} {name}: skipped ({reason})")
                result["rows"].append({"model": model, "row": name, "skipped": reason})
                write(out, result)
                continue
            log(f"{model} {name} ...")
            t0 = time.perf_counter()
            try:
                row = (
                    effdet_row(model, device, frames_, args)
                    if opts is None
                    else torch_row(model, name, opts, device, frames_, args)
                )
            except Exception as e:  # one failing row does not stop the others
                row = {"model": model, "row": name, "skipped": f"failed: {type(e).__name__}: {str(e)[:300]}"}
            row["seconds"] = round(time.perf_counter() - t0, 1)
            result["rows"].append(row)
            write(out, result)
            log(f"{model} {name}: {row.get('b1', {}).get('e2e', row.get('skipped'))}")
    print((out / "bench.txt").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
