"""edgedet command line: info, export, detect, bench (and more as they land).

User errors print one line and exit 2; Ctrl-C exits 130 after saying what was kept.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import EdgeDetError, InputError

COMMANDS = {}


def command(name: str, help: str):
    def deco(fn):
        COMMANDS[name] = (help, fn)
        return fn
    return deco


def _models(value: str) -> list[str]:
    names = [v.strip() for v in value.split(",") if v.strip()]
    if not names:
        raise argparse.ArgumentTypeError("give at least one model name")
    return names


def _batch(value: str):
    if value == "dynamic":
        return value
    try:
        b = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"batch must be a positive integer or 'dynamic', got {value!r}") from None
    if b < 1:
        raise argparse.ArgumentTypeError("batch must be >= 1")
    return b


def _positive(value: str) -> int:
    try:
        v = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


def _emit(obj, as_json: bool, text: str) -> None:
    print(json.dumps(obj, indent=2) if as_json else text)


# ------------------------------------------------------------------------------------------------ info
@command("info", "model configuration, parameters and FLOPs")
def _info_args(p: argparse.ArgumentParser):
    p.add_argument("--model", type=_models, required=True, help="d0..d7, d7x, lite0..lite4, lite3x, test (comma list)")
    p.add_argument("--imgsz", type=_positive, help="override the input size")
    p.add_argument("--num-classes", type=_positive)
    p.add_argument("--json", action="store_true")
    return _info


def _info(a) -> int:
    from .info import model_info
    rows = [model_info(m, imgsz=a.imgsz, num_classes=a.num_classes) for m in a.model]
    if a.json:
        print(json.dumps(rows[0] if len(rows) == 1 else rows, indent=2))
        return 0
    for r in rows:
        paper = r.get("paper") or {}
        print(f"{r['model']}: input {r['input_size'][0]}x{r['input_size'][1]}, backbone {r['backbone']}, "
              f"BiFPN {r['bifpn_width']}x{r['bifpn_depth']}, head depth {r['head_depth']}, levels P{r['min_level']}-P{r['max_level']}")
        line = f"  params {r['params']:,} ({r['params'] / 1e6:.2f}M)   {r['gmacs']:.3f} GMACs (multiply-adds) = {r['gflops']:.3f} GFLOPs"
        if paper:
            line += f"   [paper: {paper['params_m']}M params, {paper['flops_b']}B multiply-adds]"
        print(line)
    return 0


# ------------------------------------------------------------------------------------------------ export
@command("export", "export a model to ONNX, OpenVINO IR or a torch artifact, with its manifest")
def _export_args(p):
    p.add_argument("--model", required=True, help="model name (d0..d7x, lite0..lite4, test)")
    p.add_argument("--weights", help="effdet-layout .pth checkpoint, or 'coco' for the published one")
    p.add_argument("--num-classes", type=_positive)
    p.add_argument("--imgsz", type=_positive)
    p.add_argument("--batch", type=_batch, default=1, help="static batch size or 'dynamic'")
    p.add_argument("--max-batch", type=_positive, default=32, help="largest batch of a dynamic profile")
    p.add_argument("--postprocess", choices=["host", "graph"], default="host")
    p.add_argument("--format", choices=["onnx", "openvino", "torch"], default="onnx")
    p.add_argument("--precision", choices=["fp32", "fp16"], default="fp32")
    p.add_argument("--u8-input", action="store_true", help="OpenVINO: bake u8 NHWC BGR input preprocessing into the IR")
    p.add_argument("--exporter", choices=["torchscript", "dynamo"], default="torchscript")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--json", action="store_true")
    return _export


def _export(a) -> int:
    from .converters.pipeline import FORMAT_BACKENDS, BuildRequest, export_artifact
    from .progress import spinner
    options = {}
    if a.u8_input:
        if a.format != "openvino":
            raise InputError("--u8-input applies to --format openvino only")
        options["u8_bgr_input"] = True
    if a.format == "onnx":
        options["exporter"] = a.exporter
    req = BuildRequest(model=a.model, backend=FORMAT_BACKENDS[a.format], precision=a.precision, weights=a.weights,
                       num_classes=a.num_classes, imgsz=a.imgsz, batch=a.batch, max_batch=a.max_batch,
                       postprocess=a.postprocess, options=options)
    with spinner(f"exporting {a.model} to {a.format} ({a.precision})"):
        path = export_artifact(req, a.out)
    from .manifest import manifest_path
    _emit({"artifact": str(path), "manifest": str(manifest_path(path))}, a.json,
          f"wrote {path}\n      {manifest_path(path)}")
    return 0


# ------------------------------------------------------------------------------------------------ detect
@command("detect", "run detection on images, a folder, a video, a camera or a stream URL")
def _detect_args(p):
    p.add_argument("--model", required=True, help="artifact (.onnx, .xml, .pth, .engine) or model name")
    p.add_argument("--source", required=True, action="append",
                   help="image, folder, video file, camera index, rtsp/http URL or GStreamer pipeline "
                        "(repeat for several streams, batched together)")
    p.add_argument("--backend", help="onnxruntime | openvino | torch | tensorrt (default: by artifact suffix)")
    p.add_argument("--device", help="cpu, cuda, CPU/GPU (OpenVINO)")
    p.add_argument("--weights", help="weights for a model name")
    p.add_argument("--imgsz", type=_positive, help="input size for a model name")
    p.add_argument("--conf", type=float, default=0.25, help="score threshold")
    p.add_argument("--save", help="images: folder for annotated images; video/stream: annotated video (out.mp4)")
    p.add_argument("--json", action="store_true", help="print detections as JSON")
    g = p.add_argument_group("video and streams")
    g.add_argument("--jsonl", help="write one JSON line per frame (source, frame, time, latency, detections)")
    g.add_argument("--show", action="store_true", help="show the annotated stream in a window (q quits)")
    g.add_argument("--realtime", action="store_true", help="drop frames to stay current instead of queueing")
    g.add_argument("--reconnect", type=int, default=5, help="reconnect attempts when a live source drops")
    g.add_argument("--timeout", type=float, default=10.0, help="seconds to open or read a network source")
    g.add_argument("--hint", choices=("latency", "throughput"), default="throughput",
                   help="OpenVINO performance hint for streams (throughput keeps several requests in flight)")
    return _detect


def load_detector(a, **options):
    """The Detector of detect's --model/--backend/--device/--conf/--weights/--imgsz."""
    from .runtimes import Detector
    build = {k: v for k, v in (("weights", a.weights), ("imgsz", a.imgsz)) if v}
    return Detector.load(a.model, backend=a.backend, device=a.device, score_threshold=a.conf, **build, **options)


def _detect(a) -> int:
    from .preprocess import read_image
    from .progress import progress
    from .runtimes.sources import FolderSource, source_kind
    kinds = [source_kind(s) for s in a.source]  # raises for a missing path
    if len(a.source) > 1 or kinds[0] not in ("image", "folder") or a.jsonl or a.show:
        from .stream_cli import detect_stream
        return detect_stream(a)
    src = Path(a.source[0])
    files = FolderSource(src).files if kinds[0] == "folder" else [src]
    det = load_detector(a)
    out_dir = Path(a.save) if a.save else None
    results, failures = [], []
    for f in progress(files, desc="detect", disable=len(files) < 5):
        try:
            img = read_image(f)
        except EdgeDetError as e:
            failures.append(str(e))
            print(f"skipped: {e}", file=sys.stderr)
            continue
        d = det(img)
        results.append({"image": str(f), "detections": d.to_dict(), "ms": round(det.timing.total, 2)})
        if out_dir is not None:
            _save_annotated(out_dir, f, img, d)
        if not a.json:
            top = ", ".join(f"{l} {s:.2f}" for l, s in zip(d.labels[:5], d.scores[:5]))
            print(f"{f.name}: {len(d)} detections ({det.timing.total:.1f} ms){': ' + top if top else ''}")
    if a.json:
        print(json.dumps({"model": a.model, "backend": det.backend, "device": det.device, "results": results}, indent=2))
    if failures and not results:
        raise InputError(failures[0] if len(failures) == 1 else f"no image could be read ({len(failures)} failed)")
    return 0


def _save_annotated(out_dir: Path, src: Path, img, dets) -> None:
    import cv2
    from .fileio import atomic_path
    from .visualize import draw
    out = out_dir / f"{src.stem}.jpg"
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        ok, buf = cv2.imencode(".jpg", draw(img, dets))
        Path(tmp).write_bytes(buf.tobytes())


# ------------------------------------------------------------------------------------------------ eval
@command("eval", "COCO mAP of an artifact or model on a COCO-format dataset")
def _eval_args(p):
    p.add_argument("--model", required=True, help="artifact (.onnx, .xml, .pth, .engine) or model name")
    p.add_argument("--weights", help="weights for a model name")
    p.add_argument("--data", required=True, help="COCO annotation json")
    p.add_argument("--images", help="image folder (default: images/ beside the json)")
    p.add_argument("--backend")
    p.add_argument("--device")
    p.add_argument("--conf", type=float, default=0.001, help="evaluation score threshold (low, not the deploy one)")
    p.add_argument("--json", action="store_true")
    return _eval


def _eval(a) -> int:
    from .evaluation import evaluate_detector
    from .progress import progress
    from .runtimes import Detector
    opts = {"weights": a.weights} if a.weights else {}
    det = Detector.load(a.model, backend=a.backend, device=a.device, **opts)
    stats = evaluate_detector(det, a.data, a.images, score_threshold=a.conf, progress=lambda it: progress(it, desc="eval"))
    stats.update({"model": a.model, "backend": det.backend, "precision": det.manifest.precision})
    text = (f"{a.model} [{det.backend} {det.manifest.precision}] on {stats['images']} images: "
            f"AP {stats['AP']:.4f}  AP50 {stats['AP50']:.4f}  AP75 {stats['AP75']:.4f}  "
            f"APs {stats['AP_small']:.4f}  APm {stats['AP_medium']:.4f}  APl {stats['AP_large']:.4f}")
    _emit(stats, a.json, text)
    return 0


# ------------------------------------------------------------------------------------------------ train
@command("train", "fine-tune a model on COCO-format data (resumable)")
def _train_args(p):
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True, help="training annotation json")
    p.add_argument("--images", help="training image folder (default: images/ beside the json)")
    p.add_argument("--val-data", help="validation annotation json (per-epoch mAP)")
    p.add_argument("--val-images")
    p.add_argument("--weights", help="initial effdet-layout checkpoint")
    p.add_argument("--epochs", type=_positive, default=10)
    p.add_argument("--imgsz", type=_positive)
    p.add_argument("--batch", type=_positive, default=8)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-resume", action="store_true", help="start over even if OUT/last.pth exists")
    p.add_argument("--out", required=True)
    return _train


def _train(a) -> int:
    from .progress import progress
    from .train import TrainConfig, train
    cfg = TrainConfig(model=a.model, data=a.data, images=a.images, val_data=a.val_data, val_images=a.val_images,
                      out=a.out, weights=a.weights, epochs=a.epochs, imgsz=a.imgsz, batch=a.batch, lr=a.lr,
                      workers=a.workers, device=a.device, seed=a.seed, resume=not a.no_resume)
    result = train(cfg, log=lambda m: print(m, flush=True), progress=lambda it, desc: progress(it, desc=desc))
    print(f"best validation AP {result['best_val_AP']:.4f}; checkpoints in {result['out']}")
    return 0


# ------------------------------------------------------------------------------------------------ calibrate
@command("calibrate", "INT8 artifacts for OpenVINO / ONNX Runtime / TensorRT from one calibration set, gated on mAP")
def _calibrate_args(p):
    p.add_argument("--model", required=True, help="model name or FP32 .onnx artifact")
    p.add_argument("--weights")
    p.add_argument("--imgsz", type=_positive)
    p.add_argument("--calib", required=True, help="image folder, video, or COCO json")
    p.add_argument("--num", type=_positive, default=300)
    p.add_argument("--every", type=_positive, help="video: take every k-th frame")
    p.add_argument("--method", choices=["minmax", "entropy", "percentile"], default="percentile")
    p.add_argument("--backend", default="openvino,onnxruntime", help="comma list of openvino, onnxruntime, trt")
    p.add_argument("--val", help="COCO json for the accuracy gate")
    p.add_argument("--images", help="validation image folder")
    p.add_argument("--max-map-drop", type=float, default=0.01)
    p.add_argument("--out", required=True)
    p.add_argument("--json", action="store_true")
    return _calibrate


def _calibrate(a) -> int:
    from .converters.int8.pipeline import CalibrateRequest, calibrate
    from .runtimes.registry import get_backend
    backends = tuple(get_backend(b.strip()).name for b in a.backend.split(",") if b.strip())
    req = CalibrateRequest(model=a.model, calib=a.calib, out=a.out, weights=a.weights, imgsz=a.imgsz, num=a.num,
                           every=a.every, method=a.method, backends=backends, val=a.val, val_images=a.images,
                           max_map_drop=a.max_map_drop)
    report = calibrate(req, log=(lambda m: print(m, file=sys.stderr)) if a.json else print)
    if a.json:
        print(json.dumps(report, indent=2))
    failed = [r["backend"] for r in report["artifacts"] if r["passed"] is False]
    return 1 if failed else 0


# ------------------------------------------------------------------------------------------------ check
@command("check", "static compatibility check of an ONNX file for a backend (runs without the backend)")
def _check_args(p):
    p.add_argument("onnx", help="ONNX file")
    p.add_argument("--backend", choices=["trt", "tensorrt"], default="trt")
    p.add_argument("--min-batch", type=_positive)
    p.add_argument("--max-batch", type=_positive)
    p.add_argument("--json", action="store_true")
    return _check


def _check(a) -> int:
    from .converters.trt_check import check_tensorrt_onnx
    if not Path(a.onnx).is_file():
        raise InputError(f"ONNX file not found: {a.onnx}")
    lo, hi = a.min_batch, a.max_batch
    if lo is None and hi is None:
        try:
            from .manifest import Manifest
            b = Manifest.read(a.onnx, verify=False).batch
            lo, hi = b["min"], b["max"]
        except EdgeDetError:
            pass
    try:
        rep = check_tensorrt_onnx(a.onnx, lo, hi)
    except Exception as e:  # onnx.load of a corrupt file
        raise InputError(f"cannot read {a.onnx} as ONNX: {str(e).splitlines()[0][:200]}") from None
    if a.json:
        print(json.dumps(rep.to_dict(), indent=2))
    else:
        for f in rep.findings:
            print(f"{f.level:7s} {f.message}")
        print(f"{'PASS' if rep.ok else 'FAIL'}: {a.onnx} for TensorRT ({sum(rep.ops.values())} nodes, "
              f"{len(rep.ops)} op types" + (f", {rep.qdq['nodes']} Q/DQ" if rep.qdq else "") + ")")
    return 0 if rep.ok else 1


# ------------------------------------------------------------------------------------------------ main
def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    parser = argparse.ArgumentParser(prog="edgedet", description="EfficientDet from PyTorch to the edge.")
    parser.add_argument("--version", action="version", version=f"edgedet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, setup) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(run=setup(p))
    return parser


def main(argv: list[str] | None = None) -> int:
    _register_optional_commands()
    _sigterm_as_interrupt()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except EdgeDetError as e:
        print(f"edgedet {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"edgedet {args.command}: interrupted", file=sys.stderr)
        return 130


def _sigterm_as_interrupt() -> None:
    """SIGTERM (systemd, docker stop, kill) takes the same clean path as Ctrl-C: checkpoints and partial
    results are written before exit."""
    import signal

    def handler(signum, frame):
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (embedded use): leave signals alone
        pass


def _register_optional_commands() -> None:
    """Commands that live in their own modules register themselves on import."""
    import importlib
    for mod in ("edgedet.build_cli", "edgedet.benchmarks.cli"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:
                raise


if __name__ == "__main__":
    sys.exit(main())
