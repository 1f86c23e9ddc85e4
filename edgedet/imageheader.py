"""The size an encoded image declares, read from its header without decoding it (numpy-free, pure Python).

OpenCV has no header-only API: `cv2.imdecode` allocates the declared size and decodes, so a 629-byte JPEG that
declares 30000x30000 costs seconds and gigabytes before anything can refuse it. `declared_size` reads the few
bytes that state the size, for every format it knows; `decode_image` (edgedet.preprocess) checks the pixel budget
against it first and never hands OpenCV a format whose size it cannot read.

One row per format: the signature that identifies it and the parser of its header (references: ITU T.81 B.2.2
for JPEG's SOFn; PNG spec 11.2.2 IHDR; the WebP container spec (VP8 frame header, VP8L and VP8X headers);
BITMAPINFOHEADER / BITMAPCOREHEADER; TIFF 6.0 section 2 and BigTIFF; GIF89a sections 18 and 20; Netpbm's
PBM/PGM/PPM/PAM headers). A parser returns (width, height), or None when the header is cut short or
malformed.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

# JPEG start-of-frame markers (baseline, extended, progressive, lossless; Huffman and arithmetic): C0-CF
# except DHT (C4), JPG (C8) and DAC (CC)
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_STANDALONE = frozenset(range(0xD0, 0xD8)) | {0x01, 0xD8}  # RSTn, TEM, SOI: no length field


def _jpeg(b: bytes):
    i = 2
    while i + 4 <= len(b):
        if b[i] != 0xFF:
            return None
        marker = b[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _STANDALONE:
            i += 2
            continue
        if marker == 0xDA:  # start of scan before any frame header
            return None
        (length,) = struct.unpack_from(">H", b, i + 2)
        if marker in _SOF:
            if i + 9 > len(b):
                return None
            height, width = struct.unpack_from(">HH", b, i + 5)
            return (width, height) if height else None  # height 0: set later by a DNL marker, refused
        if length < 2:
            return None
        i += 2 + length
    return None


def _png(b: bytes):
    if len(b) < 24 or b[12:16] != b"IHDR":
        return None
    return struct.unpack_from(">II", b, 16)


def _webp(b: bytes):
    chunk = b[12:16]
    if chunk == b"VP8 " and len(b) >= 30 and b[23:26] == b"\x9d\x01\x2a":
        w, h = struct.unpack_from("<HH", b, 26)
        return w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L" and len(b) >= 25 and b[20] == 0x2F:
        bits = int.from_bytes(b[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(b) >= 30:
        return int.from_bytes(b[24:27], "little") + 1, int.from_bytes(b[27:30], "little") + 1
    return None


def _bmp(b: bytes):
    if len(b) < 26:
        return None
    (header,) = struct.unpack_from("<I", b, 14)
    if header == 12:  # OS/2 BITMAPCOREHEADER: unsigned 16-bit
        return struct.unpack_from("<HH", b, 18)
    w, h = struct.unpack_from("<ii", b, 18)
    return abs(w), abs(h)  # a negative height is a top-down bitmap


_TIFF_TYPES = {3: "H", 4: "I", 16: "Q"}  # SHORT, LONG, LONG8 (BigTIFF)


def _tiff(b: bytes):
    """ImageWidth (256) and ImageLength (257) of the first IFD, the page OpenCV decodes."""
    e = "<" if b[:2] == b"II" else ">"
    (version,) = struct.unpack_from(e + "H", b, 2)
    big = version == 43
    try:
        (ifd,) = struct.unpack_from(e + ("Q" if big else "I"), b, 8 if big else 4)
        (count,) = struct.unpack_from(e + ("Q" if big else "H"), b, ifd)
        entry, first = (20, ifd + 8) if big else (12, ifd + 2)
        size = {}
        for k in range(min(count, 4096)):
            at = first + k * entry
            tag, kind = struct.unpack_from(e + "HH", b, at)
            if tag in (256, 257) and kind in _TIFF_TYPES:
                (size[tag],) = struct.unpack_from(e + _TIFF_TYPES[kind], b, at + (12 if big else 8))
    except struct.error:
        return None
    return (size[256], size[257]) if len(size) == 2 else None


def _gif(b: bytes):
    """The logical screen and the first frame's extent (OpenCV decodes the first frame), whichever is larger."""
    if len(b) < 13:
        return None
    w, h, flags = struct.unpack_from("<HHB", b, 6)
    i = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    try:
        while i < len(b):
            if b[i] == 0x21:  # extension: label, then data sub-blocks until a zero-length one
                i += 2
                while b[i]:
                    i += b[i] + 1
                i += 1
            elif b[i] == 0x2C:  # image descriptor: left, top, width, height
                left, top, fw, fh = struct.unpack_from("<HHHH", b, i + 1)
                return max(w, left + fw), max(h, top + fh)
            else:
                break
    except (IndexError, struct.error):
        return None
    return (w, h) if w and h else None


def _pnm(b: bytes):
    """P1-P6: magic, width, height as ASCII tokens with '#' comments; P7 (PAM): WIDTH/HEIGHT lines."""
    head = bytes(b[:4096])
    if head[:2] == b"P7":
        fields = {}
        for line in head.split(b"\n")[1:]:
            key, _, value = line.strip().partition(b" ")
            if key == b"ENDHDR":
                break
            fields[key] = value.strip()
        try:
            return int(fields[b"WIDTH"]), int(fields[b"HEIGHT"])
        except (KeyError, ValueError):
            return None
    tokens = []
    for line in head[2:].split(b"\n"):
        tokens += line.split(b"#", 1)[0].split()
        if len(tokens) >= 2:
            break
    try:
        return int(tokens[0]), int(tokens[1])
    except (IndexError, ValueError):
        return None


# signature test (on the first 16 bytes) -> format name, header parser (on the whole buffer, not copied)
FORMATS: list[tuple[Callable[[bytes], bool], str, Callable[[memoryview], tuple[int, int] | None]]] = [
    (lambda b: b[:3] == b"\xff\xd8\xff", "JPEG", _jpeg),
    (lambda b: b[:8] == b"\x89PNG\r\n\x1a\n", "PNG", _png),
    (lambda b: b[:4] == b"RIFF" and b[8:12] == b"WEBP", "WebP", _webp),
    (lambda b: b[:2] == b"BM", "BMP", _bmp),
    (lambda b: b[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"), "TIFF", _tiff),
    (lambda b: b[:6] in (b"GIF87a", b"GIF89a"), "GIF", _gif),
    (lambda b: len(b) > 2 and b[:1] == b"P" and b[1:2] in b"1234567" and b[2:3].isspace(), "PNM", _pnm),
]
FORMAT_NAMES = tuple(name for _, name, _ in FORMATS)


def declared_size(data) -> tuple[str, tuple[int, int] | None] | None:
    """(format, (width, height)) an encoded image (bytes, or any buffer such as a uint8 array) declares;
    (format, None) if its header is cut short or malformed; None if the format is none of FORMATS."""
    data = memoryview(data).cast("B")
    head = bytes(data[:16])
    for matches, name, parse in FORMATS:
        if matches(head):
            try:
                return name, parse(data)
            except (struct.error, IndexError, ValueError):
                return name, None
    return None
