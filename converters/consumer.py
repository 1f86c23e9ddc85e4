"""What the deployment forms for other people's pipelines share (DeepStream, Frigate): the check that the model's
classes fit the consumer's label file. Their folders are published whole by edgedet.fileio.publish_folder."""

from __future__ import annotations

from edgedet.errors import InputError


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
