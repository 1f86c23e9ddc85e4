"""`edgedet calibrate`: calibrate once, write the INT8 artifact each backend runs fastest, gate on mAP.

Gate: with a validation set, FP32 and INT8 mAP are measured through the Detector. OpenVINO's form uses NNCF's
accuracy-aware quantization, with the validation AP as its metric: NNCF ranks the quantized layers by their
effect and reverts the fewest. The Q/DQ forms, which NNCF cannot build, use the gate's own fallback: while the
drop exceeds the budget, the next group of sensitive layers is kept in float and the artifact is rebuilt (head
predict convs, then the stem and first backbone blocks, then every head conv). Every final artifact is
re-measured by the same gate; the report says which layers stayed float, the final drop, and whether the gate
passed; an artifact that failed is marked so in its manifest.

Every precision below f32 that a backend executes by default is gated the same way: the FP32 artifact as OpenVINO
runs it by default (bf16 on BF16/AMX CPUs, f16 on GPUs) and each INT8 artifact as run by default (its float part in
bf16) are evaluated against the exact FP32 AP; the report's `reduced_precision` lists each with its verdict, the INT8
manifest carries its own (extra["precision_gates"]), and a failed precision is never run by default (the OpenVINO
runner reads the verdict and runs f32; edgedet.precision).

What the CPU can do changes the build: on CPUs without VNNI (edgedet.cpu.has_int8_dot) the x86 forms keep
weights to 7 bits (NNCF's overflow fix on every layer, ONNX Runtime's reduce_range), because those CPUs' int8
dot products sum u8 x s8 pairs in 16 bits and can saturate. A strategy's `float_prior` ops (OpenVINO: the
EfficientDet heads' depthwise convs) start in float.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import edgedet.cpu as cpuinfo
import edgedet.precision as gates
from edgedet.errors import InputError
from edgedet.fileio import write_json_atomic
from edgedet.manifest import Manifest, manifest_path, tool_versions
from edgedet.registry import backend_for, format_of, load_object
from edgedet.weights import cache_dir

from . import gate
from .builders import BuildContext
from .calibration import cache_key, load_calibration
from .strategies import Strategy, strategy_for

# Groups of layers kept in float, tried in this order when the gate fails (regexes on node names).
FLOAT_GROUPS = [
    ("head predict convs", [r"(class|box)_net/predict"]),
    ("stem and first blocks", [r"backbone/conv_stem", r"backbone/blocks\.0[./]", r"backbone/blocks\.1[./]"]),
    ("all head convs", [r"(class|box)_net/"]),
]


@dataclass
class CalibrateRequest:
    model: str
    calib: str
    out: str
    weights: str | None = None
    imgsz: int | None = None
    num: int = 300
    every: int | None = None
    method: str = "percentile"  # 99.99th percentile: minmax failed the gate on the reference model
    backends: tuple[str, ...] = ("openvino", "onnxruntime")
    val: str | None = None
    val_images: str | None = None
    max_map_drop: float = 0.01
    speed_iters: int = 30  # end-to-end calls per artifact for the INT8 vs FP32 timing (0: skip)
    ranking_subset: int = 100  # validation images NNCF's accuracy control ranks layers on (fewer: faster)
    seven_bit_weights: str = "auto"  # auto (on where this CPU has no VNNI/AMX) | on | off
    float_prior: bool = True  # start each strategy with its float_prior ops in float
    report: dict = field(default_factory=dict)


SEVEN_BIT = {"auto": lambda: cpuinfo.int8_saturates(), "on": lambda: True, "off": lambda: False}


def _cpu(req: CalibrateRequest) -> dict:
    if req.seven_bit_weights not in SEVEN_BIT:
        raise InputError(f"seven_bit_weights must be one of {', '.join(SEVEN_BIT)}, got {req.seven_bit_weights!r}")
    dot = cpuinfo.has_int8_dot()
    why = (
        "asked for"
        if req.seven_bit_weights != "auto"
        else "not an x86 CPU: no 16-bit saturation of int8 dot products"
        if not cpuinfo.is_x86()
        else "this CPU has VNNI/AMX: int8 dot products accumulate in 32 bits"
        if dot
        else "no VNNI/AMX on this CPU: its int8 dot products can saturate 16-bit sums"
    )
    return {
        "model": cpuinfo.cpu_model(),
        "isa": cpuinfo.isa_flags(),
        "int8_dot_product": dot,
        "seven_bit_weights": SEVEN_BIT[req.seven_bit_weights](),
        "why": why,
    }


def _prior(strategy: Strategy, req: CalibrateRequest) -> list[tuple[str, tuple[str, ...]]]:
    return list(strategy.float_prior) if req.float_prior else []


def _patterns(groups) -> list[str]:
    """The node-name regexes of (name, regexes) groups."""
    return [p for _, ps in groups for p in ps]


def _fp32_onnx(req: CalibrateRequest) -> Path:
    p = Path(req.model)
    if p.suffix == ".onnx":
        Manifest.read(p)
        return p
    from ..pipeline import BuildRequest, get_artifact

    return get_artifact(BuildRequest(model=req.model, format="onnx", weights=req.weights, imgsz=req.imgsz)).path


def _evaluate(path: Path, req: CalibrateRequest, strategy: Strategy | None = None) -> float:
    if strategy is None:
        return gate.evaluate(path, req.val, req.val_images)
    return gate.evaluate(path, req.val, req.val_images, strategy.evaluate_backend or strategy.backend)


def _fp32_ap(fp32: Path, req: CalibrateRequest, strategy: Strategy, cache: dict) -> float:
    """FP32 AP on the backend that evaluates the strategy's INT8 artifact, so a drop compares like with like
    (and NNCF's own FP32 baseline, measured on OpenVINO, is the gate's too)."""
    backend = strategy.evaluate_backend or strategy.backend
    if backend not in cache:
        cache[backend] = _evaluate(fp32, req, strategy)
    return cache[backend]


def _final_manifest(src: Manifest, path: Path, strategy: Strategy, calib: dict, precision_gates: dict) -> None:
    m = src.derive(
        precision="int8",
        calibration=calib,
        tools=tool_versions("onnxruntime", "openvino", "nncf"),
        extra={
            "int8_form": strategy.backend,
            "int8_strategy": strategy.name,
            "source_onnx_sha256": src.artifact.sha256,
            **({"precision_gates": precision_gates} if precision_gates else {}),
        },
    )
    m.write(path)


def _reduced_precisions(fp32: Path, strategies, bests, fp32_aps: dict, req, log) -> list[dict]:
    """The FP32 artifact and each INT8 artifact as their backends run them by default; where that is below f32
    (bf16, f16), their AP against the exact FP32 AP of the same backend, gated on the same budget as INT8."""
    out = []
    entries = [(fp32, strategy.evaluate_backend or strategy.backend, "fp32") for strategy in strategies]
    entries += [
        (Path(best["artifact"]), strategy.evaluate_backend or strategy.backend, "int8")
        for strategy, best in zip(strategies, bests)
    ]
    seen = set()
    for path, backend, built in entries:
        if (path, backend) in seen:
            continue
        seen.add((path, backend))
        executed = gate.executed_by_default(path, backend)
        reduced = gates.float_part(executed)
        if reduced not in gates.REDUCED:
            continue
        ap = gate.evaluate_as_run(path, req.val, req.val_images, backend)
        f32_ap = fp32_aps.get(backend)
        if f32_ap is None:
            f32_ap = fp32_aps[backend] = gate.evaluate(fp32, req.val, req.val_images, backend)
        verdict = gates.verdict(ap, f32_ap, req.max_map_drop, precision=reduced, executed=executed, source="calibrate")
        gates.record(Manifest.read(path), backend, reduced, verdict)
        out.append({"artifact": str(path), "built": built, "backend": backend, **verdict})
        log(
            f"  {backend:<11} {built} as run by default ({executed}): AP {ap:.4f} vs FP32 {f32_ap:.4f} "
            f"(drop {verdict['drop']:+.4f}) {'PASS' if verdict['passed'] else 'over budget: never run by default'}"
        )
    return out


def _log_row(row: dict, log) -> None:
    gated = (
        f"AP {row['AP']:.4f} (drop {row['drop']:+.4f}) {'PASS' if row['passed'] else 'over budget'}"
        if row["AP"] is not None
        else "no validation set: not gated"
    )
    log(
        f"  {row['backend']:<11} preset {row['preset']:<11} float: {', '.join(row['float_layers']) or 'none':<40} "
        + gated
    )


class _Best:
    """The best candidate so far (highest AP), copied aside because the next attempt overwrites the output."""

    def __init__(self, strategy: Strategy, out: Path, req, fp32_ap, log):
        self.strategy, self.req, self.fp32_ap, self.log = strategy, req, fp32_ap, log
        self.path = strategy.path(out, Path(req.model).stem)
        self.keep = out / f".best_{strategy.backend}"
        self.row: dict | None = None
        self.attempts = 0

    def attempt(self, build, fp32: Path, ctx: BuildContext, preset: str, float_layers, **extra) -> dict:
        """One build + gate measurement. `float_layers`: a list, or a callable giving (list, extra fields) read
        after the build (an accuracy-aware builder reports what it reverted)."""
        tb = time.perf_counter()
        ctx.preset = preset
        build(fp32, self.path, ctx)
        if callable(float_layers):
            float_layers, more = float_layers()
            extra = {**extra, **more}
        ap = _evaluate(self.path, self.req, self.strategy) if self.req.val else None
        row = {
            "backend": self.strategy.backend,
            "strategy": self.strategy.name,
            "artifact": str(self.path),
            "preset": preset,
            "float_layers": float_layers,
            "AP": ap,
            "drop": None if ap is None else round(self.fp32_ap - ap, 5),
            "build_s": round(time.perf_counter() - tb, 1),
            "round": self.attempts,
            **extra,
        }
        row["passed"] = None if ap is None else row["drop"] <= self.req.max_map_drop
        self.attempts += 1
        _log_row(row, self.log)
        if self.row is None or (ap is not None and ap > self.row["AP"]):
            self.row = row
            _stash(self.path, self.keep)
        return row

    def result(self) -> dict:
        self.row["artifact"] = str(_unstash(self.keep))
        self.row["rounds"] = self.attempts
        return self.row


def _gate_strategy(strategy: Strategy, fp32: Path, out: Path, ctx: BuildContext, req, fp32_ap, log) -> dict:
    """Build, evaluate and, while the drop is over budget, keep the next layer group in float; the best
    candidate is kept in `out`. A strategy with an accuracy-aware builder (NNCF) chooses its float layers
    itself when there is a validation set."""
    if req.val and strategy.accuracy_control:
        return _accuracy_control(strategy, fp32, out, ctx, req, fp32_ap, log)
    presets = strategy.presets if req.val else strategy.presets[:1]  # presets are compared by mAP
    build = load_object(strategy.build)
    best = _Best(strategy, out, req, fp32_ap, log)
    for rounds in range(len(FLOAT_GROUPS) + 1):
        groups = _prior(strategy, req) + FLOAT_GROUPS[:rounds]
        ctx.float_patterns = _patterns(groups)
        for preset in presets:
            best.attempt(build, fp32, ctx, preset, [g for g, _ in groups])
        if best.row["passed"] is not False:
            break
    return best.result()


def _accuracy_control(strategy: Strategy, fp32: Path, out: Path, ctx: BuildContext, req, fp32_ap, log) -> dict:
    """The library meets the budget itself, ranking layers by their effect on the validation AP and reverting the
    fewest; the saved artifact is then re-measured by the same gate as every other form. Presets in the row's
    order (OpenVINO: MIXED, then PERFORMANCE); the first that passes is kept."""
    ctx.validation = load_object(strategy.validation)(Manifest.read(fp32), req.val, req.val_images)
    prior = _prior(strategy, req)
    ctx.max_drop, ctx.ranking_subset = req.max_map_drop, req.ranking_subset
    ctx.float_patterns = _patterns(prior)
    build = load_object(strategy.accuracy_control)
    best = _Best(strategy, out, req, fp32_ap, log)

    def reverted():
        said = (
            f"{len(ctx.float_ops)} ops reverted to float by NNCF accuracy control of {ctx.quantized_ops} quantized"
            if ctx.quantized_ops
            else "NNCF accuracy control: within budget as quantized, none reverted"
        )
        return (
            [name for name, _ in prior] + [said],
            {"reverted_ops": list(ctx.float_ops), "fake_quantize_nodes": ctx.fake_quantize_nodes},
        )

    for preset in strategy.presets:
        row = best.attempt(build, fp32, ctx, preset, reverted, method="nncf.quantize_with_accuracy_control")
        if row["passed"]:
            break
    return best.result()


def calibrate(req: CalibrateRequest, log=print) -> dict:
    if not 0 <= req.max_map_drop < 1:
        raise InputError("--max-map-drop must be in [0, 1)")
    cpu = _cpu(req)
    if req.val:
        gate.check_validation(req.val, req.val_images)  # a gate on no annotations passes anything
    strategies = [strategy_for(b) for b in req.backends]
    out = Path(req.out)
    out.mkdir(parents=True, exist_ok=True)
    fp32 = _fp32_onnx(req)
    src = Manifest.read(fp32)
    t0 = time.perf_counter()
    cal = load_calibration(req.calib, req.num, req.every, src.image_size, src.model["num_classes"])
    tensors = cal.tensors(src.image_size, src.input.mean, src.input.std)
    ranges = cache_dir() / "calibration" / f"{cache_key(src.artifact.sha256, cal.data_hash, req.method)}.json"
    ranges.parent.mkdir(parents=True, exist_ok=True)
    log(
        f"calibration: {len(tensors)} images, data hash {cal.data_hash[:12]}, method {req.method}, "
        f"ranges {'cached' if ranges.is_file() else 'computed'} at {ranges}"
    )
    fp32_ap = _evaluate(fp32, req) if req.val else None
    fp32_aps: dict = {backend_for(fp32).name: fp32_ap}  # FP32 AP per evaluating backend
    report = {
        "fp32_onnx": str(fp32),
        "calibration": {
            "images": len(tensors),
            "data_hash": cal.data_hash,
            "method": req.method,
            "warnings": cal.warnings,
            "ranges_file": str(ranges),
        },
        "fp32_AP": fp32_ap,
        "max_map_drop": req.max_map_drop,
        "artifacts": [],
    }
    report["cpu"] = cpu
    log(
        f"CPU: {cpu['model']} ({' '.join(cpu['isa']) or 'no AVX2'}); 7-bit weights for the CPU forms: "
        f"{'yes' if cpu['seven_bit_weights'] else 'no'} ({cpu['why']})"
    )
    bests = []
    for strategy in strategies:
        ctx = BuildContext(
            tensors,
            src.input.name,
            req.method,
            ranges,
            [],
            "-",
            seven_bit_weights=cpu["seven_bit_weights"] and strategy.cpu_int8,
        )
        bests.append(
            _gate_strategy(
                strategy, fp32, out, ctx, req, _fp32_ap(fp32, req, strategy, fp32_aps) if req.val else None, log
            )
        )
        bests[-1]["seven_bit_weights"] = ctx.seven_bit_weights
    if req.val:
        log("gating the precisions the backends execute by default below f32 ...")
        report["reduced_precision"] = _reduced_precisions(fp32, strategies, bests, fp32_aps, req, log)
    if req.speed_iters:
        report["speed"] = _speed(fp32, strategies, bests, cal.frames[:8], req.speed_iters, log)
    for strategy, best in zip(strategies, bests):
        fp32_gate = fp32_aps.get(strategy.evaluate_backend or strategy.backend, fp32_ap)
        if best["drop"] is not None and -best["drop"] > max(req.max_map_drop, 0.01):
            # quantization does not make a working model better by more than the budget: the FP32 baseline is
            # likely out of its regime on this validation set (another input size than it was trained at, ...)
            best["warning"] = (
                f"INT8 scores {-best['drop']:.4f} AP above FP32 (FP32 AP {fp32_gate:.4f}): the "
                "FP32 model is likely out of its regime on this validation set, so the gate says "
                "little; check FP32 on data like yours"
            )
            log(f"WARNING: {strategy.backend} {best['warning']}")
        calib = {
            **report["calibration"],
            "float_layers": best["float_layers"],
            "preset": best["preset"],
            "strategy": strategy.name,
            "seven_bit_weights": best["seven_bit_weights"],
            "built_on": {"cpu": cpu["model"], "isa": cpu["isa"]},
            "gate": {
                "fp32_AP": fp32_gate,
                "int8_AP": best["AP"],
                "drop": best["drop"],
                "max_map_drop": req.max_map_drop,
                "passed": best["passed"],
                **({"warning": best["warning"]} if "warning" in best else {}),
            },
            **({"speed": best["speed"]} if "speed" in best else {}),
        }
        own_gates = {
            gates.gate_key(r["backend"], r["precision"]): {
                k: r[k] for k in ("AP", "f32_AP", "drop", "max_ap_drop", "passed")
            }
            for r in report.get("reduced_precision", [])
            if r["artifact"] == best["artifact"]
        }
        _final_manifest(src, Path(best["artifact"]), strategy, calib, own_gates)
        if best["passed"] is False:
            log(
                f"WARNING: {strategy.backend} INT8 failed the gate (drop {best['drop']:+.4f} > {req.max_map_drop}): "
                f"{best['artifact']} is marked 'passed: false' in its manifest"
            )
        report["artifacts"].append(best)
    report["seconds"] = round(time.perf_counter() - t0, 1)
    write_json_atomic(out / "calibration_report.json", report)
    return report


def _speed(fp32: Path, strategies: list[Strategy], bests: list[dict], frames, iters: int, log) -> dict:
    """Each INT8 artifact timed end to end against its backend's FP32 and the fastest FP32 of this CPU's backends,
    in one run; each best row gains `speed` with both ratios and a verdict. A slower INT8 artifact says so."""
    from edgedet.auto_backend import candidates

    fp32_backends = {b.name for b in candidates()}
    if not fp32_backends:
        log("no CPU backend installed to time FP32 against: INT8 speed not measured")
        return {}
    entries = {f"fp32 {b}": (fp32, b) for b in sorted(fp32_backends)}
    runs_on = {}
    for strategy, best in zip(strategies, bests):
        runs_on[strategy.backend] = strategy.evaluate_backend or strategy.backend
        entries[f"int8 {strategy.backend}"] = (Path(best["artifact"]), runs_on[strategy.backend])
        if runs_on[strategy.backend] not in fp32_backends:
            entries[f"fp32 {runs_on[strategy.backend]}"] = (fp32, runs_on[strategy.backend])
    log(f"timing INT8 against FP32 end to end ({len(entries)} artifacts, {iters} calls each, interleaved) ...")
    ms, precisions = gate.median_latency(entries, frames, iters)
    best_fp32 = min((k for k in ms if k.startswith("fp32 ") and k[5:] in fp32_backends), key=ms.get)
    for strategy, best in zip(strategies, bests):
        int8, own = ms[f"int8 {strategy.backend}"], ms[f"fp32 {runs_on[strategy.backend]}"]
        vs_own, vs_best = own / int8, ms[best_fp32] / int8
        verdict = (
            "faster than every FP32 here"
            if vs_best > 1
            else f"faster than its FP32, slower than the best FP32 ({best_fp32[5:]}): not the fast path here"
            if vs_own > 1
            else "slower than its own FP32: not the fast path here"
        )
        best["speed"] = {
            "int8_ms": round(int8, 2),
            "fp32_ms": round(own, 2),
            "measured_on": runs_on[strategy.backend],
            "best_fp32": {"backend": best_fp32[5:], "ms": round(ms[best_fp32], 2)},
            "vs_own_fp32": round(vs_own, 3),
            "vs_best_fp32": round(vs_best, 3),
            "verdict": verdict,
        }
        log(
            f"  {strategy.backend:<11} INT8 {int8:7.2f} ms vs its FP32 {own:7.2f} ms ({vs_own:.2f}x), vs best FP32 "
            f"{best_fp32[5:]} {ms[best_fp32]:.2f} ms ({vs_best:.2f}x): {verdict}"
        )
    return {
        "median_ms": {k: round(v, 2) for k, v in ms.items()},
        "executed_precision": precisions,
        "best_fp32": best_fp32[5:],
        "calls": iters,
    }


def _files(path: Path) -> list[Path]:
    """The artifact, its companion files and its manifest (the candidate stays loadable once unstashed)."""
    return [path] + [path.with_suffix(s) for s in format_of(path).sidecars] + [manifest_path(path)]


def _stash(path: Path, keep: Path) -> None:
    """Keep a copy of the best candidate so far (the next attempt overwrites the output path)."""
    if keep.exists():
        shutil.rmtree(keep)
    keep.mkdir()
    for f in _files(path):
        shutil.copy(f, keep / f.name)
    (keep / "main").write_text(path.name)


def _unstash(keep: Path) -> Path:
    main = keep.parent / (keep / "main").read_text()
    (keep / "main").unlink()
    for f in sorted(keep.iterdir()):
        shutil.move(f, keep.parent / f.name)
    shutil.rmtree(keep)
    return main
