"""Colour-branch scorer: distance of each image's histograms to a reference learned from normals."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from .base import BaseScorer
from .distances import get_distance

__all__ = ["HistogramScorer"]


class HistogramScorer(BaseScorer):
    """Histogram distance to the mean normal histogram, standardised per group.

    Parameters
    ----------
    distance : {"hellinger", "kl", "js", "intersection", "chi2"}
        See :mod:`hybrid_drift.scorers.distances`.
    group_bounds : sequence of int, optional
        Offsets splitting the feature vector into separate histograms (e.g. hue,
        saturation, brightness per grid cell); default: one histogram.
    combine : {"max", "mean"}
        How per-group scores become one score per image.
    standardise : bool
        Turn each group's distance into a z-score against the training images'
        own distances (``(d - mean) / std``), so a group where normal frames vary a
        lot does not dominate and one threshold fits every group.
    eps : float
        Smoothing added to every bin before normalising.

    Attributes
    ----------
    reference_ : ndarray of shape (n_features,)
        Mean normalised training histogram (per group).
    loc_, scale_ : ndarray of shape (n_groups,)
        Mean and std of the training distances per group.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.dirichlet(np.ones(8) * 50, size=100)
    >>> s = HistogramScorer(distance="hellinger").fit(X)
    >>> bool(s.score_samples(np.eye(8)[:1])[0] > s.score_samples(X).max())
    True
    """

    _array_attrs: ClassVar = ("reference_", "loc_", "scale_", "bounds_")

    def __init__(self, distance: str = "hellinger", group_bounds=None, combine: str = "max",
                 standardise: bool = True, eps: float = 1e-6):
        self.distance = distance
        self.group_bounds = group_bounds
        self.combine = combine
        self.standardise = standardise
        self.eps = eps

    def _distances(self, X):
        fn = get_distance(self.distance)
        b = self.bounds_
        return np.stack([fn(X[:, b[g]:b[g + 1]], self.reference_[b[g]:b[g + 1]], self.eps)
                         for g in range(len(b) - 1)], axis=1)

    def _fit(self, X):
        get_distance(self.distance)
        if self.combine not in ("max", "mean"):
            raise ValueError(f"combine must be 'max' or 'mean', got {self.combine!r}")
        b = np.asarray(self.group_bounds if self.group_bounds is not None else [0, X.shape[1]], np.int64)
        if b[0] != 0 or b[-1] != X.shape[1] or np.any(np.diff(b) <= 0):
            raise ValueError(f"group_bounds must rise from 0 to n_features={X.shape[1]}, got {b.tolist()}")
        self.bounds_ = b
        ref = np.empty(X.shape[1])
        for g in range(len(b) - 1):
            part = X[:, b[g]:b[g + 1]]
            part = part / np.maximum(part.sum(axis=1, keepdims=True), 1e-12)
            ref[b[g]:b[g + 1]] = part.mean(axis=0)
        self.reference_ = ref
        d = self._distances(X)
        self.loc_ = d.mean(axis=0)
        std = d.std(axis=0, ddof=1) if len(d) > 1 else np.zeros(d.shape[1])
        # floor: a group that never varies in training must not divide by ~0
        self.scale_ = np.maximum(std, 1e-3 * np.maximum(self.loc_, 1e-6))

    def group_scores(self, X) -> np.ndarray:
        """``(n, n_groups)`` per-group (standardised) distances."""
        X = self._check_X(X)
        d = self._distances(X)
        return (d - self.loc_) / self.scale_ if self.standardise else d

    def _score(self, X):
        g = self.group_scores(X)
        return g.max(axis=1) if self.combine == "max" else g.mean(axis=1)
