"""Numpy pre/post-processing: image loading, letterbox, anchors, NMS (against torchvision/effdet)."""

import cv2
import numpy as np
import pytest

from edgedet.anchors import generate_anchors
from edgedet.errors import InputError
from edgedet.postprocess import batched_nms, decode_boxes
from edgedet.preprocess import Preprocessor, read_image, to_bgr8


def test_letterbox_keeps_aspect_and_pads_bottom_right():
    pre = Preprocessor((128, 128), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    img = np.full((50, 100, 3), 255, np.uint8)
    batch, infos = pre([img])
    assert batch.shape == (1, 3, 128, 128)
    assert infos[0].scale == pytest.approx(1.28)
    assert np.allclose(batch[0, :, :64, :], 1.0)  # image: (1 - 0.5) / 0.5
    assert np.allclose(batch[0, :, 64:, :], 0.0)  # pad: the mean colour, normalised


def test_bgr_to_rgb_and_normalisation():
    pre = Preprocessor((32, 32), (0.1, 0.2, 0.3), (0.5, 0.25, 0.125))
    img = np.zeros((32, 32, 3), np.uint8)
    img[..., 0] = 255  # blue in BGR
    batch, _ = pre([img])
    assert np.allclose(batch[0, 0], (0 - 0.1) / 0.5)  # R
    assert np.allclose(batch[0, 1], (0 - 0.2) / 0.25)  # G
    assert np.allclose(batch[0, 2], (1 - 0.3) / 0.125, atol=1e-5)  # B


@pytest.mark.parametrize("hw", [(300, 120), (90, 200), (64, 64)])  # portrait (rows padded on the right), landscape
def test_normalised_pixels_match_the_formula(hw):
    """Every network pixel is (rgb / 255 - mean) / std of the resized image, wherever the image lands in the
    reused buffer (portrait images fill a strided part of each plane); the rest is the padding, 0."""
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    pre = Preprocessor((64, 64), mean, std)
    img = np.random.default_rng(1).integers(0, 256, (*hw, 3), dtype=np.uint8)
    out = np.full((1, 3, 64, 64), 7.0, np.float32)  # stale values from an earlier call must not survive
    batch, (info,) = pre([img], out=out)
    resized, _ = pre.letterbox(img)
    rh, rw = resized.shape[:2]
    rgb = resized[:, :, ::-1].astype(np.float64) / 255.0
    want = ((rgb - mean) / std).transpose(2, 0, 1)
    assert batch is out
    np.testing.assert_allclose(batch[0, :, :rh, :rw], want, atol=1e-5)
    assert not batch[0, :, rh:, :].any() and not batch[0, :, :, rw:].any()
    assert info.scale == pytest.approx(min(64 / hw[0], 64 / hw[1]))


def test_gray_rgba_and_16bit_are_handled(tmp_path):
    gray = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 16
    cv2.imwrite(str(tmp_path / "g16.png"), gray)
    img = read_image(tmp_path / "g16.png")
    assert img.shape == (64, 64, 3) and img.dtype == np.uint8
    assert np.array_equal(img[..., 0], (gray >> 8).astype(np.uint8))
    rgba = np.zeros((20, 30, 4), np.uint8)
    cv2.imwrite(str(tmp_path / "a.png"), rgba)
    assert read_image(tmp_path / "a.png").shape == (20, 30, 3)
    assert to_bgr8(np.zeros((5, 6), np.uint8)).shape == (5, 6, 3)


@pytest.mark.parametrize(
    "bad, msg",
    [
        (np.zeros((4, 4, 3), np.float32), "unsupported pixel type"),
        (np.zeros((4, 4, 2), np.uint8), "expected an image of shape"),
        (np.zeros((1, 4, 3), np.uint8), "too small"),
        ("not an image", "expected a numpy array"),
    ],
)
def test_bad_arrays_rejected(bad, msg):
    with pytest.raises(InputError, match=msg):
        to_bgr8(bad)


def test_unreadable_and_missing_images(tmp_path):
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(InputError, match="cannot read image"):
        read_image(tmp_path / "broken.jpg")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(InputError, match="cannot read image"):
        read_image(tmp_path / "empty.png")
    with pytest.raises(InputError, match="not found"):
        read_image(tmp_path / "nope.png")


def test_anchors_match_effdet():
    effdet = pytest.importorskip("effdet")
    for size, scale, max_level in [((512, 512), 4.0, 7), ((320, 320), 3.0, 7), ((256, 256), 4.0, 8)]:
        ref = effdet.anchors.Anchors(3, max_level, 3, [(1.0, 1.0), (1.4, 0.7), (0.7, 1.4)], scale, size)
        ours = generate_anchors(size, 3, max_level, 3, ((1.0, 1.0), (1.4, 0.7), (0.7, 1.4)), scale)
        np.testing.assert_allclose(ours, ref.boxes.numpy(), atol=1e-3)


@pytest.mark.parametrize("n", [40, 256, 257, 1200])  # both sides of DENSE_NMS_MAX (all pairs at once / row by row)
def test_batched_nms_matches_torchvision(n):
    torch = pytest.importorskip("torch")
    tv = pytest.importorskip("torchvision")
    rng = np.random.default_rng(n)
    xy = rng.uniform(0, 200, (n, 2)).astype(np.float32)
    wh = rng.uniform(5, 60, (n, 2)).astype(np.float32)
    boxes = np.concatenate([xy, xy + wh], 1)
    boxes[::17, 2] = boxes[::17, 0]  # zero-area boxes: NaN IoU, never suppress
    scores = rng.random(n).astype(np.float32)
    classes = rng.integers(0, 5, n)
    ours = batched_nms(boxes, scores, classes, 0.5, max_keep=n)
    ref = tv.ops.batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(classes), 0.5).numpy()
    np.testing.assert_array_equal(ours, ref)
    np.testing.assert_array_equal(batched_nms(boxes, scores, classes, 0.5, max_keep=7), ref[:7])


def _greedy_reference(boxes, scores, thr, max_keep):
    """Textbook greedy NMS in plain Python: best score first, ties by the lower index."""

    def iou(a, b):
        w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
        return w * h / union if union > 0 else float("nan")

    keep = []
    for i in sorted(range(len(scores)), key=lambda k: (-scores[k], k)):
        if len(keep) < max_keep and not any(iou(boxes[i], boxes[k]) > thr for k in keep):
            keep.append(i)
    return keep


@pytest.mark.parametrize("n, dense_max", [(200, 256), (200, 0), (0, 256), (1, 256)])
def test_nms_matches_plain_greedy_with_ties(n, dense_max, monkeypatch):
    """Tied scores (torchvision's order of ties is not stable), zero-area boxes and a cap: both NMS paths keep
    what the textbook loop keeps, in its order."""
    import edgedet.postprocess as post

    monkeypatch.setattr(post, "DENSE_NMS_MAX", dense_max)
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 100, (n, 2)).astype(np.float32)
    boxes = np.concatenate([xy, xy + rng.uniform(5, 40, (n, 2)).astype(np.float32)], 1)
    boxes[::13, 3] = boxes[::13, 1]
    scores = rng.random(n).astype(np.float32).round(1)
    for max_keep in (1000, 5, 0):
        want = _greedy_reference(boxes.astype(np.float64).tolist(), scores.tolist(), 0.4, max_keep)
        assert post.nms(boxes, scores, 0.4, max_keep).tolist() == want


def test_preprocess_refuses_an_out_it_cannot_fill():
    pre = Preprocessor((32, 32), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="float32"):
        pre([np.zeros((20, 30, 3), np.uint8)], out=np.zeros((1, 3, 32, 32), np.float64))


def test_decode_identity_gives_anchor():
    anchors = np.array([[10, 20, 50, 100]], np.float32)  # y1 x1 y2 x2
    np.testing.assert_allclose(decode_boxes(np.zeros((1, 4), np.float32), anchors), [[20, 10, 100, 50]])


def test_exif_orientation_is_applied(tmp_path):
    """Issue 16 #5: a phone photo stored landscape with EXIF orientation 6 (rotate 90 CW) is read as displayed,
    portrait, as OpenCV's default imread and PIL's exif_transpose show it."""
    from PIL import Image

    stored = np.zeros((60, 100, 3), np.uint8)
    stored[:, :50] = (0, 0, 255)  # left half red (RGB) in the stored pixels
    img = Image.fromarray(stored)
    exif = img.getexif()
    exif[0x0112] = 6
    path = tmp_path / "phone.jpg"
    img.save(path, exif=exif.tobytes(), quality=95)
    got = read_image(path)
    assert got.shape == (100, 60, 3)  # displayed: portrait
    from PIL import ImageOps

    shown = cv2.cvtColor(np.asarray(ImageOps.exif_transpose(Image.open(path))), cv2.COLOR_RGB2BGR)
    assert np.abs(got.astype(int) - shown.astype(int)).mean() < 2


# ---------------------------------------------------------------- hostile images: the pixel budget (issue 27)
from edgedet.preprocess import decode_image  # noqa: E402
from tests.hostile import jpeg_bomb, png_bomb, png_header_only, refusal_cost  # noqa: E402


@pytest.mark.parametrize("ext", [".jpg", ".png", ".webp", ".bmp", ".tif", ".gif", ".ppm", ".pam"])
def test_the_declared_size_is_read_from_every_format_opencv_is_handed(ext):
    from edgedet.imageheader import declared_size

    img = np.random.default_rng(0).integers(0, 256, (21, 37, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(ext, img)
    assert ok
    assert declared_size(buf.tobytes())[1] == (37, 21)
    assert decode_image(buf).shape == (21, 37, 3)


@pytest.mark.parametrize("bomb", ["jpeg", "png"])
def test_a_decompression_bomb_is_refused_from_its_header_fast_and_small(bomb, tmp_path):
    """A 630-byte JPEG declaring 30000x30000 and a 48 KB PNG of 20000x20000: refused before decoding, in under
    100 ms and 50 MB (unbudgeted, OpenCV takes seconds and gigabytes on each)."""
    data = jpeg_bomb() if bomb == "jpeg" else png_bomb()
    path = tmp_path / f"bomb.{bomb}"
    path.write_bytes(data)
    for call in (lambda: decode_image(data, "body"), lambda: read_image(path)):
        with refusal_cost() as cost, pytest.raises(InputError, match="pixel budget") as refused:
            call()
        assert cost["seconds"] < 0.1 and cost["heap_mb"] < 50 and cost["rss_mb"] < 50, cost
        assert type(refused.value).__name__ == "ImageTooLarge"  # a server answers 413


def test_every_decode_failure_is_an_input_error(tmp_path, monkeypatch):
    """An image over OpenCV's own 1-gigapixel limit (86 bytes) raised cv2.error, which aborted whole runs."""
    over_opencv = png_header_only(40000, 40000)
    with pytest.raises(InputError, match="cannot read image x.png"):
        decode_image(over_opencv, "x.png")  # refused by the budget
    monkeypatch.setenv("EDGEDET_MAX_PIXELS", str(2 * 10**9))  # past our budget: OpenCV's own check refuses it
    with pytest.raises(InputError, match="cannot read image x.png"):
        decode_image(over_opencv, "x.png")
    monkeypatch.delenv("EDGEDET_MAX_PIXELS")
    for data, match in [
        (b"GIF89a\x00\x00", "corrupt GIF header"),
        (b"RIFF\0\0\0\0WEBPVP8 ", "corrupt WebP header"),
        (b"\x00\x00\x00 ftypavif" + b"\0" * 40, "not a supported image file"),  # a format whose size we cannot read
        (b"\xff\xd8\xff\xda\0\0", "corrupt JPEG header"),  # scan before any frame header
    ]:
        with pytest.raises(InputError, match=match):
            decode_image(data)


def test_the_pixel_budget_is_configurable(tmp_path, monkeypatch):
    from edgedet.preprocess import MAX_PIXELS, ImageTooLarge, pixel_budget

    assert MAX_PIXELS >= 8192 * 4320  # an 8K frame (DCI) fits
    ok, buf = cv2.imencode(".png", np.zeros((30, 40, 3), np.uint8))
    with pytest.raises(ImageTooLarge, match="40x30 = 1200 pixels"):
        decode_image(buf, max_pixels=1199)
    assert decode_image(buf, max_pixels=1200).shape == (30, 40, 3)
    monkeypatch.setenv("EDGEDET_MAX_PIXELS", "1000")
    assert pixel_budget() == 1000
    with pytest.raises(ImageTooLarge):
        decode_image(buf)
    monkeypatch.setenv("EDGEDET_MAX_PIXELS", "lots")
    with pytest.raises(InputError, match="EDGEDET_MAX_PIXELS"):
        decode_image(buf)
