"""The frame's geometry (issue 21): where the picture sits, and row-aligned bands across it.

* :class:`ShiftFeatures` resizes every frame to one fixed grid (default 128x96, whatever the
  camera's resolution) so that frames can be registered against each other by phase
  correlation (:class:`~hybrid_drift.scorers.ShiftScorer`); the numbers are grey levels 0-255.
* :class:`FlatRowFeatures` reads, in each stripe, the **flattest row**: the largest share of a
  row's full width that sits at the row's own median grey level (or, opt-in, at its densest level).
  A dead or stuck sensor row is one value from edge to edge; a row of a real scene has texture and
  noise somewhere along it.
* :class:`BandFeatures` reads the strongest **horizontal band edge** in each of a few horizontal
  stripes of the frame: the largest grey-level step between rows that a wide share of the
  frame's width takes together. Sensors and video links fail row by row (dead or stuck rows, a
  half-decoded frame) and overlays are drawn as wide bars; people and cars cover too
  little of a row to make one, and the fixed scene's own wide horizontal edges are in the
  reference, each in its own stripe (a roof line or a shelf edge widens the range of its stripe
  only, not of the whole frame).
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["ShiftFeatures", "BandFeatures", "FlatRowFeatures", "BAND_SHARE", "BAND_BINS", "FLAT_WITHIN", "FLAT_LEVELS"]

#: the share of the width a step between rows must span to count as a band edge. Chosen on the development
#: sets: at half the width a frozen banner over 45-75% of a darker part of the fish tank was missed; at a
#: third, the street's own horizontal structure reached the reference's maximum on clean frames
BAND_SHARE = 0.4
#: horizontal stripes of the frame, each with its own strongest band edge (so its own range in the
#: reference). Chosen on the development sets with extra dead-row and banner copies of their clean test
#: frames (2026-12-01): one stripe caught 85-97% of the banners and 85-95% of the dead rows on the
#: street, 2 to 8 stripes 100% and 95-97% with the same thresholds and no false alarm; 16 raised the
#: street's threshold (3.0 -> 3.4 units)
BAND_BINS = 8
#: how close to its row's median a pixel must be to count as flat, as a share of the frame's grey-level
#: standard deviation (never under half a level). Relative, so that a darker or flatter-lit frame (a cloud,
#: dusk) has the same flat rows: on the development sets a fixed 2 levels flagged 25-47% of clean street and
#: desk frames darkened by half a stop, 5% of the deviation 0-5% of street, desk and tank frames; dead rows
#: 100% with either (2026-12-01)
FLAT_WITHIN = 0.05
#: the grey level a row's flat share is counted around: ``"median"``, the row's median (the default: a flat
#: part under half the width counts only where the rest of the row shares its level), or ``"mode"``, the row's
#: densest level (opt-in: a bar over any share of the width counts over its own width, e.g. a frozen banner
#: over 45-75% of it). Measured 2026-12-03: on the 26 development datasets the default fusion identical with
#: either, the branch alone 0 false alarms with either and banners 40-88% -> 78-100% of 40 copies with
#: ``"mode"``; run once on the report scenes, ``"mode"`` caught nothing more and lowered the fish tank
#: ``tank_b``'s threshold to its least (2 of 179 clean frames flagged): not the default
FLAT_LEVELS = ("median", "mode")


class _StripeFeatures:
    """One number per horizontal stripe: the largest of a per-row statistic (``_per_row(grey)``, one value
    per row or row pair, top to bottom) in each of ``bins`` equal stripes; 0 for a stripe with no value.
    Subclasses define ``_per_row``."""

    bins: int

    def __init__(self, bins: int):
        if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or not 1 <= bins <= 64:
            raise ValueError(f"bins must be an int in 1..64, got {bins!r}")
        self.bins = int(bins)

    @property
    def n_features(self) -> int:
        return self.bins

    def _per_row(self, grey: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def transform(self, rgb: np.ndarray) -> np.ndarray:
        """``(bins,)`` float32: each stripe's largest value of the per-row statistic."""
        values = self._per_row(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
        out = np.zeros(self.bins, np.float32)
        if len(values):
            edges = np.linspace(0, len(values), self.bins + 1).round().astype(int)
            for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
                if hi > lo:
                    out[i] = values[lo:hi].max()
        return out


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


class BandFeatures(_StripeFeatures):
    """``bins`` numbers per frame: in each of ``bins`` equal horizontal stripes (top to bottom), the
    strongest step in grey level (0-255) between row ``r`` and row ``r + 2`` that at least ``share``
    of the columns take in the same direction (up or down); 0 for a stripe with no row pair.

    Examples
    --------
    >>> import numpy as np
    >>> grey = np.full((20, 50), 100, np.uint8)
    >>> grey[8:10, :30] = 0                     # a black band over 60% of the width
    >>> int(BandFeatures().steps(grey).max())
    100
    >>> BandFeatures(bins=3).transform(np.dstack([grey] * 3)).tolist()   # in the middle stripe
    [0.0, 100.0, 0.0]
    >>> grey[8:10, 10:] = 100                   # left over 20% of it: not a band
    >>> int(BandFeatures().steps(grey).max())
    0
    """

    def __init__(self, share: float = BAND_SHARE, bins: int = BAND_BINS):
        if not 0.0 < share <= 0.5:
            raise ValueError(f"share must be in (0, 0.5], got {share!r}")
        super().__init__(bins)
        self.share = float(share)

    def steps(self, grey: np.ndarray) -> np.ndarray:
        """Per pair of rows ``(r, r + 2)``, the step (grey levels, >= 0) that ``share`` of the columns
        take together; empty for a frame under 3 rows."""
        if grey.ndim != 2 or grey.shape[0] < 3 or grey.shape[1] < 1:
            return np.zeros(0, np.int16)
        d = np.sort(grey[2:].astype(np.int16) - grey[:-2].astype(np.int16), axis=1)  # int16: a radix sort
        k = max(0, int(np.ceil(self.share * d.shape[1])) - 1)   # the (k+1)-th most negative / positive
        return np.maximum(np.maximum(-d[:, k], d[:, -1 - k]), 0)

    #: each stripe's strongest band edge (a row pair belongs to the stripe of its first row)
    _per_row = steps


class FlatRowFeatures(_StripeFeatures):
    """``bins`` numbers per frame: in each of ``bins`` equal horizontal stripes (top to bottom), the
    largest share (0-1) of a row's full width within ``within`` times the frame's grey-level standard
    deviation (at least half a level) of one grey level: the row's median (``level="median"``, the
    default) or its densest (``level="mode"``, see :data:`FLAT_LEVELS`); 0 for a stripe with no row.

    A dead or stuck row is 1 whatever the frame's light (around the densest level, a frozen overlay bar
    is its share of the width); so is a row of a blown-out sky or a black border, which the reference
    shows in its own stripe.

    Examples
    --------
    >>> import numpy as np
    >>> grey = np.random.default_rng(0).integers(0, 256, (16, 40)).astype(np.uint8)
    >>> grey[9:11] = 0                          # two dead rows
    >>> [round(float(v), 2) for v in FlatRowFeatures(bins=4).transform(np.dstack([grey] * 3))]
    [0.08, 0.08, 1.0, 0.1]
    >>> grey[5] = np.arange(40) * 6             # a gradient, and on it a bar over 40% of the row
    >>> grey[5, :16] = 250
    >>> [round(float(FlatRowFeatures(level=lv).shares(grey)[5]), 2) for lv in ("median", "mode")]
    [0.05, 0.4]
    """

    def __init__(self, within: float = FLAT_WITHIN, bins: int = BAND_BINS, level: str = "median"):
        if not 0.0 < within <= 1.0:
            raise ValueError(f"within must be in (0, 1], got {within!r}")
        if level not in FLAT_LEVELS:
            raise ValueError(f"level must be one of {FLAT_LEVELS}, got {level!r}")
        super().__init__(bins)
        self.within, self.level = float(within), level

    def shares(self, grey: np.ndarray) -> np.ndarray:
        """Per row, the share of its width within the tolerance of the row's level; empty for an empty frame."""
        if grey.ndim != 2 or grey.size == 0:
            return np.zeros(0, np.float32)
        grey = np.ascontiguousarray(grey, np.uint8)
        h, w = grey.shape
        tol = max(0.5, self.within * float(cv2.meanStdDev(grey)[1][0, 0]))
        if self.level == "mode":
            return (self._densest(grey, int(np.floor(2 * tol)) + 1) / w).astype(np.float32)
        mid = [(w - 1) // 2, w // 2]                 # the two middle values (one for an odd width)
        part = np.partition(grey, mid, axis=1)
        med = (part[:, mid[0]].astype(np.float64) + part[:, mid[1]]) / 2.0      # numpy's median, per row
        lo = np.ceil(med - tol).astype(np.int16)[:, None]                       # integer levels within tol
        hi = np.floor(med + tol).astype(np.int16)[:, None]
        return (np.count_nonzero((grey >= lo) & (grey <= hi), axis=1) / w).astype(np.float32)

    @staticmethod
    def _densest(grey: np.ndarray, levels: int) -> np.ndarray:
        """Per row, the most pixels within any ``levels`` consecutive grey levels (a window of ``2 * tol``
        placed anywhere holds ``floor(2 * tol) + 1`` integer levels): each row's histogram, summed over a
        sliding window of levels."""
        h = grey.shape[0]
        hist = np.bincount((grey + np.arange(h, dtype=np.int64)[:, None] * 256).ravel(), minlength=h * 256)
        window = cv2.boxFilter(hist.reshape(h, 256).astype(np.float32), -1, (levels, 1), anchor=(0, 0),
                               normalize=False, borderType=cv2.BORDER_CONSTANT)
        return window.max(axis=1)

    #: each stripe's flattest row
    _per_row = shares
