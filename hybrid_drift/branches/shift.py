"""The shift and tear branches: has the camera moved, or part of the picture? (issue 21: a knocked mount
is a camera fault on every scene; a torn frame, from a video link losing packets, on every stream).

Each frame's grey thumbnail (:class:`~hybrid_drift.features.geometry.ShiftFeatures`, on the
colour branch's decode: no network) is registered by phase correlation against the median
picture of the reference (:class:`~hybrid_drift.scorers.ShiftScorer`); the score is the shift
in percent of the frame. The threshold is the cross-fitted one times ``margin`` and never
under ``least`` percent: on a steady scene the reference's own shifts are a few hundredths
of a percent, and a vibrating pole or a wobbling mount must move more than that. Pixels vote by
how still they were in the reference (``steady``): a knocked mount moves what stood still, a board
held up in front of the camera is what moved (on the ``wall`` scene, whose board fills much of the
frame, the threshold fell from 2.8 to 1.7% of the frame and its one clean frame flagged as moved
was no longer flagged; every knocked mount still caught).

The **tear branch** (:class:`TearBranch`) asks the same of each eighth of the height, sideways only:
how much better the stripe's horizontal gradients match the reference's median picture's moved
sideways than in place (:class:`~hybrid_drift.scorers.TearScorer`). A torn frame (the picture below a
row displaced sideways) fits the median shifted there; a person, a car, a hand or a board in front of
the camera, light and blur fit no shift better than none. Chosen on the development sets with 40 torn
copies of clean test frames each (2026-12-01): torn frames 100% on all 7 sets at 0 false alarms, the
strangest clean test frame at 0.50-0.73x the threshold. Grey levels instead of gradients did as well
there, but on generated scenes whose reference saw clouds (+-25% of the light) they caught 29-40 of 40
torn frames (gradients: 40 of 40 on all 10 scenes): with the whole frame brighter or darker every lag
fits badly and the best of 46 lags fits better than lag 0 by chance, which widens the threshold;
matching each stripe's mean and contrast to the reference's flagged 123 of D2's 200 clean frames.
4 stripes (grey levels) flagged 3 of D2's 200 clean frames; one stripe caught 0-88%. Its own branch:
the whole-frame shift branch caught 5-35% of the torn frames on the street and the tank (the desk's
100%), and one threshold serves a branch.
"""

from __future__ import annotations

from ..features.geometry import BAND_BINS, ShiftFeatures
from ..scorers import ShiftScorer, TearScorer
from .base import Branch, stack_rows
from .params import Int, IntPair, Num

__all__ = ["ShiftBranch", "TearBranch"]


class _ThumbnailBranch(Branch):
    """A branch on a grey thumbnail of the colour branch's decode (``size``, ``min_side``), with a least
    threshold of ``least`` units; subclasses give the scorer."""

    checks_order = False  # a thumbnail of raw grey levels: the order check reads colour and CNN
    size: tuple
    least: float
    min_side: int

    @property
    def least_threshold(self) -> float:
        return float(self.least)

    def prepare(self, img):
        return ShiftFeatures(self.size).transform(img.at_side(self.min_side))

    def features(self, prepared, images):
        return stack_rows(prepared, self.size[0] * self.size[1])


class ShiftBranch(_ThumbnailBranch):
    """How far the picture moved against the reference, in percent of the frame.

    Parameters
    ----------
    least : float
        The least threshold, in percent of the frame (default 1: 1.3 pixels of the 128-wide
        thumbnail, 7.7 of a 768-wide frame).
    margin : float
        Multiplier of the cross-fitted conformal threshold.
    size : (height, width)
        Thumbnail grid every frame is resized to (4:3 by default; any camera resolution).
    steady : float
        Grey levels: each pixel's vote in the phase correlation is weighted by how still it was in
        the reference (a pixel whose median absolute deviation over the reference is ``steady`` counts
        half), so that a large object moving in front of the camera does not pass for a moved camera;
        0 = every pixel alike (models saved before 2026-12-03 load so). Default 16, chosen on the
        development scenes: 4 lost every knocked mount of the fish tank ``tank_a`` (a grey, low-contrast
        scene whose sensor noise alone has a MAD of 3), 8 one of four there, 16 none on any development set.
    min_side : int
        Working size (the colour branch's decode).
    """

    default_name = "shift"
    _config_keys = ("least", "margin", "size", "steady", "min_side")
    _parameter_constraints = {"least": Num(0, 100), "margin": Num(1, 1e6), "size": IntPair(16, 1024),
                              "steady": Num(0, 255), "min_side": Int(1, 4096)}

    def __init__(self, least: float = 1.0, margin: float = 1.5, size=(96, 128), steady: float = 16.0,
                 min_side: int = 128):
        self.least, self.margin, self.size, self.steady, self.min_side = least, margin, tuple(size), steady, min_side
        self._check_params()

    @classmethod
    def saved_config(cls, cfg: dict) -> dict:
        """A model saved before the steadiness weights (no ``steady`` setting) loads as it was: every pixel alike."""
        return cfg if "steady" in cfg else {**cfg, "steady": 0.0}

    def make_scorer(self):
        return ShiftScorer(size=self.size, steady=self.steady)


class TearBranch(_ThumbnailBranch):
    """Per eighth of the height, how much better the picture fits the reference moved sideways than in place.

    Parameters
    ----------
    least : float
        The least threshold, in units (``unit`` grey levels of better fit).
    margin : float
        Multiplier of the cross-fitted conformal threshold.
    unit : float
        Grey levels (of horizontal gradient) per unit: about what JPEG and sensor noise move a stripe's fit by.
    size : (height, width)
        Thumbnail grid every frame is resized to (4:3 by default).
    bins : int
        Horizontal stripes, each with its own range in the reference.
    min_lag, max_lag : float
        The sideways shifts tried, as shares of the width (a torn frame moves 10-30%; under 5% a slanted
        edge fits a shifted row as well).
    min_side : int
        Working size (the colour branch's decode).
    """

    default_name = "tear"
    _config_keys = ("least", "margin", "unit", "size", "bins", "min_lag", "max_lag", "min_side")
    _parameter_constraints = {"least": Num(0, 1e3), "margin": Num(1, 1e6), "unit": Num(1e-3, 255),
                              "size": IntPair(8, 1024), "bins": Int(1, 64), "min_lag": Num(1e-3, 0.9),
                              "max_lag": Num(1e-3, 0.9), "min_side": Int(1, 4096)}

    def __init__(self, least: float = 1.0, margin: float = 1.5, unit: float = 1.0, size=(48, 64),
                 bins: int = BAND_BINS, min_lag: float = 0.05, max_lag: float = 0.4, min_side: int = 128):
        self.least, self.margin, self.unit, self.size, self.bins = least, margin, unit, tuple(size), bins
        self.min_lag, self.max_lag, self.min_side = min_lag, max_lag, min_side
        self._check_params()
        self.make_scorer().check_settings()  # the scorer owns the rules between lags, stripes and size

    def explain_features(self, prepared, images):
        """Per image, a one-column map of each stripe's fit past the reference's (units, top to bottom)."""
        return self._explain_stripes(prepared, images)

    def make_scorer(self):
        return TearScorer(size=self.size, bins=self.bins, min_lag=self.min_lag, max_lag=self.max_lag, unit=self.unit)
