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
    assert np.allclose(batch[0, :, :64, :], 1.0)     # image: (1 - 0.5) / 0.5
    assert np.allclose(batch[0, :, 64:, :], 0.0)     # pad: the mean colour, normalised


def test_bgr_to_rgb_and_normalisation():
    pre = Preprocessor((32, 32), (0.1, 0.2, 0.3), (0.5, 0.25, 0.125))
    img = np.zeros((32, 32, 3), np.uint8)
    img[..., 0] = 255  # blue in BGR
    batch, _ = pre([img])
    assert np.allclose(batch[0, 0], (0 - 0.1) / 0.5)            # R
    assert np.allclose(batch[0, 1], (0 - 0.2) / 0.25)           # G
    assert np.allclose(batch[0, 2], (1 - 0.3) / 0.125, atol=1e-5)  # B


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


@pytest.mark.parametrize("bad, msg", [
    (np.zeros((4, 4, 3), np.float32), "unsupported pixel type"),
    (np.zeros((4, 4, 2), np.uint8), "expected an image of shape"),
    (np.zeros((1, 4, 3), np.uint8), "too small"),
    ("not an image", "expected a numpy array"),
])
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


def test_batched_nms_matches_torchvision():
    torch = pytest.importorskip("torch")
    tv = pytest.importorskip("torchvision")
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 200, (400, 2)).astype(np.float32)
    wh = rng.uniform(5, 60, (400, 2)).astype(np.float32)
    boxes = np.concatenate([xy, xy + wh], 1)
    scores = rng.random(400).astype(np.float32)
    classes = rng.integers(0, 5, 400)
    ours = batched_nms(boxes, scores, classes, 0.5, max_keep=1000)
    ref = tv.ops.batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(classes), 0.5).numpy()
    np.testing.assert_array_equal(ours, ref)


def test_decode_identity_gives_anchor():
    anchors = np.array([[10, 20, 50, 100]], np.float32)  # y1 x1 y2 x2
    np.testing.assert_allclose(decode_boxes(np.zeros((1, 4), np.float32), anchors), [[20, 10, 100, 50]])


def test_exif_orientation_is_applied(tmp_path):
    """Issue 16 #5: a phone photo stored landscape with EXIF orientation 6 (rotate 90 CW) is read as displayed,
    portrait, as OpenCV's default imread and PIL's exif_transpose show it."""
    from PIL import Image
    stored = np.zeros((60, 100, 3), np.uint8)
    stored[:, :50] = (0, 0, 255)                 # left half red (RGB) in the stored pixels
    img = Image.fromarray(stored)
    exif = img.getexif()
    exif[0x0112] = 6
    path = tmp_path / "phone.jpg"
    img.save(path, exif=exif.tobytes(), quality=95)
    got = read_image(path)
    assert got.shape == (100, 60, 3)             # displayed: portrait
    from PIL import ImageOps
    shown = cv2.cvtColor(np.asarray(ImageOps.exif_transpose(Image.open(path))), cv2.COLOR_RGB2BGR)
    assert np.abs(got.astype(int) - shown.astype(int)).mean() < 2
