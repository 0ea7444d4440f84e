"""How a model runs on this machine: one frozen settings object, validated here and nowhere else.

A :class:`Runtime` says *how* to compute (inference runtime, device, threads, decode workers,
feature cache, progress bars, the decompression-bomb guard), never *what*: it is not saved with a
model, and two runtimes give the same scores (fp32 runtimes agree to float32 rounding). The
detector owns it and hands it to its branches once, at construction, :meth:`HybridDetector.load`
or :meth:`HybridDetector.bind`; the CLI, the watch service, Ray actors and the benchmark build one
and pass it, so nothing writes a branch's settings from outside.

>>> Runtime(backend="torch", workers=2).replace(progress=True)
Runtime(backend='torch', device='auto', threads=None, workers=2, cache=None, cache_features=True, progress=True, max_pixels=100000000)
>>> Runtime(backend="tensorrt")
Traceback (most recent call last):
...
ValueError: backend must be one of ('auto', 'torch', 'onnxruntime', 'openvino'), got 'tensorrt'
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from .features.runners import BACKENDS
from .io.decode import DEFAULT_MAX_PIXELS

__all__ = ["Runtime", "RuntimeOwner", "BACKENDS", "DEVICES", "UNSET"]

#: where the CNN runs: ``auto`` = a GPU when a runtime here can use one, else the CPU
DEVICES = ("auto", "cpu", "cuda")


def _int_or_none(name: str, v) -> None:
    if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
        raise ValueError(f"{name} must be None or an int >= 1, got {v!r}")


@dataclass(frozen=True)
class Runtime:
    """How a model runs here (never saved with it).

    Parameters
    ----------
    backend : {"auto", "torch", "onnxruntime", "openvino"}
        CNN inference runtime; ``"auto"``: ONNX Runtime when installed, else PyTorch.
    device : {"auto", "cpu", "cuda"}
        ``"cuda"`` runs on the GPU (ONNX Runtime's CUDA provider when installed, else PyTorch)
        and is an error, in one line, on a machine without one; ``"auto"`` uses a GPU when present.
    threads : int, optional
        CNN inference threads (default: the runtime's choice, the physical cores).
    workers : int, optional
        Image decode threads (default: one per core).
    cache : path, False or None
        Feature cache (and exported ONNX graphs) location; ``None`` = ``$HYBRID_DRIFT_CACHE`` or
        ``~/.cache/hybrid_drift`` (``HYBRID_DRIFT_CACHE=off`` turns it off); ``False`` = off.
    cache_features : bool
        Cache each image's CNN features there (default). ``False`` keeps only the exported graphs:
        a watch's live frames are seen once, so caching them would only churn the disk, while
        exporting the graph again at every start would cost seconds and load PyTorch's exporter.
    progress : bool
        tqdm progress bars on long work.
    max_pixels : int or None
        Decompression-bomb guard: larger images become error records (None: no guard).
    """

    backend: str = "auto"
    device: str = "auto"
    threads: int | None = None
    workers: int | None = None
    cache: str | os.PathLike | bool | None = None
    cache_features: bool = True
    progress: bool = False
    max_pixels: int | None = DEFAULT_MAX_PIXELS

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {self.device!r}")
        _int_or_none("threads", self.threads)
        _int_or_none("workers", self.workers)
        _int_or_none("max_pixels", self.max_pixels)
        if not (self.cache is None or self.cache is False or isinstance(self.cache, (str, os.PathLike))):
            raise ValueError(f"cache must be a folder, False (off) or None (the default folder), got {self.cache!r}")
        if not isinstance(self.cache_features, bool):
            raise ValueError(f"cache_features must be True or False, got {self.cache_features!r}")
        if not isinstance(self.progress, bool):
            raise ValueError(f"progress must be True or False, got {self.progress!r}")

    def replace(self, **changes) -> Runtime:
        """A copy with ``changes`` (checked like the constructor's arguments)."""
        return dataclasses.replace(self, **changes)

    @property
    def cache_root(self) -> Path | None:
        """The feature cache folder, or None when caching is off."""
        if self.cache is False:
            return None
        if self.cache is None:
            from .features.cache import default_cache_dir
            return default_cache_dir()
        return Path(self.cache)

    @property
    def feature_cache_root(self) -> Path | None:
        """Where per-image features are cached: :attr:`cache_root` unless ``cache_features`` is off."""
        return self.cache_root if self.cache_features else None

    def check_device(self) -> None:
        """``device="cuda"`` on a machine where no runtime sees a GPU: one clear line, before any work."""
        if self.device != "cuda":
            return
        from .features import runners
        if not (runners.cuda_available() or runners._ort_cuda()):
            from .exceptions import BackboneUnavailableError
            raise BackboneUnavailableError(
                "device='cuda' but no GPU runtime here (PyTorch sees no CUDA device and ONNX Runtime has no "
                "CUDAExecutionProvider); use device='auto' or 'cpu'")


class _Unset:
    """A deprecated constructor shortcut that was not given (one instance, also after copy or pickle)."""

    _one = None

    def __new__(cls):
        if cls._one is None:
            cls._one = super().__new__(cls)
        return cls._one

    def __reduce__(self):
        return _Unset, ()

    def __repr__(self):
        return "<unset>"


UNSET = _Unset()


class RuntimeOwner:
    """What owning a :class:`Runtime` means for an estimator (mixed into the detector).

    The host stores ``runtime`` (None: not given) and the deprecated shortcuts named in
    ``_RUNTIME_SHORTCUTS`` (:data:`UNSET` when not given), and says which parts run it
    (``_runtime_targets()``: objects with a ``bind(runtime)`` method).
    """

    _RUNTIME_SHORTCUTS = ("workers", "max_pixels", "progress")

    @property
    def runtime_(self) -> Runtime:
        """The runtime in effect: ``runtime`` (default :class:`Runtime`) with the deprecated shortcuts applied."""
        rt = self.runtime if self.runtime is not None else Runtime()
        legacy = {k: getattr(self, k) for k in self._RUNTIME_SHORTCUTS if getattr(self, k) is not UNSET}
        return rt.replace(**legacy) if legacy else rt

    def _binds(self) -> bool:
        """Whether a runtime was given (then it is handed to the parts; else they keep their own settings)."""
        return self.runtime is not None or any(getattr(self, k) is not UNSET for k in self._RUNTIME_SHORTCUTS)

    def bind(self, runtime: Runtime):
        """Run on ``runtime`` from now on (the fitted parts, and those the next ``fit`` builds).

        The one way to change how a model runs after construction (backend, device, threads,
        workers, cache, progress, pixel guard); a runtime that cannot run here (a backend not
        installed, ``device="cuda"`` without a GPU) is an error naming it. Returns self.
        """
        if not isinstance(runtime, Runtime):
            raise TypeError(f"runtime must be a hybrid_drift.Runtime, got {type(runtime).__name__}")
        for k in self._RUNTIME_SHORTCUTS:
            setattr(self, k, UNSET)
        self.runtime = runtime
        for part in self._runtime_targets():
            part.bind(runtime)
        return self

    def set_backend(self, backend: str):
        """Deprecated: ``bind(model.runtime_.replace(backend=...))``. Returns self."""
        import warnings
        warnings.warn(f"{type(self).__name__}.set_backend is deprecated; use bind(model.runtime_.replace("
                      "backend=...)) or load(path, runtime=Runtime(backend=...))", DeprecationWarning, stacklevel=2)
        return self.bind(self.runtime_.replace(backend=backend))
