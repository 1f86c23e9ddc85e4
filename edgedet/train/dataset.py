"""Training samples: COCO images -> augmented (flip, scale jitter), letterboxed, normalised tensors + targets."""

from __future__ import annotations

import numpy as np
import torch

from ..data.coco import CocoDataset
from ..preprocess import Preprocessor, read_image
from .targets import AnchorMatcher


class DetectionDataset(torch.utils.data.Dataset):
    def __init__(self, ds: CocoDataset, cfg, anchors: np.ndarray, augment: bool, seed: int = 0):
        self.ds, self.cfg, self.augment = ds, cfg, augment
        self.pre = Preprocessor(cfg.image_size, cfg.mean, cfg.std)
        self.matcher = AnchorMatcher(anchors)
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.ds.images)

    def __getitem__(self, i: int):
        rng = np.random.default_rng([self.seed, self.epoch, i])
        item = self.ds.images[i]
        img = read_image(item.path)
        boxes = item.boxes.copy()
        if self.augment:
            img, boxes = _jitter(img, boxes, rng, self.cfg.image_size)
        x, infos = self.pre([img])
        boxes = boxes * infos[0].scale
        keep = ((boxes[:, 2] - boxes[:, 0]) >= 2) & ((boxes[:, 3] - boxes[:, 1]) >= 2)  # gone after a crop
        cls_t, box_t = self.matcher(torch.from_numpy(boxes[keep]).float(), torch.from_numpy(item.labels[keep]))
        return torch.from_numpy(x[0].copy()), cls_t, box_t


def _jitter(img, boxes, rng, out_hw):
    """Random horizontal flip and scale jitter (0.75-1.25) with a random crop/placement."""
    import cv2

    h, w = img.shape[:2]
    if rng.random() < 0.5:
        img = img[:, ::-1]
        boxes = boxes[:, [2, 1, 0, 3]] * [-1, 1, -1, 1] + [w, 0, w, 0]
    s = rng.uniform(0.75, 1.25)
    nh, nw = max(2, int(h * s)), max(2, int(w * s))
    img = cv2.resize(np.ascontiguousarray(img), (nw, nh), interpolation=cv2.INTER_LINEAR)
    boxes = boxes * [nw / w, nh / h, nw / w, nh / h]
    if s > 1:  # crop back to the original extent at a random offset
        y0, x0 = int(rng.integers(0, nh - h + 1)), int(rng.integers(0, nw - w + 1))
        img = img[y0 : y0 + h, x0 : x0 + w]
        boxes = boxes - [x0, y0, x0, y0]
        boxes = np.clip(boxes, 0, [w, h, w, h])
    return np.ascontiguousarray(img), boxes.astype(np.float32)
