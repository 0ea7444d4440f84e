"""Thresholds from held-out scores (higher score = stranger; outlier when score > threshold)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import precision_recall_curve

__all__ = ["choose_threshold", "CALIBRATION_METHODS"]

CALIBRATION_METHODS = ("quantile", "mean_std", "f1")


def choose_threshold(scores, labels=None, *, method: str = "quantile", fpr: float = 0.01,
                     k: float = 3.0) -> float:
    """Pick a threshold on validation scores.

    Parameters
    ----------
    scores : array-like of shape (n,)
        Scores of held-out images (NaN entries, i.e. unreadable images, are ignored).
    labels : array-like of shape (n,), optional
        0 = normal, 1 = outlier. Without labels every image is taken as normal.
    method : {"quantile", "mean_std", "f1"}
        ``"quantile"``: the ``1 - fpr`` quantile of the normal scores (target
        false-positive rate). ``"mean_std"``: NannyML-style ``mean + k * std`` of the
        normal scores. ``"f1"``: the threshold that maximises F1 on labelled data
        (needs both classes in ``labels``).
    fpr : float
        Target false-positive rate for ``"quantile"``, in (0, 1).
    k : float
        Number of standard deviations for ``"mean_std"``.

    Returns
    -------
    float

    Examples
    --------
    >>> choose_threshold([0.0, 1.0, 2.0, 3.0, 4.0], method="mean_std", k=1.0)  # 2 + 1.58
    3.58...
    >>> choose_threshold([0.0, 1.0, 2.0, 9.0], labels=[0, 0, 0, 1], method="f1")
    5.5
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.zeros(len(s), int) if labels is None else np.asarray(labels).astype(int)
    if len(y) != len(s):
        raise ValueError(f"labels has {len(y)} entries but scores has {len(s)}")
    ok = np.isfinite(s)
    s, y = s[ok], y[ok]
    normals = s[y == 0]
    if method == "f1":
        if labels is None or not (np.any(y == 1) and np.any(y == 0)):
            raise ValueError("method='f1' needs labels with both normal (0) and outlier (1) images")
        prec, rec, thr = precision_recall_curve(y, s)
        f1 = 2 * prec[:-1] * rec[:-1] / np.maximum(prec[:-1] + rec[:-1], 1e-12)
        best = np.flatnonzero(f1 >= f1.max() - 1e-12)[-1]  # ties: the highest threshold
        below = s[s < thr[best]]
        # predict is `score > threshold`: sit halfway to the next lower score
        return float((thr[best] + below.max()) / 2) if below.size else float(np.nextafter(thr[best], -np.inf))
    if normals.size == 0:
        raise ValueError("no normal images with a finite score to calibrate on")
    if method == "quantile":
        if not 0.0 < fpr < 1.0:
            raise ValueError(f"fpr must be in (0, 1), got {fpr}")
        return float(np.quantile(normals, 1.0 - fpr))
    if method == "mean_std":
        return float(normals.mean() + k * normals.std(ddof=1 if normals.size > 1 else 0))
    raise ValueError(f"unknown calibration method {method!r}; choose one of {CALIBRATION_METHODS}")
