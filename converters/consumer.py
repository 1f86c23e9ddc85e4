"""What the deployment forms for other people's pipelines share (DeepStream, Frigate): the folder they are written
into, published whole, and the check that the model's classes fit the consumer's label file."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from edgedet.errors import InputError
from edgedet.fileio import clean_stale


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


def check_classes(names, consumer: str, max_classes: int, forbidden: str = "\n\r") -> None:
    """The class names fit the consumer's label file (one name per line, at most max_classes of them): an
    InputError naming the first that does not."""
    if len(names) > max_classes:
        raise InputError(
            f"the model has {len(names)} classes; {consumer} accepts at most {max_classes}: export a model with "
            "fewer classes"
        )
    for i, n in enumerate(names):
        if not n.strip() or n != n.strip() or any(c in n for c in forbidden):
            raise InputError(
                f"class {i} name {n!r} cannot be written to {consumer}'s label file (empty, padded, or holding "
                f"one of {forbidden!r}): rename it"
            )
