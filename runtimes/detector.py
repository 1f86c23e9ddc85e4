"""Detector: one API over every backend. Owns pre/post-processing, batching and timing; runners only infer."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgedet.anchors import anchors_for
from edgedet.detections import Detections
from edgedet.errors import ArtifactError
from edgedet.manifest import Manifest
from edgedet.postprocess import postprocess
from edgedet.preprocess import Preprocessor, read_image, to_bgr8

from .registry import backend_for, runner_class

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
        self.score_threshold = float(score_threshold)
        model = manifest.model
        self.image_size = tuple(model["image_size"])
        self.class_names = list(manifest.class_names)
        inp = manifest.input
        self.input_name = inp["name"]
        self.u8_input = inp.get("normalize") == "in_graph"
        self.pre = Preprocessor(self.image_size, inp["mean"], inp["std"])
        self._u8_fill = np.round(np.asarray(inp["mean"])[::-1] * 255).astype(np.uint8)  # BGR pad colour
        self.pp = manifest.postprocess
        self.anchors = None if self.pp["in_graph"] else anchors_for(model)
        batch = manifest.batch
        self.max_batch = int(batch["max"])
        self.static_batch = None if batch["dynamic"] else int(batch["max"])
        self.timing = Timing()
        self._buffers: dict[int, np.ndarray] = {}
        self._check_input_shape()

    def _check_input_shape(self) -> None:
        actual = list(self.runner.input_shape)
        expected = list(self.manifest.input["shape"])
        if not actual:
            return
        if len(actual) != len(expected) or any(
                isinstance(a, int) and isinstance(e, int) and a != e for a, e in zip(actual, expected)):
            raise ArtifactError(f"{self.runner.path.name} takes input {actual} but its manifest says {expected}: "
                                "the manifest does not belong to this artifact; re-export it")

    # ---------------------------------------------------------------- loading
    @classmethod
    def load(cls, source: str | Path, backend: str | None = None, device: str | None = None,
             score_threshold: float = DEFAULT_SCORE_THRESHOLD, verify: bool = True, **options) -> "Detector":
        """Load an artifact (.onnx, .xml, .engine, .pth + manifest) or a model name (built through the cache).

        Model names take build options: weights, precision, imgsz, batch, postprocess, num_classes."""
        path = Path(source)
        if not path.suffix and not path.exists():
            path = cls._build(str(source), backend, device, options)
        if not path.is_file():
            raise ArtifactError(f"artifact not found: {path}")
        spec = backend_for(path, backend)
        manifest = Manifest.read(path, verify=verify)
        runner = runner_class(spec)(path, manifest, device=device, **options)
        return cls(runner, manifest, score_threshold)

    @staticmethod
    def _build(name: str, backend: str | None, device: str | None, options: dict) -> Path:
        from edgedet.converters.pipeline import BuildRequest, get_artifact
        from .registry import is_available

        if backend is None:
            backend = next((b for b in ("openvino", "onnxruntime", "torch") if is_available(b)), "onnxruntime")
        keys = ("precision", "weights", "imgsz", "batch", "postprocess", "num_classes", "max_batch")
        build = {k: options.pop(k) for k in keys if k in options}
        if build.get("weights") is not None:
            build["weights"] = str(build["weights"])
        return get_artifact(BuildRequest(model=name, backend=backend, device=device, **build)).path

    # ---------------------------------------------------------------- inference
    @property
    def backend(self) -> str:
        return self.runner.name

    @property
    def device(self) -> str:
        return self.runner.device

    def __call__(self, images, score_threshold: float | None = None):
        """Detect on one image (path, BGR ndarray, PIL image) or a list of them."""
        single = not isinstance(images, (list, tuple))
        batch = [images] if single else list(images)
        if not batch:
            return []
        frames = [self._load(img, i) for i, img in enumerate(batch)]
        thr = self.score_threshold if score_threshold is None else float(score_threshold)
        results: list[Detections] = []
        timing = Timing()
        step = self.static_batch or self.max_batch
        for start in range(0, len(frames), step):
            results.extend(self._run_chunk(frames[start:start + step], thr, timing))
        self.timing = timing
        return results[0] if single else results

    def _load(self, img, index: int) -> np.ndarray:
        if isinstance(img, (str, Path)):
            return read_image(img)
        return to_bgr8(img, f"image {index}")

    def preprocess(self, frames: list[np.ndarray]):
        n = self.static_batch or len(frames)
        if self.u8_input:
            buf = self._buffers.get(n)
            if buf is None:
                buf = self._buffers[n] = np.empty((n, *self.image_size, 3), np.uint8)
            return buf, self._letterbox_u8(frames, buf)
        buf = self._buffers.get(n)
        if buf is None:
            buf = self._buffers[n] = np.zeros((n, 3, *self.image_size), np.float32)
        batch, infos = self.pre(frames, out=buf[:len(frames)])
        return buf, infos

    def _letterbox_u8(self, frames, buf: np.ndarray) -> list:
        """Letterbox uint8 BGR frames into the NHWC buffer (padding = the mean colour); their letterbox infos."""
        buf[:] = self._u8_fill
        infos = []
        for i, f in enumerate(frames):
            resized, info = self.pre.letterbox(f)
            buf[i, :resized.shape[0], :resized.shape[1]] = resized
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
        return self.runner({self.input_name: batch})

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
        if self.pp["in_graph"]:
            n = int(outputs["num_detections"][i])
            boxes, scores, classes = outputs["boxes"][i, :n], outputs["scores"][i, :n], outputs["classes"][i, :n]
            keep = scores >= thr
            boxes, scores, classes = boxes[keep], scores[keep], classes[keep]
        else:
            boxes, scores, classes = postprocess(
                outputs["logits"][i], outputs["deltas"][i], self.anchors, score_threshold=thr,
                iou_threshold=self.pp["iou_threshold"], max_candidates=self.pp["max_candidates"],
                max_det=self.pp["max_det"], clip_hw=self.image_size)
        h, w = info.orig_hw
        xyxy = boxes / np.float32(info.scale)
        np.clip(xyxy, 0, np.array([w, h, w, h], np.float32), out=xyxy)
        names = self.class_names
        labels = [names[c] if 0 <= c < len(names) else str(c) for c in classes.tolist()]
        return Detections(xyxy, scores, classes, labels)

    def close(self) -> None:
        self.runner.close()

    def __repr__(self) -> str:
        return (f"Detector({self.manifest.model['name']}, backend={self.backend}, device={self.device}, "
                f"precision={self.manifest.precision}, input={self.image_size})")
