"""The contract every scorer shares: fit on normal features, score (higher = stranger), threshold.

A scorer sees only feature matrices, never images or models (no torch here), so the
same statistics work on any features. Thresholding is separate from scoring:
:meth:`BaseScorer.calibrate` sets ``threshold_`` from held-out scores, and
``decision_function = score_samples - threshold_`` so 0 is the border.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from ..calibration import choose_threshold

__all__ = ["BaseScorer", "SCORERS", "scorer_from_state"]

#: name -> class, used to rebuild saved scorers without pickle.
SCORERS: dict[str, type] = {}


class BaseScorer(BaseEstimator):
    """Base class: subclasses implement ``_fit(X)`` and ``_score(X)``.

    Attributes set by ``fit`` end with ``_``; ``_array_attrs`` lists the fitted
    numpy arrays and ``_json_attrs`` the fitted plain values saved by :meth:`get_state`.
    """

    _array_attrs: ClassVar[tuple[str, ...]] = ()
    _json_attrs: ClassVar[tuple[str, ...]] = ()
    #: calibration used when the caller does not choose (None = caller's default)
    default_calibration: ClassVar[str | None] = None

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        SCORERS[cls.__name__] = cls

    # -- to implement -------------------------------------------------------------
    def _fit(self, X: np.ndarray) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _score(self, X: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- shared verbs -------------------------------------------------------------
    @staticmethod
    def _check_X(X, name="X") -> np.ndarray:
        X = np.asarray(X)
        if X.dtype not in (np.float32, np.float64):  # float32 stays float32: no full-size copies
            X = X.astype(np.float64)
        if X.ndim != 2:
            raise ValueError(f"{name} must be 2-D (n_images, n_features), got shape {X.shape}")
        if X.shape[0] == 0:
            raise ValueError(f"{name} has no rows (no usable images)")
        if not all(np.isfinite(X[i:i + 65536]).all() for i in range(0, len(X), 65536)):
            raise ValueError(f"{name} contains NaN or inf")
        return X

    def fit(self, X, y=None):
        """Learn what normal looks like from ``X`` (normal images only). Returns self."""
        X = self._check_X(X)
        self._fit(X)
        self.n_features_in_ = X.shape[1]
        self.threshold_ = None
        return self

    def score_samples(self, X) -> np.ndarray:
        """Outlier score per row; higher = stranger."""
        check_is_fitted(self, "n_features_in_")
        X = self._check_X(X)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, {type(self).__name__} was fitted with {self.n_features_in_}")
        return np.asarray(self._score(X), dtype=np.float64)

    def calibrate(self, X, y=None, *, method: str | None = None, fpr: float = 0.01, k: float = 3.0):
        """Set ``threshold_`` from held-out rows (default rule: mean + k * std of their scores;
        see :func:`hybrid_drift.calibration.choose_threshold`)."""
        self.set_threshold(self.score_samples(X), y, method=method, fpr=fpr, k=k)
        return self

    def set_threshold(self, scores, y=None, *, method: str | None = None, fpr: float = 0.01,
                      k: float = 3.0) -> float:
        """Set ``threshold_`` from given held-out scores (rule as in :meth:`calibrate`); returns it."""
        method = method or self.default_calibration or "mean_std"
        if method != "fixed":
            self.threshold_ = choose_threshold(scores, y, method=method, fpr=fpr, k=k)
        return self.threshold_

    def _check_threshold(self):
        check_is_fitted(self, "n_features_in_")
        if getattr(self, "threshold_", None) is None:
            raise ValueError(f"{type(self).__name__} has no threshold yet: call calibrate() on held-out normal images")

    def decision_function(self, X) -> np.ndarray:
        """``score_samples(X) - threshold_``: > 0 means outlier."""
        self._check_threshold()
        return self.score_samples(X) - self.threshold_

    def predict(self, X) -> np.ndarray:
        """1 for outliers, 0 for normal rows."""
        return (self.decision_function(X) > 0).astype(int)

    # -- persistence (no pickle) --------------------------------------------------
    def get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """JSON-able description and named arrays that :func:`scorer_from_state` rebuilds from."""
        check_is_fitted(self, "n_features_in_")
        params = {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.get_params().items()}
        attrs = {a: _plain(getattr(self, a)) for a in (*self._json_attrs, "n_features_in_", "threshold_")}
        return {"class": type(self).__name__, "params": params, "attrs": attrs}, {
            a: np.asarray(getattr(self, a)) for a in self._array_attrs}


def _plain(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v


def scorer_from_state(state: dict[str, Any], arrays: dict[str, np.ndarray]) -> BaseScorer:
    """Rebuild a fitted scorer from :meth:`BaseScorer.get_state` output."""
    cls = SCORERS.get(state.get("class"))
    if cls is None:
        raise ValueError(f"unknown scorer class {state.get('class')!r}")
    params = {k: tuple(v) if isinstance(v, list) else v for k, v in state["params"].items()}
    obj = cls(**params)
    for a, v in state["attrs"].items():
        setattr(obj, a, v)
    for a in cls._array_attrs:
        if a not in arrays:
            raise ValueError(f"saved {cls.__name__} is missing array {a!r}")
        setattr(obj, a, arrays[a])
    return obj
