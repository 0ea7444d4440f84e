"""Hue / saturation / brightness (HSB = OpenCV's HSV) histograms and statistics per image.

The histograms are the colour branch's features; the per-channel statistics
(mean, std, min, max) feed the min/max baseline and batch monitoring.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

__all__ = ["ColourFeatures", "STAT_NAMES"]

_CHANNELS = ("hue", "saturation", "brightness")
_RANGES = ((0, 180), (0, 256), (0, 256))  # OpenCV 8-bit HSV: hue is 0..179
STAT_NAMES = tuple(f"{c}_{s}" for c in _CHANNELS for s in ("mean", "std", "min", "max"))


@dataclass
class ColourFeatures:
    """Per-image HSB histograms.

    Parameters
    ----------
    bins : int
        Bins per channel histogram.
    grid : (rows, cols)
        Spatial grid: one set of channel histograms per cell (``(1, 1)`` = whole
        image). A grid makes the colour branch see *where* colours are, so a
        vertical flip (sky at the bottom) changes it.
    joint_hs : bool
        Add a joint hue x saturation histogram per cell (``hs_bins``).
    hs_bins : (int, int)
        Hue and saturation bins of the joint histogram.

    Notes
    -----
    Each histogram is normalised to sum to 1; together they form one flat
    vector, split into *groups* (one per cell and channel) given by
    :meth:`group_bounds`, which histogram distances use.

    Examples
    --------
    >>> import numpy as np
    >>> f = ColourFeatures(bins=8)
    >>> f.transform(np.zeros((4, 4, 3), np.uint8)).shape
    (24,)
    """

    bins: int = 32
    grid: tuple[int, int] = (1, 1)
    joint_hs: bool = False
    hs_bins: tuple[int, int] = (12, 8)

    def __post_init__(self):
        self.grid = tuple(int(g) for g in self.grid)
        self.hs_bins = tuple(int(b) for b in self.hs_bins)
        if int(self.bins) < 2:
            raise ValueError(f"bins must be >= 2, got {self.bins}")
        if len(self.grid) != 2 or min(self.grid) < 1:
            raise ValueError(f"grid must be (rows, cols) with both >= 1, got {self.grid}")

    def get_config(self) -> dict:
        """Settings as JSON-able values."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def group_sizes(self) -> list[int]:
        """Number of bins of each histogram in the flat vector."""
        per_cell = [self.bins] * 3 + ([self.hs_bins[0] * self.hs_bins[1]] if self.joint_hs else [])
        return per_cell * (self.grid[0] * self.grid[1])

    def group_names(self) -> list[str]:
        """Name of each histogram, e.g. ``hue@0,1`` (channel @ grid row, column)."""
        names = list(_CHANNELS) + (["hue_x_saturation"] if self.joint_hs else [])
        cells = [(r, c) for r in range(self.grid[0]) for c in range(self.grid[1])]
        if len(cells) == 1:
            return names
        return [f"{n}@{r},{c}" for r, c in cells for n in names]

    def group_bounds(self) -> np.ndarray:
        """``(n_groups + 1,)`` offsets of each group in the flat vector."""
        return np.concatenate([[0], np.cumsum(self.group_sizes())]).astype(np.int64)

    @property
    def n_features(self) -> int:
        return int(sum(self.group_sizes()))

    def hsv(self, rgb: np.ndarray) -> np.ndarray:
        """OpenCV 8-bit HSV of an RGB image (hue 0..179)."""
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)

    def transform(self, rgb: np.ndarray, hsv: np.ndarray | None = None) -> np.ndarray:
        """Flat ``float32`` vector of normalised histograms for one RGB image."""
        hsv = self.hsv(rgb) if hsv is None else hsv
        h, w = hsv.shape[:2]
        rows = np.linspace(0, h, self.grid[0] + 1).astype(int)
        cols = np.linspace(0, w, self.grid[1] + 1).astype(int)
        parts = []
        for r in range(self.grid[0]):
            for c in range(self.grid[1]):
                cell = hsv[rows[r]:rows[r + 1], cols[c]:cols[c + 1]]
                if cell.size == 0:  # image smaller than the grid: reuse the whole image
                    cell = hsv
                for ch, rng in enumerate(_RANGES):
                    parts.append(cv2.calcHist([cell], [ch], None, [self.bins], list(rng)).ravel())
                if self.joint_hs:
                    parts.append(cv2.calcHist([cell], [0, 1], None, list(self.hs_bins),
                                              [0, 180, 0, 256]).ravel())
        out = np.empty(self.n_features, np.float32)
        pos = 0
        for p in parts:
            out[pos:pos + p.size] = p / max(float(p.sum()), 1.0)
            pos += p.size
        return out

    @staticmethod
    def stats(rgb: np.ndarray | None = None, hsv: np.ndarray | None = None) -> np.ndarray:
        """Mean, std, min, max of each HSB channel, scaled to [0, 1] (see ``STAT_NAMES``)."""
        if hsv is None:
            hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
        out = np.empty(12, np.float32)
        for ch, (_, hi) in enumerate(_RANGES):
            plane = hsv[..., ch]
            mean, std = cv2.meanStdDev(plane)
            lo_v, hi_v, _, _ = cv2.minMaxLoc(plane)
            out[ch * 4:(ch + 1) * 4] = (mean[0, 0] / (hi - 1), std[0, 0] / (hi - 1),
                                        lo_v / (hi - 1), hi_v / (hi - 1))
        return out
