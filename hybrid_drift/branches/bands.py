"""The bands and flat-rows branches: a row-aligned fault across the frame (issue 21).

Dead or stuck sensor rows, a half-decoded frame, an overlay bar: faults that cover a
few percent of the frame but span most of its width. A globally pooled embedding dilutes them
and, on a scene whose own content moves a lot, so do the patch and colour branches' wide
thresholds. This branch reads one number per horizontal stripe of the frame
(:class:`~hybrid_drift.features.geometry.BandFeatures`: the strongest grey-level step between
rows that 40% of the width takes together, in each of 8 stripes) and scores how far the furthest
lies **above the range the reference covered in that stripe**
(:class:`~hybrid_drift.scorers.RangeScorer`, upper side only), in units of 4 grey levels. The
threshold is the cross-fitted one times ``margin`` and never under ``tolerance`` units.

Per stripe, because a scene's own strong horizontal edges sit at fixed heights (a roof line, the
edge of a dark ceiling, a shelf): with one range for the whole frame, the strongest of them set
what a band anywhere else had to beat (development street sets with extra fault copies: banners
85-97% -> 100%, dead rows 85-95% -> 95-97%, thresholds and false alarms unchanged). In fixed
units, not the stripe's standard deviation: where a large object comes and goes (a board held up
in front of a wall), a stripe's values are bimodal and their deviation measures the distance
between "object in" and "object out", which hid a band of dead rows 40 levels past the stripe's
strongest edge (tests/test_bands.py); what new normal frames do past the maximum is what the
cross-fitted threshold measures. Models saved before (one range, the spread as unit; before
2026-12-01) load and score as they were saved.

It is its own branch, not a statistic of the light branch, because one threshold serves a
branch: on the street the band edge's own out-of-sample spread (1.5 units) raised the light
branch's threshold from 1.0 to 2.25 units and cut its recall from 54-66% to 35-58% (development
sets, 2026-11-30).

**The flat-rows branch** (:class:`FlatBranch`) reads the same stripes for another sign of the same
faults: a dead or stuck row is one grey level from edge to edge
(:class:`~hybrid_drift.features.geometry.FlatRowFeatures`: per stripe, the largest share of a row
within 5% of the frame's grey-level deviation of the row's median), scored above the reference's
range in that stripe, in units of 5% of the width. A band edge needs contrast with the rows beside
it, which a dead row on a dark part of the frame, or on a scene whose own moving content sets the
bands threshold high, does not have; flatness needs none. Its own branch, for the reason above:
one threshold serves a branch, and where the bands threshold is wide the flat rows' stays its own.
"""

from __future__ import annotations

from ..features.geometry import BAND_BINS, BAND_SHARE, FLAT_LEVELS, FLAT_WITHIN, BandFeatures, FlatRowFeatures
from ..scorers import RangeScorer
from .base import Branch, stack_rows
from .params import Bool, Int, Num, Options

__all__ = ["BandBranch", "FlatBranch"]


class _StripeBranch(Branch):
    """A branch of one number per horizontal stripe, each scored above the reference's range in its
    stripe in a fixed unit (:class:`~hybrid_drift.scorers.RangeScorer`, upper side only); subclasses
    name the features (``_features``) and the settings."""

    checks_order = False  # a few numbers per frame: the order check reads the colour and CNN features
    bins: int
    unit: float
    spread: bool = False

    def _features(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def prepare(self, img):
        return self._features().transform(img.at_side(self.min_side))

    def features(self, prepared, images):
        return stack_rows(prepared, self.bins)

    def explain_features(self, prepared, images):
        """Per image, a one-column map of each stripe's distance past the reference's range in that stripe
        (units, top to bottom): the stripe that holds the fault lights up."""
        return self._explain_stripes(prepared, images)

    def make_scorer(self):
        return RangeScorer(floors=[self.unit] * self.bins, lower=False, spread=self.spread)


class BandBranch(_StripeBranch):
    """Each horizontal stripe's strongest band edge against the reference's range in that stripe.

    Parameters
    ----------
    tolerance : float
        The least threshold, in units (a band edge this many units above the reference's strongest
        still counts as seen).
    unit : float
        The unit, in grey levels (0-255): about what JPEG and sensor noise move a row's step by.
    share : float
        The share of the width a step must span (:data:`~hybrid_drift.features.geometry.BAND_SHARE`).
    margin : float
        Multiplier of the cross-fitted conformal threshold.
    bins : int
        Horizontal stripes, each with its own range (:data:`~hybrid_drift.features.geometry.BAND_BINS`;
        1 = one range for the whole frame).
    spread : bool
        Take the stripe's standard deviation over the reference as its unit where larger than
        ``unit`` (the first design, kept for models saved with it and for the benchmark's ablation).
    min_side : int
        Working size (the colour branch's decode: a 768x576 frame is read at 192x144).
    """

    default_name = "bands"
    _config_keys = ("tolerance", "unit", "share", "margin", "bins", "spread", "min_side")
    _parameter_constraints = {"tolerance": Num(0, 1e3), "unit": Num(1e-3, 255), "share": Num(0.01, 0.5),
                              "margin": Num(1, 1e6), "bins": Int(1, 64), "spread": Bool(),
                              "min_side": Int(1, 4096)}

    def __init__(self, tolerance: float = 1.0, unit: float = 4.0, share: float = BAND_SHARE, margin: float = 1.5,
                 bins: int = BAND_BINS, spread: bool = False, min_side: int = 128):
        self.tolerance, self.unit, self.share, self.margin, self.min_side = tolerance, unit, share, margin, min_side
        self.bins, self.spread = bins, spread
        self._check_params()

    @classmethod
    def saved_config(cls, cfg: dict) -> dict:
        """A model saved before the stripes (no ``bins`` setting) loads as it was: one range for the frame,
        the spread as unit."""
        return cfg if "bins" in cfg else {**cfg, "bins": 1, "spread": True}

    def _features(self) -> BandFeatures:
        return BandFeatures(self.share, self.bins)

    @property
    def least_threshold(self) -> float:
        return float(self.tolerance)


class FlatBranch(_StripeBranch):
    """Each horizontal stripe's flattest row against the reference's range in that stripe.

    Parameters
    ----------
    least : float
        The least threshold, in units.
    unit : float
        The unit, as a share of the width (0.05: a row with 5% more of its width flat than the
        reference's flattest row in that stripe is one unit past the range).
    within : float
        How close to the row's level a pixel counts as flat, as a share of the frame's grey-level
        standard deviation (:data:`~hybrid_drift.features.geometry.FLAT_WITHIN`).
    margin : float
        Multiplier of the cross-fitted conformal threshold.
    bins : int
        Horizontal stripes, each with its own range (:data:`~hybrid_drift.features.geometry.BAND_BINS`).
    min_side : int
        Working size (the colour branch's decode).
    level : {"median", "mode"}
        The grey level a row's flat share is counted around (:data:`~hybrid_drift.features.geometry.FLAT_LEVELS`):
        the row's median (the default), or its densest (opt-in: an overlay bar over part of the width is flat
        over its own width; measured, not the default).
    """

    default_name = "flat"
    _config_keys = ("least", "unit", "within", "margin", "bins", "min_side", "level")
    _parameter_constraints = {"least": Num(0, 1e3), "unit": Num(1e-3, 1), "within": Num(1e-3, 1),
                              "margin": Num(1, 1e6), "bins": Int(1, 64), "min_side": Int(1, 4096),
                              "level": Options(FLAT_LEVELS)}

    def __init__(self, least: float = 1.0, unit: float = 0.05, within: float = FLAT_WITHIN, margin: float = 1.5,
                 bins: int = BAND_BINS, min_side: int = 128, level: str = "median"):
        self.least, self.unit, self.within, self.margin, self.bins, self.min_side = least, unit, within, margin, bins, min_side
        self.level = level
        self._check_params()

    def _features(self) -> FlatRowFeatures:
        return FlatRowFeatures(self.within, self.bins, self.level)

    @property
    def least_threshold(self) -> float:
        return float(self.least)
