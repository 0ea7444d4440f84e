"""Batch drift monitoring with alert thresholds calibrated on the baseline's own chunk variation.

Consecutive frames of a fixed camera are strongly correlated, so textbook
two-sample tests over-reject: a KS test between two halves of a *steady* stream
gives tiny p-values. :class:`DriftMonitor` therefore reports the raw statistic and
p-value but decides with a threshold learned from the baseline itself: the
baseline is cut into chunks of the monitoring size, each chunk is compared with
the rest of the baseline, and the alert threshold is NannyML's
``mean + k * std`` of those chunk statistics.

The default decision per feature is the chunk *mean* against the band of
baseline chunk means (``|z| > k``, NannyML's summary-statistic drift) **and** a
change of at least ``min_change`` in the feature's own units: a reference period of
a few minutes shows how much chunk means wobble then, not how much a passing cloud
moves them later, and a band of six chunk means alone alerted on an unchanged
camera. The raw KS statistic and p-value against the whole baseline are reported
beside it. On ``vtest.avi`` chunk-to-chunk KS statistics of a steady stream are
already 0.5-1.0, so a calibrated KS threshold would exceed 1 and never fire.

The **scene-layout** check compares the per-pixel median of each chunk's
brightness thumbnails (moving people vanish in a median) with the baseline's, by
``1 -`` normalised cross-correlation (blind to global brightness and contrast, which
the brightness checks watch): a camera knocked by a few degrees changes it at once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .profile import BatchProfile
from .stats import NUMERIC_STATS, chi2_categorical, ks, mmd_permutation, numeric_stat

__all__ = ["time_bounds", "PERIODS", "DriftMonitor", "HSB_FEATURES", "DEFAULT_MIN_CHANGE", "semantic_distances", "chunk_bounds"]

log = logging.getLogger(__name__)

#: the six per-image HSB statistics whylogs profiles compare
HSB_FEATURES = ("hue_mean", "hue_std", "saturation_mean", "saturation_std", "brightness_mean", "brightness_std")
#: categorical metadata checks; "resolution" is width x height
METADATA = ("format", "mode", "resolution")
#: smallest change of a chunk mean that alerts (feature units: [0, 1], hue in turns), and of the layout statistic
DEFAULT_MIN_CHANGE = {**{f: 0.04 for f in HSB_FEATURES}, "layout": 0.05}


def _ncc_distance(a: np.ndarray, b: np.ndarray) -> float:
    """``1 -`` normalised cross-correlation of two images (0 = same layout; blind to gain and offset)."""
    a = a.astype(np.float64).ravel() - a.mean()
    b = b.astype(np.float64).ravel() - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float(1.0 - (a * b).sum() / den) if den > 0 else 0.0


#: chunk lengths ``monitor --chunk-by`` knows, in seconds
PERIODS = {"hour": 3600, "day": 86400}


def time_bounds(times, period: str) -> tuple[list[tuple[int, int]], list[str]]:
    """``([(start, stop)], labels)``: one chunk per calendar ``period`` (``"hour"``, ``"day"``, UTC) of
    ``times`` (seconds since the epoch, ascending), labelled by the period's start.

    >>> time_bounds([0, 10, 3600, 3700, 7300], "hour")
    ([(0, 2), (2, 4), (4, 5)], ['1970-01-01T00:00Z', '1970-01-01T01:00Z', '1970-01-01T02:00Z'])
    """
    import datetime as _dt
    if period not in PERIODS:
        raise ValueError(f"period must be one of {sorted(PERIODS)}, got {period!r}")
    t = np.asarray(times, dtype=float)
    if np.any(np.diff(t) < 0):
        raise ValueError("times must be in ascending order (sort the stream by time first)")
    keys = np.floor(t / PERIODS[period]).astype(np.int64)
    edges = [0] + [i for i in range(1, len(keys)) if keys[i] != keys[i - 1]] + [len(keys)]
    fmt = "%Y-%m-%dT%H:%MZ" if period == "hour" else "%Y-%m-%d"
    labels = [_dt.datetime.fromtimestamp(int(keys[a]) * PERIODS[period], _dt.timezone.utc).strftime(fmt)
              for a in edges[:-1]]
    return list(zip(edges[:-1], edges[1:])), labels


def chunk_bounds(n: int, chunk: int) -> list[tuple[int, int]]:
    """``[(start, stop)]`` chunks of ``chunk`` rows; a last chunk shorter than half a chunk joins the one before.

    A band learned from chunks of 50 images does not fit the mean of 1 or 5 images
    (a clean stream of 51 frames alerted on its 1-frame tail), so a short tail is
    judged together with the chunk before it; a tail of at least half a chunk stays
    a chunk of its own.

    >>> chunk_bounds(101, 50), chunk_bounds(130, 50), chunk_bounds(20, 50)
    ([(0, 50), (50, 101)], [(0, 50), (50, 100), (100, 130)], [(0, 20)])
    """
    bounds = [(a, min(a + chunk, n)) for a in range(0, n, chunk)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < chunk / 2:
        bounds[-2:] = [(bounds[-2][0], n)]
    return bounds


def _category(table: pd.DataFrame, col: str) -> list[str]:
    if col == "resolution":
        return [f"{w}x{h}" for w, h in zip(table["width"], table["height"])]
    return [str(v) for v in table[col]]


def _unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm."""
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def semantic_distances(embeddings: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """``1 - max_c <e, c>`` with L2-normalised embeddings and centres (the write-up's dot product)."""
    return 1.0 - (_unit(embeddings) @ _unit(centres).T).max(axis=1)


@dataclass
class DriftMonitor:
    """Compare batches (chunks of a stream) with a baseline; calibrated alerts.

    Parameters
    ----------
    chunk : int
        Images per chunk, for calibration (baseline chunks) and monitoring.
    features : tuple of str
        Numeric profile columns to test (default: the six whylogs HSB statistics).
    stats : tuple of str
        Extra calibrated statistics per feature, from ``NUMERIC_STATS`` (``ks``,
        ``kl``, ``js``, ``hellinger``, ``intersection``, ``psi``); each alerts above
        ``mean + k * std`` of its leave-one-chunk-out baseline values. The chunk-mean
        check and the raw KS p-value are always reported.
    k : float or "auto"
        Width of the calibrated bands, in baseline chunk standard deviations.
        ``"auto"`` (default) uses a prediction interval for a new chunk given the
        ``n`` baseline chunks, with the false-alarm rate ``alpha`` shared by the
        ``m`` calibrated checks of a chunk: ``k = t(1 - alpha / 2m; n - 1) * sqrt(1 + 1/n)``
        (about 4.4 for 8 chunks and 7 checks). A fixed ``k = 3`` is NannyML's band.
    alpha : float
        Target probability that a chunk of an unchanged stream raises any alert
        (used by ``k="auto"``).
    metadata : tuple of str
        Categorical checks (``format``, ``mode``, ``resolution``): chi-square; a value
        never seen in the baseline always alerts.
    semantic : bool
        Test CNN embeddings (profiles must hold them): KS on the distance to the
        nearest baseline centre, and an MMD permutation test.
    n_clusters : int
        Centres by k-means on the baseline when it has no class labels.
    n_permutations : int
        MMD permutations.
    min_change : float, dict or None
        Smallest change of a chunk mean (feature units; hue in turns) or of the
        layout statistic that can alert, beside the statistical band: a float for
        every check, a dict per check name (missing names: 0), or None for the
        defaults (``DEFAULT_MIN_CHANGE``: 0.04 for the HSB statistics, 0.05 for the
        layout; chosen on the development stream, see README).
    layout : bool
        The scene-layout check (needs profiles with thumbnails).

    Examples
    --------
    >>> import numpy as np
    >>> from hybrid_drift.monitor import profile_images
    >>> imgs = np.random.default_rng(0).integers(100, 120, (40, 16, 16, 3), dtype=np.uint8)
    >>> mon = DriftMonitor(chunk=10).fit(profile_images(imgs))
    >>> dusk = profile_images((imgs[:10] * 0.5).astype(np.uint8))
    >>> bool(mon.check(dusk).set_index("check").loc["brightness_mean:mean", "alert"])
    True
    """

    chunk: int = 50
    features: tuple = HSB_FEATURES
    stats: tuple = ()
    k: float | str = "auto"
    alpha: float = 0.05
    metadata: tuple = METADATA
    semantic: bool = False
    n_clusters: int = 5
    n_permutations: int = 100
    seed: int = 0
    min_change: float | dict | None = None
    layout: bool = True
    thresholds_: dict = field(default_factory=dict, init=False, repr=False)

    def _floor(self, check: str) -> float:
        if self.min_change is None:
            return DEFAULT_MIN_CHANGE.get(check, 0.0)
        if isinstance(self.min_change, dict):
            return float(self.min_change.get(check, 0.0))
        return float(self.min_change)

    def validate(self) -> None:
        """Check the settings (ValueError or TypeError naming the parameter): :meth:`fit` does, and a caller
        can before any data is read."""
        def number(name, v, lo, hi, lo_open=False, hi_open=False):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or \
                    not ((v > lo) if lo_open else (v >= lo)) or not ((v < hi) if hi_open else (v <= hi)):
                raise ValueError(f"{name} must be a number in {'(' if lo_open else '['}{lo}, {hi}"
                                 f"{')' if hi_open else ']'}, got {v!r}")
        if isinstance(self.chunk, bool) or not isinstance(self.chunk, (int, np.integer)) or self.chunk < 2:
            raise ValueError(f"chunk must be an int >= 2, got {self.chunk!r}")
        if self.k != "auto":
            number("k", self.k, 0, np.inf, lo_open=True, hi_open=True)
        number("alpha", self.alpha, 0, 1, lo_open=True, hi_open=True)
        floors = self.min_change.values() if isinstance(self.min_change, dict) else \
            ([] if self.min_change is None else [self.min_change])
        for v in floors:
            number("min_change", v, 0, np.inf, hi_open=True)
        for s in self.stats:
            if s not in NUMERIC_STATS:
                raise ValueError(f"unknown statistic {s!r}; choose from {NUMERIC_STATS}")

    # ------------------------------------------------------------------ fit
    def fit(self, baseline: BatchProfile, labels=None) -> DriftMonitor:
        """Learn the reference and the alert thresholds from a baseline profile."""
        self.validate()
        t = baseline.table[baseline.table["error"].isna()].reset_index(drop=True)
        n = len(t)
        if n < 2 * self.chunk:
            raise ValueError(f"the baseline has {n} readable images: at least 2 chunks of {self.chunk} are "
                             "needed to calibrate thresholds (use a smaller --chunk or a longer baseline)")
        missing = [f for f in self.features if f not in t.columns]
        if missing:
            raise ValueError(f"features {missing} are not in the profile; available: {baseline.numeric_features}")
        self.baseline_ = t
        self.grey_tolerance_ = baseline.grey_tolerance
        if self.semantic:
            if baseline.embeddings is None:
                raise ValueError("semantic=True needs embeddings in the profiles (profile with an embedder)")
            self._fit_semantic(baseline.embeddings, labels)
        # chunk-to-chunk variation: each baseline chunk against the rest of the baseline
        starts = list(range(0, n - self.chunk + 1, self.chunk))
        cols = list(self.features) + (["semantic_distance"] if self.semantic else [])
        base_vals = t[list(self.features)].copy()
        if self.semantic:
            base_vals["semantic_distance"] = self.base_dist_
        means = np.array([[base_vals[c].iloc[a:a + self.chunk].mean() for c in cols] for a in starts])
        self.chunk_means_ = pd.DataFrame(means, columns=cols)
        self.ref_mean_ = self.chunk_means_.mean()
        self.ref_sd_ = self.chunk_means_.std(ddof=1).clip(lower=1e-12)
        self.base_values_ = base_vals
        samples: dict[str, list[float]] = {}
        for a in starts:
            inside = np.zeros(n, bool)
            inside[a:a + self.chunk] = True
            for name, (stat, _p) in self._numeric(t[~inside], t[inside]).items():
                samples.setdefault(name, []).append(stat)
        if self.layout:
            if baseline.thumbnails is None:
                raise ValueError("layout=True needs profiles with thumbnails (profile the images with this "
                                 "version, or pass layout=False)")
            th = baseline.thumbnails
            self.layout_ref_ = np.median(th, axis=0)
            samples["layout"] = [_ncc_distance(np.median(np.delete(th, np.s_[a:a + self.chunk], axis=0), axis=0),
                                               np.median(th[a:a + self.chunk], axis=0)) for a in starts]
        self.chunk_stats_ = {k: np.asarray(v) for k, v in samples.items()}
        self.k_ = self._band_width(len(starts), len(cols) + len(self.chunk_stats_))
        self.thresholds_ = {k: float(v.mean() + self.k_ * v.std(ddof=1)) for k, v in self.chunk_stats_.items()}
        self.categories_ = {c: set(_category(t, c)) for c in self.metadata}
        return self

    def _band_width(self, n_chunks: int, n_checks: int) -> float:
        if self.k != "auto":
            return float(self.k)
        from scipy.stats import t
        return float(t.ppf(1 - self.alpha / (2 * max(n_checks, 1)), df=n_chunks - 1) * np.sqrt(1 + 1 / n_chunks))

    def _fit_semantic(self, emb, labels):
        e = _unit(emb)
        if labels is not None:
            labels = np.asarray(labels)
            self.centres_ = np.stack([e[labels == c].mean(0) for c in np.unique(labels)])
        else:
            from sklearn.cluster import KMeans
            km = KMeans(n_clusters=min(self.n_clusters, len(e)), n_init=10, random_state=self.seed).fit(e)
            self.centres_ = km.cluster_centers_
        self.base_dist_ = semantic_distances(emb, self.centres_)
        from sklearn.decomposition import PCA
        self.mmd_pca_ = PCA(n_components=min(32, e.shape[1], len(e)), random_state=self.seed).fit(e)
        self.base_emb_ = self.mmd_pca_.transform(e)

    def _numeric(self, base: pd.DataFrame, batch: pd.DataFrame) -> dict[str, tuple[float, float]]:
        out = {}
        for f in self.features:
            for s in self.stats:
                out[f"{f}:{s}"] = numeric_stat(s, base[f], batch[f])
        return out

    # ------------------------------------------------------------------ check
    def _note_grey_tolerance(self, batch: BatchProfile) -> None:
        """Say once when the batch was profiled with another grey tolerance than the baseline (a profile
        saved before the tolerance has 0): near-grey pixels' hue and saturation are then counted differently."""
        base, got = getattr(self, "grey_tolerance_", None), batch.info.get("grey_tolerance")
        if base is None or got is None or int(base) == int(got) or getattr(self, "_tolerance_noted", False):
            return
        self._tolerance_noted = True
        log.warning("the batch was profiled with grey_tolerance=%d, the baseline with %d: hue and saturation of "
                    "near-grey pixels are counted differently, so they can drift for that alone (profile both "
                    "with the same profile_images(..., grey_tolerance=))", int(got), int(base))

    def check(self, batch: BatchProfile) -> pd.DataFrame:
        """One row per check: ``check, statistic, p_value, threshold, alert`` (+ ``detail``)."""
        if not hasattr(self, "baseline_"):
            from ..exceptions import NotFittedError
            raise NotFittedError("This DriftMonitor is not fitted yet: call fit(baseline_profile) first.")
        self._note_grey_tolerance(batch)
        t = batch.table[batch.table["error"].isna()].reset_index(drop=True)
        rows = []
        if len(t) == 0:
            return pd.DataFrame([{"check": "readable_images", "statistic": 0.0, "p_value": np.nan,
                                  "threshold": 0.0, "alert": True, "detail": "no readable image in the batch"}])
        vals = t[list(self.features)].copy()
        if self.semantic:
            if batch.embeddings is None:
                raise ValueError("this monitor checks semantic drift: the batch profile needs embeddings")
            vals["semantic_distance"] = semantic_distances(batch.embeddings, self.centres_)
        for c in vals.columns:
            change = vals[c].mean() - self.ref_mean_[c]
            z = change / self.ref_sd_[c]
            floor = self._floor(c)
            d_ks, p_ks = ks(self.base_values_[c], vals[c])
            rows.append({"check": f"{c}:mean", "statistic": float(z), "p_value": p_ks, "threshold": self.k_,
                         "floor": float(floor / self.ref_sd_[c]) if self.ref_sd_[c] > 0 else 0.0,
                         "alert": bool(abs(z) > self.k_ and abs(change) > floor),
                         "detail": f"chunk mean {vals[c].mean():.4g} vs baseline chunks "
                                   f"{self.ref_mean_[c]:.4g} ± {self.ref_sd_[c]:.2g} (change {change:+.3g}, "
                                   f"min_change {floor:g}); raw KS D={d_ks:.3f}"})
        for name, (stat, p) in self._numeric(self.baseline_, t).items():
            thr = self.thresholds_[name]
            rows.append({"check": name, "statistic": stat, "p_value": p, "threshold": thr,
                         "alert": bool(stat > thr), "detail": "leave-one-chunk-out calibrated"})
        if self.layout:
            if batch.thumbnails is None:
                raise ValueError("this monitor checks the scene layout: the batch profile needs thumbnails")
            stat = _ncc_distance(self.layout_ref_, np.median(batch.thumbnails, axis=0))
            thr, floor = self.thresholds_["layout"], self._floor("layout")
            rows.append({"check": "layout:ncc", "statistic": stat, "p_value": np.nan, "threshold": max(thr, floor),
                         "alert": bool(stat > thr and stat > floor),
                         "detail": f"1 - NCC of the chunk's median thumbnail vs the baseline's (band {thr:.3g}, "
                                   f"min_change {floor:g})"})
        for c in self.metadata:
            cats = _category(t, c)
            stat, p, n_unique = chi2_categorical(_category(self.baseline_, c), cats)
            new = sorted(set(cats) - self.categories_[c])
            rows.append({"check": f"{c}:chi2", "statistic": stat, "p_value": p, "threshold": np.nan,
                         "alert": bool(new), "detail": (f"new values {new[:5]}" if new else "") +
                         f" ({n_unique} distinct)"})
        if self.semantic:
            if len(t) >= 2:
                mmd, pm = mmd_permutation(self.base_emb_, self.mmd_pca_.transform(_unit(batch.embeddings)),
                                          n_permutations=self.n_permutations, seed=self.seed)
                rows.append({"check": "embeddings:mmd", "statistic": mmd, "p_value": pm, "threshold": np.nan,
                             "alert": False, "detail": "raw permutation p-value (not calibrated)"})
        return pd.DataFrame(rows)

    def run(self, stream: BatchProfile, bounds=None, labels=None) -> pd.DataFrame:
        """Check every consecutive chunk of a stream; one row per chunk and check.

        Chunks as :func:`chunk_bounds` cuts them (a short tail joins the last chunk), or as
        ``bounds`` gives them (``[(start, stop)]``, e.g. :func:`time_bounds`: one chunk per hour or
        day), with ``labels`` naming each (a ``period`` column). Columns: ``chunk, start, stop,
        check, statistic, p_value, threshold, floor, alert, detail``.
        """
        frames = []
        for i, (a, b) in enumerate(bounds if bounds is not None else chunk_bounds(len(stream.table), self.chunk)):
            df = self.check(stream.slice(a, b))
            df.insert(0, "chunk", i)
            df.insert(1, "start", a)
            df.insert(2, "stop", b)
            if labels is not None:
                df.insert(3, "period", labels[i])
            frames.append(df)
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def explain(self, results: pd.DataFrame, stream: BatchProfile, top: int = 5) -> list[dict]:
        """Why each alerting chunk alerted: the checks that fired (statistic against the band) and,
        per check, the ``top`` images of the chunk that moved it most.

        Per check, an image's value: a feature's distance from the baseline mean in the direction
        the chunk moved (``<feature>:mean`` and the calibrated statistics); the image's own layout
        distance (``layout:ncc``); 1 for an image with a metadata value never seen in the baseline.
        Returns one dict per alerting chunk: ``chunk, start, stop, checks: [{check, statistic,
        threshold, detail, images: [{path, value}]}]``.
        """
        out = []
        for (chunk, a, b), g in results.groupby(["chunk", "start", "stop"], sort=True):
            fired = g[g["alert"]]
            if fired.empty:
                continue
            part = stream.slice(int(a), int(b))
            t = part.table[part.table["error"].isna()].reset_index(drop=True)
            checks = []
            for _, r in fired.iterrows():
                name = str(r["check"])
                values = self._image_values(name, float(r["statistic"]), t, part)
                images = []
                if values is not None and len(values):
                    order = np.argsort(-values, kind="stable")[:top]
                    images = [{"path": str(t["path"].iloc[i]), "value": float(values[i])} for i in order]
                checks.append({"check": name, "statistic": float(r["statistic"]), "threshold": float(r["threshold"]),
                               "detail": str(r.get("detail", "")), "images": images})
            out.append({"chunk": int(chunk), "start": int(a), "stop": int(b), "checks": checks})
        return out

    def _image_values(self, check: str, statistic: float, t: pd.DataFrame, part: BatchProfile):
        """How much each readable image of a chunk moved ``check`` (higher = more)."""
        feature, _, kind = check.partition(":")
        if kind == "ncc" and feature == "layout" and part.thumbnails is not None:
            return np.array([_ncc_distance(self.layout_ref_, th) for th in part.thumbnails])
        if kind == "chi2" and feature in self.categories_:
            cats = _category(t, feature)
            return np.array([float(c not in self.categories_[feature]) for c in cats])
        if feature == "semantic_distance" and self.semantic and part.embeddings is not None:
            vals = semantic_distances(part.embeddings, self.centres_)
        elif feature in t.columns:
            vals = t[feature].to_numpy(dtype=float)
        else:
            return None
        ref = float(self.ref_mean_.get(feature, np.nanmean(vals)))
        direction = np.sign(statistic) if kind == "mean" else np.sign(np.nanmean(vals) - ref) or 1.0
        return direction * (vals - ref)

    @staticmethod
    def summary(results: pd.DataFrame) -> pd.DataFrame:
        """One row per chunk: number of alerts and the checks that alerted."""
        g = results.groupby("chunk")
        cols = {"period": g["period"].first()} if "period" in results else {}
        return pd.DataFrame({**cols, "start": g["start"].first(), "stop": g["stop"].first(),
                             "alerts": g["alert"].sum().astype(int),
                             "checks": g.apply(lambda d: ", ".join(d.loc[d["alert"], "check"]),
                                               include_groups=False)}).reset_index()
