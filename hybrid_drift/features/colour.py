"""Hue / saturation / brightness (HSB = OpenCV's HSV) histograms and statistics per image.

The histograms are the colour branch's features; the per-channel statistics
(mean, std, min, max) feed the min/max baseline and batch monitoring.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass

import cv2
import numpy as np

__all__ = ["ColourFeatures", "STAT_NAMES"]

_CHANNELS = ("hue", "saturation", "brightness")
_RANGES = ((0, 180), (0, 256), (0, 256))  # OpenCV 8-bit HSV: hue is 0..179
STAT_NAMES = tuple(f"{c}_{s}" for c in _CHANNELS for s in ("mean", "std", "min", "max"))
#: image sizes whose per-pixel layout is kept (least recently used dropped first)
MAX_LAYOUTS = 16
#: each 8-bit OpenCV hue (0..179, 2 degrees apart) as a unit complex number
_HUE_UNIT = np.exp(2j * np.pi * np.arange(180) / 180.0)


def _bin_lut(bins_per_channel) -> np.ndarray:
    """``(1, 256, 3)`` table: 8-bit value of each HSV channel -> its histogram bin."""
    v = np.arange(256)
    lut = np.zeros((1, 256, 3), np.uint8)
    for ch, (bins, (_, hi)) in enumerate(zip(bins_per_channel, _RANGES)):
        lut[0, :, ch] = np.minimum(v * bins // hi, bins - 1)
    return lut


def _bin_matrix(bins_per_channel) -> np.ndarray | None:
    """``cv2.transform`` matrix that bins all three 8-bit channels in one vectorised pass, or None.

    ``round(v * bins / range - c)`` equals ``v * bins // range`` when ``c`` keeps the
    result off the rounding ties; OpenCV computes it in fixed point (SIMD) or float
    (row tails), so the matrix is used only if both give exactly the table's bin for
    every 8-bit value (after clamping to ``bins - 1``, as the table does). When they do
    not (e.g. 256 hue bins over 180 hues), the lookup table is used instead.
    """
    m = np.zeros((3, 4), np.float32)
    for ch, (bins, (_, hi)) in enumerate(zip(bins_per_channel, _RANGES)):
        step = bins / hi
        frac = 1.0 / hi  # smallest gap between v * step and the next integer (v, hi integers)
        m[ch, ch], m[ch, 3] = step, -(0.5 - frac / 2)
    ramp = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)
    want = _bin_lut(bins_per_channel)[0]
    top = np.array(bins_per_channel) - 1
    vectorised = np.minimum(cv2.transform(ramp[None], m)[0], top)  # the SIMD path
    scalar = np.minimum(np.concatenate([cv2.transform(ramp[i:i + 1][None], m)[0] for i in range(256)]), top)
    return m if np.array_equal(vectorised, want) and np.array_equal(scalar, want) else None


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
    grey_tolerance : int
        Pixels whose chroma (largest minus smallest of R, G, B, in 8-bit grey levels) is at
        most this count as grey: hue 0 and saturation 0, as an exactly grey pixel. The hue of a
        near-grey pixel is noise (a dark pixel tinted by 3 levels has a saturation of 15%), and an
        encoder's rounding tints every pixel of a grey camera by a few levels (OpenCV's MPEG-4
        round trip: blue -4, green -1, red -3), which without it moves every hue histogram
        of a grey scene. 0 = plain OpenCV HSV.
    hue_ramp : int
        Soft hue votes: a pixel's hue vote grows from nothing at ``grey_tolerance`` to a whole
        vote ``hue_ramp`` grey levels of chroma above it (the rest of its vote is counted as grey,
        hue 0), and each vote is split between the two hue bins nearest its hue (linear
        interpolation) instead of falling wholly into one. An encoder rounds each pixel's chroma
        by a level or two, which turns the hue of a pixel of low chroma by tens of degrees: with
        hard votes the pixels of a colour scene's grey surfaces jump between hue bins and
        whole-pixel votes change with the codec (the street's frames through FFmpeg's MJPEG
        encoder: hue histograms 3x as far from the reference as the JPEG files it was made
        of). 0 = hard votes (one bin, whole above the tolerance), as before 2026-12-02.

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
    grey_tolerance: int = 0
    hue_ramp: int = 0

    def __post_init__(self):
        self.grid = tuple(int(g) for g in self.grid)
        self.hs_bins = tuple(int(b) for b in self.hs_bins)
        if int(self.bins) < 2:
            raise ValueError(f"bins must be >= 2, got {self.bins}")
        if len(self.grid) != 2 or min(self.grid) < 1:
            raise ValueError(f"grid must be (rows, cols) with both >= 1, got {self.grid}")
        if int(self.bins) > 256 or max(self.hs_bins) > 256 or min(self.hs_bins) < 1:
            raise ValueError(f"bins and hs_bins must be at most 256 (8-bit channels), got {self.bins}, {self.hs_bins}")
        if isinstance(self.grey_tolerance, bool) or not isinstance(self.grey_tolerance, (int, np.integer)) \
                or not 0 <= self.grey_tolerance <= 255:
            raise ValueError(f"grey_tolerance must be an int in 0..255 (grey levels), got {self.grey_tolerance!r}")
        if isinstance(self.hue_ramp, bool) or not isinstance(self.hue_ramp, (int, np.integer)) \
                or not 0 <= self.hue_ramp <= 255:
            raise ValueError(f"hue_ramp must be an int in 0..255 (grey levels of chroma), got {self.hue_ramp!r}")
        lut = _bin_lut((self.bins,) * 3)
        self._luts = {np.dtype(np.uint16): lut.astype(np.uint16), np.dtype(np.float32): lut.astype(np.float32)}
        self._bin_m = _bin_matrix((self.bins,) * 3)
        self._bin_top = (self.bins - 1,) * 3 + (0,)
        self._hs_lut = _bin_lut((self.hs_bins[0], self.hs_bins[1], 1))
        self._soft = self._soft_tables() if self.hue_ramp else None
        self._layouts: OrderedDict = OrderedDict()  # (h, w) -> per-pixel offsets, see _layout (LRU)
        self._lock = threading.Lock()

    def __getstate__(self):  # copies start with an empty layout cache and their own lock
        return {k: v for k, v in self.__dict__.items() if k not in ("_layouts", "_lock")}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._layouts, self._lock = OrderedDict(), threading.Lock()

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

    def greyed(self, hsv: np.ndarray) -> np.ndarray:
        """``hsv`` with the pixels of chroma at most ``grey_tolerance`` made grey (hue and saturation 0).

        Chroma is ``saturation * brightness / 255`` (OpenCV's saturation is chroma over brightness);
        the input is not changed (other branches share it): a copy is returned when a pixel changes.
        """
        if not self.grey_tolerance:
            return hsv
        s, v = hsv[..., 1], hsv[..., 2]
        if hsv.dtype == np.uint8 and hsv.ndim == 3 and hsv.shape[2] == 3:
            # with OpenCV masks: a boolean index into the channels cost 3x the rest of the features
            chroma = cv2.multiply(np.ascontiguousarray(s), np.ascontiguousarray(v), scale=1.0 / 255)
            keep = cv2.compare(chroma, float(self.grey_tolerance), cv2.CMP_GT)  # 255 where coloured
            if cv2.countNonZero(keep) == keep.size:
                return hsv
            return cv2.bitwise_and(hsv, cv2.merge([keep, keep, np.full_like(keep, 255)]))
        chroma = s.astype(np.float32) * v / 255.0
        grey = chroma <= self.grey_tolerance
        if not grey.any():
            return hsv
        out = hsv.copy()
        out[..., :2][grey] = 0
        return out

    def _layout(self, h: int, w: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, bool, np.ndarray,
                                              np.ndarray | None]:
        """Per-pixel histogram offsets for an ``h x w`` image (cached per shape).

        Returns the ``(h, 3 * w)`` offset of each pixel's channel histogram in the
        flat count vector, the same for the joint hue x saturation histogram (or
        None), which cells are empty (images smaller than the grid), whether any is,
        and the ``(n_cells, 1, 1)`` pixel count of each cell's histograms (the whole
        image's for an empty cell, which gets the whole image's histogram), and with soft hue votes
        each pixel's cell (uint8 up to 256 cells, else uint16; None without).
        """
        key = (h, w)
        with self._lock:  # loader threads share the cache
            lay = self._layouts.get(key)
            if lay is not None:
                self._layouts.move_to_end(key)
        if lay is None:
            gr, gc = self.grid
            rows = np.searchsorted(np.linspace(0, h, gr + 1).astype(int), np.arange(h), side="right") - 1
            cols = np.searchsorted(np.linspace(0, w, gc + 1).astype(int), np.arange(w), side="right") - 1
            cell = rows[:, None] * gc + cols[None, :]
            per_cell = 3 * self.bins
            offsets = cell[..., None] * per_cell + np.arange(3) * self.bins
            dtype = np.uint16 if gr * gc * per_cell <= np.iinfo(np.uint16).max else np.float32
            joint = None
            if self.joint_hs:
                joint = (cell * (self.hs_bins[0] * self.hs_bins[1])).astype(np.float32)
            pixels = np.bincount(cell.ravel(), minlength=gr * gc)
            empty = pixels == 0
            pixels = np.where(empty, h * w, pixels).astype(np.float32).reshape(-1, 1, 1)
            soft = cell.astype(np.uint8 if gr * gc <= 256 else np.uint16) if self.hue_ramp else None
            lay = (offsets.reshape(h, 3 * w).astype(dtype), joint, empty, bool(empty.any()), pixels, soft)
            with self._lock:
                self._layouts[key] = lay
                while len(self._layouts) > MAX_LAYOUTS:  # a folder of many sizes must not grow memory forever
                    self._layouts.popitem(last=False)
        return lay

    def transform(self, rgb: np.ndarray | None = None, hsv: np.ndarray | None = None) -> np.ndarray:
        """Flat ``float32`` vector of normalised histograms for one RGB image (or its HSV).

        All cells and channels are counted in one ``cv2.calcHist`` call: each pixel
        value is mapped to its bin (``value * bins // range``, clamped to the last bin;
        one vectorised ``cv2.transform`` pass where that is exact, else a lookup table)
        and a cached per-pixel offset places it in its cell's histogram. A cell that holds
        no pixel (image smaller than the grid) gets the whole image's histogram.
        """
        return self.histograms(self.greyed(self.hsv(rgb) if hsv is None else hsv))

    def histograms(self, hsv: np.ndarray) -> np.ndarray:
        """:meth:`transform` of an HSV image already passed through :meth:`greyed` (for a caller that
        also needs the greyed image itself: it is greyed once)."""
        h, w = hsv.shape[:2]
        offsets, joint_off, empty, any_empty, pixels, soft = self._layout(h, w)
        n_cells = self.grid[0] * self.grid[1]
        if self._bin_m is not None and hsv.dtype == np.uint8:
            binned = cv2.transform(hsv, self._bin_m)  # 3-4x faster than a 3-channel LUT
            cv2.min(binned, self._bin_top, dst=binned)
            idx = binned.astype(offsets.dtype).reshape(h, 3 * w)
        else:
            idx = cv2.LUT(hsv, self._luts[offsets.dtype]).reshape(h, 3 * w)
        cv2.add(offsets, idx, dst=idx)
        counts = cv2.calcHist([idx], [0], None, [n_cells * 3 * self.bins], [0, n_cells * 3 * self.bins])
        counts = counts.reshape(n_cells, 3, self.bins)
        if self.hue_ramp:
            counts[:, 0] = self._soft_hue(hsv, soft, n_cells)
        if self.joint_hs:
            hs = cv2.LUT(hsv, self._hs_lut)
            jidx = joint_off + hs[..., 0].astype(np.float32) * self.hs_bins[1] + hs[..., 1]
            n_joint = self.hs_bins[0] * self.hs_bins[1]
            jc = cv2.calcHist([jidx], [0], None, [n_cells * n_joint], [0, n_cells * n_joint])
            counts = np.concatenate([counts.reshape(n_cells, -1), jc.reshape(n_cells, -1)], axis=1)
        if any_empty:
            counts[empty] = counts.sum(axis=0)
        if not self.joint_hs:
            # each pixel is counted once per channel: every histogram of a cell sums to its pixel count
            counts /= pixels
            return counts.ravel()
        groups = np.split(counts, np.cumsum([self.bins] * 3), axis=1)
        return np.concatenate([g / np.maximum(g.sum(axis=1, keepdims=True), 1.0) for g in groups], axis=1).ravel()

    def _soft_hue(self, hsv: np.ndarray, cell: np.ndarray, n_cells: int) -> np.ndarray:
        """``(n_cells, bins)`` hue counts with soft votes (see ``hue_ramp``).

        A pixel's vote ``w = clip((chroma - grey_tolerance) / hue_ramp, 0, 1)`` is split between the
        two hue bins nearest its hue, and ``1 - w`` is counted as grey (bin 0). Both depend on 8-bit
        values only, so the pixels are counted once by (hue, chroma step, cell) with one
        ``cv2.calcHist`` and the votes are spread by two small matrices (:meth:`_soft_tables`, built
        once); ``cell`` is each pixel's cell.
        """
        steps, spread, weight = self._soft
        s, v = np.ascontiguousarray(hsv[..., 1]), np.ascontiguousarray(hsv[..., 2])
        chroma = cv2.multiply(s, v, scale=1.0 / 255)  # as greyed(): rounded to grey levels
        step = cv2.LUT(chroma, steps)  # 0 .. hue_ramp
        planes = [hsv, step, cell]
        if cell.dtype != np.uint8:  # more than 256 cells: one depth for calcHist
            planes = [p.astype(np.float32) for p in planes]
        n_hue, n_step = _RANGES[0][1], self.hue_ramp + 1
        joint = cv2.calcHist(planes, [0, 3, 4], None, [n_hue, n_step, n_cells], [0, n_hue, 0, n_step, 0, n_cells])
        joint = joint.transpose(2, 0, 1)  # (n_cells, n_hue, n_step)
        hue_votes = joint @ weight  # (n_cells, n_hue): the coloured part of each hue's pixels
        out = hue_votes @ spread  # (n_cells, bins)
        out[:, 0] += joint.sum(axis=(1, 2)) - hue_votes.sum(axis=1)  # the grey part
        return out

    def _soft_tables(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The lookup table chroma -> step (0 .. hue_ramp), the ``(180, bins)`` split of each hue between
        its two nearest bins, and the ``(hue_ramp + 1,)`` vote of each step."""
        b, n_hue = int(self.bins), _RANGES[0][1]
        steps = np.clip(np.arange(256) - self.grey_tolerance, 0, self.hue_ramp).astype(np.uint8)
        pos = np.arange(n_hue) * (b / n_hue) - 0.5  # a hue at a bin's centre votes for that bin alone
        lo = np.floor(pos).astype(np.int64)
        frac = pos - lo
        spread = np.zeros((n_hue, b), np.float32)
        np.add.at(spread, (np.arange(n_hue), lo % b), 1 - frac)
        np.add.at(spread, (np.arange(n_hue), (lo + 1) % b), frac)
        return steps, spread, (np.arange(self.hue_ramp + 1) / max(self.hue_ramp, 1)).astype(np.float32)

    @staticmethod
    def stats(rgb: np.ndarray | None = None, hsv: np.ndarray | None = None) -> np.ndarray:
        """Mean, std, min, max of each HSB channel, scaled to [0, 1] (see ``STAT_NAMES``).

        Hue is an angle, so its mean and std are *circular* (in turns): the mean
        direction of the hue angles, in [0, 1), and the circular standard deviation
        ``sqrt(-2 ln R) / 2 pi`` (``R``: mean resultant length). A linear std counts a
        red pixel at hue 179 and one at hue 1 as opposite ends of the range: on the
        crossroad clip it rose by 9 baseline standard deviations when people in red
        coats walked in. Hue min and max stay linear (they are the min/max baseline's).
        """
        if hsv is None:
            hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
        out = np.empty(12, np.float32)
        for ch, (_, hi) in enumerate(_RANGES):
            plane = hsv[..., ch]
            mean, std = cv2.meanStdDev(plane)
            lo_v, hi_v, _, _ = cv2.minMaxLoc(plane)
            out[ch * 4:(ch + 1) * 4] = (mean[0, 0] / (hi - 1), std[0, 0] / (hi - 1),
                                        lo_v / (hi - 1), hi_v / (hi - 1))
        counts = cv2.calcHist([hsv], [0], None, [180], [0, 180]).ravel()
        z = (counts * _HUE_UNIT).sum() / max(counts.sum(), 1.0)
        r = min(max(abs(z), 1e-12), 1.0)
        out[0] = (np.angle(z) / (2 * np.pi)) % 1.0
        out[1] = np.sqrt(-2.0 * np.log(r)) / (2 * np.pi)
        return out
