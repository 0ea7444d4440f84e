"""The CNN branch: pretrained backbone -> pooled embedding -> PCA reconstruction error."""

from __future__ import annotations

import hashlib
import logging

import numpy as np

from ..exceptions import ModelFormatError
from ..features.cache import FeatureCache
from ..io.decode import DEFAULT_MAX_PIXELS
from ..scorers import PCAReconstructionScorer
from .base import Branch
from ..features.cnn import POOLS, Embedder
from ..features.runners import PRECISIONS
from ..runtime import DEVICES
from ..sampling import evenly_spread
from .params import Backbone, Hex64, Int, OptionalStr, Options, Size

__all__ = ["CNNBranch"]

log = logging.getLogger(__name__)

#: reference frames fitted again as a stream's JPEG delivers them, when asked (``CNNBranch(recompressed=...)``;
#: 0 by default: measured 2026-12-03, the count below was the one measured)
RECOMPRESSED = 100
#: the JPEG qualities those copies are drawn from (a camera's or NVR's stream setting, low to middling)
RECOMPRESS_QUALITY = (30, 70)


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
    recompressed : int
        Up to this many reference frames (evenly spread) are also fitted as a live stream may deliver
        them: re-saved at full size as a JPEG of quality 30-70 (one quality per frame, drawn from a
        fixed seed), so an encoder's blocking and ringing, which the reference's snapshots did not have,
        is not an outlier. 0 (the default) disables it; :data:`RECOMPRESSED` (100) is the count measured.
        One extra decode and CNN pass per copy at fit time, none at scoring. Opt-in: on the development
        sets it took most of the false alarms of clean frames delivered as JPEG 40-60 away and cost
        little recall, but on the report scene ``wall`` (time order) it lowered the CNN threshold
        (1.646 -> 1.524) and flagged 20 of 176 clean frames where 2 were before (README, *Faults it was
        not built on*). Models saved before it (no such setting) load with 0.
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
                    "batch_size", "threads", "device", "precision", "weights_sha256", "recompressed")

    _parameter_constraints = {"backbone": Backbone(), "weights": OptionalStr(), "pool": Options(POOLS),
                              "image_size": Size(32, 4096), "augment": Int(0, 100_000),
                              "recompressed": Int(0, 100_000),
                              "batch_size": Int(1, 100_000), "device": Options(DEVICES),
                              "precision": Options(PRECISIONS), "weights_sha256": Hex64()}
    _saved_required = ("weights_sha256",)
    #: network input (height, width) when ``image_size`` is None: half of a 768x576 frame
    DEFAULT_IMAGE_SIZE = (288, 384)

    def __init__(self, backbone: str = "efficientnet_lite0", weights: str | None = None, pool: str = "max",
                 layers=None, image_size=None, n_components="auto", augment: int = 1000, batch_size: int = 32,
                 threads: int | None = None, device: str = "auto", backend: str = "auto",
                 precision: str = "fp32", cache_dir=None, weights_sha256: str | None = None,
                 recompressed: int = 0):
        if layers is None:
            layers = ("block10", "head") if backbone == "efficientnet_lite0" else ("head",)
        self.layers = tuple(layers)
        if image_size is None:
            image_size = self.DEFAULT_IMAGE_SIZE
        self.image_size = tuple(image_size) if isinstance(image_size, (list, tuple)) else image_size
        self.backbone, self.weights, self.pool, self.n_components = backbone, weights, pool, n_components
        self.augment, self.recompressed = augment, recompressed
        self.batch_size, self.threads, self.device, self.cache_dir = batch_size, threads, device, cache_dir
        self.backend, self.precision = backend, precision
        self.weights_sha256 = weights_sha256
        self._check_params()
        from ..runtime import Runtime
        # the constructor's runtime settings, until a detector binds its own (HybridDetector(runtime=...))
        self._runtime = Runtime(backend=backend, device=device, threads=threads, cache=cache_dir)
        self._cache = None
        self._checked = False

    @property
    def embedder(self) -> Embedder:
        """The network of the current settings on the bound runtime (built when first needed, and
        again when a setting changed: ``branch.image_size = 224`` before ``fit`` takes effect)."""
        key = (self.backbone, self.weights, self.pool, tuple(self.layers), self.image_size, self.batch_size,
               self.precision)
        if getattr(self, "_embedder_key", None) != key:
            rt = self._runtime
            self._embedder = Embedder(self.backbone, weights=self.weights, pool=self.pool, layers=key[3],
                                      image_size=self.image_size, batch_size=self.batch_size, threads=rt.threads,
                                      device=rt.device, backend=rt.backend, precision=self.precision,
                                      cache_root=rt.cache_root)
            self._embedder_key = key
            self._cache, self._checked = None, False
        return self._embedder

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
        return self._runtime.feature_cache_root is not None

    def _feature_cache(self):
        root = self._runtime.feature_cache_root
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
        takers = getattr(self, "_map_takers", ())
        # the same pass gives the feature maps to branches that read them (PatchBranch): no second pass
        need = sorted(set(todo).union(*(t.missing(images) for t in takers))) if takers else todo
        if need:
            batch = np.stack([prepared[i] for i in need])
            if takers:
                emb, fmaps = self.embedder.embed_maps(batch)
                self._hand_maps([images[i] for i in need], fmaps)
            else:
                emb = self.embedder.embed(batch)
            rows = {i: k for k, i in enumerate(need)}
            out[todo] = emb[[rows[i] for i in todo]]
            if cache is not None:
                for i in todo:
                    cache.put(images[i].sha1, out[i])
        return out

    def _hand_maps(self, images, fmaps) -> None:
        for taker in getattr(self, "_map_takers", ()):
            taker.offer(images, fmaps[self.layers.index(taker.layer)])

    def make_scorer(self):
        bounds = np.concatenate([[0], np.cumsum(self.embedder.layer_dims)]).tolist()
        return PCAReconstructionScorer(n_components=self.n_components, group_bounds=bounds)

    def explain_features(self, prepared, images):
        """Where the reconstruction error comes from (:func:`hybrid_drift.explain.residual_heatmaps`).
        One forward pass that also returns the feature maps (no gradients); bypasses the feature cache."""
        from ..explain import residual_heatmaps
        self._check_fitted()
        self.check_weights()
        if not prepared:
            return np.empty((0, self.embedder.dim), np.float32), []
        F, fmaps = self.embedder.embed_maps(np.stack(prepared))
        self._hand_maps(images, fmaps)
        return F, residual_heatmaps(self.scorer_.residuals(F), fmaps, self.pool)

    def release_memory(self) -> None:
        """The inference runtime's memory of its largest batch, back to the system
        (:meth:`~hybrid_drift.features.cnn.Embedder.release`)."""
        self.embedder.release()

    def reference_extra(self, items, *, workers=None, reduce="auto", max_pixels=DEFAULT_MAX_PIXELS,
                        progress=False, ignore=(), **_):
        """Features of extra reference rows: up to ``augment`` frames with their moving foreground moved,
        and up to ``recompressed`` frames re-saved as a stream's JPEG would deliver them.

        Returns ``(features, source_rows)`` (each extra row names the reference row it was made from, so
        cross-fitting holds it out with its source) or None when there is none.
        """
        n = len(items)
        if n == 0:
            return None
        from ..io.zones import mask_image

        def prepare(img):  # the same ignore zones as the reference frames themselves
            mask_image(img, ignore)
            return self.prepare(img)
        kw = dict(workers=workers, max_pixels=max_pixels, map_fn=prepare, with_hash=False)
        parts = [p for p in (self._foreground_copies(items, dict(kw, reduce=reduce), progress),
                             self._recompressed_copies(items, kw, progress, prepare)) if p is not None]
        if not parts:
            return None
        return np.concatenate([f for f, _ in parts]), np.concatenate([r for _, r in parts])

    def _embed_copies(self, copies, source: str):
        """``(features, source_rows)`` of ``(row, prepared copy)`` pairs, embedded 64 at a time (memory stays
        flat; the copies go through the feature cache keyed by their pixels, like any image); None for none."""
        from ..io.decode import DecodedImage
        feats, src, batch = [], [], []

        def flush():
            if batch:
                keys = [DecodedImage(source, sha1=hashlib.sha1(c.tobytes()).hexdigest()) for c in batch]
                feats.append(self.features(batch, keys))
                batch.clear()
        for row, copy in copies:
            batch.append(copy)
            src.append(int(row))
            if len(batch) >= 64:
                flush()
        flush()
        return (np.concatenate(feats), np.asarray(src, dtype=np.int64)) if src else None

    def _foreground_copies(self, items, kw, progress):
        """Up to ``augment`` evenly spread reference frames with their moving foreground moved (two passes:
        the first 64 of the sample give the background)."""
        from ..features.foreground import ForegroundAugmenter
        from ..io.loader import load_images
        if not self.augment:
            return None
        pick = evenly_spread(len(items), self.augment)
        bg_pick = pick[evenly_spread(len(pick), 64)]
        kw = dict(kw, min_side=[self.min_side])
        background = [p for img, p in load_images([items[i] for i in bg_pick], **kw) if img.ok]
        if not background:
            return None
        aug = ForegroundAugmenter().fit(background)
        loaded = load_images([items[i] for i in pick], progress=progress, desc="augment", **kw)
        moved = ((row, aug.augment(prepared) if img.ok else None) for row, (img, prepared) in zip(pick, loaded))
        out = self._embed_copies(((row, c) for row, c in moved if c is not None), "<augmented>")
        if out is not None:
            log.info("%s: %d augmented reference frames (foreground moved) of %d sampled", self.name, len(out[1]),
                     len(pick))
        return out

    def _recompressed_copies(self, items, kw, progress, prepare):
        """Up to ``recompressed`` evenly spread reference frames decoded at full size, re-saved as a JPEG of a
        quality drawn from :data:`RECOMPRESS_QUALITY` (seeded: the same reference gives the same copies) and
        prepared as the frames themselves are."""
        import cv2

        from ..io.decode import DecodedImage
        from ..io.loader import load_images
        if not self.recompressed:
            return None
        pick = evenly_spread(len(items), self.recompressed)
        qualities = np.random.default_rng(0).integers(RECOMPRESS_QUALITY[0], RECOMPRESS_QUALITY[1] + 1, len(pick))

        def resaved(img, q):
            ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img.rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(q)])
            rgb = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB) if ok else None
            return None if rgb is None else DecodedImage(img.source, rgb=rgb, meta=img.meta)

        def copies():
            loaded = load_images([items[i] for i in pick], progress=progress, desc="recompress", reduce=1,
                                 **dict(kw, map_fn=None))
            for row, q, (img, _) in zip(pick, qualities, loaded):
                copy = resaved(img, q) if img.ok else None
                img.release()
                if copy is not None:
                    yield row, prepare(copy)
        out = self._embed_copies(copies(), "<recompressed>")
        if out is not None:
            log.info("%s: %d reference frames re-saved as a stream's JPEG (quality %d-%d)", self.name, len(out[1]),
                     *RECOMPRESS_QUALITY)
        return out

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
