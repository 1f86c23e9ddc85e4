"""`edgedet tune`: the most accurate deployment that meets a latency or throughput target on this machine (or the
fastest that reaches an AP), measured, resumable, with its evidence in the manifest of the artifact it exports.

The search is successive halving over the space of tune_space.py:
1. speed first, for every candidate (cheap: build through the artifact cache, load, interleaved rounds of
   end-to-end calls; p50 and p90, or frames/s with --streams callers for a throughput target); candidates that
   turn out to run the same thing (a hint the device ignores) are merged;
2. INT8 (with --calib): `calibrate`'s strategy and gate, only for float candidates whose latency is near the target
   (within a factor INT8_REACH either side: INT8 cannot rescue a candidate that misses by more, and one far under
   the target has faster company of its own), or for an AP target, for the fastest that clear it with room to spare;
3. AP on a subset of the validation set for the candidates that meet the speed target; the better half;
4. full AP only for the Pareto front (speed vs subset AP) of that half, and for the f32 reference each reduced
   precision is gated against (bf16, f16, INT8: an AP drop over --max-ap-drop fails it, and a failed precision is
   never chosen);
5. the choice: the highest full AP that meets the speed target (or the fastest that reaches the AP target).
--exhaustive measures full AP (and INT8) for every candidate instead: the grid a tuned choice can be checked against.

Every measurement is written to the cache as it is taken (tune_points.py); --budget-min stops the search where it
is, chooses among what was measured and lists what it skipped.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import edgedet.precision as gates
from edgedet.errors import InputError

from . import tune_points as measure
from .report import pareto
from .tune_space import EXACT, Candidate, backends_for, runtime_precisions, space

INT8_REACH = 1.6  # the most a CPU INT8 artifact gains end to end over float: "near the target" is within this factor
SUBSET_MIN = 8  # images in the AP subset, at least
SUBSET_MARGIN = 0.02  # an AP target: candidates within this of it on the subset still get a full AP
AP_TIE = 1e-4  # APs this close are the same accuracy: the faster of them is chosen
GROUP = 6  # candidates loaded and timed together (interleaved)
INT8_BASE_SECONDS = 60  # a calibration's cost before its evaluations, for the budget


@dataclass(frozen=True)
class Target:
    kind: str  # latency | min_ap | fps
    value: float
    streams: int = 1

    @property
    def mode(self) -> str:
        return "throughput" if self.kind == "fps" else "latency"

    def ms_per_frame(self, point: dict) -> float | None:
        """The speed a Pareto front is drawn on: end-to-end ms per frame (throughput: 1000 / frames per second)."""
        speed = point.get("speed") or {}
        if self.kind == "fps":
            return 1000.0 / speed["fps"] if speed.get("fps") else None
        return speed.get("p50")

    def speed_ok(self, point: dict) -> bool:
        speed = point.get("speed") or {}
        if self.kind == "latency":
            return speed.get("p50", math.inf) <= self.value
        if self.kind == "fps":
            return speed.get("fps", 0.0) >= self.value * self.streams
        return bool(speed)

    def miss(self, point: dict) -> float:
        """How far a candidate is from the speed target (>1: slower than it)."""
        speed = point.get("speed") or {}
        if self.kind == "fps":
            return self.value * self.streams / max(speed.get("fps", 1e-9), 1e-9)
        return speed.get("p50", math.inf) / self.value if self.kind == "latency" else 0.0

    def describe(self) -> str:
        return {
            "latency": f"end-to-end latency p50 <= {self.value:g} ms (batch 1)",
            "min_ap": f"AP >= {self.value:g}, fastest",
            "fps": f"{self.value:g} FPS on each of {self.streams} stream(s) ({self.value * self.streams:g} frames/s)",
        }[self.kind]


@dataclass
class TuneRequest:
    models: list  # [(name, weights)]
    data: str
    target: Target
    out: str
    images: str | None = None
    calib: str | None = None
    imgsz: int | None = None
    sizes: list | None = None
    backends: list | None = None
    device: str | None = None
    budget_min: float = 30.0
    max_ap_drop: float = gates.DEFAULT_BUDGET
    subset: float = 0.25
    exhaustive: bool = False
    iters: int = 30
    conf: float = 0.25
    cache: Path | None = None  # points and INT8 artifacts (default: <edgedet cache>/tune)

    def validate(self) -> None:
        if not 0 <= self.max_ap_drop < 1:
            raise InputError("--max-ap-drop must be in [0, 1)")
        if not 0 < self.subset <= 1:
            raise InputError("--subset must be in (0, 1]")
        if self.budget_min <= 0:
            raise InputError("--budget-min must be > 0")
        if self.target.value <= 0 or self.target.streams < 1:
            raise InputError("the target must be > 0 (and --streams >= 1)")


@dataclass
class Entry:
    cand: Candidate
    point: dict = field(default_factory=dict)
    status: str = "pending"  # measured | duplicate | unsupported | failed | skipped

    @property
    def executed(self) -> str:
        return self.point.get("executed", "")


class Search:
    def __init__(self, req: TuneRequest, log=print):
        req.validate()
        from edgedet.data.coco import load_coco

        self.req, self.log = req, log
        self.t0 = time.perf_counter()
        self.deadline = self.t0 + req.budget_min * 60
        self.store = measure.Points(req.cache)
        self.dataset = load_coco(req.data, req.images)
        if not self.dataset.images:
            raise InputError(f"{req.data}: no usable validation images")
        n = max(SUBSET_MIN, math.ceil(len(self.dataset.images) * req.subset))
        self.subset = self.dataset.images[: min(n, len(self.dataset.images))]
        self.subset_key = measure.data_key(req.data, self.subset)
        self.full_key = measure.data_key(req.data, self.dataset.images)
        self.frames = measure.frames_of(self.dataset)
        self.entries: dict[str, Entry] = {}
        self.skipped: list[dict] = []
        self.measured_now = 0  # measurements taken in this run (the rest came from the cache)

    # ------------------------------------------------------------------ budget
    def left(self) -> float:
        return self.deadline - time.perf_counter()

    def skip(self, what: str, why: str) -> None:
        self.skipped.append({"what": what, "why": why})
        self.log(f"  skipped {what}: {why}")

    # ------------------------------------------------------------------ artifacts and detectors
    def artifact(self, cand: Candidate) -> Path:
        if cand.build == "int8":
            return Path(self.entries[cand.key()].point["artifact"])
        from edgedet.api import build

        device = cand.device if cand.spec.build_format.device_specific else None
        return build(cand.model, cand.spec, device=device, **cand.build_keywords()).path

    def load(self, cand: Candidate, path: Path | None = None):
        from edgedet.runtimes import Detector

        if path is None:
            path = Path(self.entries[cand.key()].point["artifact"])
            if not path.is_file() and cand.build != "int8":  # the artifact cache was cleaned since: rebuilt
                path = self.artifact(cand)
        return Detector.load(
            path, backend=cand.spec, device=cand.device, score_threshold=self.req.conf, **cand.runtime_options()
        )

    # ------------------------------------------------------------------ 1. speed
    def measure_speed(self, cands: list[Candidate]) -> None:
        seen = {e.point["identity"]: k for k, e in self.entries.items() if e.point.get("identity")}
        group: dict = {}
        for cand in cands:
            entry = self.entries.setdefault(cand.key(), Entry(cand, self.store.get(cand)))
            if self._known(entry, seen):
                continue
            if self.left() <= 0:
                entry.status = "skipped"
                self.skip(cand.label, "budget spent before its speed was measured")
                continue
            det = self._prepare(entry, seen)
            if det is not None:
                group[cand.key()] = det
            if len(group) >= GROUP:
                self._time(group)
        self._time(group)

    def _known(self, entry: Entry, seen: dict) -> bool:
        """A point from an earlier run: its status and speed are reused as they are."""
        p = entry.point
        status = p.get("status")
        if status in ("duplicate", "unsupported", "failed") or (status == "measured" and p.get("speed")):
            entry.status = status
            self.store.loaded += 1
            if status == "measured":
                seen.setdefault(p["identity"], entry.cand.key())
            return True
        return False

    def _prepare(self, entry: Entry, seen: dict):
        """Build and load one candidate; None when it is a duplicate, unsupported here or failed to build."""
        cand = entry.cand
        try:
            path = self.artifact(cand)
            det = self.load(cand, path)
        except Exception as e:  # noqa: BLE001 - a candidate that cannot run here is reported, the others compete
            entry.status = "failed"
            if _transient(e):  # a full disk or memory that ran out this time: the next run tries again
                entry.point = {**entry.point, "status": "failed", "why": str(e)[:300]}
            else:
                entry.point = self.store.put(cand, status="failed", why=str(e)[:300])
            self.log(f"  {cand.label}: cannot build or load here: {e}")
            return None
        from edgedet.manifest import Manifest

        executed = det.runner.execution_precision
        asked = cand.runtime if cand.runtime not in (EXACT, "default") else None
        if asked and gates.float_part(executed) != asked:
            det.close()
            entry.status = "unsupported"
            entry.point = self.store.put(
                cand, status="unsupported", executed=executed, why=f"asked {asked}, ran {executed}"
            )
            return None
        m = Manifest.read(path)
        selectors = {"inference_precision", *cand.spec.exact_options}  # what picks the precision: `executed` says it
        options = {k: v for k, v in cand.runtime_options().items() if k not in selectors}
        identity = (
            f"{gates.artifact_identity(m)}|{cand.device}|{executed}|{sorted(options.items())}|{cand.mode}|{cand.batch}"
        )
        if identity in seen:
            det.close()
            entry.status = "duplicate"
            entry.point = self.store.put(cand, status="duplicate", of=seen[identity], executed=executed)
            return None
        seen[identity] = cand.key()
        entry.point = self.store.put(cand, artifact=str(path), executed=executed, identity=identity)
        return det

    def _time(self, group: dict) -> None:
        if not group:
            return
        try:
            if self.req.target.mode == "throughput":
                speeds = {k: self._throughput(k, d) for k, d in group.items()}
            else:
                speeds = measure.latency(group, self.frames, self.req.iters)
            for k, speed in speeds.items():
                e = self.entries[k]
                e.point = self.store.put(e.cand, status="measured", speed=speed)
                e.status = "measured"
                self.measured_now += 1
                shown = f"{speed['fps']:.1f} frames/s" if "fps" in speed else f"p50 {speed['p50']:.2f} ms"
                self.log(f"  {e.cand.label:<48} runs {e.executed:<28} {shown}")
        finally:
            for d in group.values():
                d.close()
            group.clear()

    def _throughput(self, key: str, det) -> dict:
        cand = self.entries[key].cand
        rounds = [
            measure.throughput(det, self.frames, self.req.target.streams, cand.batch, self.req.iters) for _ in range(3)
        ]
        best = sorted(rounds, key=lambda r: r["fps"])[1]  # the median of three rounds
        return {**best, "round_fps": [r["fps"] for r in rounds]}

    # ------------------------------------------------------------------ 2. INT8
    def int8_stage(self) -> None:
        from edgedet.converters.int8.strategies import STRATEGIES

        t = self.req.target
        bases = [
            e
            for e in self.measured()
            if e.cand.backend in STRATEGIES
            and e.cand.build == "fp32"
            and gates.float_part(e.executed) == "f32"  # one per model, size and backend: its f32 run
            and e.cand.postprocess == "host"
            and e.cand.batch == 1
        ]
        if not self.req.exhaustive:
            if t.kind == "min_ap":
                bases = [e for e in bases if (self._ap(e, self.subset_key) or -1.0) >= t.value + self.req.max_ap_drop]
                bases = sorted(bases, key=lambda e: t.ms_per_frame(e.point))[:2]
            else:
                bases = [e for e in bases if 1.0 / INT8_REACH <= t.miss(e.point) <= INT8_REACH]
        # every calibration of this run shares its frames, gate data and budget: another --calib, --data or
        # --max-ap-drop is another calibration (the frames listed once, not per base)
        inputs = f"{measure.files_key(self.req.calib)}|{self.full_key}|{self.req.max_ap_drop}"
        inputs_key = hashlib.sha256(inputs.encode()).hexdigest()[:12]
        for base in bases:
            self._int8(base, STRATEGIES[base.cand.backend], inputs_key)

    def _int8(self, base: Entry, strategy, inputs_key: str) -> None:
        from edgedet.converters.int8.pipeline import CalibrateRequest, calibrate

        c = base.cand
        what = f"INT8 of {c.label}"
        # beside this machine's points (7-bit weights depend on the CPU), one per float base and calibration inputs
        out = self.store.root / "int8" / f"{c.key()}-{inputs_key}"
        report_path = out / "calibration_report.json"
        report = _read_json(report_path)
        if report is None:
            full_eval = (base.point.get("ap", {}).get(self.full_key) or {}).get("seconds", 20.0)
            estimate = INT8_BASE_SECONDS + 4 * full_eval
            if self.left() < estimate:
                self.skip(
                    what,
                    f"a calibration takes about {estimate:.0f} s; {max(0.0, self.left()):.0f} s of the budget left",
                )
                return
            self.log(f"  calibrating {what} (calibrate's strategy '{strategy.name}' and gate) ...")
            try:
                with _stdout_to_stderr():  # NNCF logs and draws progress on stdout, where --json goes
                    report = calibrate(
                        CalibrateRequest(
                            model=c.model,
                            calib=self.req.calib,
                            out=str(out),
                            weights=c.weights,
                            imgsz=c.imgsz,
                            backends=(c.backend,),
                            val=self.req.data,
                            val_images=self.req.images,
                            max_map_drop=self.req.max_ap_drop,
                            speed_iters=0,
                        ),
                        log=lambda m: None,
                    )
            except KeyboardInterrupt:
                raise
            except Exception as e:  # noqa: BLE001 - NNCF or a quantizer may raise anything: the search goes on
                self.skip(what, f"calibration failed: {e}")
                return
            self.measured_now += 1
        row = report["artifacts"][0]
        path = Path(row["artifact"])
        if path.suffix not in c.spec.build_format.suffixes:  # e.g. TensorRT: a Q/DQ ONNX becomes an engine
            try:
                path = _convert(path, c)
            except Exception as e:  # noqa: BLE001 - as above
                self.skip(what, f"conversion of the INT8 ONNX failed: {e}")
                return
        cands = [c.with_(build="int8", runtime=r) for r in runtime_precisions(c.spec)]
        for cand in cands:
            entry = self.entries.setdefault(cand.key(), Entry(cand, self.store.get(cand)))
            entry.point = self.store.put(
                cand,
                artifact=str(path),
                int8_gate={k: row.get(k) for k in ("AP", "drop", "passed", "float_layers", "preset")},
                base=c.key(),
            )
        self.measure_speed(cands)

    # ------------------------------------------------------------------ 3-4. accuracy
    def measured(self) -> list[Entry]:
        return [e for e in self.entries.values() if e.status == "measured"]

    def _ap(self, e: Entry, key: str) -> float | None:
        return (e.point.get("ap", {}).get(key) or {}).get("AP")

    def evaluate(self, e: Entry, key: str) -> float | None:
        """AP of a candidate on the subset or the full set (from the cache where it was measured before)."""
        have = self._ap(e, key)
        if have is not None:
            return have
        images = self.subset if key == self.subset_key else self.dataset.images
        what = f"{'subset' if key == self.subset_key else 'full'} AP of {e.cand.label}"
        if self.left() <= 0:
            self.skip(what, "budget spent")
            return None
        with self.load(e.cand) as det:
            stats = measure.evaluate(det, self.dataset, images)
        e.point = self.store.put_ap(e.cand, key, stats)
        self.measured_now += 1
        self.log(f"  {what}: {stats['AP']:.4f}")
        return stats["AP"]

    def accuracy_stage(self) -> None:
        t, req = self.req.target, self.req
        pool = self.measured() if t.kind == "min_ap" else [e for e in self.measured() if t.speed_ok(e.point)]
        pool.sort(key=lambda e: t.ms_per_frame(e.point))
        if req.exhaustive:
            for e in self.measured():
                self.evaluate(e, self.full_key)
            return
        for e in pool:
            self.evaluate(e, self.subset_key)
        pool = [e for e in pool if self._ap(e, self.subset_key) is not None]
        if t.kind == "min_ap":
            pool = [e for e in pool if self._ap(e, self.subset_key) >= t.value - SUBSET_MARGIN]
        else:
            pool = sorted(pool, key=lambda e: -self._ap(e, self.subset_key))[: max(1, math.ceil(len(pool) / 2))]
        pts = [(t.ms_per_frame(e.point), self._ap(e, self.subset_key)) for e in pool]
        front = sorted((pool[i] for i in pareto(pts)), key=lambda e: t.ms_per_frame(e.point))
        for e in front:
            self.evaluate(e, self.full_key)
            if t.kind == "min_ap" and self._eligible(e):  # the fastest that reaches the AP: the rest are slower
                break

    def reference(self, e: Entry) -> Entry | None:
        """The f32 candidate a reduced precision is gated against: the same model, size and post-processing run
        in f32 (on the same backend where it was measured, else on another)."""
        c = e.cand
        refs = [
            r
            for r in self.measured()
            if (r.cand.model, r.cand.weights, r.cand.imgsz, r.cand.postprocess)
            == (c.model, c.weights, c.imgsz, c.postprocess)
            and r.cand.build == "fp32"
            and gates.float_part(r.executed) == "f32"
            and not gates.is_int8(r.executed)
        ]
        refs.sort(key=lambda r: (r.cand.backend != c.backend, self._ap(r, self.full_key) is None))
        return refs[0] if refs else None

    def gate(self, e: Entry) -> dict | None:
        """None for a candidate that executes plain f32; else its verdict against its f32 reference (measuring that
        reference's full AP where needed), INT8 also needing calibrate's own gate."""
        if gates.float_part(e.executed) == "f32" and not gates.is_int8(e.executed):
            return None
        ap = self._ap(e, self.full_key)
        ref = self.reference(e)
        if ap is None or ref is None:
            return {"passed": None, "why": "no full AP" if ap is None else "no f32 reference measured"}
        ref_ap = self.evaluate(ref, self.full_key)
        if ref_ap is None:
            return {"passed": None, "why": "the f32 reference's AP was not measured (budget)"}
        verdict = gates.verdict(ap, ref_ap, self.req.max_ap_drop, reference=ref.cand.label, source="tune")
        int8 = e.point.get("int8_gate")
        if int8 is not None and int8.get("passed") is False:
            verdict = {**verdict, "passed": False, "why": "calibrate's INT8 gate failed"}
        reduced = gates.float_part(e.executed)
        if reduced in gates.REDUCED:
            from edgedet.manifest import Manifest

            gates.record(Manifest.read(e.point["artifact"]), e.cand.backend, reduced, verdict)
        return verdict

    def _eligible(self, e: Entry) -> bool:
        t = self.req.target
        ap = self._ap(e, self.full_key)
        if ap is None or not t.speed_ok(e.point):
            return False
        verdict = self.gate(e)
        e.point["gate"] = verdict
        if verdict is not None and verdict.get("passed") is not True:
            return False
        return t.kind != "min_ap" or ap >= t.value

    # ------------------------------------------------------------------ 5. choice
    def choose(self) -> Entry | None:
        t = self.req.target
        eligible = [e for e in self.measured() if self._eligible(e)]
        if not eligible:
            return None
        if t.kind == "min_ap":
            return min(eligible, key=lambda e: (t.ms_per_frame(e.point), -self._ap(e, self.full_key)))
        best = max(self._ap(e, self.full_key) for e in eligible)
        tied = [e for e in eligible if self._ap(e, self.full_key) >= best - AP_TIE]
        return min(tied, key=lambda e: t.ms_per_frame(e.point))

    def front(self) -> list[Entry]:
        """The Pareto front (ms per frame vs full AP) of the deployable points measured: gate passed or not needed."""
        t = self.req.target
        pts = [e for e in self.measured() if self._ap(e, self.full_key) is not None]
        pts = [e for e in pts if (self.gate(e) or {"passed": True}).get("passed") is True]
        idx = pareto([(t.ms_per_frame(e.point), self._ap(e, self.full_key)) for e in pts])
        return sorted((pts[i] for i in idx), key=lambda e: t.ms_per_frame(e.point))

    def run(self) -> dict:
        req = self.req
        cands = space(
            req.models,
            backends_for(req.backends),
            req.imgsz,
            req.sizes,
            req.device,
            req.target.mode,
            (1, req.target.streams) if req.target.mode == "throughput" and req.target.streams > 1 else (1,),
        )
        self.log(f"tune: {req.target.describe()}; {len(cands)} candidates; budget {req.budget_min:g} min")
        interrupted = False
        try:
            self.measure_speed(cands)
            if req.target.kind == "min_ap" and not req.exhaustive:
                for e in self.measured():
                    self.evaluate(e, self.subset_key)
            if req.calib:
                self.int8_stage()
            elif req.exhaustive:
                self.skip("INT8 candidates", "no --calib frames given")
            self.accuracy_stage()
            chosen = self.choose()
        except KeyboardInterrupt:
            interrupted, chosen = True, None
        from .tune_output import summary

        return summary(self, chosen, interrupted)


@contextlib.contextmanager
def _stdout_to_stderr():
    """File descriptor 1 points at stderr for the block: NNCF's log handler and progress bars (and OpenVINO's C++
    prints) write to stdout, which `edgedet tune --json` keeps for its JSON alone."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):  # and Python's own prints (ONNX Runtime's quantizer)
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _transient(e: Exception) -> bool:
    """A failure of this run rather than of the candidate: not kept in the cache."""
    return isinstance(e, (OSError, MemoryError)) or "out of memory" in str(e).lower()


def _read_json(path: Path) -> dict | None:
    import json

    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    rows = data.get("artifacts") if isinstance(data, dict) else None
    if not rows or not Path(rows[0].get("artifact", "")).is_file():
        return None
    return data


def _convert(onnx_path: Path, cand: Candidate) -> Path:
    """A calibrated ONNX into the format its backend runs (the format row's from_onnx: TensorRT builds an engine)."""
    from edgedet.registry import load_object

    fmt = cand.spec.build_format
    if not fmt.from_onnx:
        raise InputError(f"{cand.backend} cannot run {onnx_path.name} and has no converter from ONNX")
    out = onnx_path.with_suffix(fmt.suffix)
    if not out.is_file():
        load_object(fmt.from_onnx)(onnx_path, out, {"device": cand.device})
    return out


def tune(req: TuneRequest, log=print) -> dict:
    return Search(req, log).run()
