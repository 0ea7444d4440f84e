"""Calibration: turn one branch's scores into flags (higher score = stranger; flag when score > threshold).

This module is the only owner of a branch's threshold. A scorer fits and scores;
a :class:`Calibration` (one per branch, fitted from *out-of-sample* normal scores)
decides; a fusion (:mod:`hybrid_drift.fusion`) combines the branches' calibrated
margins. Nothing else stores a threshold, so changing one cannot leave a copy stale.

Where the out-of-sample normal scores come from:

* **time-blocked cross-fitting** (:func:`crossfit_scores`, done by ``fit``): the
  reference images, in time order, are cut into ``blocks`` contiguous blocks; each
  block is scored by a scorer fitted on the other blocks. Every reference image
  then has a score from a model that never saw its period, which is what a later
  frame of the same camera looks like to the final model (fitted on all of them).
* **held-out images** (``calibrate``): scored by the final model.

The default rule, ``"conformal"``, sets the threshold at the conformal
``1 - fpr`` quantile of those scores (the ``ceil((n + 1)(1 - fpr))``-th smallest,
i.e. the largest one when ``n + 1 < 1 / fpr``) times the branch's ``margin``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from sklearn.metrics import precision_recall_curve

from .sampling import evenly_spread

__all__ = ["choose_threshold", "fpr_for", "CALIBRATION_METHODS", "CalibrationRule", "Calibration", "crossfit_scores",
           "forward_scores",
           "time_blocks"]

CALIBRATION_METHODS = ("conformal", "quantile", "mean_std", "f1", "fixed")


def fpr_for(per_day: float, fps: float, branches: int = 8) -> float:
    """The per-branch false-positive rate for about ``per_day`` false alarms a day on clean footage
    scored at ``fps`` frames a second, when ``branches`` branches are ORed (each may flag).

    >>> round(fpr_for(per_day=2, fps=1), 8)  # 2 a day at one frame a second: the 8 default branches
    2.89e-06
    """
    if not (per_day > 0 and fps > 0 and branches >= 1):
        raise ValueError(f"need per_day > 0, fps > 0 and branches >= 1, got {per_day!r}, {fps!r}, {branches!r}")
    fpr = per_day / (fps * 86_400.0 * branches)
    if not fpr < 1:
        raise ValueError(f"{per_day} false alarms a day at {fps} frames/s is more than one per scored frame")
    return fpr


def choose_threshold(scores, labels=None, *, method: str = "conformal", fpr: float = 0.001,
                     k: float = 3.0, margin: float = 1.0) -> float:
    """Pick a threshold from out-of-sample scores.

    Parameters
    ----------
    scores : array-like of shape (n,)
        Scores of images the scorer was not fitted on (NaN entries, i.e. unreadable
        images, are ignored).
    labels : array-like of shape (n,), optional
        0 = normal, 1 = outlier. Without labels every image is taken as normal.
    method : {"conformal", "quantile", "mean_std", "f1", "fixed"}
        ``"conformal"``: ``margin`` times the ``ceil((n + 1) * (1 - fpr))``-th smallest
        normal score (the largest one when there are fewer than ``1 / fpr`` scores);
        scores must be non-negative (distances, reconstruction errors).
        ``"quantile"``: the ``1 - fpr`` quantile of the normal scores.
        ``"mean_std"``: NannyML-style ``mean + k * std`` of the normal scores.
        ``"f1"``: the threshold that maximises F1 on labelled data (needs both classes).
        ``"fixed"``: 0 (a scorer whose score *is* the rule, e.g. the min/max range).
    fpr : float
        Target false-positive rate for ``"conformal"`` and ``"quantile"``, in (0, 1).
    k : float
        Number of standard deviations for ``"mean_std"``.
    margin : float
        Multiplier (>= 1) of the conformal quantile: how much stranger than any
        reference period an image must be (see each branch's ``margin``).

    Returns
    -------
    float

    Examples
    --------
    >>> choose_threshold([0.0, 1.0, 2.0, 3.0, 4.0], method="mean_std", k=1.0)  # 2 + 1.58
    3.58...
    >>> choose_threshold([0.0, 1.0, 2.0, 9.0], labels=[0, 0, 0, 1], method="f1")
    5.5
    >>> choose_threshold([1.0, 2.0, 3.0], method="conformal", margin=2.0)  # 2 x the largest of 3
    6.0
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.zeros(len(s), int) if labels is None else np.asarray(labels).astype(int)
    if len(y) != len(s):
        raise ValueError(f"labels has {len(y)} entries but scores has {len(s)}")
    if method not in CALIBRATION_METHODS:
        raise ValueError(f"unknown calibration method {method!r}; choose one of {CALIBRATION_METHODS}")
    if method == "fixed":
        return 0.0
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
    if method in ("conformal", "quantile") and not 0.0 < fpr < 1.0:
        raise ValueError(f"fpr must be in (0, 1), got {fpr}")
    if method == "conformal":
        if not margin >= 1.0:
            raise ValueError(f"margin must be >= 1, got {margin}")
        if normals.min() < 0:
            raise ValueError("method='conformal' needs non-negative scores (distances or errors); "
                             "use 'quantile' or 'mean_std' for signed scores")
        rank = min(math.ceil((normals.size + 1) * (1.0 - fpr)), normals.size)
        return float(np.sort(normals)[rank - 1] * margin)
    if method == "quantile":
        return float(np.quantile(normals, 1.0 - fpr))
    return float(normals.mean() + k * normals.std(ddof=1 if normals.size > 1 else 0))


@dataclass(frozen=True)
class CalibrationRule:
    """How thresholds are set (the detector's ``calibration``, ``fpr``, ``k`` and each branch's margin).

    Attributes
    ----------
    method : str
        See :func:`choose_threshold`.
    fpr, k
        Parameters of the method.
    blocks : int
        Time blocks for cross-fitting in ``fit`` (0 = no cross-fitting: thresholds
        then need held-out images in ``calibrate``).
    max_rows : int
        Cross-fit on at most this many reference rows (evenly spread in time).
    forward : bool
        Also score each late time block with a scorer fitted on the blocks *before* it only
        (forward chaining, :func:`forward_scores`), as a deployment scores frames after all of
        its reference; each row keeps its larger out-of-sample score. Only when the reference
        is in time order.
    """

    method: str = "conformal"
    fpr: float = 0.001
    k: float = 3.0
    blocks: int = 5
    max_rows: int = 10_000
    forward: bool = True

    def __post_init__(self):
        if self.method not in CALIBRATION_METHODS:
            raise ValueError(f"calibration must be one of {CALIBRATION_METHODS}, got {self.method!r}")
        if not 0.0 < float(self.fpr) < 1.0:
            raise ValueError(f"fpr must be in (0, 1), got {self.fpr!r}")
        if not (isinstance(self.k, (int, float)) and math.isfinite(self.k) and self.k > 0):
            raise ValueError(f"k must be a positive number, got {self.k!r}")
        if not (isinstance(self.blocks, int) and (self.blocks == 0 or self.blocks >= 2)):
            raise ValueError(f"blocks must be 0 (no cross-fitting) or an int >= 2, got {self.blocks!r}")
        if not (isinstance(self.max_rows, int) and self.max_rows >= 2):
            raise ValueError(f"max_rows must be an int >= 2, got {self.max_rows!r}")

    @property
    def crossfits(self) -> bool:
        """Whether ``fit`` computes out-of-sample scores by cross-fitting (not for ``fixed`` / ``f1``)."""
        return self.blocks >= 2 and self.method not in ("fixed", "f1")


@dataclass
class Calibration:
    """One branch's decision: ``flag = score > threshold``; the margin ``(score - threshold) / spread``.

    Attributes
    ----------
    method : str
        The rule that set the threshold.
    threshold : float
    spread : float
        Standard deviation of the out-of-sample normal scores; OR fusion compares
        branches by their margins in these units.
    n : int
        How many out-of-sample normal scores the threshold was set from.
    source : str
        ``"crossfit"``, ``"held-out"``, ``"crossfit+held-out"``, ``"rule"`` (fixed) or
        ``"migrated"`` (from a format-1 model).
    params : dict
        ``fpr``, ``k``, ``margin`` as used.
    """

    method: str
    threshold: float
    spread: float = 1.0
    n: int = 0
    source: str = "held-out"
    params: dict = field(default_factory=dict)

    @classmethod
    def from_scores(cls, scores, labels=None, *, rule: CalibrationRule, margin: float = 1.0,
                    source: str = "held-out", least: float = 0.0) -> Calibration:
        """Fit from out-of-sample scores with ``rule``; the threshold is at least ``least`` (a branch
        whose scores are 0 on everything its reference saw says how far beyond that still counts as
        seen, so a steady reference does not give a threshold of 0)."""
        s = np.asarray(scores, dtype=np.float64)
        y = np.zeros(len(s), int) if labels is None else np.asarray(labels).astype(int)
        t = choose_threshold(s, y if labels is not None else None, method=rule.method, fpr=rule.fpr, k=rule.k,
                             margin=margin)
        if not (math.isfinite(least) and least >= 0):
            raise ValueError(f"least must be a finite number >= 0, got {least!r}")
        extra = {}
        if least > 0 and rule.method != "fixed":
            t, extra = max(float(t), float(least)), {"least": float(least)}
        normal = s[(y == 0) & np.isfinite(s)]
        sd = float(normal.std(ddof=1)) if normal.size > 1 else 1.0
        if rule.method == "fixed":
            source = "rule"
        return cls(rule.method, float(t), sd if math.isfinite(sd) and sd > 0 else 1.0, int(normal.size), source,
                   {"fpr": rule.fpr, "k": rule.k, "margin": float(margin), **extra})

    def flags(self, scores) -> np.ndarray:
        """``scores > threshold`` (False for NaN)."""
        return np.asarray(scores, dtype=np.float64) > self.threshold

    def margin(self, scores) -> np.ndarray:
        """``(scores - threshold) / spread``: > 0 means flagged."""
        return (np.asarray(scores, dtype=np.float64) - self.threshold) / self.spread

    def times_threshold(self, scores) -> np.ndarray:
        """``scores / threshold``, the unit people read: 1.0 is on the threshold, 2.0 twice as strange as
        the strangest score allowed for normal frames; > 1 means flagged. NaN when the threshold is not
        positive (a rule such as min/max's range, whose threshold is 0)."""
        s = np.asarray(scores, dtype=np.float64)
        return s / self.threshold if self.threshold > 0 else np.full(s.shape, np.nan)

    def get_state(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Calibration:
        """Rebuild from :meth:`get_state`, checking every field (model files are data)."""
        if not isinstance(state, dict):
            raise ValueError(f"calibration state must be an object, got {type(state).__name__}")
        method = state.get("method")
        if method not in CALIBRATION_METHODS:
            raise ValueError(f"calibration method {method!r} is not one of {CALIBRATION_METHODS}")
        t, sd, n = state.get("threshold"), state.get("spread"), state.get("n", 0)
        for name, v in (("threshold", t), ("spread", sd)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"calibration {name} must be a finite number, got {v!r}")
        if sd <= 0:
            raise ValueError(f"calibration spread must be > 0, got {sd!r}")
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"calibration n must be a non-negative int, got {n!r}")
        params = state.get("params", {})
        if not isinstance(params, dict):
            raise ValueError("calibration params must be an object")
        return cls(method, float(t), float(sd), n, str(state.get("source", "held-out")), dict(params))


def time_blocks(n: int, blocks: int) -> list[np.ndarray]:
    """``blocks`` contiguous index ranges covering ``range(n)`` (sizes differ by at most 1)."""
    edges = np.linspace(0, n, blocks + 1).round().astype(int)
    return [np.arange(a, b) for a, b in zip(edges[:-1], edges[1:])]


def crossfit_scores(make_scorer: Callable, F: np.ndarray, *, blocks: int = 5, extra: np.ndarray | None = None,
                    extra_src: np.ndarray | None = None, max_rows: int = 10_000,
                    folds: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-sample scores of reference rows by time-blocked cross-fitting.

    Parameters
    ----------
    make_scorer : callable
        Returns a fresh, unfitted scorer (``fit``, ``score_samples``).
    F : ndarray of shape (n, d)
        Reference features, in time order.
    blocks : int
        Contiguous time blocks; each is scored by a scorer fitted on the others.
    extra : ndarray of shape (m, d), optional
        Extra training rows derived from reference rows (e.g. augmented frames):
        fitted with every fold except the one holding their source.
    extra_src : ndarray of shape (m,), optional
        Row of ``F`` each extra row was made from.
    max_rows : int
        Use at most this many rows of ``F`` (evenly spread, order kept) to bound the cost.
    folds : ndarray of shape (n,), optional
        A fold label per row of ``F`` instead of contiguous blocks (groups of similar
        images when the order is not time, :mod:`hybrid_drift.reference_order`); each
        fold is scored by a scorer fitted on the others (extra rows made from a row of
        the held-out fold are left out of that fit).

    Returns
    -------
    (scores, rows)
        The out-of-sample score of each used row, and which rows of ``F`` they are.
    """
    n = len(F)
    if n < blocks:
        raise ValueError(f"cross-fitting needs at least {blocks} reference images (one per time block), got {n}")
    rows = evenly_spread(n, max_rows)
    src = None if extra is None else np.asarray(extra_src, dtype=int)
    oof = np.empty(len(rows))
    if folds is not None:
        folds = np.asarray(folds)
        if folds.shape != (n,):
            raise ValueError(f"folds must hold one label per reference row ({n}), got shape {folds.shape}")
        used = folds[rows]
        for f in np.unique(used):
            held = np.flatnonzero(used == f)
            X = F[rows[used != f]]
            if extra is not None:  # drop extra rows made from a reference row of the held-out fold
                X = np.concatenate([X, extra[folds[src] != f]])
            oof[held] = make_scorer().fit(X).score_samples(F[rows[held]])
        return oof, rows
    for held in time_blocks(len(rows), blocks):
        train = np.ones(len(rows), bool)
        train[held] = False
        X = F[rows[train]]
        if extra is not None:  # drop extra rows made from any reference row in the held-out period
            lo, hi = rows[held[0]], rows[held[-1]]
            X = np.concatenate([X, extra[(src < lo) | (src > hi)]])
        oof[held] = make_scorer().fit(X).score_samples(F[rows[held]])
    return oof, rows


def forward_scores(make_scorer: Callable, F: np.ndarray, *, blocks: int = 5, extra: np.ndarray | None = None,
                   extra_src: np.ndarray | None = None, max_rows: int = 10_000, first: int = 2) -> np.ndarray:
    """Forward-chained out-of-sample scores of reference rows in time order: block ``k`` (from ``first``
    on, 0-based) is scored by a scorer fitted on blocks ``0..k-1`` only, with the extra rows made from
    them; rows of earlier blocks get ``-inf`` (no score), as do those of a block whose past is too
    small for the scorer to fit. The rows used are those of
    :func:`crossfit_scores` with the same ``max_rows``, so the two can be combined row by row.

    Time-blocked cross-fitting fits on the periods before *and after* a held-out one; a deployment
    scores frames after all of its reference. On a scene whose content keeps changing (a board moved
    around, a desk rearranged) the past-only scores are the larger; on a steady scene they agree.
    """
    n = len(F)
    rows = evenly_spread(n, max_rows)
    src = None if extra is None else np.asarray(extra_src, dtype=int)
    out = np.full(len(rows), -np.inf)
    parts = time_blocks(len(rows), blocks)
    for k in range(max(first, 1), len(parts)):
        held = parts[k]
        cut = rows[held[0]]
        X = F[rows[:held[0]]]
        if extra is not None:
            X = np.concatenate([X, extra[src < cut]])
        try:
            out[held] = make_scorer().fit(X).score_samples(F[rows[held]])
        except ValueError:  # a past too small for the scorer (a tiny reference): that period keeps -inf
            continue
    return out
