"""Detector: one API over every backend. Owns pre/post-processing, batching and timing; runners only infer.

Thread safety: one Detector may be called from several threads at once. Preprocessing buffers are per
thread, the runner's call is serialised where the runner says it is not thread-safe, and each call's
results belong to that call's images.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgedet.detections import Detections
from edgedet.errors import ArtifactError, InputError
from edgedet.manifest import Manifest
from edgedet.options import check_probability
from edgedet.postprocess import NmsOptions, Postprocessor
from edgedet.preprocess import Preprocessor, read_image, to_bgr8
from edgedet.registry import backend_for, get_backend, remote_backend

from .base import Runner

DEFAULT_SCORE_THRESHOLD = 0.25


@dataclass
class Timing:
    """Milliseconds of the last call, split by stage."""

    pre: float = 0.0
    infer: float = 0.0
    post: float = 0.0

    @property
    def total(self) -> float:
        return self.pre + self.infer + self.post


# What the host does for each input form (manifest input.normalize, input.dtype): float input is letterboxed and
# scaled by the Preprocessor (host: normalised; in_graph: RGB pixels 0..255, black padding, as DeepStream's nvinfer
# with net-scale-factor 1 feeds them); uint8 input is letterboxed into an NHWC BGR buffer (mean-colour padding).
_PIXELS = ([0.0, 0.0, 0.0], [1 / 255] * 3)  # mean/std that make the Preprocessor's x * mul + add the pixel itself
_PREPROCESS = {
    ("host", "float32"): lambda inp: (False, (inp.mean, inp.std)),
    ("in_graph", "float32"): lambda inp: (False, _PIXELS),
    ("in_graph", "uint8"): lambda inp: (True, (inp.mean, inp.std)),
}


class Detector:
    def __init__(
        self,
        runner: Runner,
        manifest: Manifest,
        score_threshold: float = DEFAULT_SCORE_THRESHOLD,
        iou_threshold: float | None = None,
        max_det: int | None = None,
        classes=None,
    ):
        """`iou_threshold`, `max_det`, `classes` (indices or names): run-time post-processing. With host NMS they
        always apply; with in-graph NMS only where the artifact takes them as graph inputs and the backend lets
        them be fed (ONNX Runtime), else an InputError saying they were fixed at export."""
        self.runner = runner
        self.manifest = manifest
        self.score_threshold = check_probability("score_threshold", score_threshold)
        self.image_size = manifest.image_size
        self.class_names = list(manifest.class_names)
        inp = manifest.input
        self.input_name = inp.name
        row = _PREPROCESS.get((inp.normalize, inp.dtype))
        if row is None:
            raise ArtifactError(
                f"{runner.path.name}: input {inp.dtype} with normalisation '{inp.normalize}' is not one this edgedet "
                f"feeds ({', '.join(f'{d} {n}' for n, d in _PREPROCESS)})"
            )
        self.u8_input, (mean, std) = row(inp)
        self.pre = Preprocessor(self.image_size, mean, std)
        self._u8_fill = np.round(np.asarray(inp.mean)[::-1] * 255).astype(np.uint8)  # BGR pad colour
        self.nms = self._nms_options(iou_threshold, max_det, classes)
        self.post = Postprocessor.from_manifest(manifest, self.nms)
        self._feeds = self._graph_nms_feeds()
        self.max_batch = int(manifest.batch.max)
        self.static_batch = None if manifest.batch.dynamic else int(manifest.batch.max)
        self._local = threading.local()  # per-thread buffers and timing
        self._run_lock = None if getattr(runner, "thread_safe", True) else threading.Lock()
        self._check_input_shape()

    def _check_input_shape(self) -> None:
        """The manifest against the model the runner loaded: tensor names (where the runner can tell them), then
        the input shape. A manifest that disagrees is one ArtifactError here, not a backend traceback later."""
        io = getattr(self.runner, "model_io", None)
        if io is not None:
            inputs, outputs = io
            if self.manifest.input.name not in inputs:
                raise ArtifactError(
                    f"{self.runner.path.name} has input {', '.join(inputs)} but its manifest says "
                    f"'{self.manifest.input.name}': the manifest does not belong to this artifact; re-export it"
                )
            missing = [o for o in self.manifest.outputs if o not in outputs]
            if missing:
                raise ArtifactError(
                    f"{self.runner.path.name} has no output {', '.join(missing)} (it has {', '.join(outputs)}): "
                    "the manifest does not belong to this artifact; re-export it"
                )
        actual = list(self.runner.input_shape)
        expected = list(self.manifest.input.shape)
        if not actual:
            return
        if len(actual) != len(expected) or any(
            isinstance(a, int) and isinstance(e, int) and a != e for a, e in zip(actual, expected)
        ):
            raise ArtifactError(
                f"{self.runner.path.name} takes input {actual} but its manifest says {expected}: "
                "the manifest does not belong to this artifact; re-export it"
            )

    def _nms_options(self, iou_threshold, max_det, classes) -> NmsOptions:
        if iou_threshold is not None:
            iou_threshold = check_probability("iou_threshold", iou_threshold)
        if max_det is not None and (isinstance(max_det, bool) or not isinstance(max_det, int) or max_det < 1):
            raise InputError(f"max_det must be a positive integer, got {max_det!r}")
        return NmsOptions(iou_threshold, max_det, None if classes is None else self._class_ids(classes))

    def _class_ids(self, classes) -> tuple[int, ...]:
        """Class indices or names (or digit strings) -> sorted indices; an InputError for one this model lacks."""
        items = [classes] if isinstance(classes, (str, int)) else list(classes)
        ids = set()
        for c in items:
            text = str(c).strip()
            if text.lstrip("-").isdigit():
                i = int(text)
            elif text in self.class_names:
                i = self.class_names.index(text)
            else:
                raise InputError(f"class {text!r} is not one of this model's {len(self.class_names)} classes")
            if not 0 <= i < len(self.class_names):
                raise InputError(f"class {i} is outside this model's classes 0..{len(self.class_names) - 1}")
            ids.add(i)
        if not ids:
            raise InputError("classes: give at least one class")
        return tuple(sorted(ids))

    def _graph_nms_feeds(self) -> dict:
        """In-graph NMS: the graph inputs that carry the run-time options (ONNX initializers a backend lets a caller
        override), or an InputError naming what was fixed at export."""
        pp = self.manifest.postprocess
        given = self.nms.given()
        if not pp.in_graph or not given:
            return {}
        names = {k: pp.runtime_inputs.get(k) for k in given}
        fixed = [k for k, n in names.items() if n is None or n not in self.runner.overridable_inputs]
        if fixed:
            how = (
                "its graph takes no NMS inputs"
                if not pp.runtime_inputs
                else f"{self.backend} folds them into constants"
            )
            raise InputError(
                f"{', '.join(fixed)} were fixed at export in {self.runner.path.name} (in-graph NMS: iou "
                f"{pp.iou_threshold}, max_det {pp.max_det}, all classes; {how}): use a host-NMS artifact, ONNX Runtime, "
                "or re-export"
            )
        if self.nms.max_det is not None and self.nms.max_det > pp.max_det:
            raise InputError(
                f"max_det {self.nms.max_det} is more than the {pp.max_det} detections {self.runner.path.name}'s "
                "outputs hold (fixed at export)"
            )
        values = {
            "iou_threshold": lambda v: np.array([v], np.float32),
            "max_det": lambda v: np.array([v], np.int64),
            "classes": lambda v: np.isin(np.arange(len(self.class_names)), v).astype(np.float32),
        }
        return {names[k]: values[k](v) for k, v in given.items()}

    def feeds(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """The runner's inputs for a preprocessed batch (with the run-time NMS inputs, where the graph takes them)."""
        return {self.input_name: batch, **self._feeds}

    # ---------------------------------------------------------------- loading
    @classmethod
    def load(
        cls,
        source: str | Path,
        backend=None,
        device=None,
        score_threshold: float = DEFAULT_SCORE_THRESHOLD,
        verify: bool = True,
        iou_threshold: float | None = None,
        max_det: int | None = None,
        classes=None,
        **options,
    ) -> "Detector":
        """Load an artifact (.onnx, .xml, .engine, .pth) and its manifest on a backend (default: by format), or
        a model on a server by URL (grpc://host:8001/d0, http://host:8000/d0: Triton, see triton_runner).

        A lone .onnx or .xml (no sidecar manifest) loads from the manifest embedded in it.
        `iou_threshold`, `max_det`, `classes`: run-time post-processing (see __init__).
        `options` are the backend's runtime options (its runner's OPTIONS); an unknown one is an InputError.
        A model name ('d0') is built by the facade: `edgedet.load('d0', ...)`."""
        nms = {"iou_threshold": iou_threshold, "max_det": max_det, "classes": classes}
        remote = remote_backend(source)
        if remote is not None:  # a model on a server (grpc://host:port/model): the runner brings the manifest
            if backend is not None and get_backend(backend) is not remote:
                # the URL is not echoed: it may carry credentials
                raise InputError(f"a {remote.name} server serves this URL; backend '{backend}' cannot run it")
            runner = remote.runner_class().create(remote, source, None, device, **options)
            return cls._with_runner(runner, runner.manifest, score_threshold, nms)
        path = Path(source)
        if not path.exists():
            if not path.suffix:
                raise InputError(
                    f"'{source}' is not an artifact file; to build a model by name use "
                    f"edgedet.load('{source}', ...) or 'edgedet export'"
                )
            raise ArtifactError(f"artifact not found: {path}")
        if not path.is_file():
            raise ArtifactError(f"not an artifact file: {path}")
        spec = backend_for(path, backend)
        if spec.schemes:  # a server's client: the artifact is served, not loaded (a Triton repository)
            raise InputError(
                f"{path.name} is served by a server, not loaded here: start it (tritonserver "
                f"--model-repository <repo>) and load {spec.schemes[0]}://host:port/<model>"
            )
        runner_cls = spec.runner_class()
        manifest = Manifest.read(path, verify=verify)
        runner = runner_cls.create(spec, path, manifest, device, **options)
        return cls._with_runner(runner, manifest, score_threshold, nms)

    @classmethod
    def _with_runner(cls, runner, manifest: Manifest, score_threshold, nms: dict) -> "Detector":
        try:
            return cls(runner, manifest, score_threshold, **nms)
        except BaseException:
            runner.close()
            raise

    # ---------------------------------------------------------------- inference
    @property
    def backend(self) -> str:
        return self.runner.name

    @property
    def device(self) -> str:
        return self.runner.device

    @property
    def timing(self) -> Timing:
        """Stage times of this thread's last call."""
        return getattr(self._local, "timing", None) or Timing()

    def __call__(self, images, score_threshold: float | None = None):
        """Detect on one image (path, BGR ndarray, PIL image) or a list of them."""
        single = not isinstance(images, (list, tuple))
        batch = [images] if single else list(images)
        if not batch:
            return []
        frames = [self._load(img, i) for i, img in enumerate(batch)]
        thr = self.score_threshold if score_threshold is None else check_probability("score_threshold", score_threshold)
        results: list[Detections] = []
        timing = Timing()
        step = self.static_batch or self.max_batch
        for start in range(0, len(frames), step):
            results.extend(self._run_chunk(frames[start : start + step], thr, timing))
        self._local.timing = timing
        return results[0] if single else results

    def _load(self, img, index: int) -> np.ndarray:
        if isinstance(img, (str, Path)):
            return read_image(img)
        return to_bgr8(img, f"image {index}")

    def _buffer(self, n: int) -> np.ndarray:
        """This thread's input buffer for a batch of n (reused across calls: no allocation per frame)."""
        buffers = getattr(self._local, "buffers", None)
        if buffers is None:
            buffers = self._local.buffers = {}
        buf = buffers.get(n)
        if buf is None:
            shape = (n, *self.image_size, 3) if self.u8_input else (n, 3, *self.image_size)
            buf = buffers[n] = np.zeros(shape, np.uint8 if self.u8_input else np.float32)
        return buf

    def preprocess(self, frames: list[np.ndarray]):
        """Frames -> (this thread's batch buffer, letterbox infos). The buffer is reused by this thread's next
        call: copy it to keep it."""
        buf = self._buffer(self.static_batch or len(frames))
        if self.u8_input:
            return buf, self._letterbox_u8(frames, buf)
        _, infos = self.pre(frames, out=buf[: len(frames)])
        return buf, infos

    def _letterbox_u8(self, frames, buf: np.ndarray) -> list:
        """Letterbox uint8 BGR frames into the NHWC buffer (padding = the mean colour); their letterbox infos."""
        buf[:] = self._u8_fill
        infos = []
        for i, f in enumerate(frames):
            resized, info = self.pre.letterbox(f)
            buf[i, : resized.shape[0], : resized.shape[1]] = resized
            infos.append(info)
        return infos

    def prepare(self, frame: np.ndarray):
        """One frame -> a fresh (1, ...) input tensor and its letterbox info (thread-safe; for streaming)."""
        if self.u8_input:
            buf = np.empty((1, *self.image_size, 3), np.uint8)
            return buf, self._letterbox_u8([frame], buf)[0]
        batch, infos = self.pre([frame])
        return batch, infos[0]

    def stream(self, source, realtime: bool = False, **options):
        """Pipelined detection over a video file, camera index, URL, GStreamer pipeline or image folder
        (or a list of them, batched together). Yields StreamItems that unpack as (index, frame, Detections).

        Options: batch, queue_size, jobs (requests in flight), score_threshold, capture (CaptureOptions)."""
        from .stream import DetectionStream

        return DetectionStream(self, source, realtime=realtime, **options)

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        if self._run_lock is None:
            return self.runner(self.feeds(batch))
        with self._run_lock:
            return {k: np.array(v) for k, v in self.runner(self.feeds(batch)).items()}

    def _run_chunk(self, frames, thr, timing: Timing) -> list[Detections]:
        t0 = time.perf_counter()
        batch, infos = self.preprocess(frames)
        t1 = time.perf_counter()
        outputs = self.infer(batch)
        t2 = time.perf_counter()
        dets = [self.postprocess(outputs, i, info, thr) for i, info in enumerate(infos)]
        t3 = time.perf_counter()
        timing.pre += (t1 - t0) * 1e3
        timing.infer += (t2 - t1) * 1e3
        timing.post += (t3 - t2) * 1e3
        return dets

    def postprocess(self, outputs: dict[str, np.ndarray], i: int, info, thr: float) -> Detections:
        return self.post(outputs, i, info, thr)

    def close(self) -> None:
        self.runner.close()

    def __enter__(self) -> "Detector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"Detector({self.manifest.model['name']}, backend={self.backend}, device={self.device}, "
            f"precision={self.manifest.precision}, input={self.image_size})"
        )
