"""The bands branch: a row-aligned fault across the frame (issue 21).

Dead or stuck sensor rows, a torn or half-decoded frame, an overlay bar: faults that cover a
few percent of the frame but span most of its width. A globally pooled embedding dilutes them
and, on a scene whose own content moves a lot, so do the patch and colour branches' wide
thresholds. This branch reads one number per frame
(:class:`~hybrid_drift.features.geometry.BandFeatures`: the strongest grey-level step between
rows that 40% of the width takes together) and scores how far it lies **above the range the
reference covered** (:class:`~hybrid_drift.scorers.RangeScorer`, upper side only), in units of
its spread over the reference, never under 4 grey levels. The threshold is the cross-fitted one
times ``margin`` and never under ``tolerance`` units.

It is its own branch, not a statistic of the light branch, because one threshold serves a
branch: on the street the band edge's own out-of-sample spread (1.5 units) raised the light
branch's threshold from 1.0 to 2.25 units and cut its recall from 54-66% to 35-58% (development
sets, 2026-11-30).
"""

from __future__ import annotations

from ..features.geometry import BAND_SHARE, BandFeatures
from ..scorers import RangeScorer
from .base import Branch, stack_rows
from .params import Int, Num

__all__ = ["BandBranch"]


class BandBranch(Branch):
    """The frame's strongest horizontal band edge against the reference's range.

    Parameters
    ----------
    tolerance : float
        The least threshold, in units (a band edge this many units above the reference's strongest
        still counts as seen).
    unit : float
        The least unit, in grey levels (0-255): about what JPEG and sensor noise move a row's step by.
    share : float
        The share of the width a step must span (:data:`~hybrid_drift.features.geometry.BAND_SHARE`).
    margin : float
        Multiplier of the cross-fitted conformal threshold.
    min_side : int
        Working size (the colour branch's decode: a 768x576 frame is read at 192x144).
    """

    default_name = "bands"
    checks_order = False  # one number per frame: the order check reads the colour and CNN features
    _config_keys = ("tolerance", "unit", "share", "margin", "min_side")
    _parameter_constraints = {"tolerance": Num(0, 1e3), "unit": Num(1e-3, 255), "share": Num(0.01, 0.5),
                              "margin": Num(1, 1e6), "min_side": Int(1, 4096)}

    def __init__(self, tolerance: float = 1.0, unit: float = 4.0, share: float = BAND_SHARE, margin: float = 1.5,
                 min_side: int = 128):
        self.tolerance, self.unit, self.share, self.margin, self.min_side = tolerance, unit, share, margin, min_side
        self._check_params()

    @property
    def least_threshold(self) -> float:
        return float(self.tolerance)

    def prepare(self, img):
        return BandFeatures(self.share).transform(img.at_side(self.min_side))

    def features(self, prepared, images):
        return stack_rows(prepared, BandFeatures.n_features)

    def make_scorer(self):
        return RangeScorer(floors=[self.unit], lower=False)
