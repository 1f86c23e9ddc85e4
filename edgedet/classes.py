"""COCO class names in effdet's 90-slot order (slot i = COCO category id i + 1; unused ids are 'N/A')."""

COCO90 = [
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "N/A",
    "stop sign",
    "parking meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "N/A",
    "backpack",
    "umbrella",
    "N/A",
    "N/A",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "N/A",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted plant",
    "bed",
    "N/A",
    "dining table",
    "N/A",
    "N/A",
    "toilet",
    "N/A",
    "tv",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "N/A",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hair drier",
    "toothbrush",
]
assert len(COCO90) == 90


def default_class_names(num_classes: int) -> list[str]:
    return list(COCO90) if num_classes == 90 else [f"class{i}" for i in range(num_classes)]


def fit_class_names(names, num_classes: int) -> list[str]:
    """The class names an artifact records: `names` (a checkpoint's or the user's) when there is one per class;
    otherwise filled up with default names, or cut, with a warning (detections of unnamed classes would otherwise
    be labelled by their index, silently)."""
    import warnings

    if not names:
        return default_class_names(num_classes)
    names = [str(n) for n in names]
    if len(names) != num_classes:
        fill = default_class_names(num_classes)
        warnings.warn(
            f"{len(names)} class names for a model of {num_classes} classes: "
            + (
                f"classes {len(names)}..{num_classes - 1} are named {fill[len(names)]}..{fill[-1]}"
                if len(names) < num_classes
                else f"the last {len(names) - num_classes} names are dropped"
            ),
            stacklevel=3,
        )
        names = (names + fill[len(names) :])[:num_classes]
    return names
