"""The contract every scorer shares: fit on normal features, score (higher = stranger).

A scorer sees only feature matrices, never images or models (no torch here), so the
same statistics work on any features. A scorer holds no threshold: turning scores
into flags is :mod:`hybrid_drift.calibration`'s job (one owner per decision).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

__all__ = ["BaseScorer", "SCORERS", "scorer_from_state"]

#: name -> class, used to rebuild saved scorers without pickle.
SCORERS: dict[str, type] = {}


class BaseScorer(BaseEstimator):
    """Base class: subclasses implement ``_fit(X)`` and ``_score(X)``.

    Attributes set by ``fit`` end with ``_``; ``_array_attrs`` lists the fitted
    numpy arrays and ``_json_attrs`` the fitted plain values saved by :meth:`get_state`
    (a scorer whose arrays depend on its settings makes ``_array_attrs`` a property).
    """

    _array_attrs: ClassVar[tuple[str, ...]] = ()
    _json_attrs: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        SCORERS[cls.__name__] = cls

    # -- to implement -------------------------------------------------------------
    def _fit(self, X: np.ndarray) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _score(self, X: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _check_state(self) -> None:
        """Raise ValueError when loaded arrays are inconsistent (shapes, values). Override to add checks."""

    # -- shared verbs -------------------------------------------------------------
    @staticmethod
    def _check_X(X, name="X") -> np.ndarray:
        X = np.asarray(X)
        if X.dtype not in (np.float16, np.float32, np.float64):  # floats stay as they are: no full-size copies
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
        return self

    def score_samples(self, X) -> np.ndarray:
        """Outlier score per row; higher = stranger."""
        check_is_fitted(self, "n_features_in_")
        X = self._check_X(X)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, {type(self).__name__} was fitted with {self.n_features_in_}")
        return np.asarray(self._score(X), dtype=np.float64)

    # -- persistence (no pickle) --------------------------------------------------
    def get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """JSON-able description and named arrays that :func:`scorer_from_state` rebuilds from."""
        check_is_fitted(self, "n_features_in_")
        params = {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.get_params().items()}
        attrs = {a: _plain(getattr(self, a)) for a in (*self._json_attrs, "n_features_in_")}
        return {"class": type(self).__name__, "params": params, "attrs": attrs}, {
            a: np.asarray(getattr(self, a)) for a in self._array_attrs}


def _plain(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v


def check_shape(owner: str, name: str, a: np.ndarray, shape: tuple) -> None:
    """ValueError unless ``a.shape == shape`` (for ``_check_state``)."""
    if a.shape != shape:
        raise ValueError(f"{owner}: array {name!r} has shape {a.shape}, expected {shape}")


def scorer_from_state(state: dict[str, Any], arrays: dict[str, np.ndarray]) -> BaseScorer:
    """Rebuild a fitted scorer from :meth:`BaseScorer.get_state` output.

    Model files are data: unknown parameters are refused, ``n_features_in_`` must be
    a positive int, arrays must be finite numbers, and each scorer's ``_check_state``
    checks its parameters and that the array shapes are consistent.
    """
    if not isinstance(state, dict) or not isinstance(state.get("params"), dict) or \
            not isinstance(state.get("attrs"), dict):
        raise ValueError("scorer state must be an object with 'class', 'params' and 'attrs'")
    cls = SCORERS.get(state.get("class"))
    if cls is None:
        raise ValueError(f"unknown scorer class {state.get('class')!r}")
    params = {k: tuple(v) if isinstance(v, list) else v for k, v in state["params"].items()}
    unknown = set(params) - set(cls._get_param_names())
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown parameters {sorted(unknown)}")
    obj = cls(**params)
    n = state["attrs"].get("n_features_in_")
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 10_000_000:
        raise ValueError(f"{cls.__name__}: n_features_in_ must be a positive int, got {n!r}")
    for a, v in state["attrs"].items():
        if a not in (*cls._json_attrs, "n_features_in_"):
            continue  # e.g. a format-1 threshold_: thresholds live in the calibration now
        if isinstance(v, float) and not math.isfinite(v):
            raise ValueError(f"{cls.__name__}: {a} must be finite")
        setattr(obj, a, v)
    for a in obj._array_attrs:  # the instance's: which arrays a scorer keeps may depend on its settings
        if a not in arrays:
            raise ValueError(f"saved {cls.__name__} is missing array {a!r}")
        arr = arrays[a]
        if arr.dtype.kind not in "fiu" or not np.isfinite(arr).all():
            raise ValueError(f"{cls.__name__}: array {a!r} must be finite numbers")
        setattr(obj, a, arr)
    obj._check_state()
    return obj
