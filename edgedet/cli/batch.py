"""`edgedet batch`: detection over folders, globs, buckets and videos on Ray Data (one Detector per actor),
written through Ray's Parquet or JSON writer."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from edgedet.errors import InputError

from .common import add_detector_arguments, add_nms_arguments, artifact_of, nms_keywords, positive

HELP = "batch detection over folders, globs, buckets and videos on Ray Data (local or a cluster)"
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
WRITERS = {".parquet": "write_parquet", ".jsonl": "write_json", ".json": "write_json"}


def add_arguments(p):
    add_detector_arguments(p)
    add_nms_arguments(p)
    p.add_argument("--source", required=True, nargs="+", help="image folders, globs, files, s3:// URLs or videos")
    p.add_argument("--out", required=True, help="results.parquet or results.jsonl (a folder of Ray's part files)")
    p.add_argument(
        "--address",
        help="Ray cluster address ('auto' joins a running cluster; default: $RAY_ADDRESS, else a new local one)",
    )
    p.add_argument("--actors", type=positive, default=2, help="actors, each with its own Detector")
    p.add_argument("--batch", type=positive, default=32, help="images per Ray batch (larger: less per-batch overhead)")
    p.add_argument("--gpus-per-actor", type=float, default=0.0)
    p.add_argument("--json", action="store_true")


def run(a) -> int:
    from edgedet.integrations import ray_data
    from edgedet.integrations.common import ray_address

    out = Path(a.out)
    writer = WRITERS.get(out.suffix.lower())
    if writer is None:
        raise InputError(f"--out must end in {', '.join(WRITERS)}, got {out.name}")
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a folder")
    artifact = artifact_of(a)
    ray = ray_data._ray()
    videos = [s for s in a.source if s.lower().endswith(VIDEO_SUFFIXES)]
    images = [s for s in a.source if s not in videos]
    ray.init(address=ray_address(a.address), ignore_reinit_error=True, include_dashboard=False, log_to_driver=False)
    t0 = time.perf_counter()
    parts = ([ray_data.image_dataset(images)] if images else []) + ([ray_data.video_dataset(videos)] if videos else [])
    ds = parts[0] if len(parts) == 1 else parts[0].union(*parts[1:])
    result = ray_data.detect_dataset(
        ds,
        artifact,
        actors=a.actors,
        batch_size=a.batch,
        backend=a.backend,
        device=a.device,
        score_threshold=a.conf,
        num_gpus=a.gpus_per_actor,
        **nms_keywords(a),
    )
    result = result.materialize()
    getattr(result, writer)(str(out))
    errors = result.filter(lambda r: bool(r["error"])).count()
    summary = {
        "rows": result.count(),
        "errors": errors,
        "seconds": round(time.perf_counter() - t0, 1),
        "out": str(out),
        "actors": a.actors,
    }
    print(
        json.dumps(summary, indent=2)
        if a.json
        else f"{summary['rows']} rows ({errors} unreadable) in {summary['seconds']} s with {a.actors} actors: {out}"
    )
    if errors:
        print(f"{errors} inputs could not be decoded; see their 'error' column", file=sys.stderr)
    return 0
