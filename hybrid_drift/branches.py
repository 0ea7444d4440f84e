"""Detector branches: a feature extractor paired with a scorer, with the scorer's verbs on images.

Every branch implements the same small contract, so fusion, the detector, the
benchmark and the CLI treat them alike and a new branch touches no other code:

* ``prepare(img)`` — per-image work in the loader's worker threads (HSV, resize),
  on ``img.at_side(self.min_side)``: each branch names the shorter side it needs,
  the loader decodes each size the branches name (JPEG: in the DCT domain);
* ``features(prepared, images)`` — a batch of prepared items → ``(n, d)`` features;
* ``make_scorer()`` — a fresh, unfitted :class:`~hybrid_drift.scorers.BaseScorer`.

``fit`` / ``calibrate`` / ``score_samples`` / ``decision_function`` / ``predict``
then work on image inputs (paths, folders, arrays, bytes, videos) for each branch alone.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import numpy as np

from .exceptions import ModelFormatError, NotFittedError
from .features.cache import FeatureCache, default_cache_dir
from .features.colour import ColourFeatures
from .io.decode import DEFAULT_MIN_SIDE, DecodedImage
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

    Attributes
    ----------
    scorer_ : BaseScorer
        The fitted scorer (after ``fit``).
    """

    #: default column name in result tables
    default_name: ClassVar[str] = "branch"
    #: shorter side (pixels) of the image ``prepare`` works on (see ``DecodedImage.at_side``)
    min_side: int = DEFAULT_MIN_SIDE
    _config_keys: ClassVar[tuple[str, ...]] = ()

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

    # --- configuration ----------------------------------------------------------------
    def get_config(self) -> dict:
        """The constructor arguments as JSON-able values (saved with the model)."""
        cfg = {k: getattr(self, k) for k in self._config_keys}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    # --- feature-level verbs (used by the detector and the benchmark) --------------------
    @property
    def fitted(self) -> bool:
        return getattr(self, "scorer_", None) is not None

    def _check_fitted(self):
        if not self.fitted:
            raise NotFittedError(f"This {type(self).__name__} is not fitted yet: call fit() with normal images first.")

    def fit_features(self, F: np.ndarray):
        """Fit the scorer on already extracted features of normal images. Returns self."""
        self.scorer_ = self.make_scorer().fit(F)
        return self

    def score_features(self, F: np.ndarray) -> np.ndarray:
        """Scores (higher = stranger) of already extracted features."""
        self._check_fitted()
        return self.scorer_.score_samples(F)

    @property
    def threshold_(self):
        self._check_fitted()
        return self.scorer_.threshold_

    # --- image-level verbs ------------------------------------------------------------
    def _extract(self, X, **load_kw):
        from .pipeline import extract
        return extract([self], X, **load_kw)

    def fit(self, X, **load_kw):
        """Fit on normal images (paths, a folder, arrays, bytes or a video). Returns self.

        Inputs that cannot be read are logged and skipped for fitting; at least one
        must be readable.
        """
        ext = self._extract(X, **load_kw)
        if ext.n_ok == 0:
            raise ValueError(f"no readable image among {len(ext.ids)} inputs; first error: {ext.first_error()}")
        return self.fit_features(ext.features[self.name])

    def score_samples(self, X, **load_kw) -> np.ndarray:
        """One score per input (higher = stranger); NaN where the input could not be read."""
        self._check_fitted()
        ext = self._extract(X, **load_kw)
        return ext.expand(self.score_features(ext.features[self.name]) if ext.n_ok else np.empty(0))

    def calibrate(self, X, y=None, *, method: str | None = None, fpr: float = 0.01, k: float = 3.0,
                  **load_kw):
        """Set the threshold from held-out images (labels optional, see ``choose_threshold``)."""
        s = self.score_samples(X, **load_kw)
        self.scorer_.set_threshold(s, y, method=method, fpr=fpr, k=k)
        return self

    def decision_function(self, X, **load_kw) -> np.ndarray:
        """Score minus threshold: > 0 means outlier (NaN for unreadable inputs)."""
        self.scorer_._check_threshold()
        return self.score_samples(X, **load_kw) - self.scorer_.threshold_

    def predict(self, X, **load_kw) -> np.ndarray:
        """1 = outlier, 0 = normal, -1 = input could not be read."""
        d = self.decision_function(X, **load_kw)
        return np.where(np.isnan(d), -1, (d > 0).astype(int))

    # --- persistence ---------------------------------------------------------------
    def get_state(self):
        """``(json_state, arrays)`` describing the fitted branch, for :meth:`from_state`."""
        self._check_fitted()
        state, arrays = self.scorer_.get_state()
        return {"class": type(self).__name__, "name": self.name, "config": self.get_config(),
                "scorer": state}, arrays

    @classmethod
    def from_state(cls, state: dict, arrays: dict):
        bcls = BRANCHES.get(state.get("class"))
        if bcls is None:
            raise ModelFormatError(f"unknown branch class {state.get('class')!r}")
        cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in state["config"].items()}
        obj = bcls(**cfg)
        obj.name = state["name"]
        obj.scorer_ = scorer_from_state(state["scorer"], arrays)
        return obj


class ColourBranch(Branch):
    """The cheap branch: HSB histograms compared with a reference learned from normals.

    Parameters
    ----------
    bins, grid, joint_hs, hs_bins
        Histogram layout, see :class:`~hybrid_drift.features.ColourFeatures`. The
        default 4x4 grid lets the branch see *where* colours are (a flipped frame,
        a coloured object in one cell); ``grid=(1, 1)`` is the whylogs-style
        whole-image profile.
    distance : {"intersection", "hellinger", "kl", "js", "chi2"}
        Histogram distance to the reference (default: the best on the crossroad
        validation split).
    combine : {"max", "mean"}
        How per-histogram z-scores become one score.
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
    >>> bool(b.score_samples([red])[0] > b.score_samples(normals).max())
    True
    """

    default_name = "colour"
    _config_keys = ("bins", "grid", "joint_hs", "hs_bins", "distance", "combine", "min_side")

    def __init__(self, bins: int = 32, grid=(4, 4), joint_hs: bool = False, hs_bins=(12, 8),
                 distance: str = "intersection", combine: str = "max", min_side: int = 128):
        self.bins, self.grid, self.joint_hs, self.hs_bins = bins, tuple(grid), joint_hs, tuple(hs_bins)
        self.distance, self.combine = distance, combine
        if int(min_side) < 1:
            raise ValueError(f"min_side must be >= 1, got {min_side}")
        self.min_side = int(min_side)
        self._feat = ColourFeatures(bins=bins, grid=self.grid, joint_hs=joint_hs, hs_bins=self.hs_bins)

    @property
    def feature_extractor(self) -> ColourFeatures:
        return self._feat

    def prepare(self, img):
        return self._feat.transform(hsv=_hsv(img, self.min_side))

    def features(self, prepared, images):
        return np.stack(prepared).astype(np.float32) if prepared else np.empty((0, self._feat.n_features), np.float32)

    def make_scorer(self):
        return HistogramScorer(distance=self.distance, group_bounds=self._feat.group_bounds().tolist(),
                               combine=self.combine)


class MinMaxBranch(Branch):
    """The trivial whylogs-profile baseline: per-image pixel min/max of H, S, B vs the training range.

    Kept to show why the Tokyo study rejects it: almost every frame spans the full
    range of every channel, so it almost never flags anything.
    """

    default_name = "minmax"
    min_side = 128  # the colour branch's working size

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
    n_components : int or float
        PCA components (or variance fraction); default 150 as in the study.
    batch_size, threads, device
        Inference settings, see :class:`~hybrid_drift.features.Embedder`.
    cache_dir : str or False, optional
        Feature cache location (content-keyed); ``None`` = ``$HYBRID_DRIFT_CACHE`` or
        ``~/.cache/hybrid_drift`` (``HYBRID_DRIFT_CACHE=off`` disables it); ``False`` disables it.
    """

    default_name = "cnn"
    _config_keys = ("backbone", "weights", "pool", "layers", "image_size", "n_components", "batch_size",
                    "threads", "device", "weights_sha256")

    def __init__(self, backbone: str = "efficientnet_lite0", weights: str | None = None, pool: str = "max",
                 layers=None, image_size=None, n_components=150, batch_size: int = 32,
                 threads: int | None = None,
                 device: str = "auto", cache_dir=None, weights_sha256: str | None = None):
        from .features.cnn import Embedder
        if layers is None:
            layers = ("block10", "head") if backbone == "efficientnet_lite0" else ("head",)
        self.layers = tuple(layers)
        if image_size is None:
            image_size = (288, 384)
        self.image_size = tuple(image_size) if isinstance(image_size, (list, tuple)) else image_size
        self.backbone, self.weights, self.pool, self.n_components = backbone, weights, pool, n_components
        self.batch_size, self.threads, self.device, self.cache_dir = batch_size, threads, device, cache_dir
        self.weights_sha256 = weights_sha256
        self.embedder = Embedder(backbone, weights=weights, pool=pool, layers=self.layers,
                                 image_size=self.image_size, batch_size=batch_size, threads=threads,
                                 device=device)
        self._cache = None
        self._checked = False

    def _check_weights(self):
        """Make sure the weights loaded now are those the branch was fitted with."""
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

    def _cache_root(self):
        if self.cache_dir is False:
            return None
        return default_cache_dir() if self.cache_dir is None else self.cache_dir

    @property
    def uses_content_hash(self) -> bool:
        """The loader computes file hashes only when a branch's cache needs them."""
        return self._cache_root() is not None

    def _feature_cache(self):
        root = self._cache_root()
        if root is None:
            return None
        if self._cache is None:
            self._cache = FeatureCache(root, {"backbone": self.backbone, "weights": self.weights_sha256,
                                              "pool": self.pool, "layers": list(self.layers),
                                              "size": list(self.embedder.image_size),
                                              "version": 1})
        return self._cache

    @property
    def min_side(self) -> int:
        """The network input's shorter side: frames are decoded at least that large."""
        return int(min(self.embedder.image_size))

    def prepare(self, img):
        return self.embedder.preprocess(img.at_side(self.min_side))

    def features(self, prepared, images):
        self._check_weights()
        out = np.empty((len(prepared), self.embedder.dim), np.float32)
        cache = self._feature_cache()
        todo = []
        for i, img in enumerate(images):
            hit = cache.get(img.sha1) if cache is not None else None
            if hit is not None and hit.shape == (self.embedder.dim,):
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

    def get_state(self):
        self._check_weights()
        return super().get_state()
