"""Two-sample drift statistics between a baseline and a batch (higher = more drift).

Numeric features: Kolmogorov-Smirnov (statistic and p-value, SciPy), and the
histogram distances of :mod:`hybrid_drift.scorers.distances` plus the population
stability index on the baseline's quantile bins. Categorical metadata: chi-square
test of homogeneity (SciPy) and the number of distinct values.
Semantic: MMD with an RBF kernel and a permutation p-value.
"""

from __future__ import annotations

import numpy as np
from scipy import stats as st

from ..scorers.distances import DISTANCES

__all__ = ["NUMERIC_STATS", "numeric_stat", "psi", "binned", "chi2_categorical", "mmd_permutation", "ks"]

#: statistics available per numeric feature
NUMERIC_STATS = ("ks", "kl", "js", "hellinger", "intersection", "psi")


def binned(baseline, batch, bins: int = 10):
    """Histograms of both samples on the baseline's quantile bin edges (open-ended outer bins)."""
    b = np.asarray(baseline, float)
    x = np.asarray(batch, float)
    b, x = b[np.isfinite(b)], x[np.isfinite(x)]
    edges = np.unique(np.quantile(b, np.linspace(0, 1, bins + 1)[1:-1]))
    idx_b = np.searchsorted(edges, b, side="right")
    idx_x = np.searchsorted(edges, x, side="right")
    n = len(edges) + 1
    return np.bincount(idx_b, minlength=n).astype(float), np.bincount(idx_x, minlength=n).astype(float)


def psi(baseline, batch, bins: int = 10, eps: float = 1e-4) -> float:
    """Population stability index ``sum (q - p) ln(q / p)`` on the baseline's decile bins."""
    p, q = binned(baseline, batch, bins)
    p = (p + eps) / (p + eps).sum()
    q = (q + eps) / (q + eps).sum()
    return float(((q - p) * np.log(q / p)).sum())


def ks(baseline, batch) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov statistic and p-value (scipy.stats.ks_2samp)."""
    r = st.ks_2samp(np.asarray(baseline, float), np.asarray(batch, float))
    return float(r.statistic), float(r.pvalue)


def numeric_stat(name: str, baseline, batch, bins: int = 10) -> tuple[float, float]:
    """``(statistic, p_value)``; p-value is NaN for statistics that have none."""
    b = np.asarray(baseline, float)
    x = np.asarray(batch, float)
    b, x = b[np.isfinite(b)], x[np.isfinite(x)]
    if len(b) == 0 or len(x) == 0:
        return float("nan"), float("nan")
    if name == "ks":
        return ks(b, x)
    if name == "psi":
        return psi(b, x, bins), float("nan")
    if name in DISTANCES:
        p, q = binned(b, x, bins)
        return float(DISTANCES[name](q, p)), float("nan")  # batch || baseline
    raise ValueError(f"unknown statistic {name!r}; choose from {NUMERIC_STATS}")


def chi2_categorical(baseline, batch) -> tuple[float, float, int]:
    """Chi-square test that two samples of a categorical value share one distribution.

    Returns ``(statistic, p_value, n_unique_in_batch)``; when both samples hold a
    single identical value the statistic is 0 and the p-value 1.
    """
    b = [str(v) for v in baseline]
    x = [str(v) for v in batch]
    cats = sorted(set(b) | set(x))
    if len(cats) < 2:
        return 0.0, 1.0, len(set(x))
    table = np.array([[b.count(c) for c in cats], [x.count(c) for c in cats]], float)
    table = table[:, table.sum(axis=0) > 0]
    res = st.chi2_contingency(table, correction=False)
    return float(res.statistic), float(res.pvalue), len(set(x))


def _rbf_mmd2(K: np.ndarray, n: int) -> float:
    kxx = K[:n, :n]
    kyy = K[n:, n:]
    kxy = K[:n, n:]
    m = K.shape[0] - n
    return float((kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                 - 2 * kxy.mean())


def mmd_permutation(X, Y, *, n_permutations: int = 200, seed: int = 0) -> tuple[float, float]:
    """Unbiased squared MMD with an RBF kernel (median-distance bandwidth) and a permutation p-value.

    Parameters
    ----------
    X, Y : arrays of shape (n, d), (m, d)
        Baseline and batch embeddings (reduce ``d`` first for speed, e.g. PCA to 32).

    Returns
    -------
    (mmd2, p_value)
        ``p = (1 + #{permuted mmd2 >= observed}) / (1 + n_permutations)``.
    """
    X = np.asarray(X, float)
    Y = np.asarray(Y, float)
    if len(X) < 2 or len(Y) < 2:
        raise ValueError("MMD needs at least 2 samples on each side")
    Z = np.vstack([X, Y])
    sq = (Z * Z).sum(1)
    D2 = np.maximum(sq[:, None] + sq[None, :] - 2 * Z @ Z.T, 0)
    med = np.median(D2[np.triu_indices(len(Z), 1)])
    K = np.exp(-D2 / max(med, 1e-12))
    n = len(X)
    obs = _rbf_mmd2(K, n)
    rng = np.random.default_rng(seed)
    count = 0
    for _ in range(n_permutations):
        p = rng.permutation(len(Z))
        if _rbf_mmd2(K[np.ix_(p, p)], n) >= obs:
            count += 1
    return obs, (1 + count) / (1 + n_permutations)
