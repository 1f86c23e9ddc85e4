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
from edgedet.postprocess import Postprocessor
from edgedet.preprocess import Preprocessor, read_image, to_bgr8
from edgedet.registry import backend_for, get_backend, remote_backend

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


class Detector:
    def __init__(self, runner, manifest: Manifest, score_threshold: float = DEFAULT_SCORE_THRESHOLD):
        self.runner = runner
        self.manifest = manifest
        self.score_threshold = check_probability("score_threshold", score_threshold)
        self.image_size = manifest.image_size
        self.class_names = list(manifest.class_names)
        inp = manifest.input
        self.input_name = inp.name
        self.u8_input = inp.normalize == "in_graph"
        self.pre = Preprocessor(self.image_size, inp.mean, inp.std)
        self._u8_fill = np.round(np.asarray(inp.mean)[::-1] * 255).astype(np.uint8)  # BGR pad colour
        self.post = Postprocessor.from_manifest(manifest)
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

    # ---------------------------------------------------------------- loading
    @classmethod
    def load(
        cls,
        source: str | Path,
        backend=None,
        device=None,
        score_threshold: float = DEFAULT_SCORE_THRESHOLD,
        verify: bool = True,
        **options,
    ) -> "Detector":
        """Load an artifact (.onnx, .xml, .engine, .pth) and its manifest on a backend (default: by format), or
        a model on a server by URL (grpc://host:8001/d0, http://host:8000/d0: Triton, see triton_runner).

        `options` are the backend's runtime options (its runner's OPTIONS); an unknown one is an InputError.
        A model name ('d0') is built by the facade: `edgedet.load('d0', ...)`."""
        remote = remote_backend(source)
        if remote is not None:  # a model on a server (grpc://host:port/model): the runner brings the manifest
            if backend is not None and get_backend(backend) is not remote:
                # the URL is not echoed: it may carry credentials
                raise InputError(f"a {remote.name} server serves this URL; backend '{backend}' cannot run it")
            runner = remote.runner_class().create(remote, source, None, device, **options)
            return cls._with_runner(runner, runner.manifest, score_threshold)
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
        return cls._with_runner(runner_cls.create(spec, path, manifest, device, **options), manifest, score_threshold)

    @classmethod
    def _with_runner(cls, runner, manifest: Manifest, score_threshold) -> "Detector":
        try:
            return cls(runner, manifest, score_threshold)
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
            return self.runner({self.input_name: batch})
        with self._run_lock:
            return {k: np.array(v) for k, v in self.runner({self.input_name: batch}).items()}

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
