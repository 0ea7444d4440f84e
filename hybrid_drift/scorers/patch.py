"""Where in the picture: reconstruction error of every position of a CNN feature map (issue 21).

A globally pooled embedding averages a band of dead pixel rows, a text banner or a smudge on
the lens into the rest of the picture; a busy street moves it more. :class:`PatchPCAScorer`
looks at the mid-level feature map itself: every position's feature vector (one per 16x16
pixels of the network input) is reconstructed by one PCA learned from *all* positions of the
reference frames, wherever they are. A person, a car or a shadow that the reference saw
somewhere is then normal anywhere (a per-position model would flag a person walking where
nobody walked: measured on the development sets, 141-172 of 200 clean frames); a pattern the
reference never had anywhere is not.

The image's score is the strongest *horizontal band*: for each row of positions, the mean
error of its strongest half; the largest over rows. Dead rows, banners and edge-to-edge
glitches fill a row; a person fills a few positions of it. On the development scenes this kept
the most room between the reference's scores and the strangest clean frame of all the ways
tried (the strongest position, the 4, 8 or 16 strongest, the strongest column).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from sklearn.decomposition import PCA

from .base import BaseScorer
from .pca import check_pca_state

__all__ = ["PatchPCAScorer"]


class PatchPCAScorer(BaseScorer):
    """Position-free PCA of a feature map's vectors; score = the strongest band of errors.

    Features are ``(rows, cols, channels)`` maps flattened position-major (each position's
    ``channels`` values together), one per image.

    Parameters
    ----------
    grid : (rows, cols)
        Positions of the feature map.
    n_components : float
        Variance fraction kept by the PCA, in (0, 1).
    band : float
        Fraction of a row's positions (the strongest) averaged for that row's score.
    sample : int
        Position vectors the PCA is learned from (drawn at random from all reference positions;
        the standardisation uses the same sample).
    random_state : int
        Seed of that draw (fixed: the same reference gives the same scorer).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> basis = rng.normal(size=(3, 8))
    >>> maps = rng.normal(size=(40, 4 * 6, 3)) @ basis          # 40 maps of 4x6 positions, 8 channels
    >>> s = PatchPCAScorer(grid=(4, 6), n_components=0.99).fit(maps.reshape(40, -1))
    >>> odd = maps[:1].copy(); odd[0, 6:12] += rng.normal(size=(6, 8)) * 3   # one row of positions
    >>> a, b = s.score_samples(np.vstack([maps[:1], odd]).reshape(2, -1))
    >>> bool(b > 100 * a)
    True
    """

    _array_attrs: ClassVar = ("mean_", "scale_", "components_", "pca_mean_")
    _json_attrs: ClassVar = ("n_components_",)

    def __init__(self, grid=(18, 24), n_components: float = 0.97, band: float = 0.5, sample: int = 40000,
                 random_state: int = 0):
        self.grid = grid
        self.n_components = n_components
        self.band = band
        self.sample = sample
        self.random_state = random_state

    def _shape(self, d: int) -> tuple[int, int, int]:
        h, w = (int(v) for v in self.grid)
        if h < 1 or w < 1 or d % (h * w):
            raise ValueError(f"PatchPCAScorer(grid={self.grid!r}) needs a multiple of {h * w} features per row, "
                             f"got {d}")
        return h, w, d // (h * w)

    def _fit(self, X):
        if not 0.0 < float(self.n_components) < 1.0:
            raise ValueError(f"n_components is a variance fraction in (0, 1), got {self.n_components!r}")
        if not 0.0 < float(self.band) <= 1.0:
            raise ValueError(f"band must be in (0, 1], got {self.band!r}")
        n, d = X.shape
        h, w, c = self._shape(d)
        rng = np.random.default_rng(self.random_state)
        take = rng.choice(n * h * w, min(n * h * w, int(self.sample)), replace=False)
        rows = X.reshape(n * h * w, c)[np.sort(take)].astype(np.float64)
        self.mean_ = rows.mean(0)
        self.scale_ = rows.std(0) + 1e-3  # channels that never fire do not divide by zero
        pca = PCA(n_components=float(self.n_components), svd_solver="full").fit((rows - self.mean_) / self.scale_)
        self.components_ = pca.components_
        self.pca_mean_ = pca.mean_
        self.n_components_ = int(pca.n_components_)

    def position_errors(self, X) -> np.ndarray:
        """``(n, rows, cols)`` squared reconstruction error of every position (one image at a time:
        an image's errors do not depend on the others in the batch)."""
        X = self._check_X(X)
        h, w, c = self._shape(X.shape[1])
        W = self.components_
        out = np.empty((len(X), h * w))
        for i, row in enumerate(X):
            z = (row.reshape(h * w, c).astype(np.float64) - self.mean_) / self.scale_ - self.pca_mean_
            r = z - (z @ W.T) @ W
            out[i] = np.einsum("ij,ij->i", r, r)
        return out.reshape(len(X), h, w)

    def _score(self, X):
        E = self.position_errors(X)
        k = max(1, int(round(self.band * E.shape[2])))
        return np.sort(E, axis=2)[:, :, -k:].mean(axis=2).max(axis=1)

    def _check_state(self):
        check_pca_state(self, self._shape(self.n_features_in_)[2])
