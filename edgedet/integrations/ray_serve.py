"""Online detection on Ray Serve: one Detector per replica, requests batched with `@serve.batch`.

    app = detector_app("d0.xml", replicas=2, max_batch=8)
    serve.run(app, route_prefix="/")          # or: edgedet serve --model d0.xml --replicas 2

HTTP API (JSON answers):
    POST /detect     body: the encoded image (JPEG, PNG, WebP, BMP, TIFF, GIF, PNM; Content-Type image/* or
                     application/octet-stream) -> {"width", "height", "boxes", "scores", "class_ids", "labels"},
                     boxes as x1 y1 x2 y2 in the original image's pixels
    GET  /health     {"status": "ok", ...} while the replica can detect, with its limits and counters
    GET  /metadata   the artifact's manifest, without local paths
A bad request gets a 4xx and one message ({"error": ...}): 400 not an image, 408 body not received within the
read deadline, 413 body over the size cap or image over the pixel budget, 415 wrong content type, 404/405 wrong
path or method; 503 with Retry-After when the replica is saturated. The replica keeps serving.

Hostile clients (docs/hardening.md). Ray Serve's proxy (uvicorn) hands a request to a replica once its headers
are in and streams the body after it; it has no read deadline of its own (`request_timeout_s` is end to end, and a
client can lift it per request with the x-request-timeout-seconds header), and it reads the body off the socket
as fast as it arrives. So the defences live in the replica, which pulls the body, and, where edgedet starts the
Ray (`edgedet serve`), in `BodyGuard`, a middleware Ray's proxy-callback hook puts in front of the proxy, which
stops reading at the same cap and deadline:
- the body is read under a deadline (`read_timeout_s`) and a size cap (`max_bytes`) that apply while reading,
  chunked or not, and under a budget of body bytes held by the replica at once (`body_budget`); an unfinished or
  oversized body is answered 408/413 with `Connection: close` (uvicorn then closes the socket) and counted;
- at most `max_inflight` /detect requests decode or wait for the Detector at once; beyond it 503 + Retry-After;
- the replica holds at most `max_ongoing` requests (Ray's max_ongoing_requests, above max_inflight so /health and
  the 503s always find room), and each proxy queues at most `max_queued` more (Ray answers 503 beyond);
- images are decoded off the event loop, after the pixel budget (`max_pixels`) was checked from the header.

With `max_batch` 1 requests are not batched: each runs the Detector on its own (in a thread, so the replica's
event loop keeps accepting). With more, up to `max_batch` requests that arrive within `batch_wait_s` run as one
Detector call (one inference when the artifact has a dynamic batch).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from edgedet.errors import EdgeDetError, InputError

from .common import import_ray, threads_per_worker

IMAGE_TYPES = frozenset(
    {
        "image/jpeg",
        "image/jpg",
        "image/png",
        "image/webp",
        "image/bmp",
        "image/tiff",
        "image/gif",
        "image/x-portable-anymap",
        "application/octet-stream",
    }
)
ROUTES = {"/detect": ("POST", "detect"), "/health": ("GET", "health"), "/metadata": ("GET", "metadata")}
MAX_BYTES = 20 * 1024 * 1024  # largest body accepted
READ_TIMEOUT_S = 10.0  # seconds to receive a whole body, from the moment the replica starts reading it
MAX_ONGOING = 256  # requests a replica holds at once (reading bodies included), at least max_inflight + 64
MAX_QUEUED = 64  # requests each proxy holds waiting for a replica slot (a burst arrives faster than they are assigned)
RETRY_AFTER_S = 1
CONTENT_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".bmp": "image/bmp",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".gif": "image/gif",
}
# what the replica counts (GET /health, "refused"): why requests were answered without a detection
REFUSALS = ("read_timeout", "body_too_large", "image_too_large", "bad_image", "busy", "disconnected")


class RequestError(Exception):
    """An answer other than 200: status, one message, and whether the connection must close (its body was not
    read to the end) or the client should retry later."""

    def __init__(self, status: int, message: str, reason: str = "", close: bool = False, retry: bool = False):
        super().__init__(message)
        self.status, self.message, self.reason, self.close, self.retry = status, message, reason, close, retry

    def headers(self) -> dict:
        return {
            **({"Connection": "close"} if self.close else {}),
            **({"Retry-After": str(RETRY_AFTER_S)} if self.retry else {}),
        }


def default_max_inflight(max_batch: int) -> int:
    return max(16, 4 * int(max_batch))


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
        read_timeout_s: float = READ_TIMEOUT_S,
        max_inflight: int | None = None,
        max_pixels: int | None = None,
        body_budget: int | None = None,
    ):
        from edgedet.preprocess import pixel_budget
        from edgedet.runtimes import Detector

        self.max_batch, self.max_bytes = int(max_batch), int(max_bytes)
        self.read_timeout_s = float(read_timeout_s)
        self.max_inflight = int(max_inflight or default_max_inflight(self.max_batch))
        self.max_pixels = pixel_budget(max_pixels)
        self.body_budget = int(body_budget or 8 * self.max_bytes)
        if min(self.max_bytes, self.max_inflight, self.body_budget) < 1 or self.read_timeout_s <= 0:
            raise InputError("max_bytes, max_inflight, body_budget and read_timeout_s must be positive")
        self.det = Detector.load(
            artifact, backend=backend, device=device, score_threshold=score_threshold, **(options or {})
        )
        self.requests = self.batches = 0
        self.inflight = self.reading = self.body_bytes = 0
        self.refused = dict.fromkeys(REFUSALS, 0)

    async def __call__(self, request):
        from starlette.responses import JSONResponse

        try:
            body = await self.route(request.method, _route_path(request.scope), request)
            return JSONResponse(body)
        except RequestError as e:
            if e.reason:
                self.refused[e.reason] += 1
            return JSONResponse({"error": e.message}, status_code=e.status, headers=e.headers())
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
        self._check_content_type(request)
        self._admit()  # saturated: refused before its body is read
        held = [0]  # body bytes this request holds against the replica's budget
        try:
            data = await self._read_body(request, held)
            self._admit()  # still room once the body is in?
            self.inflight += 1
            try:
                image = await self._decode(data)
                del data
                if self.max_batch > 1:
                    dets = await self.detect_batched(image)
                else:
                    self.batches += 1
                    dets = await asyncio.to_thread(self.det, image)
            finally:
                self.inflight -= 1
        finally:
            self.body_bytes -= held[0]
        self.requests += 1
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
            "inflight": self.inflight,
            "reading": self.reading,
            "body_bytes": self.body_bytes,
            "refused": dict(self.refused),
            "limits": {
                "max_bytes": self.max_bytes,
                "read_timeout_s": self.read_timeout_s,
                "max_inflight": self.max_inflight,
                "max_pixels": self.max_pixels,
                "body_budget": self.body_budget,
            },
            "rss_mb": _rss_mb(),
        }

    async def metadata(self, request):
        return _without_local_paths(self.det.manifest.to_dict())

    # ---------------------------------------------------------------- the body and the image
    def _check_content_type(self, request) -> None:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype not in IMAGE_TYPES:
            raise RequestError(
                415,
                f"Content-Type must be an image type (image/jpeg, image/png, ...) or "
                f"application/octet-stream, got {ctype or 'none'!r}",
                "bad_image",
                close=True,
            )
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.max_bytes:
            raise RequestError(
                413,
                f"image of {int(declared)} bytes is over the limit of {self.max_bytes}",
                "body_too_large",
                close=True,
            )

    def _admit(self) -> None:
        if self.inflight >= self.max_inflight:
            raise RequestError(
                503,
                f"busy: {self.inflight} requests in flight on this replica (max_inflight {self.max_inflight}); "
                f"retry after {RETRY_AFTER_S} s",
                "busy",
                close=True,
                retry=True,
            )

    async def _read_body(self, request, held: list) -> bytes:
        """The whole body, under the read deadline, the size cap and the replica's body budget, which apply
        while reading (a chunked upload has no Content-Length to check first)."""
        from starlette.requests import ClientDisconnect

        self.reading += 1
        try:
            data = await asyncio.wait_for(self._receive(request, held), self.read_timeout_s)
        except asyncio.TimeoutError:  # noqa: UP041 (on Python 3.10 not yet the builtin TimeoutError)
            raise RequestError(
                408,
                f"request body not received within the read deadline of {self.read_timeout_s:g} s",
                "read_timeout",
                close=True,
            ) from None
        except ClientDisconnect:
            raise RequestError(
                400, "the client disconnected before sending its body", "disconnected", close=True
            ) from None
        finally:
            self.reading -= 1
        if not data:
            raise RequestError(400, "empty body: send the encoded image as the request body", "bad_image")
        return data

    async def _receive(self, request, held: list) -> bytes:
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_bytes:
                raise RequestError(
                    413, f"image of more than {self.max_bytes} bytes is over the limit", "body_too_large", close=True
                )
            if self.body_bytes + len(chunk) > self.body_budget:
                raise RequestError(
                    503,
                    f"busy: the replica holds {self.body_bytes} bytes of request bodies (body_budget "
                    f"{self.body_budget}); retry after {RETRY_AFTER_S} s",
                    "busy",
                    close=True,
                    retry=True,
                )
            self.body_bytes += len(chunk)
            held[0] += len(chunk)
            chunks.append(chunk)
        return b"".join(chunks)

    async def _decode(self, data: bytes) -> np.ndarray:
        """Decoded off the event loop (so /health and other requests are answered meanwhile), after the pixel
        budget was checked from the header: 413 above it, 400 for anything that is not an image."""
        from edgedet.preprocess import ImageTooLarge, decode_image

        try:
            return await asyncio.to_thread(decode_image, data, "request body", self.max_pixels)
        except ImageTooLarge as e:
            raise RequestError(413, str(e), "image_too_large") from None
        except InputError as e:
            raise RequestError(400, str(e), "bad_image") from None


def _route_path(scope) -> str:
    """The path below the application's route prefix (Ray puts the prefix in root_path and keeps it in path)."""
    path, root = scope.get("path", "/"), scope.get("root_path", "")
    return path[len(root) :] or "/" if root and path.startswith(root) else path


_LOCAL_PATH = re.compile(r"^(~|/|\\|[A-Za-z]:[\\/])")


def _without_local_paths(value):
    """The manifest as served: a local path (the build machine's weights file, calibration folders) becomes its
    file name, so the endpoint does not tell clients how the build machine is laid out."""
    if isinstance(value, dict):
        return {k: _without_local_paths(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_local_paths(v) for v in value]
    if isinstance(value, str) and _LOCAL_PATH.match(value):
        return re.split(r"[\\/]", value.rstrip("/\\"))[-1]
    return value


def _rss_mb() -> float | None:
    """This process's resident memory (Linux), for /health."""
    try:
        with open("/proc/self/statm") as f:
            return round(int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)
    except (OSError, ValueError, IndexError):
        return None


# ---------------------------------------------------------------- a guard in Ray's HTTP proxy
# Ray reads the proxy middlewares returned by the function named in this variable when its proxy starts (the one
# way left to wrap the proxy's ASGI app: HTTPOptions.middlewares is refused); `edgedet serve` sets it, with the
# limits below, for the Ray it starts.
PROXY_CALLBACK_ENV = "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"
PROXY_CALLBACK = "edgedet.integrations.ray_serve:proxy_middlewares"
PROXY_MAX_BYTES_ENV = "EDGEDET_SERVE_MAX_BYTES"
PROXY_READ_TIMEOUT_ENV = "EDGEDET_SERVE_READ_TIMEOUT_S"
PROXY_GRACE_S = 1.0  # the proxy's deadline trails the replica's: the replica answers (and counts) first


def proxy_environment(max_bytes: int, read_timeout_s: float) -> dict:
    """The environment that puts BodyGuard in front of the Ray proxies started with it."""
    return {
        PROXY_CALLBACK_ENV: PROXY_CALLBACK,
        PROXY_MAX_BYTES_ENV: str(int(max_bytes)),
        PROXY_READ_TIMEOUT_ENV: str(float(read_timeout_s) + PROXY_GRACE_S),
    }


def proxy_middlewares() -> list:
    """Ray's proxy callback: BodyGuard with the limits of the environment (none when they are not set)."""
    from starlette.middleware import Middleware

    if PROXY_MAX_BYTES_ENV not in os.environ:
        return []
    return [
        Middleware(
            BodyGuard,
            max_bytes=int(os.environ[PROXY_MAX_BYTES_ENV]),
            read_timeout_s=float(os.environ.get(PROXY_READ_TIMEOUT_ENV, READ_TIMEOUT_S + PROXY_GRACE_S)),
        )
    ]


class BodyGuard:
    """ASGI middleware in front of Ray's proxy: the body cap and read deadline applied where the body is read off
    the socket. Ray's proxy reads a body as fast as the client sends it and buffers it for the replica, so a
    replica's 413 arrives after tens to hundreds of MB of a flood; here the read stops at the cap. A request over
    a limit is answered 413/408 with Connection: close, and the proxy hears a disconnect (it cancels the request
    and stops reading); a Content-Length over the cap is answered before the proxy sees the request."""

    def __init__(self, app, max_bytes: int = MAX_BYTES, read_timeout_s: float = READ_TIMEOUT_S + PROXY_GRACE_S):
        self.app, self.max_bytes, self.read_timeout_s = app, int(max_bytes), float(read_timeout_s)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            return await _answer(send, 413, f"image of {int(declared)} bytes is over the limit of {self.max_bytes}")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.read_timeout_s
        state = {"received": 0, "body_done": False, "refused": False, "started": False}

        async def refuse(status: int, message: str):
            state["refused"] = True
            if not state["started"]:
                state["started"] = True
                await _answer(send, status, message)
            return {"type": "http.disconnect"}

        async def guarded_receive():
            if state["refused"]:
                return {"type": "http.disconnect"}
            if state["body_done"]:  # the proxy waits for a disconnect during the response: no deadline
                return await receive()
            try:
                msg = await asyncio.wait_for(receive(), max(0.001, deadline - loop.time()))
            except asyncio.TimeoutError:  # noqa: UP041 (on Python 3.10 not yet the builtin TimeoutError)
                return await refuse(408, f"request body not received within {self.read_timeout_s:g} s")
            if msg["type"] == "http.request":
                state["received"] += len(msg.get("body", b""))
                if state["received"] > self.max_bytes:
                    return await refuse(413, f"image of more than {self.max_bytes} bytes is over the limit")
                state["body_done"] = not msg.get("more_body", False)
            return msg

        async def guarded_send(msg):
            if state["refused"]:
                return  # the proxy's own answer to the disconnect it heard: ours went out
            if msg["type"] == "http.response.start":
                state["started"] = True
            await send(msg)

        await self.app(scope, guarded_receive, guarded_send)


async def _answer(send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": [*headers, (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body, "more_body": False})


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
    read_timeout_s: float = READ_TIMEOUT_S,
    max_inflight: int | None = None,
    max_ongoing: int | None = None,
    max_queued: int = MAX_QUEUED,
    max_pixels: int | None = None,
    body_budget: int | None = None,
    **options,
):
    """A Ray Serve application of the artifact: `replicas` replicas with one Detector each, and the limits of the
    module docstring (docs/hardening.md)."""
    serve = import_ray("serve").serve
    artifact = str(artifact)
    inflight = int(max_inflight or default_max_inflight(max_batch))
    max_ongoing = int(max_ongoing or max(MAX_ONGOING, inflight + 64))
    if max_ongoing < inflight + 2:
        raise InputError(
            f"max_ongoing ({max_ongoing}) must exceed max_inflight ({inflight}) by at least 2, so that /health "
            "and the 503 answers find room on a saturated replica"
        )
    opts = threads_per_worker(artifact, backend, replicas, options)
    actor = {"num_cpus": cpus_per_replica, **({"num_gpus": num_gpus} if num_gpus else {})}
    deployment = serve.deployment(
        serve_class(),
        name="edgedet",
        num_replicas=replicas,
        ray_actor_options=actor,
        max_ongoing_requests=int(max_ongoing),
        max_queued_requests=int(max_queued),
        **_backpressure(serve),
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
        read_timeout_s=read_timeout_s,
        max_inflight=inflight,
        max_pixels=max_pixels,
        body_budget=body_budget,
    )


def _backpressure(serve) -> dict:
    """Retry-After on the proxy's own 503 (its queue full), where this Ray has the option (backpressure_config)."""
    import inspect

    if "backpressure_config" not in inspect.signature(serve.deployment).parameters:
        return {}
    return {"backpressure_config": {"status_code": 503, "retry_after_s": RETRY_AFTER_S}}


class ServeClient:
    """A small client of the endpoint: `ServeClient("http://host:8000").detect("a.jpg")` -> Detections. A 503 with
    Retry-After (a saturated replica) is retried up to `retries` times after the wait it names (at most 10 s)."""

    def __init__(self, url: str, timeout: float = 60.0, retries: int = 5):
        self.url, self.timeout, self.retries = url.rstrip("/"), timeout, int(retries)

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
        import time

        req = urllib.request.Request(self.url + path, data=data, headers={"Content-Type": ctype} if ctype else {})
        for attempt in range(self.retries + 1):
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as r:
                    return json.loads(r.read())
            except urllib.error.HTTPError as e:
                wait = _retry_after(e)
                if wait is not None and attempt < self.retries:
                    e.close()
                    time.sleep(wait)
                    continue
                error = InputError if e.code < 500 else EdgeDetError  # 4xx: this request; 5xx: the server
                raise error(f"{self.url}{path}: {e.code} {_error_message(e)}") from None
        raise AssertionError("unreachable")


def _retry_after(e) -> float | None:
    """The wait a 503 names in Retry-After (seconds, capped at 10), or None if it is not one to retry."""
    if e.code != 503:
        return None
    try:
        return min(10.0, max(0.0, float(e.headers.get("Retry-After", ""))))
    except ValueError:
        return None


def _error_message(e) -> str:
    try:
        return json.loads(e.read()).get("error", e.reason)
    except (ValueError, AttributeError):
        return str(e.reason)
