"""Hostile inputs the tests craft: decompression bombs (real files whose headers declare huge images), images over
OpenCV's own limit, and measuring what refusing them costs."""

from __future__ import annotations

import resource
import struct
import time
import tracemalloc
import zlib
from contextlib import contextmanager

import cv2
import numpy as np


def jpeg_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A real 8x8 JPEG whose SOF0 height and width are patched: ~630 bytes that libjpeg decodes at the declared
    size (filling the missing data with gray): seconds and gigabytes without a pixel budget."""
    ok, buf = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 10])
    assert ok
    b = bytearray(buf.tobytes())
    i = 2
    while b[i + 1] not in (0xC0, 0xC1, 0xC2):
        i += 2 + struct.unpack_from(">H", b, i + 2)[0]
    struct.pack_into(">HH", b, i + 5, height, width)
    return bytes(b)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int = 20000, height: int = 20000) -> bytes:
    """A valid 1-bit grayscale PNG of width x height, all black: ~50 KB that decode to width*height*3 bytes."""
    row = b"\0" * (1 + (width + 7) // 8)  # filter byte + packed pixels
    z = zlib.compressobj(9)
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def png_header_only(width: int, height: int) -> bytes:
    """An 8x8 PNG whose IHDR is patched to width x height (CRC fixed): a few hundred bytes."""
    ok, buf = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))
    b = bytearray(buf.tobytes())
    b[16:24] = struct.pack(">II", width, height)
    b[29:33] = struct.pack(">I", zlib.crc32(bytes(b[12:29])))
    return bytes(b)


def _rss_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


@contextmanager
def refusal_cost():
    """Time, Python-heap peak (tracemalloc: numpy arrays included) and growth of the process's peak RSS of the
    block. Yields a dict filled on exit: seconds, heap_mb, rss_mb."""
    out: dict = {}
    tracemalloc.start()
    rss0 = _rss_peak_mb()
    t0 = time.perf_counter()
    try:
        yield out
    finally:
        out["seconds"] = time.perf_counter() - t0
        out["heap_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
        out["rss_mb"] = _rss_peak_mb() - rss0
        tracemalloc.stop()


def lying_avi(path, frames: int, claimed: int, size=(160, 120)):
    """An MJPEG AVI of `frames` frames whose header says `claimed` (avih dwTotalFrames and strh dwLength)."""
    from edgedet.benchmarks.images import make_video

    make_video(path, frames, size=size, fourcc="MJPG")
    b = bytearray(path.read_bytes())
    struct.pack_into("<I", b, b.find(b"avih") + 8 + 16, claimed)  # MainAVIHeader.dwTotalFrames
    struct.pack_into("<I", b, b.find(b"strh") + 8 + 32, claimed)  # AVIStreamHeader.dwLength
    path.write_bytes(bytes(b))
    return path


def raw_mjpeg(path, frames: int, size=(160, 120)):
    """A raw MJPEG stream (concatenated JPEGs, no container: no frame count, no index)."""
    from edgedet.benchmarks.images import make_video

    src = make_video(path.with_suffix(".src.avi"), frames, size=size, fourcc="MJPG")
    cap, data = cv2.VideoCapture(str(src)), b""
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        data += cv2.imencode(".jpg", frame)[1].tobytes()
    cap.release()
    src.unlink()
    path.write_bytes(data)
    return path
