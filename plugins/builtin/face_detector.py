"""Built-in plugin: face detection with OpenCV's Haar cascade (ships in the opencv wheel).

Works offline from what the package ships (mediapipe and DNN detectors need downloaded
models). A plugin contributing a better detector through ``photobatch_face_detectors`` can
replace it by name in a recipe.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from PIL import Image

from photobatch.plugins import hookimpl

# Detecting on a bounded size keeps a 50 MP photo as fast as a thumbnail; faces under ~2 % of
# the longest side are too small to retouch anyway.
DETECT_LONG_SIDE = 1024


@dataclass(frozen=True)
class FaceBox:
    """A face in image pixels: left, top, width, height."""

    x: int
    y: int
    w: int
    h: int


class HaarFaceDetector:
    """Frontal faces (plus profile faces) with OpenCV's bundled Haar cascades."""

    name = "opencv-haar"

    def __init__(self, min_neighbors: int = 5):
        self.min_neighbors = min_neighbors
        self._cascades = None

    def _load(self):
        import cv2

        if self._cascades is None:
            folder = cv2.data.haarcascades
            self._cascades = [cv2.CascadeClassifier(os.path.join(folder, name)) for name in (
                "haarcascade_frontalface_alt2.xml", "haarcascade_profileface.xml")]
            if any(c.empty() for c in self._cascades):
                raise RuntimeError(f"OpenCV's face cascades are missing from {folder}")
        return self._cascades

    def detect(self, image: Image.Image) -> list[FaceBox]:
        """Faces in ``image`` (RGB, any size), largest first, overlapping detections merged."""
        import cv2
        import numpy as np

        scale = min(1.0, DETECT_LONG_SIDE / max(image.size))
        small = image.convert("L")
        if scale < 1.0:
            small = small.resize((round(image.width * scale), round(image.height * scale)),
                                 Image.Resampling.BILINEAR)
        gray = cv2.equalizeHist(np.asarray(small))
        min_side = max(24, int(min(small.size) * 0.04))
        boxes = []
        for cascade in self._load():
            found = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=self.min_neighbors,
                                             minSize=(min_side, min_side))
            boxes.extend(tuple(int(v) for v in box) for box in found)
        merged = _merge_overlapping(boxes)
        return sorted((FaceBox(round(x / scale), round(y / scale), round(w / scale), round(h / scale))
                       for x, y, w, h in merged), key=lambda b: -b.w * b.h)


def _merge_overlapping(boxes: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    # Frontal and profile cascades often both fire on a three-quarter face: keep the larger.
    kept: list[tuple[int, int, int, int]] = []
    for box in sorted(boxes, key=lambda b: -b[2] * b[3]):
        if all(_iou(box, other) < 0.3 for other in kept):
            kept.append(box)
    return kept


def _iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    return inter / float(aw * ah + bw * bh - inter)


@hookimpl
def photobatch_face_detectors():
    """The OpenCV Haar detector."""
    return [HaarFaceDetector()]
