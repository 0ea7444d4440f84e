"""Distances between histograms, vectorised over images.

All functions take ``p`` of shape ``(..., B)`` (the images' histograms) and ``q``
broadcastable to it (the reference), normalise both to sum to 1 after adding ``eps``
to every bin (so empty bins never give log(0) or 0/0), and return ``(...)``.
Every distance is >= 0 and 0 for identical histograms; higher = more different.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import jensenshannon
from scipy.special import rel_entr

__all__ = ["DISTANCES", "kl", "js", "hellinger", "intersection", "chi2", "get_distance"]


def _norm(a, eps):
    a = np.asarray(a, dtype=np.float64) + eps
    return a / a.sum(axis=-1, keepdims=True)


def kl(p, q, eps: float = 1e-6):
    """Kullback-Leibler divergence ``KL(p || q) = sum p log(p / q)`` (nats).

    Direction: ``p`` is the image, ``q`` the reference: how surprising the image's
    colours are under the reference distribution. Not symmetric.
    """
    p, q = _norm(p, eps), _norm(q, eps)
    return rel_entr(p, np.broadcast_to(q, p.shape)).sum(axis=-1)


def js(p, q, eps: float = 1e-6):
    """Jensen-Shannon *distance* (square root of the JS divergence, natural log); in [0, sqrt(ln 2)]."""
    p, q = _norm(p, eps), _norm(q, eps)
    return jensenshannon(p, np.broadcast_to(q, p.shape), axis=-1)


def hellinger(p, q, eps: float = 1e-6):
    """Hellinger distance ``sqrt(1 - sum sqrt(p q))``; in [0, 1]."""
    p, q = _norm(p, eps), _norm(q, eps)
    bc = np.sqrt(p * q).sum(axis=-1)
    return np.sqrt(np.clip(1.0 - bc, 0.0, None))


def intersection(p, q, eps: float = 1e-6):
    """Histogram intersection as a distance: ``1 - sum min(p, q)``; in [0, 1] (0 = identical)."""
    p, q = _norm(p, eps), _norm(q, eps)
    return 1.0 - np.minimum(p, q).sum(axis=-1)


def chi2(p, q, eps: float = 1e-6):
    """Symmetric chi-square distance ``0.5 * sum (p - q)^2 / (p + q)``; in [0, 1]."""
    p, q = _norm(p, eps), _norm(q, eps)
    return 0.5 * ((p - q) ** 2 / (p + q)).sum(axis=-1)


DISTANCES = {"kl": kl, "js": js, "hellinger": hellinger, "intersection": intersection, "chi2": chi2}


def get_distance(name: str):
    try:
        return DISTANCES[name]
    except KeyError:
        raise ValueError(f"unknown distance {name!r}; choose one of {sorted(DISTANCES)}") from None
