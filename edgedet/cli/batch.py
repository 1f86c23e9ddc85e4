"""`edgedet batch`: detection over folders, globs, buckets and videos on Ray Data (one Detector per actor),
written through Ray's Parquet or JSON writer.

The output is a dataset folder. It is written into a fresh temporary folder beside --out and put in place of the
old one only once complete, so a re-run never mixes two runs' rows and a failed run leaves the old dataset as it
was; --out is checked for writability before Ray starts or anything is detected."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path

from edgedet.errors import InputError

from .common import add_detector_arguments, add_nms_arguments, artifact_of, nms_keywords, positive

HELP = "batch detection over folders, globs, buckets and videos on Ray Data (local or a cluster)"
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mjpeg", ".mjpg")
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
    p.add_argument(
        "--frames-per-task",
        type=positive,
        default=300,
        help="video frames decoded by one task (videos that cannot seek are decoded by one task)",
    )
    p.add_argument(
        "--max-pixels",
        type=positive,
        help="pixel budget: images declaring more are refused (an error in their row) before decoding "
        "(default: 8192x4608, or $EDGEDET_MAX_PIXELS)",
    )
    p.add_argument("--json", action="store_true")


MARKER = "_edgedet_batch.json"  # written into each dataset folder this command publishes


def run(a) -> int:
    from edgedet.integrations import ray_data
    from edgedet.integrations.common import ray_address

    out = Path(a.out)
    writer = WRITERS.get(out.suffix.lower())
    if writer is None:
        raise InputError(f"--out must end in {', '.join(WRITERS)}, got {out.name}")
    _check_replaceable(out)
    artifact = artifact_of(a)
    ray = ray_data._ray()
    videos = [s for s in a.source if s.lower().endswith(VIDEO_SUFFIXES)]
    images = [s for s in a.source if s not in videos]
    with _fresh_dataset(out) as tmp:  # writable, or an InputError before Ray starts
        ray.init(address=ray_address(a.address), ignore_reinit_error=True, include_dashboard=False, log_to_driver=False)
        t0 = time.perf_counter()
        parts = ([ray_data.image_dataset(images)] if images else []) + (
            [ray_data.video_dataset(videos, a.frames_per_task, a.max_pixels)] if videos else []
        )
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
            max_pixels=a.max_pixels,
            **nms_keywords(a),
        )
        result = result.materialize()
        getattr(result, writer)(str(tmp))
        errors = result.filter(lambda r: bool(r["error"])).count()
        summary = {
            "rows": result.count(),
            "errors": errors,
            "seconds": round(time.perf_counter() - t0, 1),
            "out": str(out),
            "actors": a.actors,
        }
        (tmp / MARKER).write_text(json.dumps(summary) + "\n")
    print(
        json.dumps(summary, indent=2)
        if a.json
        else f"{summary['rows']} rows ({errors} unreadable) in {summary['seconds']} s with {a.actors} actors: {out}"
    )
    if errors:
        print(f"{errors} inputs could not be decoded; see their 'error' column", file=sys.stderr)
    return 0


def _check_replaceable(out: Path) -> None:
    """--out may be replaced only if it is missing, empty, or a dataset folder (Ray's part files, this command's
    marker): never a file, nor a folder of anything else."""
    if not out.exists():
        return
    if not out.is_dir():
        raise InputError(f"--out {out} exists and is not a folder")
    names = [p.name for p in out.iterdir()]
    parts = [n for n in names if n.endswith(tuple(WRITERS)) or n.startswith((".", "_"))]
    if len(parts) != len(names):
        raise InputError(
            f"--out {out} is a folder with other files than a dataset's (e.g. {sorted(set(names) - set(parts))[0]}); "
            "it would be replaced: choose another --out"
        )


@contextlib.contextmanager
def _fresh_dataset(out: Path):
    """A new empty folder beside --out (checked writable now, before any work); on success it takes --out's place
    (the old dataset is removed only after), on failure it is removed and --out is left as it was. Leftovers of
    killed runs are removed on the next run."""
    import shutil
    import tempfile

    from edgedet.fileio import clean_stale

    prefix = f".{out.name}.tmp-"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        clean_stale(out.parent, prefix)
        tmp = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=out.parent))
        (tmp / MARKER).write_text("{}\n")  # a real write: permissions, read-only mounts, a full disk
    except OSError as e:
        raise InputError(f"--out {out}: cannot write in {out.parent or Path('.')}: {e.strerror or e}") from None
    try:
        yield tmp
        old = None
        if out.exists():
            old = out.with_name(f"{prefix}{os.getpid()}-old")
            os.replace(out, old)
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
