"""The shift branch: has the camera moved? (issue 21: a knocked mount is a camera fault on every scene).

Each frame's grey thumbnail (:class:`~hybrid_drift.features.geometry.ShiftFeatures`, on the
colour branch's decode: no network) is registered by phase correlation against the median
picture of the reference (:class:`~hybrid_drift.scorers.ShiftScorer`); the score is the shift
in percent of the frame. The threshold is the cross-fitted one times ``margin`` and never
under ``least`` percent: on a steady scene the reference's own shifts are a few hundredths
of a percent, and a vibrating pole or a wobbling mount must move more than that.
"""

from __future__ import annotations

from ..features.geometry import ShiftFeatures
from ..scorers import ShiftScorer
from .base import Branch, stack_rows
from .params import Int, IntPair, Num

__all__ = ["ShiftBranch"]


class ShiftBranch(Branch):
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
    min_side : int
        Working size (the colour branch's decode).
    """

    default_name = "shift"
    checks_order = False  # a thumbnail of raw grey levels: the order check reads colour and CNN
    _config_keys = ("least", "margin", "size", "min_side")
    _parameter_constraints = {"least": Num(0, 100), "margin": Num(1, 1e6), "size": IntPair(16, 1024),
                              "min_side": Int(1, 4096)}

    def __init__(self, least: float = 1.0, margin: float = 1.5, size=(96, 128), min_side: int = 128):
        self.least, self.margin, self.size, self.min_side = least, margin, tuple(size), min_side
        self._check_params()

    @property
    def least_threshold(self) -> float:
        return float(self.least)

    def prepare(self, img):
        return ShiftFeatures(self.size).transform(img.at_side(self.min_side))

    def features(self, prepared, images):
        return stack_rows(prepared, self.size[0] * self.size[1])

    def make_scorer(self):
        return ShiftScorer(size=self.size)
