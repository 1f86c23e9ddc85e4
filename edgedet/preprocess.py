"""Image loading and letterbox preprocessing (numpy + OpenCV only).

Conventions: numpy arrays given by the caller are OpenCV frames (BGR, or single-channel gray);
files are read with OpenCV. Grayscale and RGBA are converted to 3 channels, 16-bit images are
scaled to 8-bit; anything else is rejected with an InputError.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .errors import InputError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


# The pixel budget: the most pixels an encoded image may declare before it is decoded. 8K frames (7680x4320 UHD,
# 8192x4320 DCI) fit with room to spare; a decoded image within it is at most ~110 MB as 8-bit BGR. Override per
# call (max_pixels=), per process (EDGEDET_MAX_PIXELS) or per command (--max-pixels on serve and batch).
MAX_PIXELS = 8192 * 4608
MAX_PIXELS_ENV = "EDGEDET_MAX_PIXELS"


class ImageTooLarge(InputError):
    """An image whose header declares more pixels than the budget (a server answers 413, not 400)."""


def pixel_budget(value: int | None = None) -> int:
    """The pixel budget in force: `value` if given, else $EDGEDET_MAX_PIXELS, else MAX_PIXELS."""
    if value is None:
        env = os.environ.get(MAX_PIXELS_ENV, "").strip()
        if not env:
            return MAX_PIXELS
        try:
            value = int(float(env))
        except ValueError:
            raise InputError(f"${MAX_PIXELS_ENV} must be a number of pixels, got {env!r}") from None
    if value < 4:
        raise InputError(f"the pixel budget must be at least 4 pixels, got {value}")
    return int(value)


def read_image(path: str | Path, max_pixels: int | None = None) -> np.ndarray:
    """Read an image file as a uint8 BGR array (H, W, 3), turned by its EXIF orientation as a viewer shows it
    (phone photos), so boxes are in the displayed image's pixels. 16-bit images keep their depth until
    to_bgr8 scales them. The file's size and its declared pixels are checked before it is read or decoded."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"image not found: {path}")
    budget = pixel_budget(max_pixels)
    size = path.stat().st_size
    if size > max_file_bytes(budget):
        raise ImageTooLarge(
            f"cannot read image {path}: {size} bytes is more than any image within the pixel budget of "
            f"{budget} pixels can take ({max_file_bytes(budget)} bytes; ${MAX_PIXELS_ENV} raises it)"
        )
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as e:
        raise InputError(f"cannot read image {path}: {e.strerror or e}") from None
    return decode_image(data, str(path), budget)


def max_file_bytes(budget: int) -> int:
    """The largest file an image within `budget` pixels can be: uncompressed 16-bit RGBA (8 bytes a pixel) plus
    room for metadata (EXIF, ICC profiles)."""
    return 8 * budget + (64 << 20)


def decode_image(data, name: str = "image", max_pixels: int | None = None) -> np.ndarray:
    """Decode an encoded image (JPEG, PNG, WebP, BMP, TIFF, GIF, PNM as bytes or a uint8 array) to uint8 BGR.

    The size its header declares is checked against the pixel budget before OpenCV allocates anything
    (ImageTooLarge above it), and a format whose header edgedet cannot read is never handed to a decoder. Every
    failure is an InputError naming the image."""
    from .imageheader import FORMAT_NAMES, declared_size

    budget = pixel_budget(max_pixels)
    buf = np.frombuffer(data, np.uint8) if isinstance(data, (bytes, bytearray, memoryview)) else data
    if not isinstance(buf, np.ndarray) or buf.dtype != np.uint8 or buf.ndim != 1 or not buf.size:
        raise InputError(f"cannot read image {name}: expected encoded image bytes")
    header = declared_size(np.ascontiguousarray(buf))
    if header is None:
        raise InputError(f"cannot read image {name}: not a supported image file ({', '.join(FORMAT_NAMES)}) or corrupt")
    fmt, size = header
    if size is None or min(size) < 1:
        raise InputError(f"cannot read image {name}: corrupt {fmt} header (no valid image size)")
    width, height = size
    if width * height > budget:
        raise ImageTooLarge(
            f"cannot read image {name}: {fmt} of {width}x{height} = {width * height} pixels is over the pixel "
            f"budget of {budget} (${MAX_PIXELS_ENV} or --max-pixels raises it)"
        )
    try:
        # IMREAD_COLOR applies the EXIF orientation (IMREAD_UNCHANGED would not); ANYDEPTH keeps 16-bit pixels
        img = cv2.imdecode(buf, cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH)
    except cv2.error as e:
        raise InputError(f"cannot read image {name}: OpenCV refused it ({_cv_message(e)})") from None
    if img is None:
        raise InputError(f"cannot read image {name}: not a supported image file or corrupt")
    return to_bgr8(img, name)


def _cv_message(e: Exception) -> str:
    """The reason in a cv2.error, without OpenCV's source path and line."""
    text = str(e).strip().splitlines()
    line = next((t for t in text if "error:" in t), text[-1] if text else "")
    return line.split("error:", 1)[-1].strip()[:200]


def to_bgr8(img, name: str = "image") -> np.ndarray:
    """Normalise an array to contiguous uint8 BGR (H, W, 3)."""
    if not isinstance(img, np.ndarray):
        img = _from_pil(img, name)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (3, 4)):
        raise InputError(f"{name}: expected an image of shape (H, W), (H, W, 3) or (H, W, 4), got {img.shape}")
    if img.shape[0] < 2 or img.shape[1] < 2:
        raise InputError(f"{name}: image too small ({img.shape[1]}x{img.shape[0]})")
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise InputError(f"{name}: unsupported pixel type {img.dtype}; give uint8 or uint16 images")
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    return np.ascontiguousarray(img)


def _from_pil(img, name: str) -> np.ndarray:
    if hasattr(img, "convert") and hasattr(img, "size"):  # PIL.Image, RGB
        return cv2.cvtColor(np.asarray(img.convert("RGB")), cv2.COLOR_RGB2BGR)
    raise InputError(f"{name}: expected a numpy array, a PIL image or a path, got {type(img).__name__}")


@dataclass(frozen=True)
class Letterbox:
    scale: float  # network pixels per original pixel
    orig_hw: tuple[int, int]  # original (H, W)


class Preprocessor:
    """Letterbox (keep aspect, bilinear resize, pad bottom-right with the mean colour), RGB, normalise, NCHW."""

    def __init__(self, image_size, mean, std):
        self.h, self.w = int(image_size[0]), int(image_size[1])
        # BGR order, folded so that x_norm = x * mul + add on the uint8 pixel values.
        mean_bgr = np.asarray(mean, np.float32)[::-1] * 255.0
        std_bgr = np.asarray(std, np.float32)[::-1] * 255.0
        # float32-rounded, as python floats (OpenCV's scalars)
        self.mul = (1.0 / std_bgr).astype(np.float32).tolist()
        self.add = (-mean_bgr / std_bgr).astype(np.float32).tolist()

    def letterbox(self, img: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        h, w = img.shape[:2]
        scale = min(self.h / h, self.w / w)
        nh, nw = min(self.h, max(1, round(h * scale))), min(self.w, max(1, round(w * scale)))
        resized = img if (nh, nw) == (h, w) else cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
        return resized, Letterbox(scale=scale, orig_hw=(h, w))

    def __call__(self, images: list[np.ndarray], out: np.ndarray | None = None):
        """uint8 BGR images -> (N, 3, H, W) float32 batch and the letterbox info of each."""
        n = len(images)
        if out is None:
            out = np.empty((n, 3, self.h, self.w), np.float32)
        elif out.dtype != np.float32 or out.strides[-1] != out.itemsize:
            # OpenCV writes into `out` only when it can: anything else would get a new array, silently dropped
            raise ValueError(f"out must be float32 with contiguous rows, got {out.dtype} with strides {out.strides}")
        infos = []
        for i, img in enumerate(images):
            resized, info = self.letterbox(img)
            rh, rw = resized.shape[:2]
            planes = cv2.split(resized)  # B, G, R uint8 planes
            for c in range(3):  # RGB output channel c <- BGR plane 2 - c: convert, scale, shift in one pass
                src = planes[2 - c]
                cv2.addWeighted(
                    src, self.mul[2 - c], src, 0.0, self.add[2 - c], dst=out[i, c, :rh, :rw], dtype=cv2.CV_32F
                )
            if rh < self.h:
                out[i, :, rh:, :] = 0.0  # padding = the mean colour after normalisation
            if rw < self.w:
                out[i, :, :rh, rw:] = 0.0
            infos.append(info)
        return out, infos


def list_images(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"not a folder: {folder}")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
