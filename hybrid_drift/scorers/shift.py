"""Has the camera moved? Phase correlation against the reference's median picture (issue 21).

A fixed camera's background stays where it was; a knocked mount, a loosened bracket or a
PTZ camera that did not return to its preset shifts all of it. :class:`ShiftScorer` keeps
the per-pixel median of the reference thumbnails (people, cars and a board moving in front
of the camera are mostly gone from it) and scores each frame by how far phase correlation
moves it to fit that median, as a percentage of the frame. It correlates twice, on the grey
levels and on their gradient magnitude, and keeps the *smaller* shift: moving content makes one
of them jump now and then (measured on the development scenes: grey levels on the desk, where a
hand moves over a white table; edges on the fish tank), a moved camera moves both.

A knocked camera moves what stood still in the reference; a board, a car or a crowd that fills much
of the frame is what moved in it. With ``steady`` (grey levels), each pixel's vote in the correlation
is weighted by how still it was in the reference: ``1 / (1 + (MAD / steady)^2)``, the MAD being the
median absolute deviation of that pixel from the median picture over the reference, so a pixel that
moved by ``steady`` levels counts half. Sensor noise (a MAD of 1-4 levels on every scene measured)
barely changes the weights; where a large object came and went it drops out of the vote.
"""

from __future__ import annotations

from typing import ClassVar

import cv2
import numpy as np

from .base import BaseScorer, check_shape

__all__ = ["ShiftScorer", "TearScorer"]


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

    def __init__(self, size=(96, 128), steady: float = 0.0):
        self.size, self.steady = size, steady

    @property
    def _array_attrs(self) -> tuple[str, ...]:  # the steadiness weights only when the scorer uses them
        return ("median_", "weight_") if self.steady else ("median_",)

    def _grid(self) -> tuple[int, int]:
        h, w = (int(v) for v in self.size)
        if min(h, w) < 16:
            raise ValueError(f"size must be (height, width) of at least 16 each, got {self.size!r}")
        return h, w

    def _fit(self, X):
        h, w = self._grid()
        if X.shape[1] != h * w:
            raise ValueError(f"ShiftScorer(size={self.size!r}) needs {h * w} features per row, got {X.shape[1]}")
        self._check_steady()
        stack = X.reshape(len(X), h, w)
        self.median_ = np.median(stack, axis=0).astype(np.float32)
        if self.steady:
            # the deviations are a temporary of the reference's size: the median may sort them in place
            mad = np.median(np.abs(stack - self.median_), axis=0, overwrite_input=True)
            weight = (1.0 / (1.0 + (mad / float(self.steady)) ** 2)).astype(np.float32)
            self.weight_ = cv2.GaussianBlur(weight, (0, 0), 2.0)  # no sharp mask edges for the correlation

    def _score(self, X):
        h, w = self._grid()
        # the window is applied here: given to phaseCorrelate as its third argument, it returned
        # shifts of hundreds of pixels on 128x96 thumbnails (OpenCV 5.0.0, measured on the dev scenes)
        win = cv2.createHanningWindow((w, h), cv2.CV_32F)
        if self.steady:
            win = np.ascontiguousarray(win * self.weight_, dtype=np.float32)
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

    def _check_steady(self):
        if isinstance(self.steady, bool) or not isinstance(self.steady, (int, float)) or not 0 <= self.steady <= 255:
            raise ValueError(f"{type(self).__name__}: steady must be a grey level in 0..255 (0: every pixel alike), "
                             f"got {self.steady!r}")

    def _check_state(self):
        self._check_steady()
        for a in self._array_attrs:
            check_shape(type(self).__name__, a, np.asarray(getattr(self, a)), self._grid())
        if self.steady and not ((self.weight_ > 0) & (self.weight_ <= 1 + 1e-6)).all():
            raise ValueError(f"{type(self).__name__}: weight_ must lie in (0, 1]")


class TearScorer(BaseScorer):
    """Part of the picture displaced sideways (a torn frame): per horizontal stripe, how much better the
    frame matches the reference's median picture moved sideways than in place, past the reference's own.

    Both are compared by their horizontal gradients (each pixel minus its left neighbour), so the light
    level does not count. For each stripe and each horizontal lag ``l`` between ``min_lag`` and
    ``max_lag`` of the width (either way), the mean absolute difference between the frame's gradients
    moved by ``l`` and the median's is compared with the one at lag 0, over the columns both cover; the
    stripe's statistic is the lag-0 difference minus the smallest displaced one (grey levels: > 0 when
    some sideways shift fits better than none). A torn frame fits the median shifted below the tear;
    moving content (a person, a car, a hand), light and blur fit no shift better. The score is the
    largest stripe's statistic past the reference's largest in that stripe, in ``unit`` grey levels.

    Parameters
    ----------
    size : (height, width)
        The thumbnails' grid (the features are ``height * width`` grey levels per image).
    bins : int
        Horizontal stripes, each with its own range.
    min_lag, max_lag : float
        The sideways shifts tried, as shares of the width.
    unit : float
        Grey levels (of gradient) per unit of the score.

    Examples
    --------
    >>> import numpy as np, cv2
    >>> rng = np.random.default_rng(0)
    >>> scene = cv2.GaussianBlur(rng.integers(0, 255, (48, 64)).astype(np.float32), (5, 5), 2) * 3 - 200
    >>> ref = np.stack([scene + rng.normal(0, 2, scene.shape) for _ in range(10)]).reshape(10, -1)
    >>> torn = scene.copy(); torn[30:] = np.roll(scene[30:], 12, axis=1)
    >>> s = TearScorer().fit(ref)
    >>> [bool(v > 1) for v in s.score_samples(np.vstack([ref[:1], torn.reshape(1, -1)]))]
    [False, True]
    """

    _array_attrs: ClassVar = ("median_", "max_")

    def __init__(self, size=(48, 64), bins: int = 8, min_lag: float = 0.05, max_lag: float = 0.4, unit: float = 1.0):
        self.size, self.bins, self.min_lag, self.max_lag, self.unit = size, bins, min_lag, max_lag, unit

    def check_settings(self) -> tuple[int, int]:
        """``(height, width)`` of the grid; ValueError naming the setting when the settings do not fit together."""
        h, w = (int(v) for v in self.size)
        if min(h, w) < 8:
            raise ValueError(f"size must be (height, width) of at least 8 each, got {self.size!r}")
        if not (0 < self.min_lag <= self.max_lag < 1 and int(self.bins) >= 1 and h >= int(self.bins)
                and self.unit > 0):
            raise ValueError(f"need 0 < min_lag <= max_lag < 1, 1 <= bins <= height and unit > 0, got "
                             f"min_lag={self.min_lag!r}, max_lag={self.max_lag!r}, bins={self.bins!r}, unit={self.unit!r}")
        return h, w

    def _lags(self, w: int) -> list[int]:
        lo, hi = max(1, round(self.min_lag * w)), max(1, int(self.max_lag * w))
        return [s * lag for lag in range(lo, max(lo, hi) + 1) for s in (1, -1)]

    def stripe_gains(self, X) -> np.ndarray:
        """``(n, bins)``: per stripe, the lag-0 difference from the median minus the smallest displaced one."""
        h, w = self.check_settings()
        G = np.diff(np.asarray(X, dtype=np.float32).reshape(len(X), h, w), axis=2)
        med = np.diff(np.asarray(self.median_, dtype=np.float32), axis=1)
        w -= 1
        edges = np.linspace(0, h, int(self.bins) + 1).round().astype(int)

        def per_stripe(lag: int) -> np.ndarray:
            if lag >= 0:
                rows = np.abs(G[:, :, lag:] - med[None, :, :w - lag]).mean(axis=2)
            else:
                rows = np.abs(G[:, :, :w + lag] - med[None, :, -lag:]).mean(axis=2)
            return np.add.reduceat(rows, edges[:-1], axis=1) / np.diff(edges)

        lags = self._lags(w)
        best = per_stripe(lags[0])
        for lag in lags[1:]:
            np.minimum(best, per_stripe(lag), out=best)
        return (per_stripe(0) - best).astype(np.float64)

    def _fit(self, X):
        h, w = self.check_settings()
        if X.shape[1] != h * w:
            raise ValueError(f"TearScorer(size={self.size!r}) needs {h * w} features per row, got {X.shape[1]}")
        self.median_ = np.median(X.reshape(len(X), h, w), axis=0).astype(np.float32)
        self.max_ = self.stripe_gains(X).max(axis=0)

    def feature_scores(self, X) -> np.ndarray:
        """``(n, bins)``: each stripe's statistic past the reference's largest there, in units (0 within)."""
        return np.maximum(self.stripe_gains(self._check_X(X)) - self.max_, 0.0) / float(self.unit)

    def _score(self, X):
        return self.feature_scores(X).max(axis=1)

    def _check_state(self):
        name = type(self).__name__
        check_shape(name, "median_", np.asarray(self.median_), self.check_settings())
        check_shape(name, "max_", np.asarray(self.max_), (int(self.bins),))
