"""Moving foreground of a fixed camera, moved elsewhere: synthetic reference frames.

A fixed camera's reference period shows people (or cars, forklifts) only where they
happened to go. When they later walk somewhere new -- across a lawn nobody crossed
during the reference period -- a CNN embedding of the frame changes and a
reconstruction-error detector fires, although nothing is wrong. This module makes
reference frames in which the scene's own moving foreground stands at new places:

1. the **background** is the per-pixel median of reference frames spread over time;
2. a frame's **foreground blobs** are the connected regions that differ from it by
   more than ``threshold`` (sum of the three channels' absolute differences),
   cleaned by a morphological opening and closing, with an area between
   ``min_area`` and ``max_area`` of the frame (so noise and whole-frame changes are
   ignored);
3. an **augmented frame** is the frame with 1-3 of its own blobs pasted again at
   random places, with soft edges.

Fitting the CNN branch on the reference frames plus their augmented copies teaches it
that "a person at a new place" is normal, while a foreign object, a colour cast, blur
or a covered lens are not. A frame with no blob gives no augmented copy, so a scene
without moving foreground is fitted exactly as before.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["ForegroundAugmenter", "Blob"]


@dataclass(frozen=True)
class Blob:
    """Pixels and a soft ``[0, 1]`` mask of one foreground region, and where it was."""

    pixels: np.ndarray
    alpha: np.ndarray
    top: int
    left: int


class ForegroundAugmenter:
    """Background model of reference frames and foreground blobs moved to new places.

    Parameters
    ----------
    threshold : int
        Per-pixel sum of absolute RGB differences from the background above which a
        pixel is foreground.
    min_area, max_area : float
        Blob area bounds as fractions of the frame.
    per_frame : (int, int)
        Blobs pasted per augmented frame: a random count in this range (inclusive),
        drawn with replacement from the frame's own blobs.
    seed : int
        Seed of the random placement; each frame's copy is seeded by ``seed`` and
        the frame's pixels, so the same frame always gives the same copy.

    Examples
    --------
    >>> import numpy as np
    >>> bg = np.full((60, 80, 3), 100, np.uint8)
    >>> frame = bg.copy(); frame[10:30, 10:18] = 250          # a "person"
    >>> aug = ForegroundAugmenter().fit([bg, bg, frame])
    >>> len(aug.blobs(frame))
    1
    >>> copy = aug.augment(frame)
    >>> int((copy.astype(int).sum(2) > 600).sum()) > int((frame.astype(int).sum(2) > 600).sum())
    True
    """

    def __init__(self, threshold: int = 40, min_area: float = 0.0005, max_area: float = 0.05,
                 per_frame=(1, 3), seed: int = 0):
        if not 0 < min_area < max_area <= 1:
            raise ValueError(f"need 0 < min_area < max_area <= 1, got {min_area}, {max_area}")
        lo, hi = per_frame
        if not 1 <= lo <= hi:
            raise ValueError(f"per_frame must be (lo, hi) with 1 <= lo <= hi, got {per_frame!r}")
        self.threshold, self.min_area, self.max_area = int(threshold), float(min_area), float(max_area)
        self.per_frame, self.seed = (int(lo), int(hi)), int(seed)
        self._kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))

    def fit(self, frames) -> ForegroundAugmenter:
        """Background = per-pixel median of ``frames`` (same-size RGB uint8, spread over time)."""
        frames = list(frames)
        if not frames:
            raise ValueError("the background model needs at least one frame")
        shapes = {f.shape for f in frames}
        if len(shapes) != 1:
            raise ValueError(f"background frames must share one shape, got {sorted(shapes)}")
        self.background_ = np.median(np.stack(frames), axis=0).round().astype(np.uint8)
        return self

    def blobs(self, frame: np.ndarray) -> list[Blob]:
        """Foreground regions of ``frame`` (empty for a frame of another size than the background)."""
        bg = self.background_
        if frame.shape != bg.shape:
            return []
        diff = cv2.absdiff(frame, bg).astype(np.uint16).sum(axis=2)
        mask = (diff > self.threshold).astype(np.uint8)
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, self._kernel)
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, self._kernel, iterations=2)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(mask)
        area = frame.shape[0] * frame.shape[1]
        out = []
        for i in range(1, n):
            x, y, w, h, a = stats[i]
            if self.min_area * area <= a <= self.max_area * area:
                alpha = cv2.GaussianBlur((labels[y:y + h, x:x + w] == i).astype(np.float32), (3, 3), 0)
                out.append(Blob(frame[y:y + h, x:x + w].copy(), alpha, int(y), int(x)))
        return out

    def augment(self, frame: np.ndarray) -> np.ndarray | None:
        """``frame`` with some of its own blobs pasted again at random places; None when it has none."""
        blobs = self.blobs(frame)
        if not blobs:
            return None
        digest = int.from_bytes(cv2.resize(frame, (8, 8), interpolation=cv2.INTER_AREA).tobytes()[:8], "little")
        rng = np.random.default_rng([self.seed, digest])
        out = frame.astype(np.float32)
        H, W = frame.shape[:2]
        for j in rng.integers(len(blobs), size=int(rng.integers(self.per_frame[0], self.per_frame[1] + 1))):
            b = blobs[j]
            h, w = b.alpha.shape
            y, x = int(rng.integers(0, H - h + 1)), int(rng.integers(0, W - w + 1))
            a = b.alpha[..., None]
            out[y:y + h, x:x + w] = a * b.pixels + (1 - a) * out[y:y + h, x:x + w]
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)
