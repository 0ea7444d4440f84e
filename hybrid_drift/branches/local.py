"""Two cheap branches for cameras the project has never seen (issue 21): *where* and *light*.

* :class:`LocalBranch` — the strangest **cell** of the frame, on photometrically
  normalised luminance and edges (:class:`~hybrid_drift.features.local.CellFeatures`),
  each cell in its own unit from the reference (:class:`~hybrid_drift.scorers.CellScorer`):
  a fault over 2% of the frame (dead sensor rows, a frozen banner, a smudge) moves one
  cell a lot, while a globally pooled embedding barely moves; cells where people walk
  get wide units, a wall a narrow one; a cloud dims every cell alike and is divided out.
* :class:`LightBranch` — the light the cells divide out (median, spread, tails of the
  luminance in stops; colour cast and chroma), scored by how far it lies **outside the
  range the reference covered** (:class:`~hybrid_drift.scorers.RangeScorer`), with a
  threshold of at least one unit: light the reference saw (clouds, dusk) is normal and
  widens nothing else, and so is light within a quarter of a stop (2 CIELAB units of cast)
  beyond it; night, fog and a colour cast beyond that are not. Since 0.3 it also reads the
  frame's **sharpness** (log2 of the Laplacian's variance, unit half a step): blur, fog and a
  smeared or dead band take fine detail out of the whole frame, moving content barely changes
  it (on the development sets: no false alarm on any of 26; blur and fog on the fish tank 0-25%
  -> 100%). **A default branch** of
  :class:`~hybrid_drift.HybridDetector` since 0.3 (chosen on the development sets: no
  false alarm added on any of 26, recall up on the development scenes); ``LocalBranch``
  stays opt-in: on the street it flags people walking where none walked during the
  reference (142-146 of 200 clean frames on the development split D2, whether its cells
  are combined by maximum, maximum minus median, top-3 or ratio to the median).

Both run on the colour branch's working size (no network pass) and follow the branch
contract of :mod:`hybrid_drift.branches`.
"""

from __future__ import annotations

from ..scorers.distances import DISTANCES
from .base import Branch, stack_rows
from .params import Bool, Int, IntPair, Num, Options
from ..features.local import CellFeatures, LightFeatures
from ..scorers import CellScorer, RangeScorer

__all__ = ["LocalBranch", "LightBranch", "LIGHT_UNITS"]

#: each light statistic's smallest unit (luminance statistics in stops, CIELAB a*, b*, chroma in their
#: units); light within ``tolerance`` units beyond the reference's range counts as seen. Chosen on the
#: development sets (street D1-D3, ``tank_a``, ``desk``): a quarter of a stop left no false alarm there
#: and caught the most; with a bare range, the 0.2-stop shift after the reference of D2 flagged 109-150
#: of its 200 clean frames.
LIGHT_UNITS = (0.25, 0.25, 0.25, 0.25, 2.0, 2.0, 2.0, 0.5)
#: the last unit is the sharpness statistic's (log2 of the Laplacian's variance: half a step is a variance
#: 1.4x the reference's range): no false alarm on the development sets, while blur, fog and dead rows on
#: the fish tank and the desk fell outside it


class LocalBranch(Branch):
    """The strangest cell of the frame (see the module docstring).

    Parameters
    ----------
    grid : (rows, cols)
        Cells; the default 6x8 makes a cell ~2% of the frame.
    level_bins, edge_bins : int
        Histogram bins per cell (normalised luminance, gradient magnitude).
    distance : str
        Histogram distance per cell.
    unit_quantile, floor : float
        Each cell's unit: this quantile of its out-of-sample distances on the reference,
        floored at ``floor`` x the median cell's unit.
    margin : float
        Multiplier of the cross-fitted conformal threshold (as for the other branches).
    min_side : int
        Working size (the colour branch's: a 768x576 frame is read at 192x144).
    """

    default_name = "local"
    _config_keys = ("grid", "level_bins", "edge_bins", "distance", "unit_quantile", "floor", "margin", "min_side")
    _parameter_constraints = {"grid": IntPair(1, 32), "level_bins": Int(2, 64), "edge_bins": Int(2, 64),
                              "distance": Options(tuple(DISTANCES)), "unit_quantile": Num(0.5, 1),
                              "floor": Num(1e-6, 1), "margin": Num(1, 1e6), "min_side": Int(1, 4096)}

    def __init__(self, grid=(6, 8), level_bins: int = 12, edge_bins: int = 6, distance: str = "hellinger",
                 unit_quantile: float = 1.0, floor: float = 0.5, margin: float = 1.5, min_side: int = 128):
        self.grid, self.level_bins, self.edge_bins = tuple(grid), level_bins, edge_bins
        self.distance, self.unit_quantile, self.floor = distance, unit_quantile, floor
        self.margin, self.min_side = margin, min_side
        self._check_params()

    @property
    def feature_extractor(self) -> CellFeatures:
        """Built from the current settings (so a setting changed after construction is used)."""
        key = (self.grid, self.level_bins, self.edge_bins)
        if getattr(self, "_feat_key", None) != key:
            self._feat, self._feat_key = CellFeatures(self.grid, self.level_bins, self.edge_bins), key
        return self._feat

    def prepare(self, img):
        return self.feature_extractor.transform(img.at_side(self.min_side))

    def features(self, prepared, images):
        fx = self.feature_extractor
        return stack_rows(prepared, fx.n_features)

    def make_scorer(self):
        fx = self.feature_extractor
        return CellScorer(distance=self.distance, group_bounds=fx.group_bounds().tolist(),
                          hist_bounds=[0, self.level_bins, self.level_bins + self.edge_bins],
                          unit_quantile=self.unit_quantile, floor=self.floor)

    def explain_features(self, prepared, images):
        """Each cell's distance in its own unit (the map's maximum is the score)."""
        self._check_fitted()
        F = self.features(prepared, images)
        if not len(F):
            return F, []
        cells = self.scorer_.cell_scores(F).reshape(len(F), *self.grid)
        return F, list(cells)


class LightBranch(Branch):
    """Global light outside the range the reference covered (see the module docstring).

    Parameters
    ----------
    tolerance : float
        Light this many units (:data:`LIGHT_UNITS`: a quarter of a stop, 2 CIELAB units, or
        the statistic's spread over the reference when larger) beyond the range the reference
        covered still counts as seen: the least threshold. 0 = the bare range.
    margin : float
        Multiplier of the cross-fitted conformal threshold.
    min_side : int
        Working size (the colour branch's).
    sharpness : bool
        Also score the frame's sharpness (:data:`~hybrid_drift.features.local.SHARPNESS`, in half
        steps of log2 of the Laplacian's variance). Models saved before it load without it.
    sharpness_side : int
        With a shorter side here (e.g. 128), the sharpness reads the luminance area-resized to it (when
        larger), so that the camera's resolution moves it less: the working image's shorter side is anywhere
        from ``min_side`` to twice that, depending on the resolution (a 640x480 stream of a 768x576 camera:
        320x240 against 192x144). 0 (the default) = the working image as it comes. Opt-in: measured on the
        development sets on 2026-12-03, 128 cost the light branch alone 2-7 points of recall and
        two datasets' fusion recall (``desk``-s3 renamed and ``tank_a``-s3 100% -> 93.3%); fitting on frames
        of the resolution you score keeps the default's sensitivity.
    """

    default_name = "light"
    checks_order = False  # eight global numbers: the order check reads the colour and CNN features
    _config_keys = ("tolerance", "margin", "min_side", "sharpness", "sharpness_side")
    _parameter_constraints = {"tolerance": Num(0, 1e3), "margin": Num(1, 1e6), "min_side": Int(1, 4096),
                              "sharpness": Bool(), "sharpness_side": Int(0, 4096)}

    def __init__(self, tolerance: float = 1.0, margin: float = 1.5, min_side: int = 128, sharpness: bool = True,
                 sharpness_side: int = 0):
        self.tolerance, self.margin, self.min_side, self.sharpness = tolerance, margin, min_side, sharpness
        self.sharpness_side = sharpness_side
        self._check_params()

    @classmethod
    def saved_config(cls, cfg: dict) -> dict:
        """A model saved before the sharpness statistic (no ``sharpness`` setting) loads without it."""
        return cfg if "sharpness" in cfg else {**cfg, "sharpness": False}

    def _features(self) -> LightFeatures:
        return LightFeatures(sharpness=self.sharpness, detail_side=self.sharpness_side)

    def prepare(self, img):
        return self._features().transform(img.at_side(self.min_side))

    def features(self, prepared, images):
        return stack_rows(prepared, self._features().n_features)

    def make_scorer(self):
        return RangeScorer(floors=list(LIGHT_UNITS[:self._features().n_features]))

    @property
    def least_threshold(self) -> float:
        return float(self.tolerance)
