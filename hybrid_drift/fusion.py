"""Combine branch scores into one decision; works for any number of branches.

``or``
    Outlier when any branch is over its threshold. The fused score is the largest
    margin over a threshold in units of that branch's normal spread,
    ``max_b (s_b - t_b) / sd_b``, so 0 is the border and it is comparable across branches.
``logistic``
    scikit-learn ``LogisticRegression`` on standardised branch scores, learned from
    labelled validation images (normals and outliers). The fused score is the
    calibrated probability of being an outlier; the border is 0.5.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

__all__ = ["OrFusion", "LogisticFusion", "make_fusion", "fusion_from_state", "FUSIONS"]


def _check_S(S, n_branches=None) -> np.ndarray:
    S = np.asarray(S, dtype=np.float64)
    if S.ndim != 2:
        raise ValueError(f"branch scores must be 2-D (n_images, n_branches), got shape {S.shape}")
    if n_branches is not None and S.shape[1] != n_branches:
        raise ValueError(f"expected scores of {n_branches} branches, got {S.shape[1]}")
    return S


class OrFusion:
    """Outlier when any branch exceeds its own threshold.

    Attributes
    ----------
    thresholds_ : ndarray of shape (n_branches,)
    scales_ : ndarray of shape (n_branches,)
        Standard deviation of each branch's scores on held-out normals.
    threshold_ : float
        Always 0.0 (the fused score is a margin).
    """

    kind = "or"

    def fit(self, S, y=None, thresholds=None):
        """Learn per-branch scales from held-out normal scores ``S`` and take the branch thresholds."""
        S = _check_S(S)
        if thresholds is None or len(thresholds) != S.shape[1]:
            raise ValueError("OR fusion needs one threshold per branch (calibrate the branches first)")
        normal = S if y is None else S[np.asarray(y) == 0]
        sd = np.nanstd(normal, axis=0) if len(normal) > 1 else np.ones(S.shape[1])
        self.thresholds_ = np.asarray(thresholds, dtype=np.float64)
        self.scales_ = np.where(np.isfinite(sd) & (sd > 0), sd, 1.0)
        self.threshold_ = 0.0
        return self

    def score(self, S) -> np.ndarray:
        """Largest margin over a branch threshold, in that branch's normal std (> 0 = outlier)."""
        S = _check_S(S, len(self.thresholds_))
        return ((S - self.thresholds_) / self.scales_).max(axis=1)

    def get_state(self):
        """``(json_state, arrays)`` for :func:`fusion_from_state`."""
        return {"kind": self.kind, "threshold_": self.threshold_}, {
            "thresholds_": self.thresholds_, "scales_": self.scales_}


class LogisticFusion:
    """Logistic regression on standardised branch scores (needs labelled outliers).

    Parameters
    ----------
    C : float
        Inverse regularisation strength.
    class_weight : "balanced" or None
        Weight classes by inverse frequency (validation sets have few outliers).
    """

    kind = "logistic"

    def __init__(self, C: float = 1.0, class_weight: str | None = "balanced"):
        self.C = C
        self.class_weight = class_weight

    def fit(self, S, y=None, thresholds=None):
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
        self.threshold_ = 0.5
        return self

    def score(self, S) -> np.ndarray:
        """Calibrated probability of being an outlier (> 0.5 = outlier)."""
        S = _check_S(S, len(self.coef_))
        z = ((S - self.mean_) / self.scale_) @ self.coef_ + self.intercept_
        with np.errstate(over="ignore"):
            return 1.0 / (1.0 + np.exp(-z))

    def get_state(self):
        """``(json_state, arrays)`` for :func:`fusion_from_state`."""
        return {"kind": self.kind, "C": self.C, "class_weight": self.class_weight,
                "intercept_": self.intercept_, "threshold_": self.threshold_}, {
            "mean_": self.mean_, "scale_": self.scale_, "coef_": self.coef_}


FUSIONS = {"or": OrFusion, "logistic": LogisticFusion}


def make_fusion(kind: str):
    """A new, unfitted fusion of the given kind (``"or"`` or ``"logistic"``)."""
    if kind not in FUSIONS:
        raise ValueError(f"fusion must be one of {sorted(FUSIONS)}, got {kind!r}")
    return FUSIONS[kind]()


def fusion_from_state(state: dict[str, Any], arrays: dict[str, np.ndarray]):
    """Rebuild a fitted fusion from its saved state (no pickle)."""
    kind = state.get("kind")
    if kind == "or":
        f = OrFusion()
    elif kind == "logistic":
        f = LogisticFusion(C=state["C"], class_weight=state["class_weight"])
        f.intercept_ = float(state["intercept_"])
    else:
        raise ValueError(f"unknown fusion kind {kind!r}")
    f.threshold_ = float(state["threshold_"])
    for k, v in arrays.items():
        setattr(f, k, v)
    return f
