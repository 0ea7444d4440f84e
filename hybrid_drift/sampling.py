"""Evenly spread samples of rows: one rule wherever a long sequence is thinned (cross-fitting's rows, the
order check's, the reference profile's frames, the CNN branch's reference copies)."""

from __future__ import annotations

import numpy as np

__all__ = ["evenly_spread"]


def evenly_spread(n: int, k: int) -> np.ndarray:
    """Indices of at most ``k`` of ``n`` rows, evenly spread from the first to the last, in order (every row
    when ``n <= k``).

    >>> evenly_spread(10, 4).tolist(), evenly_spread(3, 5).tolist(), evenly_spread(0, 5).tolist()
    ([0, 3, 6, 9], [0, 1, 2], [])
    """
    return np.unique(np.linspace(0, n - 1, min(n, k)).round().astype(int))
