"""On-disk feature cache keyed by image content (SHA-1 of the file bytes) and extractor config.

Re-scoring or re-benchmarking the same images then skips the CNN. One file per image
under ``<root>/<config-key>/<sha1[:2]>/<sha1>.f32``: a magic word, the CRC-32 of the
data, then the float32 vector (``.f16``: float16, for feature maps). Guarantees:

* **a cache problem never breaks or bends a score**: an entry that is damaged (wrong
  size, bad checksum, NaN or inf) is a miss: it is deleted and the features are
  recomputed; a cache folder that cannot be written (read-only, full) gives one
  warning and scoring goes on without caching;
* writes go to a temporary file first and are renamed, so a crash never leaves a
  half-written entry;
* the cache is **bounded**: ``max_bytes`` (``$HYBRID_DRIFT_CACHE_MAX``, e.g. ``500M``,
  default 2 GiB for the whole root); past it the least recently used entries are
  deleted (a hit refreshes an entry's time).

``hybrid-drift cache info`` / ``hybrid-drift cache clear`` show and empty it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import zlib
from pathlib import Path

import numpy as np

__all__ = ["FeatureCache", "default_cache_dir", "default_max_bytes", "cache_info", "clear_cache", "parse_size"]

log = logging.getLogger(__name__)

_MAGIC = b"HDF1"
_HEADER = 8  # magic + CRC-32
DEFAULT_MAX_BYTES = 2 << 30


def default_cache_dir() -> Path | None:
    """``$HYBRID_DRIFT_CACHE`` or ``~/.cache/hybrid_drift``; None when the variable is
    ``off`` (or ``0``, ``none``, ``false``): no cache for branches left at their default."""
    env = os.environ.get("HYBRID_DRIFT_CACHE")
    if env and env.strip().lower() in ("off", "0", "none", "false"):
        return None
    return Path(env) if env else Path.home() / ".cache" / "hybrid_drift"


def parse_size(text: str) -> int:
    """``"500M"`` -> bytes (suffixes K, M, G, T; powers of 1024); ValueError when unreadable.

    >>> parse_size("500M"), parse_size("2G"), parse_size("1024")
    (524288000, 2147483648, 1024)
    """
    t = str(text).strip().upper().removesuffix("B").removesuffix("I")
    mult = 1
    if t and t[-1] in "KMGT":
        mult = 1024 ** ("KMGT".index(t[-1]) + 1)
        t = t[:-1]
    try:
        value = float(t)
    except ValueError:
        raise ValueError(f"cannot read a size from {text!r} (examples: 500M, 2G)") from None
    if not value >= 0:
        raise ValueError(f"a size must be >= 0, got {text!r}")
    return int(value * mult)


def default_max_bytes() -> int:
    """``$HYBRID_DRIFT_CACHE_MAX`` or 2 GiB."""
    env = os.environ.get("HYBRID_DRIFT_CACHE_MAX")
    if not env:
        return DEFAULT_MAX_BYTES
    try:
        return parse_size(env)
    except ValueError as exc:
        log.warning("HYBRID_DRIFT_CACHE_MAX: %s; using 2G", exc)
        return DEFAULT_MAX_BYTES


def _entries(root: Path):
    for dirpath, _, files in os.walk(root):
        for f in files:
            if f.endswith((".f32", ".f16")):
                yield os.path.join(dirpath, f)


class FeatureCache:
    """Content-addressed store of per-image feature vectors for one extractor config.

    Parameters
    ----------
    root : path
        Cache directory (created on first write).
    config : dict
        Everything that changes the features (backbone, weights hash, pooling, size).
    max_bytes : int, optional
        Size bound of the whole root (default: :func:`default_max_bytes`).
    half : bool
        Store float16 (``.f16`` files; feature maps, where half the bytes matter and float16's
        three digits are plenty); ``get`` then returns float16.
    """

    def __init__(self, root: str | os.PathLike, config: dict, max_bytes: int | None = None, half: bool = False):
        #: how entries are stored (little-endian); ``get`` returns this precision
        self.dtype = np.dtype("<f2" if half else "<f4")
        if half:  # the key of a float32 cache of the same config stays what it was
            config = {**config, "dtype": "float16"}
        key = hashlib.sha1(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]
        self.root = Path(root)
        self.dir = self.root / key
        self.config = config
        self.max_bytes = default_max_bytes() if max_bytes is None else int(max_bytes)
        self._lock = threading.Lock()
        self._size: int | None = None  # bytes under root, counted on the first write
        self._writable = True
        self._warned_damage = False

    def _path(self, sha1: str) -> Path:
        return self.dir / sha1[:2] / f"{sha1}.f{8 * self.dtype.itemsize}"

    def get(self, sha1: str | None, dim: int | None = None) -> np.ndarray | None:
        """The cached vector for this content hash, or None (missing or damaged entries are misses)."""
        if not sha1:
            return None
        p = self._path(sha1)
        try:
            raw = p.read_bytes()
        except OSError:
            return None
        body = raw[_HEADER:]
        vec = np.frombuffer(body, dtype=self.dtype) if len(body) % self.dtype.itemsize == 0 else None
        ok = (raw[:4] == _MAGIC and vec is not None and zlib.crc32(body).to_bytes(4, "little") == raw[4:8]
              and (dim is None or vec.shape == (dim,)) and np.isfinite(vec).all())
        if not ok:
            if not self._warned_damage:
                log.warning("feature cache: damaged entry %s deleted; its features are recomputed", p)
                self._warned_damage = True
            try:
                p.unlink()
            except OSError:
                pass
            return None
        try:
            os.utime(p)  # least recently used goes first
        except OSError:
            pass
        return vec.astype(self.dtype.newbyteorder("="))

    def put(self, sha1: str | None, vec: np.ndarray) -> None:
        """Store a vector atomically (temporary file, then rename); never raises for the cache's sake."""
        if not sha1 or not self._writable:
            return
        body = np.ascontiguousarray(vec, dtype=self.dtype).tobytes()
        data = _MAGIC + zlib.crc32(body).to_bytes(4, "little") + body
        p = self._path(sha1)
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            if not (self.dir / "config.json").exists():
                (self.dir / "config.json").write_text(json.dumps(self.config, sort_keys=True, default=str))
            fd, tmp = tempfile.mkstemp(dir=p.parent, suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                os.replace(tmp, p)
            except BaseException:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                raise
        except OSError as exc:
            self._writable = False
            log.warning("feature cache at %s is not writable (%s): going on without caching",
                        self.root, exc.strerror or exc)
            return
        self._grow(len(data))

    def _grow(self, n: int) -> None:
        with self._lock:
            if self._size is None:
                self._size = sum(os.path.getsize(f) for f in _entries(self.root))
            else:
                self._size += n
            if self._size <= self.max_bytes:
                return
            self._size = _evict(self.root, int(self.max_bytes * 0.9))


def _evict(root: Path, target: int) -> int:
    """Delete least recently used entries until the cache is at most ``target`` bytes; returns its size."""
    files = []
    for f in _entries(root):
        try:
            st = os.stat(f)
        except OSError:
            continue
        files.append((st.st_mtime, st.st_size, f))
    total = sum(s for _, s, _ in files)
    for _, size, f in sorted(files):
        if total <= target:
            break
        try:
            os.unlink(f)
            total -= size
        except OSError:
            pass
    log.info("feature cache: evicted least recently used entries down to %d bytes", total)
    return total


def cache_info(root: str | os.PathLike | None = None) -> dict:
    """Location, size bound, and entries and bytes per extractor config under ``root``."""
    root = Path(root) if root is not None else default_cache_dir()
    out = {"root": None if root is None else str(root), "max_bytes": default_max_bytes(), "configs": [],
           "entries": 0, "bytes": 0, "exported_graphs": {"files": 0, "bytes": 0}}
    if root is None or not root.is_dir():
        return out
    graphs = [f for f in (root / "onnx").glob("*.onnx") if f.is_file()] if (root / "onnx").is_dir() else []
    out["exported_graphs"] = {"files": len(graphs), "bytes": sum(f.stat().st_size for f in graphs)}
    for d in sorted(p for p in root.iterdir() if p.is_dir() and p.name != "onnx"):
        files = list(_entries(d))
        size = sum(os.path.getsize(f) for f in files)
        cfg = {}
        try:
            cfg = json.loads((d / "config.json").read_text())
        except (OSError, ValueError):
            pass
        out["configs"].append({"key": d.name, "entries": len(files), "bytes": size, "config": cfg})
        out["entries"] += len(files)
        out["bytes"] += size
    return out


def clear_cache(root: str | os.PathLike | None = None) -> int:
    """Delete every cached entry under ``root``; returns the number of bytes freed."""
    root = Path(root) if root is not None else default_cache_dir()
    if root is None or not root.is_dir():
        return 0
    freed = cache_info(root)["bytes"]
    for d in root.iterdir():
        if d.is_dir() and (d / "config.json").exists():  # one folder per extractor config
            shutil.rmtree(d, ignore_errors=True)
    return freed
