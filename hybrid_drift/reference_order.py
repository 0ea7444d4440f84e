"""Does the reference look like time, and if not, an order that behaves like it for cross-fitting.

Cross-fitting (:func:`hybrid_drift.calibration.crossfit_scores`) holds out contiguous
blocks of the reference and scores each with a model fitted on the others. That is
out-of-sample only when a block is a *period*: consecutive frames of a fixed camera
are near-duplicates, so a block cut from a shuffled list has near-identical twins
in the other blocks, its "held-out" scores are in-sample in all but name, and the
thresholds come out far too tight (a reference with random file names made 230
false alarms per 1,000 clean frames on the crossroad set; issue 20).

Names and file times cannot be trusted, so the features decide:

1. **The check** (:func:`check_order`): cut the rows as given into the blocks
   cross-fitting would hold out, and count how many of each row's 5 nearest
   neighbours (in feature space) lie in *another* block: the **leak**. Footage in
   time order keeps a frame's near-duplicates in its own period (0.02-0.12 on the
   development splits and scenes); a shuffled list scatters them (0.78-0.81), and a
   list that is in order only in runs (names sorted as text, ``frame_1, frame_10,
   frame_100...``, or structured random names) lies between (0.05-0.59). Below
   0.2 the order counts as time. Also reported: the median distance between
   consecutive rows against random pairs (time order 0.18-0.26 on the street, desk
   and wall; 0.79 for the fish tank, whose fish move fast; a shuffle ~1): it was the
   first design's test, but a list sorted in runs passed it (0.35) while leaking
   (thresholds 3x too tight in ``benchmarks/fit_order.py``). A short reference
   leaks even in perfect time order, at the blocks' edges (:func:`edge_leak`: 0.18
   at 40 rows); the check reports it and says when a reference may be too short to
   tell, but does not count it in the decision (see :func:`_check`).
2. **When the order does not look like time**, cross-fitting holds out groups of
   similar images instead of periods (:func:`plan_crossfit`). The rows are
   clustered agglomeratively (Ward) and cross-fitted twice: over contiguous
   thirds of the dendrogram's leaf order (near-identical frames sit next to each
   other, each third a compact stretch of the scene's variation) and over three
   clusters; each image keeps the larger of its two out-of-sample scores. On the
   development splits of the crossroad set neither scheme alone came close to the
   time-ordered thresholds on every split (with five groups, as time uses: leaf
   order CNN 0.94x on D1, clusters colour 0.81x on D3; the larger of the two CNN
   0.985x on D2, 30 false alarms per 1,000 there); with three groups the larger of
   the two gave CNN 0.99-1.03x and colour 0.99-1.33x (see README). A reference
   whose time is unknown is held out in coarser pieces: fewer false alarms, a
   little less sensitivity than the same footage in time order. The result
   depends on the rows, not on the order they came in (they are put in a
   canonical order first), so any permutation of the same reference gives the
   same folds.

The feature space is each branch's features, standardised, projected to a few
dimensions with a fixed random projection and PCA (both independent of row
order), each branch weighted equally.

:func:`plan_crossfit` does both and returns a :class:`CrossfitPlan`: the
permutation to apply to the reference rows, the folds, and an :class:`OrderCheck`
for the fit summary, the model file, the report and the benchmark's JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np

from .sampling import evenly_spread

__all__ = ["OrderCheck", "CrossfitPlan", "plan_crossfit", "FOLDS", "reference_lines", "reference_warnings", "SMALL_REFERENCE", "input_rows", "TIME_LIKE_LEAK",
           "TIME_LIKE_RATIO", "leak", "edge_leak", "consecutive_ratio", "order_space", "check_order", "seriate", "reference_order"]

#: share of nearest neighbours in another cross-fitting block below which an order is taken as time
#: order (chosen on the development splits and scenes; see README)
TIME_LIKE_LEAK = 0.2
#: kept for the report: consecutive / random-pair distance ratio (not the decision any more)
TIME_LIKE_RATIO = 0.5
_LEAK_K = 5
_LEAK_MAX_ROWS = 4000
#: how cross-fitting folds are formed (``HybridDetector(folds=...)``)
FOLDS = ("auto", "time", "similarity")
#: groups cross-fitting holds out when the order does not look like time (chosen on the development splits)
SIMILARITY_GROUPS = 3
#: rows clustered directly (the others join their nearest clustered row)
SERIATE_MAX_ROWS = 2000
_PROJ_DIMS = 128
_PCA_DIMS = 16


@dataclass(frozen=True)
class OrderCheck:
    """What the fit saw of its reference's order.

    Attributes
    ----------
    ratio : float
        Median feature distance between consecutive reference rows divided by the
        median distance between random pairs (time order: well below 1; shuffled: ~1).
        NaN when there were too few rows to tell.
    time_like : bool
        ``leak < threshold``.
    action : str
        ``"kept"`` (cross-fitting blocks are periods of the given order) or
        ``"reordered"`` (blocks were cut from the feature-similarity order instead).
    n : int
        Rows checked.
    threshold : float
        The leak below which an order counts as time.
    edge : float
        The leak of a perfect time order of ``n`` rows (:func:`edge_leak`: 0.18 at 40 rows, 0.02 at 330;
        0 in model files written before it was reported). An order that leaks more than ``threshold`` but
        less than ``threshold + edge`` may be time order on too few rows to tell (:attr:`too_short`).
    leak : float
        Share of each row's 5 nearest neighbours that lie in another cross-fitting block of
        the order as given (time order: near 0; shuffled: ``1 - 1/blocks``). NaN when too few rows.
    """

    ratio: float
    time_like: bool
    action: str
    n: int
    threshold: float = TIME_LIKE_LEAK
    leak: float = float("nan")
    edge: float = 0.0

    def as_dict(self) -> dict:
        d = asdict(self)
        d["ratio"] = None if not np.isfinite(self.ratio) else float(self.ratio)
        d["leak"] = None if not np.isfinite(self.leak) else float(self.leak)
        return d

    @classmethod
    def from_dict(cls, d) -> OrderCheck:
        """Rebuild from :meth:`as_dict` (checked: model files are data)."""
        if not isinstance(d, dict):
            raise ValueError(f"order check must be an object, got {type(d).__name__}")
        ratio, leak = d.get("ratio"), d.get("leak")
        for name, v in (("ratio", ratio), ("leak", leak)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                raise ValueError(f"order check {name} must be a number or null, got {v!r}")
        if d.get("action") not in ("kept", "reordered") or not isinstance(d.get("time_like"), bool):
            raise ValueError(f"order check has a bad action or time_like: {d!r}")
        n, thr, edge = d.get("n", 0), d.get("threshold", TIME_LIKE_LEAK), d.get("edge", 0.0)
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"order check n must be a non-negative int, got {n!r}")
        if isinstance(thr, bool) or not isinstance(thr, (int, float)):
            raise ValueError(f"order check threshold must be a number, got {thr!r}")
        if isinstance(edge, bool) or not isinstance(edge, (int, float)) or not 0 <= edge <= 1:
            raise ValueError(f"order check edge must be a number in [0, 1], got {edge!r}")
        return cls(float("nan") if ratio is None else float(ratio), d["time_like"], d["action"], n, float(thr),
                   float("nan") if leak is None else float(leak), float(edge))

    @property
    def too_short(self) -> bool:
        """Not time-like, but within what a perfect time order of this many rows leaks past the threshold:
        the rows may be in time order, too few to tell (cross-fitting then errs toward groups of similar
        images: wider thresholds, fewer false alarms)."""
        return bool(not self.time_like and np.isfinite(self.leak) and self.leak < self.threshold + self.edge)

    def sentence(self) -> str:
        """One plain sentence for the fit summary and the report."""
        if not np.isfinite(self.leak):
            return f"order check: too few reference images ({self.n}) to tell whether they are in time order"
        head = (f"order check: {self.leak:.0%} of the reference images' nearest neighbours fall in another "
                f"period of the order given (time order: below {self.threshold:.0%}; consecutive images differ "
                f"{self.ratio:.2f}x as much as random pairs)")
        # what the check saw, then what cross-fitting did: the two differ when folds='time' or 'similarity'
        # forced it (a sentence must never claim groups were used when periods were, or the reverse)
        regrouped = self.action == "reordered"
        if self.time_like:
            return head + (": looks like time order, but cross-fitting held out groups of similar images, as asked"
                           if regrouped else ": looks like time order; cross-fitting held out periods of it")
        seen = (head + ": does NOT look like time order (shuffled, named out of order, or a scene that changes "
                "faster than the frame rate"
                + (f"; or too few images to tell: at {self.n} images even a perfect time order leaks {self.edge:.0%}"
                   if self.too_short else "") + "); ")
        if regrouped:
            return seen + ("cross-fitting held out groups of similar images instead, so thresholds do not depend on "
                           "the names")
        return (seen + "cross-fitting held out periods of it anyway, as asked: if the order is not time, "
                "near-identical frames sit on both sides of a split and the thresholds come out too tight")


def _standardise(F: np.ndarray) -> np.ndarray:
    X = np.asarray(F, dtype=np.float64)
    mu = X.mean(axis=0)
    sd = X.std(axis=0)
    floor = max(float(np.median(sd)), 1e-12) * 0.1  # near-constant columns do not dominate
    return (X - mu) / np.maximum(sd, floor)


def order_space(features: Mapping[str, np.ndarray] | np.ndarray, dims: int = _PCA_DIMS) -> np.ndarray:
    """``(n, k)`` coordinates of the rows used to compare them (independent of row order).

    Each feature block is standardised, projected to at most 128 dimensions with a
    fixed Gaussian projection, reduced to ``dims`` principal components (from the
    covariance matrix, so the result does not depend on the row order) and scaled to
    unit total variance, so every branch counts the same.
    """
    blocks = features.values() if isinstance(features, Mapping) else [features]
    out = []
    for F in blocks:
        F = np.asarray(F)
        if F.ndim != 2 or F.shape[0] == 0 or F.shape[1] == 0:
            continue
        X = _standardise(F)
        if X.shape[1] > _PROJ_DIMS:
            rng = np.random.default_rng(0)
            X = X @ (rng.standard_normal((X.shape[1], _PROJ_DIMS)) / np.sqrt(_PROJ_DIMS))
        X = X - X.mean(axis=0)
        cov = X.T @ X / max(len(X) - 1, 1)
        w, V = np.linalg.eigh(cov)
        k = min(dims, X.shape[1])
        V = V[:, ::-1][:, :k]
        V = V * np.where(V[np.abs(V).argmax(axis=0), range(k)] < 0, -1.0, 1.0)  # a sign that does not depend on rows
        Z = X @ V
        total = float(np.sqrt((Z ** 2).sum(axis=1).mean()))
        out.append(Z / total if total > 0 else Z)
    if not out:
        raise ValueError("no features to check the reference order on")
    return np.hstack(out)


def leak(Z: np.ndarray, blocks: int = 5, k: int = _LEAK_K) -> float:
    """Share of each row's ``k`` nearest neighbours lying in another of ``blocks`` contiguous blocks of the
    rows as given (at most 4,000 rows, evenly spread, keep the block structure). NaN for too few rows."""
    from sklearn.neighbors import NearestNeighbors
    n = len(Z)
    if n < max(2 * blocks, k + 2):
        return float("nan")
    rows = evenly_spread(n, _LEAK_MAX_ROWS)
    block = rows * blocks // n
    nn = NearestNeighbors(n_neighbors=k + 1).fit(Z[rows]).kneighbors(Z[rows], return_distance=False)[:, 1:]
    return float(np.mean(block[nn] != block[:, None]))


@lru_cache(maxsize=64)
def edge_leak(n: int, blocks: int = 5, k: int = _LEAK_K) -> float:
    """The :func:`leak` of ``n`` rows in a perfect time order (each row's nearest neighbours the rows
    nearest in time, ties shared): the rows next to a block's edge have neighbours across it. Large for a
    short reference (0.18 at 40 rows in 5 blocks), small for a long one (0.02 at 330); NaN where
    :func:`leak` is.

    >>> round(edge_leak(40), 2), round(edge_leak(330), 3), round(edge_leak(100_000), 4)
    (0.18, 0.022, 0.0018)
    """
    if n < max(2 * blocks, k + 2):
        return float("nan")
    rows = evenly_spread(n, _LEAK_MAX_ROWS)
    block = rows * blocks // n
    m = len(rows)
    total = 0.0
    for i in range(m):
        cand = np.r_[max(0, i - k - 1):i, i + 1:min(m, i + k + 2)]
        d = np.abs(cand - i)
        kth = np.sort(d)[k - 1]
        near, tied = cand[d < kth], cand[d == kth]
        across = np.count_nonzero(block[near] != block[i]) + (k - len(near)) * np.mean(block[tied] != block[i])
        total += across / k
    return float(total / m)


def check_order(Z: np.ndarray, *, threshold: float = TIME_LIKE_LEAK, pairs: int = 4000,
                blocks: int = 5) -> tuple[float, bool]:
    """``(ratio, time_like)`` of rows ``Z`` as given (see :class:`OrderCheck`); the decision is the leak's.

    Below 8 rows the ratio is NaN; below ``2 * blocks`` rows the leak is NaN and the order is taken as given.
    """
    ratio, _, _, time_like = _check(Z, threshold, blocks, pairs)
    return ratio, time_like


def _check(Z: np.ndarray, threshold: float, blocks: int, pairs: int = 4000) -> tuple[float, float, float, bool]:
    """``(ratio, leak, edge, time_like)``: the one place the order decision is made.

    The decision does not add ``edge`` to the threshold, so a short reference in time order may be taken
    for a shuffle; cross-fitting then holds out groups of similar images, whose thresholds are the wider.
    Measured 2026-12-03 on the fish tank ``tank_b`` (329 reference frames, leak 0.209, edge 0.022, fish that
    move fast): held out as periods, its thresholds fell (flat rows to its least, colour 0.48x) and 2 of
    its 179 clean test frames were flagged, none as groups. The edge is reported, not used."""
    lk, edge = leak(Z, blocks), edge_leak(len(Z), blocks)
    edge = edge if np.isfinite(edge) else 0.0
    return consecutive_ratio(Z, pairs=pairs), lk, edge, bool((not np.isfinite(lk)) or lk < threshold)


def consecutive_ratio(Z: np.ndarray, *, pairs: int = 4000) -> float:
    """Median distance between consecutive rows over the median between random pairs (NaN below 8 rows)."""
    n = len(Z)
    if n < 8:
        return float("nan")
    adj = np.linalg.norm(Z[1:] - Z[:-1], axis=1)
    rng = np.random.default_rng(0)
    i = rng.integers(0, n, pairs)
    j = rng.integers(0, n, pairs)
    keep = i != j
    rand = np.linalg.norm(Z[i[keep]] - Z[j[keep]], axis=1)
    base = float(np.median(rand))
    if base <= 0:  # every row the same: any order is as good as time
        return 0.0
    return float(np.median(adj)) / base


def _canonical(Z: np.ndarray) -> np.ndarray:
    """A row order that depends only on the rows' values (lexicographic on rounded coordinates)."""
    R = np.round(Z, 6)
    return np.lexsort(R.T[::-1])


def seriate(Z: np.ndarray, *, max_rows: int = SERIATE_MAX_ROWS) -> np.ndarray:
    """A permutation of the rows of ``Z`` in which similar rows are adjacent (see the module docstring).

    The same set of rows in any order gives the same sequence of rows.
    """
    return _ward(Z, 0, max_rows=max_rows)[0]


def _ward(Z: np.ndarray, k: int, *, max_rows: int = SERIATE_MAX_ROWS) -> tuple[np.ndarray, np.ndarray | None]:
    """``(leaf order, cluster label per row)`` of Ward clustering of the rows (labels for ``k`` >= 2 clusters,
    else None); rows beyond ``max_rows`` follow their nearest clustered row."""
    from scipy.cluster.hierarchy import fcluster, leaves_list, linkage
    n = len(Z)
    if n < 3:
        return np.arange(n), None
    canon = _canonical(Z)
    core = canon[evenly_spread(n, max_rows)]
    tree = linkage(Z[core], method="ward")
    leaves = core[leaves_list(tree)]
    labels = None
    if k >= 2:
        labels = np.zeros(n, dtype=np.int64)
        labels[core] = fcluster(tree, k, criterion="maxclust")
    if len(core) == n:
        return leaves, labels
    # the other rows follow their nearest clustered row (in canonical order among themselves)
    rest = canon[~np.isin(canon, core)]
    near = np.empty(len(rest), dtype=np.int64)
    C = Z[leaves]
    for a in range(0, len(rest), 1024):
        d = ((Z[rest[a:a + 1024], None, :] - C[None, :, :]) ** 2).sum(axis=2)
        near[a:a + 1024] = d.argmin(axis=1)
    slots: dict[int, list[int]] = {}
    for r, j in zip(rest, near):
        slots.setdefault(int(j), []).append(int(r))
    out = []
    for j, row in enumerate(leaves):
        out.append(int(row))
        out.extend(slots.get(j, ()))
        if labels is not None:
            labels[slots.get(j, [])] = labels[row]
    return np.asarray(out, dtype=np.int64), labels


@dataclass(frozen=True)
class CrossfitPlan:
    """How ``fit`` cross-fits a reference (from :func:`plan_crossfit`).

    Attributes
    ----------
    perm : ndarray
        The reference rows (readable inputs) in the order cross-fitting and the
        moved-foreground copies use: the given order when it looks like time.
    folds : list of ndarray, or None
        ``None``: contiguous blocks of that order (periods of time). Otherwise one or
        more sets of fold labels, one label per row *in the new order* (``None`` in
        the list = contiguous blocks); each image keeps its largest out-of-sample score.
    check : OrderCheck
    """

    perm: np.ndarray
    folds: list | None
    check: OrderCheck

    def reordered(self) -> CrossfitPlan:
        """The same plan for rows already put in ``perm`` order (the permutation becomes the identity)."""
        return CrossfitPlan(np.arange(len(self.perm)), self.folds, self.check)

    def apply(self, ext, items=None, extra: dict | None = None):
        """``(ext, items, extra)`` with the readable rows in ``perm`` order (unreadable inputs last) and the
        extra rows' source rows renumbered to match; unchanged when ``perm`` is the identity."""
        extra = dict(extra or {})
        if np.array_equal(self.perm, np.arange(len(self.perm))):
            return ext, items, extra
        new_idx = input_rows(ext.ok, self.perm)
        inv = np.empty(len(self.perm), dtype=np.int64)
        inv[self.perm] = np.arange(len(self.perm))  # old readable row -> new row
        extra = {k: None if v is None else (v[0], inv[np.asarray(v[1], dtype=np.int64)]) for k, v in extra.items()}
        return ext.subset(new_idx), None if items is None else [items[i] for i in new_idx], extra

    def subset(self, mask) -> CrossfitPlan:
        """The plan for the rows selected by ``mask`` (rows already in ``perm`` order)."""
        mask = np.asarray(mask, dtype=bool)
        folds = None if self.folds is None else [None if f is None else f[mask] for f in self.folds]
        return CrossfitPlan(np.arange(int(mask.sum())), folds, self.check)


def plan_crossfit(features: Mapping[str, np.ndarray] | np.ndarray, *, mode: str = "auto", blocks: int = 5,
                  threshold: float = TIME_LIKE_LEAK) -> CrossfitPlan:
    """Check the reference order and plan its cross-fitting (see the module docstring and ``reference_order``)."""
    if mode not in ("auto", "given", "similarity"):
        raise ValueError(f"mode must be 'auto', 'given' or 'similarity', got {mode!r}")
    Z = order_space(features)
    n = len(Z)
    ratio, lk, edge, time_like = _check(Z, threshold, blocks if blocks >= 2 else 5)
    reorder = (mode == "similarity" or (mode == "auto" and not time_like)) and n >= 3
    check = OrderCheck(ratio, time_like, "reordered" if reorder else "kept", n, float(threshold), lk, edge)
    if not reorder:
        return CrossfitPlan(np.arange(n), None, check)
    k = min(blocks, SIMILARITY_GROUPS) if blocks >= 2 else 0
    perm, labels = _ward(Z, k)
    folds = [None if k < 2 else np.arange(n) * k // n]  # contiguous pieces of the leaf order
    if labels is not None and len(np.unique(labels)) >= 2:
        folds.append(labels[perm])
    return CrossfitPlan(perm, folds, check)


def reference_order(features: Mapping[str, np.ndarray] | np.ndarray, *, mode: str = "auto",
                    threshold: float = TIME_LIKE_LEAK) -> tuple[np.ndarray, OrderCheck]:
    """The permutation of reference rows that cross-fitting should use, and what was seen.

    Parameters
    ----------
    features : mapping of name -> (n, d) array, or one (n, d) array
        Each branch's reference features, rows in the order the inputs came.
    mode : {"auto", "given", "similarity"}
        ``"auto"``: keep the order when it looks like time, else reorder by
        similarity; ``"given"``: always keep it (still checked and reported);
        ``"similarity"``: always reorder.
    """
    plan = plan_crossfit(features, mode=mode, threshold=threshold)
    return plan.perm, plan.check


def input_rows(ok: np.ndarray, perm: np.ndarray) -> np.ndarray:
    """Indices of all inputs for a permutation ``perm`` of the readable ones: the readable inputs in
    ``perm`` order, then the unreadable ones (for ``Extracted.subset`` and the inputs list)."""
    ok = np.asarray(ok, dtype=bool)
    return np.concatenate([np.flatnonzero(ok)[perm], np.flatnonzero(~ok)]).astype(np.int64)


def reference_lines(summary: dict) -> list[str]:
    """Plain lines on what a model was fitted on (from ``HybridDetector.reference_summary()``), for the
    fit summary and the reports."""
    sizes = summary.get("sizes") or {}
    lines = [f"reference: {summary.get('n', 0)} readable images"
             + (f", {_sizes_text(sizes)}" if sizes else "")]
    io_ = summary.get("input_order")
    if io_:
        lines.append(f"order used: {io_['used']} ({io_['detail']}; asked for: {io_['requested']})")
    chk = summary.get("order_check")
    if chk:
        lines.append(OrderCheck.from_dict(chk).sentence())
    return lines


def _sizes_text(sizes: dict) -> str:
    """``768x576`` for one size; ``2 sizes: 768x576 x150, 640x480 x150`` for several (at most 5 listed)."""
    if len(sizes) == 1:
        return next(iter(sizes))
    shown = ", ".join(f"{k} x{n}" for k, n in list(sizes.items())[:5])
    return f"{len(sizes)} sizes: {shown}" + (", ..." if len(sizes) > 5 else "")


#: fewer reference images than this and the fit warns that its thresholds rest on too little footage
SMALL_REFERENCE = 200


def reference_warnings(summary: dict, fpr: float = 0.001) -> list[str]:
    """Warnings on what a model was fitted on: too few reference images for its thresholds to mean a rate,
    images of several sizes, and a reference order that does not look like time (what cross-fitting then did,
    and what to do)."""
    out = []
    sizes = summary.get("sizes") or {}
    if len(sizes) > 1:
        out.append(f"the reference mixes {_sizes_text(sizes)}. Several branches read statistics that change with "
                   "the resolution (sharpness, fine texture), so the thresholds widen to cover the mix and each "
                   "stream is scored against the other's frames too (measured: a 640x480 substream of a 768x576 "
                   "camera flagged 111 of 200 clean frames). Fit one model per stream, on frames of the size it "
                   "will score (hybrid-drift record writes them).")
    n = int(summary.get("n", 0))
    if n < SMALL_REFERENCE:
        rate = int(round(1 / fpr))
        out.append(f"the reference has only {n} readable images: each threshold is the score of the strangest of "
                   f"them, one frame's accident more than a rate (the conformal rule at fpr {fpr:g} needs about "
                   f"{rate:,} to mean 1 in {rate:,}). Fit on at least {SMALL_REFERENCE}, better {rate:,} or more "
                   "spread over a day or more of the camera's normal footage (one frame a minute for a day is 1,440).")
    chk = OrderCheck.from_dict(summary["order_check"]) if summary.get("order_check") else None
    if chk is not None and not chk.time_like:
        if chk.action == "reordered" and chk.too_short:
            out.append(f"the reference is too short for its order to be told from the images: at {chk.n} images "
                       f"even a perfect time order leaks {chk.edge:.0%} of the nearest neighbours across its "
                       f"periods, and this one leaks {chk.leak:.0%}. Thresholds were set from groups of similar "
                       "images, which errs toward fewer false alarms; if the files are in time order and you want "
                       "the tighter time-blocked thresholds, fit with --folds time. Better: a longer reference.")
        elif chk.action == "reordered":
            out.append("the reference does not look like it is in time order; thresholds were set from groups of "
                       "similar images. If the files have times (EXIF, a manifest column), fit with --order "
                       "exif|time; if they are in time order, --folds time.")
        else:  # --folds time on an order that does not look like time
            out.append("the reference does not look like it is in time order, and its thresholds were set from "
                       "periods of it as asked (--folds time): if the files are not in time order, they are too "
                       "tight (fit with --order exif|time, or without --folds).")
    return out
