"""Online detection on Ray Serve: one Detector per replica, requests batched with `@serve.batch`.

    app = detector_app("d0.xml", replicas=2, max_batch=8)
    serve.run(app, route_prefix="/")          # or: edgedet serve --model d0.xml --replicas 2

HTTP API (JSON answers):
    POST /detect     body: the encoded image (JPEG, PNG, WebP, BMP; Content-Type image/* or
                     application/octet-stream) -> {"width", "height", "boxes", "scores", "class_ids", "labels"},
                     boxes as x1 y1 x2 y2 in the original image's pixels
    GET  /health     {"status": "ok", ...} while the replica can detect
    GET  /metadata   the artifact's manifest
A bad request gets a 4xx and one message ({"error": ...}): 400 not an image, 413 too large, 415 wrong content
type, 404/405 wrong path or method. The replica keeps serving.

With `max_batch` 1 requests are not batched: each runs the Detector on its own (in a thread, so the replica's
event loop keeps accepting). With more, up to `max_batch` requests that arrive within `batch_wait_s` run as one
Detector call (one inference when the artifact has a dynamic batch).
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from edgedet.errors import EdgeDetError, InputError

from .common import import_ray, threads_per_worker

IMAGE_TYPES = frozenset(
    {"image/jpeg", "image/jpg", "image/png", "image/webp", "image/bmp", "image/tiff", "application/octet-stream"}
)
ROUTES = {"/detect": ("POST", "detect"), "/health": ("GET", "health"), "/metadata": ("GET", "metadata")}
MAX_BYTES = 20 * 1024 * 1024
CONTENT_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".bmp": "image/bmp",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
}


class RequestError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class DetectorServer:
    """The replica's logic, without Ray: parse a request, detect, answer. `serve_class()` adds the batching."""

    def __init__(
        self,
        artifact: str,
        backend=None,
        device=None,
        score_threshold: float = 0.25,
        max_batch: int = 8,
        batch_wait_s: float = 0.005,
        max_bytes: int = MAX_BYTES,
        options=None,
    ):
        from edgedet.runtimes import Detector

        self.det = Detector.load(
            artifact, backend=backend, device=device, score_threshold=score_threshold, **(options or {})
        )
        self.max_batch, self.max_bytes = int(max_batch), int(max_bytes)
        self.requests = self.batches = 0

    async def __call__(self, request):
        from starlette.responses import JSONResponse

        from edgedet.errors import EdgeDetError

        try:
            body = await self.route(request.method, request.url.path, request)
            return JSONResponse(body)
        except RequestError as e:
            return JSONResponse({"error": e.message}, status_code=e.status)
        except EdgeDetError as e:  # the backend failed (a remote server down, ...): not the client's fault
            return JSONResponse({"error": str(e)}, status_code=503)

    async def route(self, method: str, path: str, request):
        entry = ROUTES.get(path.rstrip("/") or "/")
        if entry is None:
            raise RequestError(404, f"no route {path}; use POST /detect, GET /health or GET /metadata")
        if method != entry[0]:
            raise RequestError(405, f"{path} takes {entry[0]}, not {method}")
        return await getattr(self, entry[1])(request)

    async def detect(self, request):
        image = await self._image(request)
        self.requests += 1
        if self.max_batch > 1:
            dets = await self.detect_batched(image)
        else:
            self.batches += 1
            dets = await asyncio.to_thread(self.det, image)
        return {"width": int(image.shape[1]), "height": int(image.shape[0]), **dets.to_dict()}

    async def detect_batched(self, image: np.ndarray):
        """Replaced by the @serve.batch method in serve_class()."""
        return await asyncio.to_thread(self.det, image)

    async def health(self, request):
        return {
            "status": "ok",
            "backend": self.det.backend,
            "device": self.det.device,
            "requests": self.requests,
            "batches": self.batches,
            "max_batch": self.max_batch,
        }

    async def metadata(self, request):
        return self.det.manifest.to_dict()

    async def _image(self, request) -> np.ndarray:
        from edgedet.preprocess import decode_image

        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype not in IMAGE_TYPES:
            raise RequestError(
                415,
                f"Content-Type must be an image type (image/jpeg, image/png, ...) or "
                f"application/octet-stream, got {ctype or 'none'!r}",
            )
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.max_bytes:
            raise RequestError(413, f"image of {int(declared)} bytes is over the limit of {self.max_bytes}")
        data = await request.body()
        if len(data) > self.max_bytes:
            raise RequestError(413, f"image of {len(data)} bytes is over the limit of {self.max_bytes}")
        if not data:
            raise RequestError(400, "empty body: send the encoded image as the request body")
        try:
            return decode_image(data, "request body")
        except InputError as e:
            raise RequestError(400, str(e)) from None


def serve_class():
    """DetectorServer with its batch method wrapped by @serve.batch (Ray imported here, not at module import)."""
    serve = import_ray("serve").serve

    class BatchedDetectorServer(DetectorServer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._batch.set_max_batch_size(self.max_batch)
            self._batch.set_batch_wait_timeout_s(float(kwargs.get("batch_wait_s", 0.005)))

        async def detect_batched(self, image):
            return await self._batch(image)

        @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.005)
        async def _batch(self, images: list):
            self.batches += 1
            return await asyncio.to_thread(self.det, list(images))

    return BatchedDetectorServer


def detector_app(
    artifact: str | Path,
    replicas: int = 1,
    max_batch: int = 8,
    batch_wait_s: float = 0.005,
    backend=None,
    device=None,
    score_threshold: float = 0.25,
    cpus_per_replica: float = 1.0,
    num_gpus: float = 0,
    max_bytes: int = MAX_BYTES,
    **options,
):
    """A Ray Serve application of the artifact: `replicas` replicas with one Detector each."""
    serve = import_ray("serve").serve
    artifact = str(artifact)
    opts = threads_per_worker(artifact, backend, replicas, options)
    actor = {"num_cpus": cpus_per_replica, **({"num_gpus": num_gpus} if num_gpus else {})}
    deployment = serve.deployment(
        serve_class(),
        name="edgedet",
        num_replicas=replicas,
        ray_actor_options=actor,
        max_ongoing_requests=max(16, 4 * max_batch),
    )
    return deployment.bind(
        artifact,
        backend=backend,
        device=device,
        score_threshold=score_threshold,
        max_batch=max_batch,
        batch_wait_s=batch_wait_s,
        max_bytes=max_bytes,
        options=opts,
    )


class ServeClient:
    """A small client of the endpoint: `ServeClient("http://host:8000").detect("a.jpg")` -> Detections."""

    def __init__(self, url: str, timeout: float = 60.0):
        self.url, self.timeout = url.rstrip("/"), timeout

    def detect(self, image):
        """A path, encoded bytes, or a BGR array (sent as PNG, lossless)."""
        from edgedet.detections import Detections

        data, ctype = self._encode(image)
        out = self._request("/detect", data, ctype)
        return Detections(np.asarray(out["boxes"], np.float32), out["scores"], out["class_ids"], out["labels"])

    def health(self) -> dict:
        return self._request("/health")

    def metadata(self) -> dict:
        return self._request("/metadata")

    @staticmethod
    def _encode(image) -> tuple[bytes, str]:
        if isinstance(image, (bytes, bytearray)):
            return bytes(image), "application/octet-stream"
        if isinstance(image, (str, Path)):
            p = Path(image)
            return p.read_bytes(), CONTENT_TYPES.get(p.suffix.lower(), "application/octet-stream")
        import cv2

        ok, buf = cv2.imencode(".png", np.asarray(image))
        if not ok:
            raise InputError("cannot encode the image as PNG")
        return buf.tobytes(), "image/png"

    def _request(self, path: str, data: bytes | None = None, ctype: str | None = None) -> dict:
        req = urllib.request.Request(self.url + path, data=data, headers={"Content-Type": ctype} if ctype else {})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            error = InputError if e.code < 500 else EdgeDetError  # 4xx: this request; 5xx: the server
            raise error(f"{self.url}{path}: {e.code} {_error_message(e)}") from None


def _error_message(e) -> str:
    try:
        return json.loads(e.read()).get("error", e.reason)
    except (ValueError, AttributeError):
        return str(e.reason)
