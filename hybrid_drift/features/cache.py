"""On-disk feature cache keyed by image content (SHA-1 of the file bytes) and extractor config.

Re-scoring or re-benchmarking the same images then skips the CNN. One ``.npy``
file per image under ``<root>/<config-key>/<sha1[:2]>/<sha1>.npy``; writes go to a
temporary file first and are renamed, so a crash never leaves a half-written entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["FeatureCache", "default_cache_dir"]


def default_cache_dir() -> Path | None:
    """``$HYBRID_DRIFT_CACHE`` or ``~/.cache/hybrid_drift``; None when the variable is
    ``off`` (or ``0``, ``none``, ``false``): no cache for branches left at their default."""
    env = os.environ.get("HYBRID_DRIFT_CACHE")
    if env and env.strip().lower() in ("off", "0", "none", "false"):
        return None
    return Path(env) if env else Path.home() / ".cache" / "hybrid_drift"


class FeatureCache:
    """Content-addressed store of per-image feature vectors for one extractor config.

    Parameters
    ----------
    root : path
        Cache directory (created on first write).
    config : dict
        Everything that changes the features (backbone, weights hash, pooling, size).
    """

    def __init__(self, root: str | os.PathLike, config: dict):
        key = hashlib.sha1(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]
        self.dir = Path(root) / key
        self.config = config

    def _path(self, sha1: str) -> Path:
        return self.dir / sha1[:2] / f"{sha1}.npy"

    def get(self, sha1: str | None) -> np.ndarray | None:
        """The cached vector for this content hash, or None (missing or damaged entries are misses)."""
        if not sha1:
            return None
        p = self._path(sha1)
        try:
            return np.load(p, allow_pickle=False)
        except (FileNotFoundError, ValueError, OSError):
            return None  # missing or damaged entry: recompute

    def put(self, sha1: str | None, vec: np.ndarray) -> None:
        """Store a vector atomically (temporary file, then rename)."""
        if not sha1:
            return
        p = self._path(sha1)
        p.parent.mkdir(parents=True, exist_ok=True)
        if not (self.dir / "config.json").exists():
            (self.dir / "config.json").write_text(json.dumps(self.config, sort_keys=True, default=str))
        fd, tmp = tempfile.mkstemp(dir=p.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, np.asarray(vec), allow_pickle=False)
        os.replace(tmp, p)
