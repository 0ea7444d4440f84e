"""Local scorers (issue 21): the strangest cell of the frame, and global light outside what the reference saw."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from .base import BaseScorer, check_shape
from .distances import get_distance

__all__ = ["CellScorer", "RangeScorer"]


class CellScorer(BaseScorer):
    """Each cell's histogram distance to the reference, in that cell's own unit; the score is the largest.

    A cell where people walk varies a lot in the reference and gets a wide unit; a wall or
    the sky gets a narrow one, so a band of dead rows or a smudge over a quiet cell stands
    out while a person in a busy cell does not. The unit is the ``unit_quantile`` of the
    cell's *out-of-sample* distances on the training rows (``blocks`` contiguous blocks of
    the rows, each measured against the reference mean of the others: rows come in the
    order the branch's cross-fitting uses, time or similarity), floored at ``floor`` times
    the median unit (a cell that never changes must not divide by ~0). In-sample distances
    were too small for the quiet cells: a held-out frame's quiet cells sat at up to 7x
    their in-sample unit on a generated scene.

    Parameters
    ----------
    distance : str
        Histogram distance (see :mod:`hybrid_drift.scorers.distances`).
    group_bounds : sequence of int
        Offsets of each cell's block of features; a block may hold several histograms
        (``hist_bounds`` inside it), each normalised separately and their distances added.
    hist_bounds : sequence of int, optional
        Offsets of the histograms inside one block (default: one histogram per block).
    unit_quantile : float
    floor : float

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.dirichlet(np.ones(4) * 50, size=(60, 3)).reshape(60, 12)
    >>> s = CellScorer(group_bounds=[0, 4, 8, 12]).fit(X)
    >>> odd = X[:1].copy(); odd[0, 4:8] = [1, 0, 0, 0]     # one cell changes completely
    >>> bool(s.score_samples(odd)[0] > s.score_samples(X).max())
    True
    """

    _array_attrs: ClassVar = ("reference_", "unit_", "bounds_")

    def __init__(self, distance: str = "hellinger", group_bounds=None, hist_bounds=None,
                 unit_quantile: float = 1.0, floor: float = 0.5, blocks: int = 5):
        self.distance = distance
        self.group_bounds = group_bounds
        self.hist_bounds = hist_bounds
        self.unit_quantile = unit_quantile
        self.floor = floor
        self.blocks = blocks

    def _hists(self):
        b = self.bounds_
        size = int(b[1] - b[0])
        inner = np.asarray(self.hist_bounds if self.hist_bounds is not None else [0, size], np.int64)
        return b, inner

    def _distances(self, X, reference=None) -> np.ndarray:
        fn = get_distance(self.distance)
        b, inner = self._hists()
        G = len(b) - 1
        size = int(b[1] - b[0])
        Xc = X[:, :G * size].reshape(len(X), G, size)
        R = (self.reference_ if reference is None else reference).reshape(G, size)
        d = np.zeros((len(X), G))
        for lo, hi in zip(inner[:-1], inner[1:]):
            part = Xc[:, :, lo:hi] + 1e-6
            part = part / part.sum(axis=2, keepdims=True)
            ref = R[:, lo:hi]
            d += np.stack([fn(part[:, g], ref[g], 1e-6) for g in range(G)], axis=1)
        return d

    def _fit(self, X):
        get_distance(self.distance)
        if not 0.5 <= float(self.unit_quantile) <= 1.0 or not 0.0 < float(self.floor) <= 1.0:
            raise ValueError("unit_quantile must be in [0.5, 1] and floor in (0, 1]")
        b = np.asarray(self.group_bounds if self.group_bounds is not None else [0, X.shape[1]], np.int64)
        sizes = np.diff(b)
        if b[0] != 0 or b[-1] != X.shape[1] or np.any(sizes <= 0) or len(set(sizes.tolist())) != 1:
            raise ValueError(f"group_bounds must cut n_features={X.shape[1]} into equal blocks, got {b.tolist()}")
        if isinstance(self.blocks, bool) or not isinstance(self.blocks, int) or self.blocks < 0 or self.blocks == 1:
            raise ValueError(f"blocks must be 0 (in-sample units) or an int >= 2, got {self.blocks!r}")
        self.bounds_ = b
        _, inner = self._hists()
        G, size = len(b) - 1, int(sizes[0])
        Xc = X.reshape(len(X), G, size).astype(np.float64) + 1e-6
        for lo, hi in zip(inner[:-1], inner[1:]):
            Xc[:, :, lo:hi] /= Xc[:, :, lo:hi].sum(axis=2, keepdims=True)
        self.reference_ = Xc.mean(axis=0).ravel()
        if self.blocks >= 2 and len(X) >= 2 * self.blocks:
            d = np.empty((len(X), G))
            for held in np.array_split(np.arange(len(X)), self.blocks):
                rest = np.ones(len(X), bool)
                rest[held] = False
                d[held] = self._distances(X[held], Xc[rest].mean(axis=0).ravel())
        else:
            d = self._distances(X)
        unit = np.quantile(d, float(self.unit_quantile), axis=0)
        self.unit_ = np.maximum(unit, float(self.floor) * max(float(np.median(unit)), 1e-9))

    def cell_scores(self, X) -> np.ndarray:
        """``(n, n_cells)``: each cell's distance in its own unit (the score is the row maximum)."""
        X = self._check_X(X)
        return self._distances(X) / self.unit_

    def _score(self, X):
        return (self._distances(X) / self.unit_).max(axis=1)

    def _check_state(self):
        name = type(self).__name__
        b = np.asarray(self.bounds_)
        if b.ndim != 1 or len(b) < 2 or b[0] != 0 or b[-1] != self.n_features_in_ or np.any(np.diff(b) <= 0):
            raise ValueError(f"{name}: bounds_ must rise from 0 to n_features_in_={self.n_features_in_}")
        check_shape(name, "reference_", np.asarray(self.reference_), (self.n_features_in_,))
        check_shape(name, "unit_", np.asarray(self.unit_), (len(b) - 1,))
        if not (np.asarray(self.unit_) > 0).all():
            raise ValueError(f"{name}: unit_ must be > 0")


class RangeScorer(BaseScorer):
    """How far the furthest feature lies outside the range the training images covered, in its own unit.

    0 inside ``[min, max]``; outside, the distance divided by the feature's standard deviation
    on the training images (floored at ``floors``, in the feature's own units, for features that
    never moved). Light the reference saw (a cloud, dusk) is inside; night, fog and a colour
    cast the reference never saw are outside. With ``lower=False`` only values above the range count
    (a statistic for which less is never a fault). With ``spread=False`` the unit is ``floors`` itself
    (a fixed unit in the feature's own scale: for a statistic whose reference values are bimodal, a
    board in or out of a stripe of the frame, the standard deviation measures the two modes' distance,
    not how far past its maximum a new normal frame goes).

    Examples
    --------
    >>> import numpy as np
    >>> s = RangeScorer(floors=[1.0]).fit(np.array([[0.0], [2.0], [4.0]]))
    >>> s.score_samples(np.array([[3.0], [6.0]])).tolist()
    [0.0, 1.0]
    """

    _array_attrs: ClassVar = ("min_", "max_", "scale_")

    def __init__(self, floors=None, lower: bool = True, spread: bool = True):
        self.floors, self.lower, self.spread = floors, lower, spread

    def _fit(self, X):
        floors = np.zeros(X.shape[1]) if self.floors is None else np.asarray(self.floors, np.float64)
        if floors.shape != (X.shape[1],) or (floors < 0).any():
            raise ValueError(f"floors needs one non-negative value per feature ({X.shape[1]})")
        self.min_, self.max_ = X.min(axis=0).astype(np.float64), X.max(axis=0).astype(np.float64)
        sd = X.std(axis=0, ddof=1) if len(X) > 1 and self.spread else np.zeros(X.shape[1])
        self.scale_ = np.maximum(np.maximum(sd, floors), 1e-9)

    def feature_scores(self, X) -> np.ndarray:
        """``(n, n_features)``: each feature's distance outside the range, in its unit."""
        return self._outside(self._check_X(X))

    def _outside(self, X):
        out = np.maximum(X - self.max_, self.min_ - X) if self.lower else X - self.max_
        return np.maximum(out, 0.0) / self.scale_

    def _score(self, X):
        return self._outside(X).max(axis=1)

    def _check_state(self):
        name = type(self).__name__
        for a in ("min_", "max_", "scale_"):
            check_shape(name, a, np.asarray(getattr(self, a)), (self.n_features_in_,))
        if not (np.asarray(self.scale_) > 0).all():
            raise ValueError(f"{name}: scale_ must be > 0")
