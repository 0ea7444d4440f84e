"""Detector branches: a feature extractor paired with a scorer, with the scorer's verbs on images.

Every branch implements the same small contract, so fusion, the detector, the
benchmark and the CLI treat them alike and a new branch touches no other code:

* ``prepare(img)`` — per-image work in the loader's worker threads (HSV, resize),
  on ``img.at_side(self.min_side)``: each branch names the shorter side it needs,
  the loader decodes each size the branches name (JPEG: in the DCT domain);
* ``features(prepared, images)`` — a batch of prepared items → ``(n, d)`` features;
* ``make_scorer()`` — a fresh, unfitted :class:`~hybrid_drift.scorers.BaseScorer`;
* optionally ``reference_extra(items)`` — extra training rows made from the
  reference images (the CNN branch's moved-foreground copies).

The branch's threshold lives in its :class:`~hybrid_drift.calibration.Calibration`
(``calibration_``) and nowhere else. ``fit`` / ``calibrate`` / ``score_samples`` /
``decision_function`` / ``predict`` then work on image inputs (paths, folders,
arrays, bytes, videos) for each branch alone.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import replace
from typing import Any, ClassVar

import numpy as np

from .calibration import Calibration, CalibrationRule, crossfit_scores
from .exceptions import ModelFormatError, NotFittedError
from .features.cache import FeatureCache
from .features.colour import ColourFeatures
from .io.decode import DEFAULT_MAX_PIXELS, DEFAULT_MIN_SIDE, DecodedImage
from .scorers import BaseScorer, HistogramScorer, MinMaxScorer, PCAReconstructionScorer, scorer_from_state

__all__ = ["Branch", "ColourBranch", "CNNBranch", "MinMaxBranch", "BRANCHES"]

log = logging.getLogger(__name__)

#: name -> class, used to rebuild saved branches without pickle.
BRANCHES: dict[str, type] = {}


def _hsv(img: DecodedImage, min_side: int) -> np.ndarray:
    """HSV of ``img.at_side(min_side)``, computed once and shared by every colour-based branch."""
    rgb = img.at_side(min_side)
    key = ("hsv", rgb.shape)
    if key not in img.cache:
        import cv2
        img.cache[key] = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    return img.cache[key]


class Branch:
    """Base class of detector branches (see module docstring for the contract).

    A branch pairs a feature extractor with a scorer (fits, scores) and a
    :class:`~hybrid_drift.calibration.Calibration` (decides). ``fit`` sets the
    calibration by time-blocked cross-fitting on the reference images, so a fitted
    branch can ``predict`` at once; ``calibrate`` adds held-out images.

    Attributes
    ----------
    scorer_ : BaseScorer
        The fitted scorer (after ``fit``).
    calibration_ : Calibration
        The branch's threshold: the only place it is stored.
    oof_scores_ : ndarray
        Out-of-sample scores of the reference images from cross-fitting (pooled
        with held-out scores by ``calibrate``).
    """

    #: default column name in result tables
    default_name: ClassVar[str] = "branch"
    #: shorter side (pixels) of the image ``prepare`` works on (see ``DecodedImage.at_side``)
    min_side: int = DEFAULT_MIN_SIDE
    #: calibration method this branch always uses (None = the detector's choice)
    calibration_method: ClassVar[str | None] = None
    _config_keys: ClassVar[tuple[str, ...]] = ()
    #: multiplier of the conformal threshold (see ``choose_threshold``); instances may set ``margin``
    margin: float = 1.0

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        BRANCHES[cls.__name__] = cls

    @property
    def name(self) -> str:
        return getattr(self, "_name", None) or self.default_name

    @name.setter
    def name(self, value: str):
        self._name = value

    # --- contract -------------------------------------------------------------------
    def prepare(self, img: DecodedImage) -> Any:  # pragma: no cover - abstract
        """Per-image work, run in the loader's worker threads (e.g. HSV, resize)."""
        raise NotImplementedError

    def features(self, prepared: list, images: list[DecodedImage]) -> np.ndarray:  # pragma: no cover
        """Turn a batch of ``prepare`` results into an ``(n, d)`` feature matrix."""
        raise NotImplementedError

    def make_scorer(self) -> BaseScorer:  # pragma: no cover - abstract
        """A fresh, unfitted scorer for this branch's features."""
        raise NotImplementedError

    def explain_features(self, prepared: list, images: list[DecodedImage]) -> tuple[np.ndarray, list | None]:
        """Features of a batch (as :meth:`features`) and, per image, a 2-D map of where its score comes
        from (rows top to bottom, columns left to right, covering the whole image), or None when the
        branch has no spatial view. Needs a fitted branch."""
        return self.features(prepared, images), None

    @classmethod
    def _check_saved_config(cls, cfg: dict) -> None:
        """Raise ValueError for a saved setting out of its range (model files are data)."""

    def reference_extra(self, items: list, **load_kw) -> tuple[np.ndarray, np.ndarray] | None:
        """Optional: extra training rows made from the readable reference ``items`` (in feature-row order).

        Returns ``(features, source_rows)`` or None. The CNN branch returns its
        reference frames with their moving foreground moved (see
        :mod:`hybrid_drift.features.foreground`).
        """
        return None

    # --- runtime ------------------------------------------------------------------------
    #: how the branch runs here (a :class:`~hybrid_drift.runtime.Runtime`); None: nothing to set
    runtime = None

    def bind(self, runtime) -> Branch:
        """Run on ``runtime`` from now on (branches with runtime settings override this). Returns self."""
        return self

    # --- configuration ----------------------------------------------------------------
    def get_config(self) -> dict:
        """The constructor arguments as JSON-able values (saved with the model)."""
        cfg = {k: getattr(self, k) for k in self._config_keys}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def _rule(self, rule: CalibrationRule | None) -> CalibrationRule:
        rule = rule or CalibrationRule()
        if self.calibration_method is not None and rule.method != self.calibration_method:
            rule = replace(rule, method=self.calibration_method)
        return rule

    # --- feature-level verbs (used by the detector and the benchmark) --------------------
    @property
    def fitted(self) -> bool:
        return getattr(self, "scorer_", None) is not None

    def _check_fitted(self):
        if not self.fitted:
            raise NotFittedError(f"This {type(self).__name__} is not fitted yet: call fit() with normal images first.")

    def _check_calibrated(self):
        self._check_fitted()
        if getattr(self, "calibration_", None) is None:
            raise NotFittedError(f"This {type(self).__name__} has no threshold yet: call calibrate() with "
                                 "held-out normal images (or fit with cross-fitting).")

    def fit_features(self, F: np.ndarray, *, extra: np.ndarray | None = None, extra_src=None,
                     rule: CalibrationRule | None = None, folds=None):
        """Fit the scorer on reference features ``F`` (time order) plus ``extra`` rows, and calibrate.

        With a cross-fitting rule (the default), the threshold comes from
        out-of-sample scores of ``F`` by time-blocked cross-fitting, or, with ``folds``
        (a list of fold-label arrays, one label per row of ``F``; see
        :class:`~hybrid_drift.reference_order.CrossfitPlan`), by cross-fitting over each
        set of folds, each row keeping its largest out-of-sample score. Returns self.
        """
        rule = self._rule(rule)
        F = np.asarray(F)
        train = F if extra is None or len(extra) == 0 else np.concatenate([F, extra])
        self.scorer_ = self.make_scorer().fit(train)
        self.calibration_ = None
        self.oof_scores_ = np.empty(0)
        if rule.method == "fixed":
            self.calibration_ = Calibration.from_scores(np.zeros(1), rule=rule)
        elif rule.crossfits:
            if len(F) < rule.blocks:
                raise ValueError(f"{self.name}: {len(F)} readable reference images are too few to set a threshold "
                                 f"by cross-fitting over {rule.blocks} time blocks; give at least {rule.blocks}")
            has_extra = extra is not None and len(extra) > 0
            runs = [crossfit_scores(self.make_scorer, F, blocks=rule.blocks, extra=extra if has_extra else None,
                                    extra_src=extra_src if has_extra else None, max_rows=rule.max_rows,
                                    folds=f)[0] for f in (folds or [None])]
            self.oof_scores_ = np.max(runs, axis=0)
            self.calibration_ = Calibration.from_scores(self.oof_scores_, rule=rule, margin=self.margin,
                                                        source="crossfit")
        log.info("%s: fitted on %d reference rows (+%d extra); threshold %s", self.name, len(F),
                 0 if extra is None else len(extra),
                 "none yet" if self.calibration_ is None else f"{self.calibration_.threshold:.4g}")
        return self

    def calibrate_scores(self, scores, y=None, *, rule: CalibrationRule | None = None):
        """Set the threshold from out-of-sample ``scores`` (held-out images), pooled with the
        cross-fitted reference scores when there are any. Returns self."""
        self._check_fitted()
        rule = self._rule(rule)
        s = np.asarray(scores, dtype=np.float64)
        oof = getattr(self, "oof_scores_", np.empty(0))
        pooled = rule.method not in ("f1", "fixed") and len(oof) > 0
        if pooled:
            y0 = np.zeros(len(s), int) if y is None else np.asarray(y).astype(int)
            s, y = np.concatenate([oof, s]), (None if y is None else np.concatenate([np.zeros(len(oof), int), y0]))
        self.calibration_ = Calibration.from_scores(s, y, rule=rule, margin=self.margin,
                                                    source="crossfit+held-out" if pooled else "held-out")
        return self

    def score_features(self, F: np.ndarray) -> np.ndarray:
        """Scores (higher = stranger) of already extracted features."""
        self._check_fitted()
        return self.scorer_.score_samples(F)

    @property
    def threshold_(self) -> float:
        """The calibrated threshold (read from ``calibration_``, its only owner)."""
        self._check_calibrated()
        return self.calibration_.threshold

    # --- image-level verbs ------------------------------------------------------------
    def _extract(self, X, **load_kw):
        from .pipeline import extract
        return extract([self], X, **load_kw)

    def fit(self, X, *, rule: CalibrationRule | None = None, order: str = "auto", **load_kw):
        """Fit on normal reference images (paths, a folder, arrays, bytes or a video) and set the
        threshold by cross-fitting. Returns self.

        ``order`` puts the inputs in time order as :meth:`HybridDetector.fit` does; when
        the result does not look like time on this branch's features, cross-fitting
        holds out groups of similar images instead (``order_check_`` says which).
        Inputs that cannot be read are logged and skipped for fitting; at least one
        must be readable.
        """
        from .io.order import order_inputs
        from .io.sources import expand_inputs
        from .reference_order import plan_crossfit
        items, _ = order_inputs(expand_inputs(X), order)
        ext = self._extract(items, **load_kw)
        if ext.n_ok == 0:
            raise ValueError(f"no readable image among {len(ext.ids)} inputs; first error: {ext.first_error()}")
        plan = plan_crossfit(ext.features[self.name], blocks=self._rule(rule).blocks)
        self.order_check_ = plan.check
        if plan.check.action == "reordered":
            log.warning("%s: %s", self.name, plan.check.sentence())
        ext, items, _ = plan.apply(ext, items)
        extra = self.reference_extra([it for it, ok in zip(items, ext.ok) if ok], **load_kw)
        return self.fit_features(ext.features[self.name], extra=None if extra is None else extra[0],
                                 extra_src=None if extra is None else extra[1], rule=rule, folds=plan.folds)

    def score_samples(self, X, **load_kw) -> np.ndarray:
        """One score per input (higher = stranger); NaN where the input could not be read."""
        self._check_fitted()
        ext = self._extract(X, **load_kw)
        return ext.expand(self.score_features(ext.features[self.name]) if ext.n_ok else np.empty(0))

    def calibrate(self, X, y=None, *, rule: CalibrationRule | None = None, **load_kw):
        """Set the threshold from held-out images (labels optional, see ``choose_threshold``)."""
        return self.calibrate_scores(self.score_samples(X, **load_kw), y, rule=rule)

    def decision_function(self, X, **load_kw) -> np.ndarray:
        """Score minus threshold: > 0 means outlier (NaN for unreadable inputs)."""
        self._check_calibrated()
        return self.score_samples(X, **load_kw) - self.calibration_.threshold

    def predict(self, X, **load_kw) -> np.ndarray:
        """1 = outlier, 0 = normal, -1 = input could not be read."""
        d = self.decision_function(X, **load_kw)
        return np.where(np.isnan(d), -1, (d > 0).astype(int))

    # --- persistence ---------------------------------------------------------------
    def get_state(self):
        """``(json_state, arrays)`` describing the fitted branch, for :meth:`from_state`."""
        self._check_calibrated()
        state, arrays = self.scorer_.get_state()
        return {"class": type(self).__name__, "name": self.name, "config": self.get_config(),
                "scorer": state, "calibration": self.calibration_.get_state()}, \
            {**arrays, "oof_scores_": np.asarray(self.oof_scores_, dtype=np.float64)}

    @classmethod
    def from_state(cls, state: dict, arrays: dict):
        """Rebuild a fitted branch from :meth:`get_state` (checked: model files are data)."""
        if not isinstance(state, dict) or not isinstance(state.get("config"), dict):
            raise ModelFormatError("branch state must be an object with a 'config' object")
        bcls = BRANCHES.get(state.get("class"))
        if bcls is None:
            raise ModelFormatError(f"unknown branch class {state.get('class')!r}")
        name = state.get("name")
        if not isinstance(name, str) or not name or len(name) > 64:
            raise ModelFormatError(f"bad branch name {name!r}")
        cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in state["config"].items()}
        unknown = set(cfg) - set(bcls._config_keys)
        if unknown:
            raise ModelFormatError(f"branch {name!r}: unknown settings {sorted(unknown)}")
        bcls._check_saved_config(cfg)
        obj = bcls(**cfg)
        obj.name = name
        obj.scorer_ = scorer_from_state(state["scorer"], arrays)
        obj.calibration_ = Calibration.from_state(state.get("calibration"))
        oof = np.asarray(arrays.get("oof_scores_", np.empty(0)), dtype=np.float64)
        if oof.ndim != 1 or not np.isfinite(oof).all():
            raise ModelFormatError(f"branch {name!r}: oof_scores_ must be a finite vector")
        obj.oof_scores_ = oof
        runtime = state.get("runtime")
        if isinstance(runtime, dict) and isinstance(runtime.get("backend"), str):
            obj.calibrated_backend_ = runtime["backend"]
        return obj


class ColourBranch(Branch):
    """The cheap branch: HSB histograms compared with a reference learned from normals.

    Parameters
    ----------
    bins, grid, joint_hs, hs_bins
        Histogram layout, see :class:`~hybrid_drift.features.ColourFeatures`. The
        default 4x4 grid lets the branch see *where* colours are (a flipped frame,
        a colour change in part of the frame); ``grid=(1, 1)`` is the whylogs-style
        whole-image profile.
    distance : {"intersection", "hellinger", "kl", "js", "chi2"}
        Histogram distance to the reference.
    combine : {"channel_mean", "max", "mean"}
        How per-cell distances become one score (see
        :class:`~hybrid_drift.scorers.HistogramScorer`). The default averages each
        channel over the grid cells, so one cell with a person in it does not
        dominate; ``"max"`` (version 0.1's behaviour) lets it.
    margin : float
        How many times stranger than the strangest cross-fitted reference period
        an image must be to be flagged (multiplies the conformal threshold). The
        colour branch is for large colour changes (a cast, lost colour, a negative,
        rain): a cloud passing shifts every cell's hue by a few percent, which a
        short reference period never shows (crossroad dev splits: up to 1.6x the
        reference), so the default is 2.5; the CNN branch catches the subtle changes.
    min_side : int
        Histograms are computed on the image reduced by the largest power of 2
        that keeps its shorter side >= ``min_side`` (default 128: a 768x576 frame
        is counted at 192x144). A colour-only run then decodes JPEGs straight to
        that size in the DCT domain, which is most of the branch's speed.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> normals = [rng.integers(90, 110, (32, 32, 3), dtype=np.uint8) for _ in range(20)]
    >>> b = ColourBranch(bins=16).fit(normals)
    >>> red = np.zeros((32, 32, 3), np.uint8); red[..., 0] = 255
    >>> b.predict([normals[0], red]).tolist()
    [0, 1]
    """

    default_name = "colour"
    _config_keys = ("bins", "grid", "joint_hs", "hs_bins", "distance", "combine", "margin", "min_side")

    def __init__(self, bins: int = 32, grid=(4, 4), joint_hs: bool = False, hs_bins=(12, 8),
                 distance: str = "intersection", combine: str = "channel_mean", margin: float = 2.5,
                 min_side: int = 128):
        self.bins, self.grid, self.joint_hs, self.hs_bins = bins, tuple(grid), joint_hs, tuple(hs_bins)
        self.distance, self.combine, self.margin = distance, combine, margin
        if int(min_side) < 1:
            raise ValueError(f"min_side must be >= 1, got {min_side}")
        self.min_side = int(min_side)
        self._feat = ColourFeatures(bins=bins, grid=self.grid, joint_hs=joint_hs, hs_bins=self.hs_bins)

    @classmethod
    def _check_saved_config(cls, cfg):
        grid, bins = cfg.get("grid", (4, 4)), cfg.get("bins", 32)
        if not (isinstance(grid, tuple) and len(grid) == 2 and all(isinstance(g, int) and 1 <= g <= 64 for g in grid)):
            raise ValueError(f"grid must be two ints in 1..64, got {grid!r}")
        if isinstance(bins, bool) or not isinstance(bins, int) or not 2 <= bins <= 256:
            raise ValueError(f"bins must be an int in 2..256, got {bins!r}")
        m = cfg.get("margin", 2.5)
        if isinstance(m, bool) or not isinstance(m, (int, float)) or not 1 <= m < 1e6:
            raise ValueError(f"margin must be a number >= 1, got {m!r}")

    @property
    def feature_extractor(self) -> ColourFeatures:
        return self._feat

    def prepare(self, img):
        return self._feat.transform(hsv=_hsv(img, self.min_side))

    def features(self, prepared, images):
        return np.stack(prepared).astype(np.float32) if prepared else np.empty((0, self._feat.n_features), np.float32)

    def explain_features(self, prepared, images):
        """Per grid cell, what it adds to the score: with ``channel_mean`` the cell's distance in the
        scoring channel's unit (the map's mean is the score); with ``max`` the cell's largest z-score."""
        self._check_fitted()
        F = self.features(prepared, images)
        if not len(F):
            return F, []
        g = self.scorer_.group_contributions(F)
        per_cell = 3 + int(self.joint_hs)
        cells = g.reshape(len(F), self.grid[0], self.grid[1], per_cell)
        maps = cells.sum(axis=3) if self.combine == "channel_mean" else cells.max(axis=3)
        return F, list(maps)

    def make_scorer(self):
        per_cell = 3 + int(self.joint_hs)
        n_groups = len(self._feat.group_sizes())
        return HistogramScorer(distance=self.distance, group_bounds=self._feat.group_bounds().tolist(),
                               group_channels=[g % per_cell for g in range(n_groups)], combine=self.combine)


class MinMaxBranch(Branch):
    """The trivial whylogs-profile baseline: per-image pixel min/max of H, S, B vs the training range.

    Kept to show why the Tokyo study rejects it: almost every frame spans the full
    range of every channel, so it almost never flags anything.
    """

    default_name = "minmax"
    min_side = 128  # the colour branch's working size
    calibration_method = "fixed"  # the range itself is the rule: flagged when outside it

    def prepare(self, img):
        s = ColourFeatures.stats(hsv=_hsv(img, self.min_side))
        return s[[2, 3, 6, 7, 10, 11]]  # hue/sat/brightness min and max

    def features(self, prepared, images):
        return np.stack(prepared) if prepared else np.empty((0, 6), np.float32)

    def make_scorer(self):
        return MinMaxScorer()


class CNNBranch(Branch):
    """The expensive branch: pretrained CNN embedding → PCA reconstruction error.

    Parameters
    ----------
    backbone : str
        ``"efficientnet_lite0"`` (bundled offline, default) or ``"resnet18"``
        (torchvision ImageNet weights) or any registered backbone.
    weights : str, optional
        Local weights file for the backbone.
    pool : {"avg", "max", "avgmax"}
        Global pooling of each feature map (``"avg"`` = the study's global average pool).
    layers : tuple of str
        Feature maps pooled and concatenated. The default ``("block10", "head")``
        with ``pool="max"`` adds a mid-level EfficientNet-Lite0 block to the last
        map: on the crossroad set it finds blur (``downscale``) and small pasted
        objects that the last layer's average misses (see README, benchmark).
        The Tokyo study's branch is ``pool="avg", layers=("head",)``.
    image_size : int or (height, width), optional
        Network input; the whole frame is resized to it. Default ``(288, 384)``:
        half of a 768x576 frame, 4:3 like most fixed cameras. Larger inputs keep
        small objects and blur visible (crossroad set: recall of the CNN branch
        90.9% at 224x224 vs 100% at 288x384 on a second seed) at ~2.7x the cost.
    n_components : "auto", int or float
        PCA components (or variance fraction). ``"auto"`` (default): 150 as in the
        study when the reference has room for it, else half the training rows (a few
        dozen reference images still fit); ``scorer_.n_components_`` holds the number.
    augment : int
        Up to this many reference frames (evenly spread) get a copy with their own
        moving foreground (people, cars) pasted at new places, fitted with the
        reference (see :mod:`hybrid_drift.features.foreground`): a person walking
        where nobody walked during the reference period is then not an outlier.
        0 disables it. Costs one extra CNN pass per copy at fit time, none at scoring.
    batch_size, threads, device
        Inference settings, see :class:`~hybrid_drift.features.Embedder`.
    backend : {"auto", "torch", "onnxruntime", "openvino"}
        Inference runtime; ``"auto"`` = ONNX Runtime when installed (it is a dependency:
        the same features as PyTorch to float32 rounding, several times faster on a
        CPU), else PyTorch. A runtime setting: not saved with the model, but the model
        records which runtime its calibration was computed with and says so when
        scoring uses another.
    precision : {"fp32", "bf16"}
        ``"bf16"`` runs OpenVINO in bfloat16 (faster on CPUs with AVX-512 BF16, scores
        no longer equal fp32's): only when asked for; saved with the model.
    cache_dir : str or False, optional
        Feature cache location (content-keyed); ``None`` = ``$HYBRID_DRIFT_CACHE`` or
        ``~/.cache/hybrid_drift`` (``HYBRID_DRIFT_CACHE=off`` disables it); ``False`` disables it.
        The exported ONNX graph is cached there too (under ``onnx/``).
    """

    default_name = "cnn"
    _config_keys = ("backbone", "weights", "pool", "layers", "image_size", "n_components", "augment",
                    "batch_size", "threads", "device", "precision", "weights_sha256")

    def __init__(self, backbone: str = "efficientnet_lite0", weights: str | None = None, pool: str = "max",
                 layers=None, image_size=None, n_components="auto", augment: int = 1000, batch_size: int = 32,
                 threads: int | None = None, device: str = "auto", backend: str = "auto",
                 precision: str = "fp32", cache_dir=None, weights_sha256: str | None = None):
        from .features.cnn import Embedder
        if layers is None:
            layers = ("block10", "head") if backbone == "efficientnet_lite0" else ("head",)
        self.layers = tuple(layers)
        if image_size is None:
            image_size = (288, 384)
        self.image_size = tuple(image_size) if isinstance(image_size, (list, tuple)) else image_size
        self.backbone, self.weights, self.pool, self.n_components = backbone, weights, pool, n_components
        if isinstance(augment, bool) or not isinstance(augment, int) or augment < 0:
            raise ValueError(f"augment must be an int >= 0, got {augment!r}")
        self.augment = augment
        self.batch_size, self.threads, self.device, self.cache_dir = batch_size, threads, device, cache_dir
        self.backend, self.precision = backend, precision
        self.weights_sha256 = weights_sha256
        from .runtime import Runtime
        # the constructor's runtime settings, until a detector binds its own (HybridDetector(runtime=...))
        self._runtime = Runtime(backend=backend, device=device, threads=threads, cache=cache_dir)
        self.embedder = Embedder(backbone, weights=weights, pool=pool, layers=self.layers,
                                 image_size=self.image_size, batch_size=batch_size, threads=threads,
                                 device=device, backend=backend, precision=precision,
                                 cache_root=self._runtime.cache_root)
        self._cache = None
        self._checked = False

    @classmethod
    def _check_saved_config(cls, cfg):
        sha = cfg.get("weights_sha256")
        if not (isinstance(sha, str) and len(sha) == 64 and all(c in "0123456789abcdef" for c in sha)):
            raise ValueError(f"weights_sha256 must be a SHA-256 hex digest, got {sha!r}")
        w = cfg.get("weights")
        if w is not None and not isinstance(w, str):
            raise ValueError(f"weights must be a path or null, got {w!r}")
        for k in ("batch_size", "augment"):
            v = cfg.get(k, 1)
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 100_000:
                raise ValueError(f"{k} must be a small non-negative int, got {v!r}")
        size = cfg.get("image_size")
        sizes = size if isinstance(size, tuple) else (size,)
        if not all(isinstance(v, int) and 32 <= v <= 4096 for v in sizes):
            raise ValueError(f"image_size must be 32..4096 pixels, got {size!r}")

    def check_weights(self):
        """Make sure the weights loaded now are those the branch was fitted with (fails fast, before any
        image is decoded, naming both hashes)."""
        if self._checked:
            return
        sha = self.embedder.weights_sha256()
        if self.weights_sha256 is None:
            self.weights_sha256 = sha
        elif sha is not None and sha != self.weights_sha256:
            raise ModelFormatError(
                f"the {self.backbone} weights on this machine (sha256 {sha[:12]}…) differ from those "
                f"the model was fitted with ({self.weights_sha256[:12]}…): refit, or pass the original "
                "weights file")
        self._checked = True

    @property
    def runtime(self):
        """How this branch runs here (a :class:`~hybrid_drift.runtime.Runtime`; set by :meth:`bind`)."""
        return self._runtime

    def bind(self, runtime) -> CNNBranch:
        """Run on ``runtime`` (backend, device, threads, cache) from now on; returns self.

        A runtime setting: fp32 runtimes give the same features to float32 rounding, so a
        fitted model's thresholds stay valid (the model says so once when its calibration came
        from another runtime). A named runtime that is not installed, or ``device="cuda"``
        without a GPU, is an error here, and the branch keeps running as before.
        """
        self.embedder.bind(runtime)
        self._runtime = runtime
        self._cache = None  # the feature cache is keyed by runtime
        self._runtime_warned = False
        return self

    def set_backend(self, backend: str) -> CNNBranch:
        """Deprecated: ``bind(branch.runtime.replace(backend=...))``, or give the detector a runtime."""
        import warnings
        warnings.warn("CNNBranch.set_backend is deprecated; use bind(branch.runtime.replace(backend=...))",
                      DeprecationWarning, stacklevel=2)
        return self.bind(self._runtime.replace(backend=backend))

    @property
    def uses_content_hash(self) -> bool:
        """The loader computes file hashes only when a branch's cache needs them."""
        return self._runtime.cache_root is not None

    def _feature_cache(self):
        root = self._runtime.cache_root
        if root is None:
            return None
        if self._cache is None:
            self._cache = FeatureCache(root, {"backbone": self.backbone, "weights": self.weights_sha256,
                                              "pool": self.pool, "layers": list(self.layers),
                                              "size": list(self.embedder.image_size),
                                              "runtime": self.embedder.resolved_backend,
                                              "precision": self.precision, "version": 2})
        return self._cache

    @property
    def min_side(self) -> int:
        """The network input's shorter side: frames are decoded at least that large."""
        return int(min(self.embedder.image_size))

    def prepare(self, img):
        return self.embedder.preprocess(img.at_side(self.min_side))

    def features(self, prepared, images):
        self.check_weights()
        self._check_runtime()
        out = np.empty((len(prepared), self.embedder.dim), np.float32)
        cache = self._feature_cache()
        todo = []
        for i, img in enumerate(images):
            hit = cache.get(img.sha1, self.embedder.dim) if cache is not None else None
            if hit is not None:
                out[i] = hit
            else:
                todo.append(i)
        if todo:
            emb = self.embedder.embed(np.stack([prepared[i] for i in todo]))
            out[todo] = emb
            if cache is not None:
                for i, e in zip(todo, emb):
                    cache.put(images[i].sha1, e)
        return out

    def make_scorer(self):
        bounds = np.concatenate([[0], np.cumsum(self.embedder.layer_dims)]).tolist()
        return PCAReconstructionScorer(n_components=self.n_components, group_bounds=bounds)

    def explain_features(self, prepared, images):
        """Where the reconstruction error comes from: each pooled feature that fired *more* than the
        normal subspace explains (a positive standardised residual) gives its squared residual to the
        places of its feature map that made it (``max``: the arg-max location; ``avg``: every location
        in proportion to its activation); layers are added on the finest grid; the map is divided by
        the score, so it sums to at most the score. A negative residual (a usual activation missing)
        has no place of its own and is left out: with it, the arg-max of the map fell inside a pasted
        object's box for 77% of the crossroad test objects, without it for all 22 (18x24 grid).
        One forward pass that also returns the feature maps (no gradients); bypasses the feature
        cache."""
        self._check_fitted()
        self.check_weights()
        if not prepared:
            return np.empty((0, self.embedder.dim), np.float32), []
        F, fmaps = self.embedder.embed_maps(np.stack(prepared))
        res = self.scorer_.residuals(F)                              # (n, d)
        r2 = np.where(res > 0, res, 0.0) ** 2
        shapes = [m.shape[2:] for m in fmaps]
        gh, gw = max(s[0] for s in shapes), max(s[1] for s in shapes)
        out = np.zeros((len(F), gh, gw))
        offset = 0
        for m in fmaps:                                              # (n, C, h, w)
            n, C, h, w = m.shape
            flat = m.reshape(n, C, h * w)
            parts = {"avg": ["avg"], "max": ["max"], "avgmax": ["avg", "max"]}[self.pool]
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
                    import cv2
                    contrib = np.stack([cv2.resize(c, (gw, gh), interpolation=cv2.INTER_NEAREST)
                                        for c in contrib]) * (h * w) / (gh * gw)
                out += contrib
        score = np.sqrt((res ** 2).sum(axis=1))
        return F, list(out / np.maximum(score, 1e-12)[:, None, None])

    def reference_extra(self, items, *, workers=None, reduce="auto", max_pixels=DEFAULT_MAX_PIXELS,
                        progress=False, **_):
        """Features of up to ``augment`` reference frames with their moving foreground moved.

        Two passes over an evenly spread sample of ``items`` (the readable reference
        inputs, in feature-row order): the first 64 of them give the background, then
        each sampled frame's copy is made and embedded in chunks (memory stays flat;
        the copies go through the feature cache like any image). Returns
        ``(features, source_rows)`` or None when no frame has foreground.
        """
        from .features.foreground import ForegroundAugmenter
        from .io.decode import DecodedImage
        from .io.loader import load_images
        n = len(items)
        if not self.augment or n == 0:
            return None
        pick = np.unique(np.linspace(0, n - 1, min(n, self.augment)).round().astype(int))
        bg_pick = pick[np.unique(np.linspace(0, len(pick) - 1, min(len(pick), 64)).round().astype(int))]
        kw = dict(workers=workers, reduce=reduce, min_side=[self.min_side], max_pixels=max_pixels,
                  map_fn=self.prepare, with_hash=False)
        background = [p for img, p in load_images([items[i] for i in bg_pick], **kw) if img.ok]
        if not background:
            return None
        aug = ForegroundAugmenter().fit(background)
        feats, src, batch, batch_src = [], [], [], []

        def flush():
            if batch:
                keys = [DecodedImage("<augmented>", sha1=hashlib.sha1(b.tobytes()).hexdigest()) for b in batch]
                feats.append(self.features(batch, keys))
                src.extend(batch_src)
                batch.clear()
                batch_src.clear()

        loaded = load_images([items[i] for i in pick], progress=progress, desc="augment", **kw)
        for row, (img, prepared) in zip(pick, loaded):
            copy = aug.augment(prepared) if img.ok else None
            if copy is not None:
                batch.append(copy)
                batch_src.append(int(row))
            if len(batch) >= 64:
                flush()
        flush()
        if not feats:
            return None
        log.info("%s: %d augmented reference frames (foreground moved) of %d sampled", self.name, len(src), len(pick))
        return np.concatenate(feats), np.asarray(src, dtype=np.int64)

    def get_state(self):
        self.check_weights()
        state, arrays = super().get_state()
        state["runtime"] = {"backend": self.embedder.resolved_backend}  # what the calibration was computed with
        return state, arrays

    def _check_runtime(self):
        """Say once when scoring runs on another runtime than the calibration did (scores agree to
        float32 rounding between torch and onnxruntime; not with bf16)."""
        want = getattr(self, "calibrated_backend_", None)
        if want and want != self.embedder.resolved_backend and not getattr(self, "_runtime_warned", False):
            log.warning("%s: calibrated with the %s runtime, scoring with %s (features agree to float32 rounding)",
                        self.name, want, self.embedder.resolved_backend)
            self._runtime_warned = True
