"""`edgedet serve`: the Detector as a Ray Serve deployment (POST /detect, GET /health, GET /metadata)."""

from __future__ import annotations

import os
import socket
import sys
import time

from edgedet.errors import InputError

from .common import add_detector_arguments, add_nms_arguments, nms_keywords, positive, positive_float

HELP = "serve detection over HTTP on Ray Serve (POST /detect, GET /health, GET /metadata)"


def add_arguments(p):
    add_detector_arguments(p)
    add_nms_arguments(p)
    p.add_argument("--replicas", type=positive, default=1, help="replicas, each with its own Detector")
    p.add_argument(
        "--max-batch",
        type=positive,
        default=8,
        help="requests batched into one Detector call by @serve.batch (1: no batching)",
    )
    p.add_argument("--batch-wait-ms", type=positive_float, default=5.0, help="how long a batch waits to fill")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 behind a load balancer)")
    p.add_argument("--port", type=port, default=8000)
    p.add_argument(
        "--address",
        help="Ray cluster address ('auto' joins a running cluster; default: $RAY_ADDRESS, "
        "else a new local Ray of this command's own)",
    )
    p.add_argument("--cpus-per-replica", type=positive_float, default=1.0)
    p.add_argument("--gpus-per-replica", type=float, default=0.0)
    g = p.add_argument_group("limits against hostile clients (docs/hardening.md)")
    g.add_argument("--max-mb", type=positive_float, default=20.0, help="largest image body accepted (413 above)")
    g.add_argument(
        "--read-timeout",
        type=positive_float,
        default=10.0,
        help="seconds to receive a whole request body; slower ones get 408 and are closed",
    )
    g.add_argument(
        "--max-inflight",
        type=positive,
        help="/detect requests a replica decodes or detects at once; 503 + Retry-After beyond "
        "(default: max(16, 4 x --max-batch))",
    )
    g.add_argument(
        "--max-ongoing",
        type=positive,
        help="requests a replica holds at once, bodies being read included (Ray's max_ongoing_requests; "
        "default: max(256, --max-inflight + 64))",
    )
    g.add_argument(
        "--max-queued", type=positive, default=64, help="requests each proxy queues for a busy replica (503 beyond)"
    )
    g.add_argument(
        "--max-pixels",
        type=positive,
        help="pixel budget: images declaring more are refused (413) before decoding (default: 8192x4608, "
        "or $EDGEDET_MAX_PIXELS)",
    )


def port(value: str) -> int:
    import argparse

    p = positive(value)
    if p > 65535:
        raise argparse.ArgumentTypeError(f"expected a port in 1-65535, got {p}")
    return p


def _check_port(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will: TIME_WAIT is no conflict
        try:
            s.bind((host, port))
        except OSError as e:
            raise InputError(f"cannot listen on {host}:{port}: {e.strerror}; choose another --port") from None


def run(a) -> int:
    from edgedet.integrations import ray_serve
    from edgedet.integrations.common import import_ray, ray_address

    from . import _sigterm_as_interrupt
    from .common import artifact_of

    artifact = artifact_of(a)
    # no address: a Ray of our own, never a cluster that `ray start` left running here, whose Serve our exit would
    # shut down
    address = ray_address(a.address)
    own = address == "local"
    if own:  # a local Ray: the HTTP proxy listens here
        _check_port(a.host, a.port)
    ray = import_ray("serve")
    serve = ray.serve
    if own:  # the proxy of our own Ray reads bodies under the same cap and deadline (ray_serve.BodyGuard)
        os.environ.update(ray_serve.proxy_environment(int(a.max_mb * 1024 * 1024), a.read_timeout))
    ray.init(address=address, ignore_reinit_error=True, include_dashboard=False, log_to_driver=False)
    _sigterm_as_interrupt()  # ray.init installs its own SIGTERM handler (sys.exit): stop cleanly instead
    try:
        # on a cluster whose Serve already runs, its HTTP options stay (Ray's rule); this app is added to it
        # uvicorn closes an idle connection after keep_alive_timeout_s, also one whose request Ray's proxy refused
        # (503, its queue full) while its body was still coming: no longer than a read deadline
        keep_alive = max(1, round(a.read_timeout))
        serve.start(http_options={"host": a.host, "port": a.port, "keep_alive_timeout_s": keep_alive})
        app = ray_serve.detector_app(
            artifact,
            replicas=a.replicas,
            max_batch=a.max_batch,
            batch_wait_s=a.batch_wait_ms / 1000,
            backend=a.backend,
            device=a.device,
            score_threshold=a.conf,
            cpus_per_replica=a.cpus_per_replica,
            num_gpus=a.gpus_per_replica,
            max_bytes=int(a.max_mb * 1024 * 1024),
            **nms_keywords(a),
            read_timeout_s=a.read_timeout,
            max_inflight=a.max_inflight,
            max_ongoing=a.max_ongoing,
            max_queued=a.max_queued,
            max_pixels=a.max_pixels,
        )
        serve.run(app, name="edgedet", route_prefix="/")
        url = f"http://{a.host}:{a.port}"
        print(
            f"serving {artifact} on {url} with {a.replicas} replica(s), batches of up to {a.max_batch}: "
            f"POST {url}/detect, GET {url}/health, GET {url}/metadata (Ctrl-C stops)",
            file=sys.stderr,
        )
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the normal way to stop a server
        print("edgedet serve: stopping", file=sys.stderr)
        return 0
    finally:
        if own:
            serve.shutdown()  # our own local Serve and Ray
        else:
            serve.delete("edgedet")  # a shared cluster: remove only this application
        ray.shutdown()
