"""The trivial baseline the Tokyo study rejects: outlier when a feature leaves the training range."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from .base import BaseScorer

__all__ = ["MinMaxScorer"]


class MinMaxScorer(BaseScorer):
    """Flag an image when any feature falls outside ``[min, max]`` seen in training.

    The score is how far the furthest feature lies outside its range, in units of
    the range (0 inside). The threshold is fixed at 0 (``default_calibration =
    "fixed"``): this *is* the rule, kept so benchmarks can show why it fails.
    With per-image pixel min/max features (as a whylogs profile gives) nearly every
    image spans the full 0..255 range, so almost nothing is ever flagged.

    Examples
    --------
    >>> import numpy as np
    >>> s = MinMaxScorer().fit(np.array([[0.0], [1.0]]))
    >>> s.predict(np.array([[0.5], [3.0]])).tolist()
    [0, 1]
    """

    _array_attrs: ClassVar = ("min_", "max_")
    default_calibration: ClassVar = "fixed"

    def __init__(self):
        pass

    def _fit(self, X):
        self.min_, self.max_ = X.min(axis=0), X.max(axis=0)

    def fit(self, X, y=None):
        super().fit(X, y)
        self.threshold_ = 0.0
        return self

    def _score(self, X):
        span = np.maximum(self.max_ - self.min_, 1e-12)
        out = np.maximum(X - self.max_, self.min_ - X) / span
        return np.maximum(out, 0.0).max(axis=1)
