"""Batch profiles: per-image features of a batch, as pandas, mergeable and saved without pickle.

A profile keeps one row per image (HSB statistics, width, height, mode, file
format, file size, EXIF/TIFF tags, any registered feature transform), each
image's HSB histograms and, when asked for, its CNN embedding. Two profiles merge by concatenating rows and adding histograms, so the
profile of two halves *is* the profile of the whole (no sketch approximation). Hue and saturation count a
pixel within ``grey_tolerance`` grey levels of grey as grey, as the colour branch does (a codec's tint on a
grey camera is not a new hue); the tolerance is kept in the profile (``info["grey_tolerance"]``; profiles
and models saved before it have 0).
Features come from the detector's own pipeline (:func:`hybrid_drift.pipeline.extract`).
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..branches.colour import GREY_TOLERANCE
from ..features.colour import STAT_NAMES, ColourFeatures
from ..io.decode import DEFAULT_MAX_PIXELS, DEFAULT_MIN_SIDE
from ..pipeline import extract

__all__ = ["BatchProfile", "profile_images", "frame_profile", "FEATURE_TRANSFORMS", "register_feature", "Resize", "Hue",
           "Saturation", "Brightness", "Compose", "META_COLUMNS", "PROFILE_VERSION"]

log = logging.getLogger(__name__)

PROFILE_VERSION = 2
#: grey thumbnail (width, height) kept per image for the scene-layout check
THUMB_SIZE = (32, 24)
META_COLUMNS = ("width", "height", "mode", "format", "file_size", "jpeg_quality")
_HIST_BINS = 32


# ---------------------------------------------------------------- feature transforms (whylogs-like)
class Resize:
    """Resize to ``size`` x ``size`` (or (w, h)) before the next transform."""

    def __init__(self, size):
        self.size = (size, size) if np.isscalar(size) else tuple(size)

    def __call__(self, img: np.ndarray) -> np.ndarray:
        import cv2
        return cv2.resize(img, self.size, interpolation=cv2.INTER_AREA)


class _Channel:
    channel = 0
    scale = 255.0

    def __call__(self, img: np.ndarray) -> np.ndarray:
        import cv2
        hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV) if img.ndim == 3 else img
        return hsv[..., self.channel].astype(np.float32) / self.scale


class Hue(_Channel):
    """Per-pixel hue in [0, 1)."""

    channel, scale = 0, 180.0


class Saturation(_Channel):
    """Per-pixel saturation in [0, 1]."""

    channel = 1


class Brightness(_Channel):
    """Per-pixel brightness (HSV value) in [0, 1]."""

    channel = 2


class Compose:
    """Apply transforms in order, e.g. ``Compose([Resize(50), Saturation()])``."""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, img):
        for t in self.transforms:
            img = t(img)
        return img


#: name -> callable(rgb) -> number, sequence of numbers, or a per-pixel array
FEATURE_TRANSFORMS: dict[str, Callable] = {}


def register_feature(name: str, fn: Callable, *, overwrite: bool = False) -> None:
    """Register a per-image feature ``fn(rgb uint8 HxWx3) -> value(s)`` under ``name``.

    A scalar gives column ``name``; a short sequence gives ``name_0, name_1, ...``; an
    array (e.g. per-pixel saturation) gives ``name_mean`` and ``name_std``.

    Examples
    --------
    >>> register_feature("saturation_50", Compose([Resize(50), Saturation()]), overwrite=True)
    """
    if name in FEATURE_TRANSFORMS and not overwrite:
        raise ValueError(f"feature {name!r} is already registered (pass overwrite=True)")
    FEATURE_TRANSFORMS[name] = fn


def _feature_values(name: str, value) -> dict[str, float]:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        return {name: float(arr)}
    if arr.ndim == 1 and arr.size <= 16:
        return {f"{name}_{i}": float(v) for i, v in enumerate(arr)}
    return {f"{name}_mean": float(arr.mean()), f"{name}_std": float(arr.std())}


class _StatsFeatures:
    """Branch-shaped extractor (``prepare``/``features``) for :func:`extract`: HSB stats,
    whole-image HSB histograms and registered feature transforms, computed once per image (hue and
    saturation of near-grey pixels made grey, ``grey_tolerance``)."""

    name = "profile"
    min_side = DEFAULT_MIN_SIDE

    def __init__(self, features, grey_tolerance: int = GREY_TOLERANCE):
        self.colour = ColourFeatures(bins=_HIST_BINS, grey_tolerance=grey_tolerance)
        self.feature_names = list(features)

    def prepare(self, img):
        from ..branches.colour import hsv as _hsv
        hsv = self.colour.greyed(_hsv(img, self.min_side))
        extra = {}
        for name in self.feature_names:
            extra.update(_feature_values(name, FEATURE_TRANSFORMS[name](img.at_side(self.min_side))))
        import cv2
        thumb = cv2.resize(hsv[..., 2], THUMB_SIZE, interpolation=cv2.INTER_AREA)  # brightness (HSV value)
        return ColourFeatures.stats(hsv=hsv), self.colour.histograms(hsv), extra, thumb

    def features(self, prepared, images):
        out = np.empty(len(prepared), dtype=object)  # kept as python objects; assembled in profile_images
        out[:] = prepared
        return out


@dataclass
class BatchProfile:
    """Per-image features of a batch: a ``table`` and each image's HSB histograms.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per input: ``path``, ``error``, the 12 HSB statistics
        (``hue_mean``, ... ``brightness_max``), ``width``, ``height``, ``mode``,
        ``format``, ``file_size``, ``exif_*`` tags and registered features.
    per_image_hist : ndarray of shape (n_readable, 3, 32)
        Each readable image's normalised hue, saturation and brightness histograms,
        in row order.
    embeddings : ndarray or None
        ``(n_readable, d)`` CNN embeddings when requested (for semantic drift).
    thumbnails : ndarray or None
        ``(n_readable, 24, 32)`` uint8 brightness thumbnails (for the scene-layout
        check); None for profiles saved by version 1.
    """

    table: pd.DataFrame
    per_image_hist: np.ndarray
    embeddings: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)
    thumbnails: np.ndarray | None = None

    @property
    def grey_tolerance(self) -> int:
        """Grey levels within which hue and saturation counted a pixel as grey (0: profiles saved before it)."""
        return int(self.info.get("grey_tolerance", 0))

    @property
    def n_images(self) -> int:
        return int(self.table["error"].isna().sum())

    @property
    def numeric_features(self) -> list[str]:
        skip = {"path", "error", "index", "width", "height", "file_size", "jpeg_quality"}
        return [c for c in self.table.columns if c not in skip and not c.startswith("exif_")
                and pd.api.types.is_numeric_dtype(self.table[c])]

    @property
    def hist(self) -> np.ndarray:
        """Sum of the readable images' histograms, ``(3, 32)``."""
        return self.per_image_hist.sum(axis=0)

    def mean_hist(self) -> np.ndarray:
        """Mean normalised hue, saturation, brightness histograms of the batch, ``(3, 32)``."""
        return self.hist / max(self.n_images, 1)

    def merge(self, other: BatchProfile) -> BatchProfile:
        """The profile of both batches together (rows concatenated, histograms added)."""
        if self.grey_tolerance != other.grey_tolerance:
            raise ValueError(f"cannot merge profiles of grey_tolerance {self.grey_tolerance} and "
                             f"{other.grey_tolerance}: their hue and saturation are counted differently")
        emb = thumbs = None
        if self.embeddings is not None and other.embeddings is not None:
            emb = np.concatenate([self.embeddings, other.embeddings])
        if self.thumbnails is not None and other.thumbnails is not None:
            thumbs = np.concatenate([self.thumbnails, other.thumbnails])
        return BatchProfile(pd.concat([self.table, other.table], ignore_index=True),
                            np.concatenate([self.per_image_hist, other.per_image_hist]), emb, dict(self.info),
                            thumbs)

    def slice(self, start: int, stop: int) -> BatchProfile:
        """Rows ``start:stop`` (in input order) as their own profile."""
        t = self.table.iloc[start:stop].reset_index(drop=True)
        ok_all = self.table["error"].isna().to_numpy()
        rows_ok = np.cumsum(ok_all) - 1  # row of each readable image in the per-image arrays
        sel = rows_ok[start:stop][ok_all[start:stop]]
        emb = self.embeddings[sel] if self.embeddings is not None else None
        thumbs = self.thumbnails[sel] if self.thumbnails is not None else None
        return BatchProfile(t, self.per_image_hist[sel], emb, dict(self.info), thumbs)

    _ROW_COLUMNS = ("width", "height", "mode", "format")

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The readable rows as plain arrays (no pickle): HSB statistics, metadata, histograms, thumbnails."""
        t = self.table[self.table["error"].isna()]
        out = {"stats": t[list(STAT_NAMES)].to_numpy(np.float32), "hist": self.per_image_hist.astype(np.float32),
               "width": t["width"].to_numpy(np.int64), "height": t["height"].to_numpy(np.int64),
               "mode": t["mode"].astype(str).to_numpy(dtype="U16"), "format": t["format"].astype(str).to_numpy(dtype="U16")}
        if "jpeg_quality" in t:  # NaN: not a JPEG (absent from profiles saved before 2026-12-01)
            out["jpeg_quality"] = pd.to_numeric(t["jpeg_quality"], errors="coerce").to_numpy(np.float32)
        if self.thumbnails is not None:
            out["thumbnails"] = self.thumbnails.astype(np.uint8)
        out["grey_tolerance"] = np.asarray(self.grey_tolerance, np.int64)
        return out

    @classmethod
    def from_arrays(cls, a: dict[str, np.ndarray]) -> BatchProfile:
        """Inverse of :meth:`to_arrays` (shapes checked: model files are data)."""
        n = len(a["stats"])
        per_row = cls._ROW_COLUMNS + (("jpeg_quality",) if "jpeg_quality" in a else ())
        if a["stats"].shape != (n, len(STAT_NAMES)) or a["hist"].shape != (n, 3, _HIST_BINS) or \
                any(len(a[k]) != n for k in per_row) or \
                ("thumbnails" in a and a["thumbnails"].shape != (n, THUMB_SIZE[1], THUMB_SIZE[0])):
            raise ValueError("reference profile arrays have inconsistent shapes")
        if not np.isfinite(a["stats"]).all() or not np.isfinite(a["hist"]).all():
            raise ValueError("reference profile holds NaN or inf")
        tol = a.get("grey_tolerance")  # absent from models saved before the monitor's grey tolerance: 0
        if tol is not None and (np.shape(tol) != () or not 0 <= int(tol) <= 255):
            raise ValueError(f"reference profile's grey_tolerance must be one level in 0..255, got {tol!r}")
        table = pd.DataFrame(a["stats"].astype(float), columns=list(STAT_NAMES))
        for k in cls._ROW_COLUMNS:
            table[k] = a[k].tolist()
        if "jpeg_quality" in a:
            table["jpeg_quality"] = a["jpeg_quality"].astype(float)
        table.insert(0, "path", [f"<reference #{i}>" for i in range(n)])
        table["error"] = None
        return cls(table, a["hist"], None, {"grey_tolerance": 0 if tol is None else int(tol)}, a.get("thumbnails"))

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``table.csv``, ``arrays.npz`` and ``profile.json`` to the folder ``path``."""
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        self.table.to_csv(out / "table.csv", index=False)
        arrays = {"hist": self.hist, "per_image_hist": self.per_image_hist}  # file format as in version 1
        if self.embeddings is not None:
            arrays["embeddings"] = self.embeddings
        if self.thumbnails is not None:
            arrays["thumbnails"] = self.thumbnails
        np.savez(out / "arrays.npz", **arrays)
        (out / "profile.json").write_text(json.dumps({"format": "hybrid_drift.profile",
                                                      "version": PROFILE_VERSION, **self.info}, default=str))
        return out

    @classmethod
    def load(cls, path: str | os.PathLike) -> BatchProfile:
        p = Path(path)
        try:
            meta = json.loads((p / "profile.json").read_text())
            table = pd.read_csv(p / "table.csv", keep_default_na=True)
            with np.load(p / "arrays.npz", allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except FileNotFoundError as exc:
            raise FileNotFoundError(f"{p}: not a saved profile ({exc.filename} missing)") from exc
        if meta.get("format") != "hybrid_drift.profile" or meta.get("version") not in (1, PROFILE_VERSION):
            raise ValueError(f"{p}: not a hybrid_drift profile of version 1 or {PROFILE_VERSION}")
        if meta.get("version") == 1:  # linear hue mean/std then; no thumbnails
            log.warning("%s: a version-1 profile: hue_mean/hue_std are linear (now circular) and there are no "
                        "thumbnails for the layout check; profile the images again", p)
        table["error"] = table["error"].astype(object).where(table["error"].notna(), None)
        info = {k: v for k, v in meta.items() if k not in ("format", "version")}
        return cls(table, arrays["per_image_hist"], arrays.get("embeddings"), info, arrays.get("thumbnails"))


@functools.lru_cache(maxsize=8)
def _frame_features(grey_tolerance: int) -> _StatsFeatures:
    """One extractor per tolerance for live frames (its lookup tables and layout cache are built once,
    not per frame; ColourFeatures guards its cache with a lock, so cameras' threads may share it)."""
    return _StatsFeatures((), grey_tolerance)


def frame_profile(rgb: np.ndarray, fmt: str = "VIDEO", mode: str = "RGB",
                  grey_tolerance: int = GREY_TOLERANCE) -> dict:
    """The monitor's features of one decoded frame (for a live stream): a table row, the HSB
    histograms and the thumbnail, computed exactly as :func:`profile_images` does (pass the
    reference profile's ``grey_tolerance`` to compare like with like)."""
    from ..io.decode import decode_image
    img = decode_image(rgb, reduce="auto", min_side=DEFAULT_MIN_SIDE, with_hash=False)
    stats, hist, _, thumb = _frame_features(int(grey_tolerance)).prepare(img)
    row = dict(zip(STAT_NAMES, map(float, stats)))
    row.update(width=int(rgb.shape[1]), height=int(rgb.shape[0]), mode=mode, format=fmt, error=None)
    return {"table": row, "hist": hist.reshape(3, _HIST_BINS), "thumb": thumb}


def profile_images(X, *, features=(), embedder=None, workers: int | None = None, reduce="auto",
                   max_pixels: int | None = DEFAULT_MAX_PIXELS, progress: bool = False,
                   grey_tolerance: int = GREY_TOLERANCE) -> BatchProfile:
    """Profile a batch of images (paths, a folder, a video, arrays...).

    Parameters
    ----------
    X : inputs
        Anything :func:`hybrid_drift.io.expand_inputs` accepts.
    features : sequence of str
        Names of registered feature transforms (:func:`register_feature`) to add.
    embedder : CNNBranch, optional
        Also store CNN embeddings (for semantic drift); any fitted or unfitted
        :class:`~hybrid_drift.branches.CNNBranch` (only its feature extractor is used).
    grey_tolerance : int
        Hue and saturation count a pixel whose chroma (largest minus smallest of R, G, B) is at most
        this many grey levels as grey, as the colour branch does: a video codec tints a grey camera's
        frames by 1-4 levels, which would otherwise be a hue the baseline never had. 0: plain HSV.

    Returns
    -------
    BatchProfile
    """
    for f in features:
        if f not in FEATURE_TRANSFORMS:
            raise ValueError(f"unknown feature {f!r}; registered: {sorted(FEATURE_TRANSFORMS)}")
    stats = _StatsFeatures(features, grey_tolerance)
    branches = [stats] + ([embedder] if embedder is not None else [])
    ext = extract(branches, X, workers=workers, reduce=reduce, max_pixels=max_pixels, progress=progress,
                  desc="profile")
    prepared = iter(ext.features["profile"] if ext.n_ok else [])
    per_image_hist = np.zeros((ext.n_ok, 3, _HIST_BINS), np.float32)
    thumbs = np.zeros((ext.n_ok, THUMB_SIZE[1], THUMB_SIZE[0]), np.uint8)
    rows, pos = [], 0
    for k, (path, error, meta) in enumerate(zip(ext.ids, ext.errors, ext.meta)):
        meta = meta or {}
        row = {"path": path, "index": k, "error": error, **{c: meta.get(c) for c in META_COLUMNS},
               **{c: v for c, v in meta.items() if c.startswith("exif_")}}
        if error is None:  # readable: its features come next, in order
            stats, hist, extra, thumbs[pos] = next(prepared)
            row.update(dict(zip(STAT_NAMES, map(float, stats))), **extra)
            per_image_hist[pos] = hist.reshape(3, _HIST_BINS)
            pos += 1
        rows.append(row)
    table = pd.DataFrame(rows)
    for c in STAT_NAMES:
        if c not in table:
            table[c] = np.nan
    emb = ext.features[embedder.name] if embedder is not None and ext.n_ok else None
    return BatchProfile(table, per_image_hist, emb, {"features": list(features), "grey_tolerance": int(grey_tolerance)},
                        thumbs)
