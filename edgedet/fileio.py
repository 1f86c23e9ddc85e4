"""Atomic writes: an interrupted write never leaves a file that looks valid."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_path(dest: str | Path):
    """Yield a temp path beside dest; rename it onto dest only if the block finishes without error."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the mode a plain open() would
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json_atomic(dest: str | Path, obj) -> None:
    with atomic_path(dest) as tmp:
        Path(tmp).write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale(folder: Path, prefix: str) -> None:
    """Remove leftovers `<prefix><pid>-...` of killed runs (their pid is gone) in folder."""
    if not folder.is_dir():
        return
    for p in folder.iterdir():
        if not p.name.startswith(prefix):
            continue
        pid = p.name[len(prefix) :].split("-", 1)[0]
        if pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


@contextlib.contextmanager
def publish(dest: str | Path):
    """Build an artifact and its manifest (and companion files) in a private temp folder beside dest, then put
    them in place together, manifest last; the old pair stays untouched until the new one is complete. A
    failure or interruption leaves the old pair as it was and removes the temp folder.

    Yields the temp path of the artifact (same file name as dest); write every file beside it."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{dest.name}.tmp-"
    clean_stale(dest.parent, prefix)
    tmpdir = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=dest.parent))
    try:
        yield tmpdir / dest.name
        manifest = tmpdir / (dest.name + ".json")
        if not manifest.is_file():
            raise RuntimeError(f"publish({dest.name}): no manifest was written")
        files = [p for p in tmpdir.iterdir() if p != manifest]
        old_manifest = dest.with_name(manifest.name)
        old_manifest.unlink(missing_ok=True)  # the old artifact is replaced next: never pair old and new
        for p in files:
            os.replace(p, dest.with_name(p.name))
        os.replace(manifest, old_manifest)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


@contextlib.contextmanager
def publish_folder(folder: Path):
    """Yield a private temp folder beside `folder`; it replaces `folder` only once the block finished, so a failed
    export leaves the old folder (or none) and no half-written one."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{folder.name}.tmp-"
    clean_stale(folder.parent, prefix)
    tmp = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=folder.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it 0700; the folder gets the mode a plain mkdir would give
    try:
        yield tmp
        old = folder.with_name(f"{prefix}{os.getpid()}-old")
        if folder.exists():
            os.replace(folder, old)
        os.replace(tmp, folder)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_bytes_atomic(dest: str | Path, data: bytes) -> None:
    """Write bytes under a temp name, flush and fsync, check the size on disk, then rename into place: a full
    disk raises OSError and leaves nothing under dest."""
    with atomic_path(dest) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if os.path.getsize(tmp) != len(data):
            raise OSError(28, "short write (disk full?)", str(dest))


@contextlib.contextmanager
def locked(path: str | Path):
    """An exclusive lock between processes (and threads) on `path` (created if missing), held for the block.
    Two processes building the same cache entry: the second waits, then finds the first one's result."""
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
