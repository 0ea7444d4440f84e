"""CNN-branch scorer: PCA reconstruction error (NannyML's data-reconstruction drift, per image)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from sklearn.decomposition import PCA, IncrementalPCA
from sklearn.preprocessing import StandardScaler

from .base import BaseScorer, check_shape

__all__ = ["PCAReconstructionScorer", "AUTO_COMPONENTS"]

#: components of ``n_components="auto"`` when the training set has room (the Tokyo study's 150)
AUTO_COMPONENTS = 150


class PCAReconstructionScorer(BaseScorer):
    """Standardise → PCA → inverse transform → Euclidean distance to the original.

    Normal images lie close to the principal subspace learned from training
    embeddings; strange ones do not, so their reconstruction error is large.

    Parameters
    ----------
    n_components : "auto", int or float
        Components kept: an int, a fraction of variance to explain (float in (0, 1)),
        or ``"auto"`` (default): 150 as in the Tokyo study where the training set has
        room for it (at least 300 rows), else half the training rows, so a few dozen
        reference images still fit. ``n_components_`` holds the number used.
    standardise : bool
        Scale every feature to zero mean and unit variance before PCA (NannyML does).
    scale_floor : "median", float or None
        Lower bound on each feature's standard deviation when standardising.
        CNN embeddings have many channels that are (nearly) constant on the
        training frames; dividing by their tiny spread turns any change in them
        into a huge error on held-out normal frames (measured on ``vtest.avi``
        EfficientNet-Lite0 features: held-out normal errors over 300x their median).
        ``"median"`` floors every std at the median std over features; a float is an
        absolute floor; ``None`` is plain standardisation (NannyML). With
        ``group_bounds`` the floor is taken per group.
    group_bounds : sequence of int, optional
        Offsets splitting the features into blocks of different origin (e.g. pooled
        maps of several CNN layers). Each block is standardised on its own and
        weighted by ``1/sqrt(block size)`` so every block carries the same total
        variance, whatever its number of channels.
    random_state : int
        Seed for randomised SVD solvers.
    incremental_above : int
        With more training rows than this, fit with scikit-learn's
        ``IncrementalPCA`` over row batches, so memory stays bounded (a variance
        fraction is then resolved on a random subsample of that many rows).
    batch_rows : int
        Rows per batch for standardisation statistics, incremental fitting and scoring.

    Attributes
    ----------
    mean_, scale_ : ndarray of shape (n_features,)
        Standardisation parameters.
    components_ : ndarray of shape (n_components_, n_features)
        Principal axes.
    pca_mean_ : ndarray of shape (n_features,)
        Mean of the standardised training features.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 3)) @ rng.normal(size=(3, 10))
    >>> s = PCAReconstructionScorer(n_components=3).fit(X)
    >>> bool(s.score_samples(X).max() < 1e-6)
    True
    """

    _array_attrs: ClassVar = ("mean_", "scale_", "components_", "pca_mean_")
    _json_attrs: ClassVar = ("n_components_",)

    def __init__(self, n_components="auto", standardise: bool = True, scale_floor="median",
                 group_bounds=None, random_state: int = 0, incremental_above: int = 20000,
                 batch_rows: int = 8192):
        self.n_components = n_components
        self.standardise = standardise
        self.scale_floor = scale_floor
        self.group_bounds = group_bounds
        self.incremental_above = incremental_above
        self.batch_rows = batch_rows
        self.random_state = random_state

    def _fit(self, X):
        n, d = X.shape
        nc = self.n_components
        if isinstance(nc, str) and nc == "auto":
            nc = max(1, min(AUTO_COMPONENTS, n // 2, d))
        if isinstance(nc, float) and not isinstance(nc, bool):
            if not 0.0 < nc < 1.0:
                raise ValueError(f"n_components as a float is a variance fraction in (0, 1), got {nc}")
        elif isinstance(nc, (int, np.integer)) and not isinstance(nc, bool):
            if not 1 <= nc <= min(n, d):
                raise ValueError(
                    f"n_components={nc} is more than this training set allows: it must be between 1 "
                    f"and min(n_images, n_features) = min({n}, {d}) = {min(n, d)}. Fit on more "
                    f"images, lower n_components, or pass a variance fraction such as 0.95.")
        else:
            raise TypeError(f"n_components must be 'auto', an int or a float in (0, 1), got {nc!r}")
        b = self.batch_rows
        if self.standardise:
            sc = StandardScaler()
            for i in range(0, n, b):  # one row batch at a time: no full-size float64 copy
                sc.partial_fit(X[i:i + b].astype(np.float64))
            self.mean_, scale = sc.mean_, sc.scale_.copy()  # sklearn maps zero variance to 1
            std = np.sqrt(sc.var_)
            bounds = list(self.group_bounds) if self.group_bounds is not None else [0, d]
            if bounds[0] != 0 or bounds[-1] != d or np.any(np.diff(bounds) <= 0):
                raise ValueError(f"group_bounds must rise from 0 to n_features={d}, got {bounds}")
            for a, e in zip(bounds[:-1], bounds[1:]):
                if self.scale_floor is not None:
                    floor = float(np.median(std[a:e])) if self.scale_floor == "median" else float(self.scale_floor)
                    if floor > 0:
                        scale[a:e] = np.maximum(std[a:e], floor)
                if len(bounds) > 2:  # equal total variance per block
                    scale[a:e] *= np.sqrt(e - a)
            self.scale_ = scale
        else:
            self.mean_, self.scale_ = np.zeros(d), np.ones(d)

        z = self._standardise
        if n <= self.incremental_above:
            pca = PCA(n_components=nc, random_state=self.random_state).fit(z(X))
        else:
            if isinstance(nc, float):  # resolve a variance fraction on a subsample
                rng = np.random.default_rng(self.random_state)
                sub = np.sort(rng.choice(n, self.incremental_above, replace=False))
                nc = int(PCA(n_components=nc, random_state=self.random_state).fit(z(X[sub])).n_components_)
            step = max(b, nc)
            pca = IncrementalPCA(n_components=nc, batch_size=step)
            for i in range(0, n, step):
                if len(X[i:i + step]) >= nc:  # IncrementalPCA needs >= n_components rows per batch
                    pca.partial_fit(z(X[i:i + step]))
        self.components_ = pca.components_
        self.pca_mean_ = pca.mean_
        self.n_components_ = int(pca.n_components_)

    def _standardise(self, rows: np.ndarray) -> np.ndarray:
        """A block of rows, standardised as in training, in float64."""
        return (rows.astype(np.float64) - self.mean_) / self.scale_

    def residuals(self, X) -> np.ndarray:
        """``(n, n_features)`` standardised reconstruction residuals: ``score = ||residual||``.

        Each feature's squared residual is its share of the squared score (used to
        attribute the score to the places in the image that produced each feature).
        """
        X = self._check_X(X)
        C = self._standardise(X) - self.pca_mean_
        return C - (C @ self.components_.T) @ self.components_

    def _score(self, X):
        # One row at a time (two matrix-vector products): a row's score then depends on
        # that row alone. A batched matrix product rounds differently with the batch's
        # size and a row's place in it, so the same image could score differently
        # alone, in a batch of 1,000, or in a part of a distributed job.
        out = np.empty(len(X))
        W = self.components_
        for i in range(0, len(X), self.batch_rows):  # bounded temporaries, whatever len(X)
            C = self._standardise(X[i:i + self.batch_rows]) - self.pca_mean_
            for j, c in enumerate(C):
                r = c - (W @ c) @ W
                out[i + j] = np.sqrt(r @ r)
        return out

    def _check_state(self):
        check_pca_state(self, self.n_features_in_)


def check_pca_state(scorer, d: int) -> None:
    """ValueError unless a loaded PCA scorer's ``n_components_``, ``mean_``, ``scale_``, ``pca_mean_`` and
    ``components_`` fit ``d`` features (a PCA reconstruction scorer's, or a patch scorer's per position)."""
    name = type(scorer).__name__
    nc = scorer.n_components_
    if isinstance(nc, bool) or not isinstance(nc, int) or not 1 <= nc <= d:
        raise ValueError(f"{name}: n_components_ must be an int in [1, {d}], got {nc!r}")
    for a in ("mean_", "scale_", "pca_mean_"):
        check_shape(name, a, np.asarray(getattr(scorer, a)), (d,))
    check_shape(name, "components_", np.asarray(scorer.components_), (nc, d))
    if not (np.asarray(scorer.scale_) > 0).all():
        raise ValueError(f"{name}: scale_ must be > 0")
