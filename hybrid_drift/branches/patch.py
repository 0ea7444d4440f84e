"""The patch branch: where in the picture did something appear that the reference never had? (issue 21)

The CNN branch pools its feature maps over the whole frame, so a fault that covers a few
percent of it (dead pixel rows, a frozen text banner, a smudge) moves the pooled vector less
than the traffic does. This branch scores the mid-level map itself, position by position,
with one PCA learned from every position of the reference (:class:`~hybrid_drift.scorers.
PatchPCAScorer`): see that module for why the model ignores where a vector was and why the
score is the strongest horizontal band.

It costs no second network pass: when a CNN branch with the same network (backbone, weights,
input size, precision) and this branch's layer runs in the same extraction, that pass hands
its feature map over (:meth:`PatchBranch.take_maps_from`, called by
:func:`hybrid_drift.pipeline.extract`). Alone, the branch runs the network itself. Maps are
cached as float16 (97 KB per image at the default size) under the feature cache.
"""

from __future__ import annotations

import numpy as np

from ..features.cache import FeatureCache
from ..scorers import PatchPCAScorer
from .cnn import CNNBranch
from .params import Num, OptionalStr

__all__ = ["PatchBranch"]


class PatchBranch(CNNBranch):
    """Position-free PCA reconstruction error of a CNN feature map; score = the strongest band.

    Parameters
    ----------
    backbone, weights, image_size, precision
        The network, as :class:`CNNBranch` (the defaults are the CNN branch's, so the two
        share one pass).
    layer : str
        The feature map scored (default ``"block10"`` of EfficientNet-Lite0: 112 channels,
        one position per 16x16 input pixels, 18x24 positions at the default input size).
    n_components : float
        Variance fraction kept by the PCA.
    band : float
        Fraction of a row's positions (the strongest) averaged for the row's score.
    margin : float
        Multiplier of the cross-fitted conformal threshold (default 1.5: on the development
        scenes the strangest clean frame scored up to 1.09x the reference's largest
        cross-fitted score).
    batch_size, threads, device, backend, cache_dir, weights_sha256
        As :class:`CNNBranch` (used when the branch runs the network itself).
    """

    default_name = "patch"
    checks_order = False  # the order check reads the colour and CNN branches' features
    _config_keys = ("backbone", "weights", "layer", "image_size", "n_components", "band", "margin", "batch_size",
                    "threads", "device", "precision", "weights_sha256")
    _parameter_constraints = {**CNNBranch._parameter_constraints, "layer": OptionalStr(),
                              "n_components": Num(1e-6, 1 - 1e-6), "band": Num(1e-6, 1.0), "margin": Num(1, 1e6)}

    def __init__(self, backbone: str = "efficientnet_lite0", weights: str | None = None, layer: str = "block10",
                 image_size=None, n_components: float = 0.97, band: float = 0.5, margin: float = 1.5,
                 batch_size: int = 32, threads: int | None = None, device: str = "auto", backend: str = "auto",
                 precision: str = "fp32", cache_dir=None, weights_sha256: str | None = None):
        self.layer, self.band, self.margin = layer, band, margin
        super().__init__(backbone=backbone, weights=weights, pool="avg", layers=(layer,), image_size=image_size,
                         n_components=n_components, augment=0, recompressed=0, batch_size=batch_size, threads=threads,
                         device=device, backend=backend, precision=precision, cache_dir=cache_dir,
                         weights_sha256=weights_sha256)
        if not isinstance(layer, str) or not layer:
            raise ValueError(f"layer must name a feature map of {backbone}, got {layer!r}")
        self._stash: dict[int, np.ndarray] = {}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._stash = {}

    @classmethod
    def default_beside(cls, before: list) -> PatchBranch | None:
        """In a detector left at its defaults: a patch branch on the CNN branch's own network and input
        size, when that branch computes the ``block10`` map; none without a CNN branch (a detector
        without a network stays without one) or when it does not compute that map."""
        cnn = next((b for b in before if type(b) is CNNBranch), None)
        if cnn is None or "block10" not in cnn.layers:
            return None
        return cls(backbone=cnn.backbone, weights=cnn.weights, image_size=cnn.image_size, batch_size=cnn.batch_size,
                   threads=cnn.threads, device=cnn.device, backend=cnn.backend, precision=cnn.precision,
                   cache_dir=cnn.cache_dir)

    # ------------------------------------------------------------------ maps from a CNN pass
    def take_maps_from(self, before):
        """For one extraction (:func:`hybrid_drift.pipeline.extract` calls this with the branches listed
        before this one): take the feature map from the first CNN branch there that runs the same network,
        so both read one forward pass. Returns the callable that undoes the link, or None (no such branch:
        this branch runs the network itself)."""
        src = next((c for c in before if self.shares_network_with(c)), None)
        if src is None:
            return None
        src._map_takers = (*getattr(src, "_map_takers", ()), self)

        def unlink():
            src._map_takers = tuple(t for t in src._map_takers if t is not self)
        return unlink

    def shares_network_with(self, cnn) -> bool:
        """Whether ``cnn`` (a CNN branch) runs the same network and computes this branch's layer."""
        return (type(cnn) is CNNBranch and self.layer in cnn.layers and cnn.backbone == self.backbone
                and cnn.weights == self.weights and cnn.precision == self.precision
                and tuple(cnn.embedder.image_size) == tuple(self.embedder.image_size))

    def _map_cache(self):
        root = self._runtime.feature_cache_root
        if root is None:
            return None
        if self._cache is None:
            self.check_weights()  # the key names the weights
            self._cache = FeatureCache(root, {"backbone": self.backbone, "weights": self.weights_sha256,
                                              "map": self.layer, "size": list(self.embedder.image_size),
                                              "runtime": self.embedder.resolved_backend,
                                              "precision": self.precision, "version": 1}, half=True)
        return self._cache

    def missing(self, images) -> list[int]:
        """Rows of ``images`` whose map is neither handed over nor cached (cache hits are kept for
        :meth:`features`)."""
        cache = self._map_cache()
        out = []
        for i, img in enumerate(images):
            if id(img) in self._stash:
                continue
            hit = cache.get(img.sha1) if cache is not None else None
            if hit is not None:
                self._stash[id(img)] = hit
            else:
                out.append(i)
        return out

    def offer(self, images, fmap: np.ndarray) -> None:
        """Take the ``(n, C, h, w)`` maps a CNN pass computed for ``images``."""
        cache = self._map_cache()
        self._grid, self._grid_key = tuple(int(v) for v in fmap.shape[2:]), self._map_key()
        for img, m in zip(images, self._flatten(fmap)):
            if id(img) not in self._stash:
                self._stash[id(img)] = m
                if cache is not None:
                    cache.put(img.sha1, m)

    @staticmethod
    def _flatten(fmap: np.ndarray) -> np.ndarray:
        """``(n, C, h, w)`` -> ``(n, h * w * C)`` float16, each position's channels together."""
        n = len(fmap)
        return np.ascontiguousarray(np.asarray(fmap).transpose(0, 2, 3, 1).reshape(n, -1), dtype=np.float16)

    def _map_key(self) -> tuple:
        """What the map's grid depends on: the layer and the network's input size."""
        return self.layer, tuple(self.embedder.image_size)

    @property
    def grid(self) -> tuple[int, int]:
        """Positions ``(rows, cols)`` of the scored map at this input size (known from the last map handed
        over, else one probe pass, once)."""
        key = self._map_key()
        if getattr(self, "_grid_key", None) != key:
            probe = np.zeros((1, *self.embedder.image_size, 3), np.uint8)
            _, fmaps = self.embedder.embed_maps(probe)
            self._grid, self._grid_key = tuple(int(v) for v in fmaps[0].shape[2:]), key
        return self._grid

    # ------------------------------------------------------------------ branch contract
    def features(self, prepared, images):
        self.check_weights()
        self._check_runtime()
        try:
            todo = self.missing(images)
            if todo:
                _, fmaps = self.embedder.embed_maps(np.stack([prepared[i] for i in todo]))
                self.offer([images[i] for i in todo], fmaps[0])
            rows = [self._stash[id(img)] for img in images]
        finally:
            self._stash.clear()
        if rows:
            return np.stack(rows)
        return np.empty((0, 0), np.float16)

    def make_scorer(self):
        return PatchPCAScorer(grid=self.grid, n_components=float(self.n_components), band=float(self.band))

    def explain_features(self, prepared, images):
        """Features and each image's map of position errors (rows x cols of the feature map)."""
        self._check_fitted()
        F = self.features(prepared, images)
        return F, (list(self.scorer_.position_errors(F)) if len(F) else [])


