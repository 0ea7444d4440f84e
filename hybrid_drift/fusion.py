"""Combine branch scores into one decision; works for any number of branches.

A fusion never stores a branch threshold: it reads each branch's
:class:`~hybrid_drift.calibration.Calibration` when it scores, so a recalibrated
branch changes the fused decision at once and the two cannot disagree.

``or``
    Outlier when any branch is over its threshold. The fused score is the largest
    calibrated margin, ``max_b (s_b - t_b) / spread_b`` (0 is the border; comparable
    across branches). ``is_outlier`` is exactly "some ``<branch>_flag`` is set".
``logistic``
    scikit-learn ``LogisticRegression`` on standardised raw branch scores, learned from
    labelled validation images (normals and outliers). It does not use the branch
    thresholds: the fused score is the calibrated probability of being an outlier and
    the border is 0.5, so a branch flag and the fused decision may differ.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from .calibration import Calibration

__all__ = ["OrFusion", "LogisticFusion", "make_fusion", "fusion_from_state", "FUSIONS"]


def _check_S(S, n_branches=None) -> np.ndarray:
    S = np.asarray(S, dtype=np.float64)
    if S.ndim != 2:
        raise ValueError(f"branch scores must be 2-D (n_images, n_branches), got shape {S.shape}")
    if n_branches is not None and S.shape[1] != n_branches:
        raise ValueError(f"expected scores of {n_branches} branches, got {S.shape[1]}")
    return S


def _finite(name: str, v, shape=None) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64)
    if shape is not None and a.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} must be finite")
    return a


class OrFusion:
    """Outlier when any branch exceeds its own calibrated threshold (no state of its own).

    Examples
    --------
    >>> import numpy as np
    >>> from hybrid_drift.calibration import Calibration
    >>> cal = [Calibration("conformal", 1.0, 0.5), Calibration("conformal", 10.0, 2.0)]
    >>> OrFusion().score(np.array([[0.5, 9.0], [2.0, 9.0]]), cal).tolist()  # margins: max of (-1, -0.5), (2, -0.5)
    [-0.5, 2.0]
    """

    kind: ClassVar[str] = "or"
    uses_labels: ClassVar[bool] = False
    threshold_: ClassVar[float] = 0.0

    def fit(self, S, y=None, calibrations: Sequence[Calibration] = ()):
        """Nothing to learn: the decision is the branches' own. Returns self."""
        return self

    def score(self, S, calibrations: Sequence[Calibration]) -> np.ndarray:
        """Largest margin over a branch threshold, in that branch's normal spread (> 0 = outlier)."""
        S = _check_S(S, len(calibrations))
        if not calibrations:
            raise ValueError("OR fusion needs the branches' calibrations")
        return np.column_stack([c.margin(S[:, j]) for j, c in enumerate(calibrations)]).max(axis=1)

    def times_threshold(self, S, calibrations: Sequence[Calibration]) -> np.ndarray:
        """The fused score in threshold units: the largest ``score / threshold`` over the branches
        (> 1 = outlier; branches without a positive threshold are left out)."""
        S = _check_S(S, len(calibrations))
        r = np.column_stack([c.times_threshold(S[:, j]) for j, c in enumerate(calibrations)])
        best = np.where(np.isnan(r), -np.inf, r).max(axis=1)
        return np.where(np.isneginf(best), np.nan, best)

    def get_state(self):
        """``(json_state, arrays)`` for :func:`fusion_from_state`."""
        return {"kind": self.kind}, {}


class LogisticFusion:
    """Logistic regression on standardised branch scores (needs labelled outliers).

    Parameters
    ----------
    C : float
        Inverse regularisation strength.
    class_weight : "balanced" or None
        Weight classes by inverse frequency (validation sets have few outliers).
    """

    kind: ClassVar[str] = "logistic"
    uses_labels: ClassVar[bool] = True
    threshold_: ClassVar[float] = 0.5

    def __init__(self, C: float = 1.0, class_weight: str | None = "balanced"):
        self.C = C
        self.class_weight = class_weight

    def fit(self, S, y=None, calibrations=()):
        """Learn weights from branch scores ``S`` of labelled images ``y`` (0 normal, 1 outlier)."""
        S = _check_S(S)
        if y is None:
            raise ValueError("logistic fusion learns from labelled images: pass labels (0 = normal, "
                             "1 = outlier) to calibrate(), or use fusion='or'")
        y = np.asarray(y).astype(int)
        ok = np.isfinite(S).all(axis=1)
        S, y = S[ok], y[ok]
        if len(np.unique(y)) < 2:
            raise ValueError("logistic fusion needs both normal (0) and outlier (1) images among the "
                             "labelled calibration images")
        sc = StandardScaler().fit(S)
        lr = LogisticRegression(C=self.C, class_weight=self.class_weight, max_iter=1000).fit(sc.transform(S), y)
        self.mean_, self.scale_ = sc.mean_, sc.scale_
        self.coef_, self.intercept_ = lr.coef_.ravel(), float(lr.intercept_[0])
        return self

    def score(self, S, calibrations=()) -> np.ndarray:
        """Calibrated probability of being an outlier (> 0.5 = outlier)."""
        if not hasattr(self, "coef_"):
            from .exceptions import NotFittedError
            raise NotFittedError("This LogisticFusion is not fitted yet: calibrate with labelled images.")
        S = _check_S(S, len(self.coef_))
        z = ((S - self.mean_) / self.scale_) @ self.coef_ + self.intercept_
        with np.errstate(over="ignore"):
            return 1.0 / (1.0 + np.exp(-z))

    def times_threshold(self, S, calibrations=()) -> np.ndarray:
        """The fused probability over its border (0.5): > 1 = outlier."""
        return self.score(S) / self.threshold_

    def get_state(self):
        """``(json_state, arrays)`` for :func:`fusion_from_state`."""
        return {"kind": self.kind, "C": self.C, "class_weight": self.class_weight,
                "intercept_": self.intercept_}, {"mean_": self.mean_, "scale_": self.scale_, "coef_": self.coef_}


FUSIONS = {"or": OrFusion, "logistic": LogisticFusion}


def make_fusion(kind: str):
    """A new, unfitted fusion of the given kind (``"or"`` or ``"logistic"``)."""
    if kind not in FUSIONS:
        raise ValueError(f"fusion must be one of {sorted(FUSIONS)}, got {kind!r}")
    return FUSIONS[kind]()


def fusion_from_state(state: dict[str, Any], arrays: dict[str, np.ndarray], n_branches: int):
    """Rebuild a fitted fusion from its saved state (no pickle), checking shapes and values."""
    kind = state.get("kind") if isinstance(state, dict) else None
    if kind == "or":
        return OrFusion()
    if kind != "logistic":
        raise ValueError(f"unknown fusion kind {kind!r}")
    C, cw = state.get("C"), state.get("class_weight")
    if isinstance(C, bool) or not isinstance(C, (int, float)) or not C > 0 or cw not in ("balanced", None):
        raise ValueError(f"logistic fusion: bad C={C!r} or class_weight={cw!r}")
    f = LogisticFusion(C=float(C), class_weight=cw)
    f.intercept_ = float(_finite("logistic fusion intercept_", state.get("intercept_")))
    for k in ("mean_", "scale_", "coef_"):
        if k not in arrays:
            raise ValueError(f"logistic fusion is missing array {k!r}")
        setattr(f, k, _finite(f"logistic fusion {k}", arrays[k], (n_branches,)))
    if not (f.scale_ > 0).all():
        raise ValueError("logistic fusion scale_ must be > 0")
    return f
