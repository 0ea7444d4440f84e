"""Features that keep *where* and *how the light is* apart (issue 21).

Two small, cheap descriptors computed on the colour branch's working size (no network):

* :class:`CellFeatures` — per grid cell, histograms of **photometrically normalised**
  luminance (each frame's median removed and divided by its interquartile range) and of
  its gradient magnitude. Light that changes over the whole frame (clouds, exposure,
  dusk) is divided out; what is left is the content of each cell: a band of dead rows,
  a frozen banner, a smudge on the lens or a pasted object changes a few cells a lot.
* :class:`LightFeatures` — the global photometry the cell features divide out: median,
  spread and tails of the luminance in **stops** (log2, so a cloud that halves the light
  moves them by 1 whether the scene is bright or dark), and the colour cast (mean a*, b*
  of CIELAB) and chroma. Night, fog and a lost white balance move these; traffic barely does.
  With ``sharpness``, also how much fine detail the frame holds (log2 of the variance of the
  luminance's Laplacian): blur and fog lower it, a band of dead or noisy rows moves it.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["CellFeatures", "LightFeatures", "LIGHT_STATS", "SHARPNESS"]

#: names of :class:`LightFeatures` columns (luminance statistics in stops: log2 of 8 + the 0-255
#: value, the 8 keeping a black frame finite; a*, b*, chroma in CIELAB units)
LIGHT_STATS = ("L_median", "L_iqr", "L_p05", "L_p95", "a_mean", "b_mean", "chroma_mean")
#: the optional eighth column (``LightFeatures(sharpness=True)``): log2 of 1 + the variance of the
#: luminance's Laplacian, how much fine detail the frame holds (blur, fog, a smeared or dead band lower or
#: raise it over the whole frame; moving content barely does)
SHARPNESS = "L_sharpness"
#: offset (0-255 levels) added before the log: below ~8 levels sensor noise, not light, decides
_DARK = 8.0


def _luminance(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)


class CellFeatures:
    """Per-cell histograms of normalised luminance and gradient magnitude.

    Parameters
    ----------
    grid : (rows, cols)
        Cells (default 6x8: a cell is about 2% of the frame, the size of a small fault).
    level_bins, edge_bins : int
        Histogram bins of the normalised luminance (over -3..3 interquartile ranges
        around the median) and of the gradient magnitude (0..2 IQR per pixel).
    """

    def __init__(self, grid=(6, 8), level_bins: int = 12, edge_bins: int = 6):
        self.grid = tuple(int(g) for g in grid)
        self.level_bins, self.edge_bins = int(level_bins), int(edge_bins)
        if len(self.grid) != 2 or min(self.grid) < 1 or max(self.grid) > 32:
            raise ValueError(f"grid must be two ints in 1..32, got {grid!r}")
        if not (2 <= self.level_bins <= 64 and 2 <= self.edge_bins <= 64):
            raise ValueError("level_bins and edge_bins must be in 2..64")
        self._layout: dict = {}

    @property
    def per_cell(self) -> int:
        return self.level_bins + self.edge_bins

    @property
    def n_features(self) -> int:
        return self.grid[0] * self.grid[1] * self.per_cell

    def group_bounds(self) -> np.ndarray:
        """Offsets of each cell's block of features (one histogram pair per cell)."""
        return np.arange(0, self.n_features + 1, self.per_cell)

    def _cells(self, shape) -> np.ndarray:
        key = shape
        if key not in self._layout:
            if len(self._layout) > 16:
                self._layout.clear()
            h, w = shape
            gy, gx = self.grid
            rows = np.minimum(np.arange(h) * gy // h, gy - 1)
            cols = np.minimum(np.arange(w) * gx // w, gx - 1)
            self._layout[key] = (rows[:, None] * gx + cols[None, :]).ravel()
        return self._layout[key]

    def transform(self, rgb: np.ndarray) -> np.ndarray:
        """``(n_features,)`` float32: each cell's two histograms (each sums to 1)."""
        g = _luminance(rgb)
        q25, med, q75 = np.percentile(g, (25, 50, 75))
        z = ((g - np.float32(med)) / np.float32(max(float(q75 - q25), 4.0))).astype(np.float32)
        gx = cv2.Sobel(z, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(z, cv2.CV_32F, 0, 1, ksize=3)
        mag = np.sqrt(gx * gx + gy * gy) / 8.0
        cell = self._cells(g.shape)
        n_cells = self.grid[0] * self.grid[1]
        lv = np.clip(((z.ravel() + 3.0) / 6.0 * self.level_bins).astype(np.int64), 0, self.level_bins - 1)
        ed = np.clip((mag.ravel() / 2.0 * self.edge_bins).astype(np.int64), 0, self.edge_bins - 1)
        hl = np.bincount(cell * self.level_bins + lv, minlength=n_cells * self.level_bins).reshape(n_cells, -1)
        he = np.bincount(cell * self.edge_bins + ed, minlength=n_cells * self.edge_bins).reshape(n_cells, -1)
        counts = np.maximum(np.bincount(cell, minlength=n_cells), 1)[:, None]
        return np.concatenate([hl / counts, he / counts], axis=1).astype(np.float32).ravel()


class LightFeatures:
    """Global photometry of a frame (see :data:`LIGHT_STATS`), and with ``sharpness`` its fine detail
    (:data:`SHARPNESS`)."""

    def __init__(self, sharpness: bool = False, detail_side: int = 0):
        self.sharpness = bool(sharpness)
        self.detail_side = int(detail_side)

    @property
    def n_features(self) -> int:
        return len(LIGHT_STATS) + self.sharpness

    #: luminance percentiles read (5, 25, 50, 75, 95) as fractions
    _QUANTILES = np.array([0.05, 0.25, 0.5, 0.75, 0.95])

    @classmethod
    def _percentiles(cls, L: np.ndarray) -> np.ndarray:
        """``np.percentile(L, (5, 25, 50, 75, 95))`` (linear interpolation) of a uint8 image, from its
        256-bin histogram instead of a sort: the same numbers at a fraction of the cost."""
        cdf = np.cumsum(cv2.calcHist([np.ascontiguousarray(L)], [0], None, [256], [0, 256]).ravel())
        pos = cls._QUANTILES * (cdf[-1] - 1)
        k = np.floor(pos)
        lo = np.searchsorted(cdf, k, side="right")
        hi = np.searchsorted(cdf, np.minimum(k + 1, cdf[-1] - 1), side="right")
        return lo + (pos - k) * (hi - lo)

    def _detail_plane(self, L: np.ndarray) -> np.ndarray:
        """The luminance the sharpness reads: with ``detail_side``, area-resized to that shorter side when
        larger, so that the same scene sampled at another camera resolution reads closer (a 640x480 substream
        of a 768x576 camera is worked on at 320x240, the camera's own frames at 192x144: the Laplacian read
        0.58 log2-steps apart as they come, 0.37 at a shorter side of 128); without it, as it comes."""
        h, w = L.shape
        if self.detail_side and min(h, w) > self.detail_side:
            f = self.detail_side / min(h, w)
            L = cv2.resize(L, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
        return L

    def transform(self, rgb: np.ndarray) -> np.ndarray:
        lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)  # 8-bit: L on 0-255, a* and b* offset by 128
        p05, q25, med, q75, p95 = self._percentiles(lab[..., 0])
        _, a_mean, b_mean, _ = cv2.mean(lab)
        a, b = (c.astype(np.float32) - np.float32(128.0) for c in cv2.split(lab)[1:])
        stops = np.log2(np.array([med, q75 - q25, p05, p95], np.float64) + _DARK)
        out = [stops, [a_mean - 128.0, b_mean - 128.0, float(cv2.magnitude(a, b).mean())]]
        if self.sharpness:
            _, sd = cv2.meanStdDev(cv2.Laplacian(self._detail_plane(lab[..., 0]), cv2.CV_32F))
            out.append([np.log2(1.0 + float(sd[0, 0]) ** 2)])
        return np.concatenate(out).astype(np.float32)
