"""Decode each input once and compute every branch's features from it.

Per-image work (decode, HSV, histograms, CNN resize) runs in the loader's thread
pool; batched work (the CNN forward pass) runs here in chunks, so decode of the
next chunk overlaps with inference on this one.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .io.decode import DEFAULT_MAX_PIXELS, DEFAULT_MIN_SIDE
from .io.loader import load_images
from .io.sources import expand_inputs
from .io.zones import mask_image

__all__ = ["Extracted", "extract"]

log = logging.getLogger(__name__)


@dataclass
class Extracted:
    """Features of a set of inputs, one row per *readable* input, plus every input's record.

    Attributes
    ----------
    ids : list of str
        Every input, in order (paths, ``video#frame=N``, ``<array #i>``).
    errors : list of (str or None)
        Why each input could not be used (None when it was).
    meta : list of dict
        Per-input metadata (format, size, mode, EXIF, ...).
    features : dict of str -> ndarray
        Branch name → ``(n_ok, d)`` features of the readable inputs, in order.
    maps : dict of str -> list
        With ``extract(..., maps=True)``: branch name → one 2-D map (or None) per readable
        input, in order (see ``Branch.explain_features``).
    """

    ids: list[str]
    errors: list[str | None]
    meta: list[dict[str, Any]]
    features: dict[str, np.ndarray] = field(default_factory=dict)
    maps: dict[str, list] = field(default_factory=dict)

    @property
    def ok(self) -> np.ndarray:
        return np.array([e is None for e in self.errors], dtype=bool)

    @property
    def n_ok(self) -> int:
        return int(self.ok.sum())

    def sizes(self) -> dict[str, int] | None:
        """``{"WxH": count}`` over the readable inputs that carry a size, most frequent first (ties by
        name); None when none does (features given without their images)."""
        got = [f"{m['width']}x{m['height']}" for m, e in zip(self.meta, self.errors)
               if e is None and m and m.get("width") and m.get("height")]
        if not got:
            return None
        counts = Counter(got)
        return {k: counts[k] for k in sorted(counts, key=lambda k: (-counts[k], k))}

    def first_error(self) -> str | None:
        """``"path: reason"`` of the first unreadable input, or None."""
        return next((f"{i}: {e}" for i, e in zip(self.ids, self.errors) if e), None)

    def expand(self, values: np.ndarray, fill=np.nan) -> np.ndarray:
        """Spread per-readable-input values back over all inputs (``fill`` where unreadable)."""
        values = np.asarray(values)
        out = np.full((len(self.ids),) + values.shape[1:], fill, dtype=np.result_type(values.dtype, type(fill)))
        out[self.ok] = values
        return out

    def subset(self, mask) -> Extracted:
        """Rows of all inputs selected by a boolean mask or index array."""
        idx = np.arange(len(self.ids))[mask]
        ok = self.ok
        pos = np.cumsum(ok) - 1  # row of each readable input in the feature matrices
        keep_rows = pos[idx[ok[idx]]]
        return Extracted([self.ids[i] for i in idx], [self.errors[i] for i in idx],
                         [self.meta[i] for i in idx],
                         {k: v[keep_rows] for k, v in self.features.items()},
                         {k: [v[r] for r in keep_rows] for k, v in self.maps.items()})


def extract(branches: Sequence, X, *, workers: int | None = None, reduce="auto",
            max_pixels: int | None = DEFAULT_MAX_PIXELS, chunk: int = 128, progress: bool = False,
            desc: str = "features", video_step: int = 1, maps: bool = False, ignore=()) -> Extracted:
    """Load ``X`` and compute each branch's features.

    Parameters
    ----------
    branches : sequence of Branch
    X : inputs
        Anything :func:`hybrid_drift.io.expand_inputs` accepts, or a list of InputItem.
    workers, reduce, max_pixels
        Loader settings, see :func:`hybrid_drift.io.load_images`. With ``reduce="auto"``
        each image is decoded once per working size its branches name (``min_side``,
        JPEGs in the DCT domain), so a branch's features do not depend on which
        other branches run beside it.
    chunk : int
        Images per batched feature call (bounds memory).
    progress : bool
        Show a progress bar.
    video_step : int
        Keep every N-th frame of videos.
    maps : bool
        Also compute each (fitted) branch's spatial map per image (``Branch.explain_features``).
    ignore : polygons
        Ignore zones (:mod:`hybrid_drift.io.zones`), painted over before any branch sees an image.

    Returns
    -------
    Extracted
    """
    items = expand_inputs(X, video_step=video_step)
    names = [b.name for b in branches]
    if len(set(names)) != len(names):
        raise ValueError(f"branch names must be unique, got {names}")

    def prep(img):
        mask_image(img, ignore)
        return [b.prepare(img) for b in branches]

    ids, errors, meta = [], [], []
    parts: dict[str, list[np.ndarray]] = {n: [] for n in names}
    map_parts: dict[str, list] = {n: [] for n in names} if maps else {}
    pend_imgs, pend_prep = [], []

    def flush():
        if not pend_imgs:
            return
        for j, b in enumerate(branches):
            batch = [p[j] for p in pend_prep]
            if maps:
                F, m = b.explain_features(batch, pend_imgs)
                map_parts[b.name].extend(m if m is not None else [None] * len(batch))
            else:
                F = b.features(batch, pend_imgs)
            parts[b.name].append(np.asarray(F))
        pend_imgs.clear()
        pend_prep.clear()

    with_hash = any(getattr(b, "uses_content_hash", False) for b in branches)
    min_side = sorted({int(getattr(b, "min_side", DEFAULT_MIN_SIDE)) for b in branches}) or [DEFAULT_MIN_SIDE]
    # a branch that reads another's forward pass (the patch branch: the CNN branch's map) links for this run
    unlinks = [b.take_maps_from(list(branches[:j])) for j, b in enumerate(branches) if hasattr(b, "take_maps_from")]
    try:
        for img, prepared in load_images(items, workers=workers, reduce=reduce, min_side=min_side,
                                         max_pixels=max_pixels,
                                         map_fn=prep, progress=progress, desc=desc, with_hash=with_hash):
            ids.append(img.source)
            errors.append(img.error)
            meta.append(img.meta)
            if img.error is not None:
                log.warning("skipping %s: %s", img.source, img.error)
                continue
            img.release()  # the prepared features are all we keep
            pend_imgs.append(img)
            pend_prep.append(prepared)
            if len(pend_imgs) >= chunk:
                flush()
        flush()
    finally:
        for unlink in unlinks:
            if unlink is not None:
                unlink()
    return Extracted(ids, errors, meta, stack_features(parts), map_parts)


def stack_features(parts: dict[str, list[np.ndarray]]) -> dict[str, np.ndarray]:
    """Branch name -> its feature blocks, stacked in order (``(0, 0)`` when there are none)."""
    return {n: (np.concatenate(p) if p else np.empty((0, 0), np.float32)) for n, p in parts.items()}
