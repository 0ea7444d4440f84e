"""Has the camera moved? Phase correlation against the reference's median picture (issue 21).

A fixed camera's background stays where it was; a knocked mount, a loosened bracket or a
PTZ camera that did not return to its preset shifts all of it. :class:`ShiftScorer` keeps
the per-pixel median of the reference thumbnails (people, cars and a board moving in front
of the camera are mostly gone from it) and scores each frame by how far phase correlation
moves it to fit that median, as a percentage of the frame. It correlates twice, on the grey
levels and on their gradient magnitude, and keeps the *smaller* shift: moving content makes one
of them jump now and then (measured on the development scenes: grey levels on the desk, where a
hand moves over a white table; edges on the fish tank), a moved camera moves both.
"""

from __future__ import annotations

from typing import ClassVar

import cv2
import numpy as np

from .base import BaseScorer, check_shape

__all__ = ["ShiftScorer"]


def _gradient(g: np.ndarray) -> np.ndarray:
    b = cv2.GaussianBlur(g, (3, 3), 0)
    return cv2.magnitude(cv2.Sobel(b, cv2.CV_32F, 1, 0), cv2.Sobel(b, cv2.CV_32F, 0, 1))


class ShiftScorer(BaseScorer):
    """The frame's shift against the reference's median picture, in percent of the frame.

    Parameters
    ----------
    size : (height, width)
        The thumbnails' grid (the features are ``height * width`` grey levels per image).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> scene = rng.integers(0, 255, (96, 128)).astype(np.float32)
    >>> scene = np.asarray(__import__("cv2").GaussianBlur(scene, (9, 9), 3))
    >>> ref = np.stack([scene + rng.normal(0, 2, scene.shape) for _ in range(10)]).reshape(10, -1)
    >>> moved = np.roll(scene, 8, axis=1).reshape(1, -1)           # 8 of 128 columns: 6.25%
    >>> s = ShiftScorer().fit(ref)
    >>> [round(float(v), 1) for v in s.score_samples(np.vstack([ref[:1], moved]))]
    [0.0, 6.2]
    """

    _array_attrs: ClassVar = ("median_",)

    def __init__(self, size=(96, 128)):
        self.size = size

    def _grid(self) -> tuple[int, int]:
        h, w = (int(v) for v in self.size)
        if min(h, w) < 16:
            raise ValueError(f"size must be (height, width) of at least 16 each, got {self.size!r}")
        return h, w

    def _fit(self, X):
        h, w = self._grid()
        if X.shape[1] != h * w:
            raise ValueError(f"ShiftScorer(size={self.size!r}) needs {h * w} features per row, got {X.shape[1]}")
        self.median_ = np.median(X.reshape(len(X), h, w), axis=0).astype(np.float32)

    def _score(self, X):
        h, w = self._grid()
        # the window is applied here: given to phaseCorrelate as its third argument, it returned
        # shifts of hundreds of pixels on 128x96 thumbnails (OpenCV 5.0.0, measured on the dev scenes)
        win = cv2.createHanningWindow((w, h), cv2.CV_32F)
        ref = [np.ascontiguousarray(self.median_ * win), np.ascontiguousarray(_gradient(self.median_) * win)]
        out = np.empty(len(X))
        for i, row in enumerate(X):
            g = np.ascontiguousarray(row.reshape(h, w), dtype=np.float32)
            moves = []
            for r, x in zip(ref, (g, _gradient(g))):
                (dx, dy), _ = cv2.phaseCorrelate(r, np.ascontiguousarray(x * win))
                moves.append(np.hypot(dx / w, dy / h))
            out[i] = 100.0 * min(moves)
        return out

    def _check_state(self):
        check_shape(type(self).__name__, "median_", np.asarray(self.median_), self._grid())
