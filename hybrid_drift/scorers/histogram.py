"""Colour-branch scorer: distance of each image's histograms to a reference learned from normals."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from .base import BaseScorer, check_shape
from .distances import get_distance

__all__ = ["HistogramScorer", "COMBINES"]

COMBINES = ("channel_mean", "max", "mean")


class HistogramScorer(BaseScorer):
    """Histogram distance to the mean normal histogram, aggregated over the image.

    Parameters
    ----------
    distance : {"hellinger", "kl", "js", "intersection", "chi2"}
        See :mod:`hybrid_drift.scorers.distances`.
    group_bounds : sequence of int, optional
        Offsets splitting the feature vector into separate histograms (e.g. hue,
        saturation, brightness per grid cell); default: one histogram.
    group_channels : sequence of int, optional
        Channel of each histogram (e.g. 0, 1, 2 for hue, saturation, brightness of
        each grid cell); default: all one channel.
    combine : {"channel_mean", "max", "mean"}
        How per-histogram distances become one score per image.
        ``"channel_mean"`` (default): per channel, the mean distance over the
        histograms of that channel (grid cells), in units of its mean on the training
        images; the score is the largest channel. A person walking into one of 16
        cells moves that cell's histogram a lot but the channel mean little, while a
        colour cast, a grey or inverted frame, a flip or rain moves every cell.
        ``"max"`` / ``"mean"``: the largest / mean per-histogram z-score
        ``(d - mean) / std`` against the training images (``standardise``); ``"max"``
        is what version 0.1 did, and lets one cell with a person dominate.
    standardise : bool
        For ``"max"`` / ``"mean"``: z-score each histogram's distance against the
        training images' own distances (else raw distances).
    eps : float
        Smoothing added to every bin before normalising.

    Attributes
    ----------
    reference_ : ndarray of shape (n_features,)
        Mean normalised training histogram (per group).
    loc_, scale_ : ndarray of shape (n_groups,)
        Mean and std of the training distances per group.
    channels_ : ndarray of shape (n_groups,)
        Channel index of each group.
    unit_ : ndarray of shape (n_channels,)
        Mean over the training images of each channel's mean distance.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.dirichlet(np.ones(8) * 50, size=100)
    >>> s = HistogramScorer(distance="hellinger").fit(X)
    >>> bool(s.score_samples(np.eye(8)[:1])[0] > s.score_samples(X).max())
    True
    """

    _array_attrs: ClassVar = ("reference_", "loc_", "scale_", "bounds_", "channels_", "unit_")

    def __init__(self, distance: str = "intersection", group_bounds=None, group_channels=None,
                 combine: str = "channel_mean", standardise: bool = True, eps: float = 1e-6):
        self.distance = distance
        self.group_bounds = group_bounds
        self.group_channels = group_channels
        self.combine = combine
        self.standardise = standardise
        self.eps = eps

    def _distances(self, X):
        fn = get_distance(self.distance)
        b = self.bounds_
        return np.stack([fn(X[:, b[g]:b[g + 1]], self.reference_[b[g]:b[g + 1]], self.eps)
                         for g in range(len(b) - 1)], axis=1)

    def _check_params(self):
        get_distance(self.distance)
        if self.combine not in COMBINES:
            raise ValueError(f"combine must be one of {COMBINES}, got {self.combine!r}")
        if not (isinstance(self.eps, (int, float)) and 0 < self.eps < 1):
            raise ValueError(f"eps must be in (0, 1), got {self.eps!r}")

    def _fit(self, X):
        self._check_params()
        b = np.asarray(self.group_bounds if self.group_bounds is not None else [0, X.shape[1]], np.int64)
        if b[0] != 0 or b[-1] != X.shape[1] or np.any(np.diff(b) <= 0):
            raise ValueError(f"group_bounds must rise from 0 to n_features={X.shape[1]}, got {b.tolist()}")
        ch = np.zeros(len(b) - 1, np.int64) if self.group_channels is None else \
            np.asarray(self.group_channels, np.int64)
        if ch.shape != (len(b) - 1,) or ch.min() < 0:
            raise ValueError(f"group_channels needs one non-negative channel per group ({len(b) - 1}), "
                             f"got {np.asarray(self.group_channels).tolist()}")
        self.bounds_, self.channels_ = b, ch
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
        self.unit_ = np.ones(int(ch.max()) + 1)  # raw channel means first, then their training mean as the unit
        self.unit_ = np.maximum(self._channel_means(d).mean(axis=0), 1e-6)

    def _channel_means(self, d: np.ndarray) -> np.ndarray:
        """``(n, n_channels)`` mean distance over each channel's histograms, in ``unit_``."""
        out = np.stack([d[:, self.channels_ == c].mean(axis=1) if (self.channels_ == c).any()
                        else np.zeros(len(d)) for c in range(len(self.unit_))], axis=1)
        return out / self.unit_

    def group_scores(self, X) -> np.ndarray:
        """``(n, n_groups)`` per-group distances (z-scores against training when ``standardise``)."""
        X = self._check_X(X)
        d = self._distances(X)
        return (d - self.loc_) / self.scale_ if self.standardise else d

    def group_contributions(self, X) -> np.ndarray:
        """``(n, n_groups)``: what each histogram (grid cell and channel) adds to the score.

        ``channel_mean``: each group's distance in its channel's unit, for the channel
        that sets the score and 0 for the others (so the mean over that channel's cells
        is the score); ``max`` / ``mean``: the per-group (z-)scores.
        """
        X = self._check_X(X)
        d = self._distances(X)
        if self.combine != "channel_mean":
            return (d - self.loc_) / self.scale_ if self.standardise else d
        top = self._channel_means(d).argmax(axis=1)
        unit = self.unit_[self.channels_]
        return np.where(self.channels_[None, :] == top[:, None], d / unit[None, :], 0.0)

    def _score(self, X):
        if self.combine == "channel_mean":
            return self._channel_means(self._distances(X)).max(axis=1)
        g = (self._distances(X) - self.loc_) / self.scale_ if self.standardise else self._distances(X)
        return g.max(axis=1) if self.combine == "max" else g.mean(axis=1)

    def _check_state(self):
        self._check_params()
        name = type(self).__name__
        b = np.asarray(self.bounds_)
        if b.ndim != 1 or len(b) < 2 or b[0] != 0 or b[-1] != self.n_features_in_ or np.any(np.diff(b) <= 0):
            raise ValueError(f"{name}: bounds_ must rise from 0 to n_features_in_={self.n_features_in_}")
        g = len(b) - 1
        check_shape(name, "reference_", np.asarray(self.reference_), (self.n_features_in_,))
        for a in ("loc_", "scale_", "channels_"):
            check_shape(name, a, np.asarray(getattr(self, a)), (g,))
        ch = np.asarray(self.channels_)
        if ch.min() < 0 or ch.max() >= len(np.asarray(self.unit_)) or len(np.asarray(self.unit_)) > g:
            raise ValueError(f"{name}: channels_ and unit_ are inconsistent")
        if not (np.asarray(self.scale_) > 0).all() or not (np.asarray(self.unit_) > 0).all():
            raise ValueError(f"{name}: scale_ and unit_ must be > 0")
