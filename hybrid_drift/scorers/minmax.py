"""The trivial baseline the Tokyo study rejects: outlier when a feature leaves the training range."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from .base import BaseScorer, check_shape

__all__ = ["MinMaxScorer"]


class MinMaxScorer(BaseScorer):
    """Flag an image when any feature falls outside ``[min, max]`` seen in training.

    The score is how far the furthest feature lies outside its range, in units of
    the range (0 inside). Its branch calibrates with the ``"fixed"`` rule (threshold
    0): this *is* the rule, kept so benchmarks can show why it fails.
    With per-image pixel min/max features (as a whylogs profile gives) nearly every
    image spans the full 0..255 range, so almost nothing is ever flagged.

    Examples
    --------
    >>> import numpy as np
    >>> s = MinMaxScorer().fit(np.array([[0.0], [1.0]]))
    >>> s.score_samples(np.array([[0.5], [3.0]])).tolist()
    [0.0, 2.0]
    """

    _array_attrs: ClassVar = ("min_", "max_")

    def __init__(self):
        pass

    def _fit(self, X):
        self.min_, self.max_ = X.min(axis=0), X.max(axis=0)

    def _score(self, X):
        span = np.maximum(self.max_ - self.min_, 1e-12)
        out = np.maximum(X - self.max_, self.min_ - X) / span
        return np.maximum(out, 0.0).max(axis=1)

    def _check_state(self):
        for a in ("min_", "max_"):
            check_shape(type(self).__name__, a, np.asarray(getattr(self, a)), (self.n_features_in_,))
