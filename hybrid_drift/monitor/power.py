"""How many images a batch needs before a shift is detectable: bootstrap and asymptotic estimates."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as st

__all__ = ["power_curve", "ks_required_batch_size", "ks_expected_pvalue"]


def ks_expected_pvalue(D: float, n_baseline: int, n_batch) -> np.ndarray:
    """Asymptotic KS p-value for a true distance ``D`` between the two distributions,
    with the effective size ``n m / (n + m)`` (Kolmogorov distribution, SciPy)."""
    n_batch = np.asarray(n_batch, float)
    neff = n_baseline * n_batch / (n_baseline + n_batch)
    return st.kstwobign.sf(D * np.sqrt(neff))


def ks_required_batch_size(D: float, n_baseline: int, alpha: float = 0.05) -> float:
    """Smallest batch whose expected KS p-value falls below ``alpha`` (inf if never)."""
    c = st.kstwobign.isf(alpha)  # critical value of sqrt(neff) * D
    need = (c / max(D, 1e-12)) ** 2  # neff
    if need >= n_baseline:
        return float("inf")
    return float(np.ceil(need * n_baseline / (n_baseline - need)))


def power_curve(baseline, shifted, sizes=(5, 10, 20, 50, 100, 200), *, n_boot: int = 200, alpha: float = 0.05,
                seed: int = 0) -> pd.DataFrame:
    """Bootstrap: draw batches of each size from ``shifted``, KS-test against ``baseline``.

    Returns one row per size: median p-value, rejection rate at ``alpha`` (power),
    and the asymptotic expected p-value from the full-sample KS distance.
    """
    baseline = np.asarray(baseline, float)
    shifted = np.asarray(shifted, float)
    rng = np.random.default_rng(seed)
    D = st.ks_2samp(baseline, shifted).statistic
    rows = []
    for n in sizes:
        ps = np.array([st.ks_2samp(baseline, rng.choice(shifted, n, replace=True)).pvalue for _ in range(n_boot)])
        rows.append({"batch_size": n, "median_p": float(np.median(ps)), "p_q90": float(np.quantile(ps, 0.9)),
                     "power": float((ps < alpha).mean()),
                     "expected_p": float(ks_expected_pvalue(D, len(baseline), n))})
    out = pd.DataFrame(rows)
    out.attrs["D"] = float(D)
    out.attrs["required_batch_size"] = ks_required_batch_size(D, len(baseline), alpha)
    return out
