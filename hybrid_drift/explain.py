"""Where and why: a heat map per image, for each branch and fused, and overlays to look at.

:meth:`HybridDetector.explain <hybrid_drift.detector.HybridDetector.explain>` returns one
:class:`Explanation` per input. Each branch's map covers the whole decoded image (rows top
to bottom, columns left to right), resampled to ``1/8`` of the image's size (so any aspect
ratio is kept), higher = stranger:

* **colour**: per 4x4 grid cell, the cell's histogram distance in the unit of the channel
  that sets the score (the map's mean over cells is the colour score);
* **CNN**: each pooled feature's squared residual given to the place of the feature map
  that produced it (max pooling: its arg-max; average pooling: in proportion to the
  activations), layers added on the finest grid; the map sums to the CNN score;
* **patch**: each position's reconstruction error (rows x columns of the CNN's feature map);
* **bands**: each eighth of the height, how far its strongest band edge lies past the reference's
  in that eighth (units; the stripe that holds a dead row or a bar lights up);
* **flat**: each eighth of the height, how far its flattest row lies past the reference's flattest
  there (units of 5% of the width; the stripe of a stuck row lights up);
* **tear**: each eighth of the height, how much better it fits the reference moved sideways than in
  place, past the reference's own (units of 2 grey levels; the stripes below a tear light up);
* **fused** (``heatmap``): the map of the branch that sets the fused score (the largest
  calibrated margin), divided by that branch's threshold (1.0 = the threshold).

No gradients: one forward pass that also returns the feature maps.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

__all__ = ["Explanation", "explanations", "overlay", "write_explanations", "residual_heatmaps", "MAP_SCALE"]

#: heat maps are returned at 1/MAP_SCALE of the decoded image's size
MAP_SCALE = 8


@dataclass
class Explanation:
    """Heat maps of one input.

    Attributes
    ----------
    path : str
        The input's id (as in the score table).
    heatmap : ndarray or None
        Fused map (see module docstring); None when the input could not be read.
    branch_heatmaps : dict of str -> ndarray
        Each branch's map, same shape as ``heatmap``.
    branch : str or None
        The branch whose map is the fused one (the largest calibrated margin).
    scores : dict of str -> float
        The branch scores and ``fused`` (as in the score table).
    is_outlier : bool or None
    error : str or None
        Why the input could not be read (then no maps).
    """

    path: str
    heatmap: np.ndarray | None = None
    branch_heatmaps: dict[str, np.ndarray] = field(default_factory=dict)
    branch: str | None = None
    scores: dict[str, float] = field(default_factory=dict)
    is_outlier: bool | None = None
    error: str | None = None

    def without(self, zones) -> Explanation:
        """The same explanation with every map zeroed inside the ignore ``zones`` (returns self)."""
        if zones and self.heatmap is not None:
            from .io.zones import zone_mask
            inside = zone_mask(zones, *self.heatmap.shape)
            self.heatmap = np.where(inside, 0.0, self.heatmap)
            self.branch_heatmaps = {k: np.where(zone_mask(zones, *v.shape), 0.0, v) for k, v in
                                    self.branch_heatmaps.items()}
        return self


def _image_size(meta: dict) -> tuple[int, int] | None:
    """``(height, width)`` of the decoded image (EXIF rotation applied)."""
    w, h = meta.get("width"), meta.get("height")
    if not w or not h:
        return None
    return (int(w), int(h)) if int(meta.get("orientation", 1) or 1) in (5, 6, 7, 8) else (int(h), int(w))


def _resample(m: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A branch map on its own grid -> ``shape`` (cell centres keep their values; smooth in between)."""
    h, w = shape
    return cv2.resize(np.asarray(m, np.float32), (max(1, w), max(1, h)), interpolation=cv2.INTER_LINEAR)


def explanations(detector, ext, table) -> list[Explanation]:
    """Explanations of a scored :class:`~hybrid_drift.pipeline.Extracted` (made with ``maps=True``)."""
    cals = {b.name: b.calibration_ for b in detector.branches_}
    names = [b.name for b in detector.branches_]
    rows, pos = [], 0
    for i, (path, err, meta) in enumerate(zip(ext.ids, ext.errors, ext.meta)):
        r = table.iloc[i]
        e = Explanation(str(path), error=err, scores={n: float(r[n]) for n in (*names, "fused")},
                        is_outlier=None if err else bool(r["is_outlier"]))
        if err is None:
            size = _image_size(meta or {}) or (480, 640)
            shape = (max(1, round(size[0] / MAP_SCALE)), max(1, round(size[1] / MAP_SCALE)))
            for n in names:
                m = ext.maps.get(n, [None] * (pos + 1))[pos]
                if m is not None:
                    e.branch_heatmaps[n] = _resample(m, shape)
            margins = {n: float(cals[n].margin(r[n])) for n in e.branch_heatmaps}
            if margins:
                e.branch = max(margins, key=margins.get)
                e.heatmap = e.branch_heatmaps[e.branch] / max(abs(cals[e.branch].threshold), 1e-12)
            pos += 1
        rows.append(e)
    return rows


def overlay(rgb: np.ndarray, heatmap: np.ndarray, *, width: int = 384, alpha: float = 0.45,
            caption: str = "") -> np.ndarray:
    """The image with its heat map on top (OpenCV's inferno colour map, scaled to the map's range)."""
    h, w = rgb.shape[:2]
    size = (width, max(1, round(h * width / w)))
    base = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    m = _resample(heatmap, (size[1], size[0]))
    lo, hi = float(m.min()), float(m.max())
    norm = ((m - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(m)).astype(np.uint8)
    colour = cv2.cvtColor(cv2.applyColorMap(norm, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)
    out = cv2.addWeighted(base, 1 - alpha, colour, alpha, 0)
    y, x = np.unravel_index(int(np.argmax(m)), m.shape)
    cv2.drawMarker(out, (int(x), int(y)), (0, 255, 255), cv2.MARKER_CROSS, 18, 2)
    if caption:
        cv2.rectangle(out, (0, 0), (size[0], 18), (0, 0, 0), -1)
        cv2.putText(out, caption[:60], (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def _safe_name(row: int, path: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(str(path)).stem)[:60] or "input"
    return f"{row:06d}_{stem}"


def write_explanations(explained: list[Explanation], items, out_dir: str | os.PathLike, *, arrays: bool = False,
                       only_flagged: bool = True, first_row: int = 0) -> list[tuple[int, Path]]:
    """One PNG overlay per (flagged) image in ``out_dir``, named ``<row>_<name>.png`` after the input row
    (``first_row`` + its position here; and ``.npy`` arrays of every map with ``arrays``).
    Returns ``[(row, png path)]``."""
    from .io import load_images
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    todo = [i for i, e in enumerate(explained) if e.heatmap is not None and (e.is_outlier or not only_flagged)]
    written = []
    for i, (img, _) in zip(todo, load_images([items[i] for i in todo], reduce="auto", min_side=384)):
        e = explained[i]
        name = _safe_name(first_row + i, e.path)
        if img.ok:
            cap = f"{e.branch} {e.scores.get(e.branch, float('nan')):.3g} (fused {e.scores['fused']:.2f})"
            png = out / f"{name}.png"
            cv2.imwrite(str(png), cv2.cvtColor(overlay(img.rgb, e.heatmap, caption=cap), cv2.COLOR_RGB2BGR))
            written.append((first_row + i, png))
        if arrays:
            np.save(out / f"{name}.npy", e.heatmap)
            for b, m in e.branch_heatmaps.items():
                np.save(out / f"{name}.{b}.npy", m)
    return written


def residual_heatmaps(res: np.ndarray, fmaps: list[np.ndarray], pool: str) -> list[np.ndarray]:
    """Where a PCA reconstruction error comes from, per image: a 2-D map on the finest feature-map grid.

    ``res`` ``(n, d)`` are the standardised residuals of the pooled features, ``fmaps`` each layer's
    feature maps ``(n, C, h, w)`` in the order the features were pooled, ``pool`` how they were
    pooled (``avg``, ``max`` or ``avgmax``). Each feature that fired *more* than the normal subspace
    explains (a positive residual) gives its squared residual to the places of its map that made it
    (``max``: the arg-max location; ``avg``: every location in proportion to its activation); layers
    are added on the finest grid; each map is divided by the score, so it sums to at most the score.
    A negative residual (a usual activation missing) has no place of its own and is left out: with
    it, the arg-max of the map fell inside a pasted object's box for 77% of the crossroad test
    objects, without it for all 22 (18x24 grid).
    """
    r2 = np.where(res > 0, res, 0.0) ** 2
    shapes = [m.shape[2:] for m in fmaps]
    gh, gw = max(s[0] for s in shapes), max(s[1] for s in shapes)
    out = np.zeros((len(res), gh, gw))
    offset = 0
    parts = {"avg": ["avg"], "max": ["max"], "avgmax": ["avg", "max"]}[pool]
    for m in fmaps:
        n, C, h, w = m.shape
        flat = m.reshape(n, C, h * w)
        for part in parts:
            r = r2[:, offset:offset + C]
            offset += C
            if part == "max":
                weights = np.zeros_like(flat)
                np.put_along_axis(weights, flat.argmax(axis=2)[..., None], 1.0, axis=2)
            else:
                pos = np.maximum(flat, 0)
                weights = pos / np.maximum(pos.sum(axis=2, keepdims=True), 1e-12)
            contrib = np.einsum("nc,ncl->nl", r, weights).reshape(n, h, w)
            if (h, w) != (gh, gw):  # spread each cell over the finer grid, keeping the total
                contrib = np.stack([cv2.resize(c, (gw, gh), interpolation=cv2.INTER_NEAREST)
                                    for c in contrib]) * (h * w) / (gh * gw)
            out += contrib
    score = np.sqrt((res ** 2).sum(axis=1))
    return list(out / np.maximum(score, 1e-12)[:, None, None])
