"""Where the picture sits in the frame: a small grey thumbnail for the shift branch (issue 21).

:class:`ShiftFeatures` resizes every frame to one fixed grid (default 128x96, whatever the
camera's resolution) so that frames can be registered against each other by phase
correlation (:class:`~hybrid_drift.scorers.ShiftScorer`); the numbers are grey levels 0-255.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["ShiftFeatures"]


class ShiftFeatures:
    """A grey thumbnail on a fixed ``(height, width)`` grid, flattened (``height * width`` numbers)."""

    def __init__(self, size=(96, 128)):
        self.size = (int(size[0]), int(size[1]))
        if min(self.size) < 16 or max(self.size) > 1024:
            raise ValueError(f"size must be two ints in 16..1024, got {size!r}")

    @property
    def n_features(self) -> int:
        return self.size[0] * self.size[1]

    def transform(self, rgb: np.ndarray) -> np.ndarray:
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        h, w = self.size
        return cv2.resize(grey, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32).ravel()
