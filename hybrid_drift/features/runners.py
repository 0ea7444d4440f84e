"""Inference runtimes for the CNN branch: PyTorch eager, ONNX Runtime, OpenVINO.

The whole per-batch computation of :class:`~hybrid_drift.features.cnn.Embedder` —
uint8 pixels in, normalisation, the backbone, the tapped layers, the pooling, the
concatenation — is exported once to ONNX by PyTorch and then run by the runtime. The
export is cached on disk, keyed by everything that changes it (backbone, the weights'
SHA-256, layers, pooling, input size, the PyTorch version and this module's export
version); a cached file whose recorded SHA-256 does not match its bytes is rebuilt,
never trusted.

``"onnxruntime"`` (fp32, CPU provider; CUDA provider when a GPU is used and the GPU
build is installed) computes the same features as PyTorch to float32 rounding and is
the default when installed. ``"openvino"`` (``pip install 'hybrid-drift[openvino]'``)
runs fp32 with ``precision="fp32"`` (the default) or bfloat16 with ``precision="bf16"``
— reduced precision is only ever used when asked for.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["BACKENDS", "PRECISIONS", "resolve_backend", "backend_available", "export_path", "OnnxRunner",
           "OpenVinoRunner"]

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "onnxruntime", "openvino")
PRECISIONS = ("fp32", "bf16")
#: bump when the exported graph changes (part of the export cache key)
EXPORT_VERSION = 1
_MODULES = {"onnxruntime": "onnxruntime", "openvino": "openvino"}
_INSTALL = {"onnxruntime": "pip install onnxruntime", "openvino": "pip install 'hybrid-drift[openvino]'"}


def backend_available(name: str) -> bool:
    """Whether the runtime's package is installed (``torch`` always is)."""
    return name == "torch" or importlib.util.find_spec(_MODULES[name]) is not None


def resolve_backend(backend: str, device: str, precision: str = "fp32") -> str:
    """The runtime to use: ``auto`` is ONNX Runtime when installed (exact fp32), else PyTorch.

    A CUDA device goes to PyTorch unless ONNX Runtime's CUDA provider is installed;
    ``precision="bf16"`` needs OpenVINO. A named backend that is not installed is an
    error saying how to install it.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "bf16" and backend not in ("auto", "openvino"):
        raise ValueError("precision='bf16' is available with backend='openvino' only")
    if backend == "auto":
        if precision == "bf16":
            backend = "openvino"
        elif device == "cuda":
            backend = "onnxruntime" if _ort_cuda() else "torch"
        else:
            backend = "onnxruntime" if backend_available("onnxruntime") else "torch"
    if backend != "torch" and not backend_available(backend):
        from ..exceptions import BackboneUnavailableError
        raise BackboneUnavailableError(f"backend {backend!r} is not installed: {_INSTALL[backend]}")
    return backend


def cuda_available() -> bool:
    """Whether PyTorch sees a GPU (imports torch only when it is installed: it is a dependency)."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        return False
    return torch.cuda.is_available()


def _ort_cuda() -> bool:
    if not backend_available("onnxruntime"):
        return False
    import onnxruntime
    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


_PRIVATE_DIR: list[str] = []


def private_dir() -> Path:
    """A folder only this process's user can use (mode 0700, made by ``mkdtemp``), removed at exit.

    Exported graphs go here when the feature cache is off or cannot be written: a fixed path in a
    shared ``/tmp`` would let another local user plant a graph, or a link the export writes through.
    """
    if not _PRIVATE_DIR:
        import atexit
        import shutil
        d = tempfile.mkdtemp(prefix="hybrid_drift-onnx-")
        atexit.register(shutil.rmtree, d, ignore_errors=True)
        _PRIVATE_DIR.append(d)
    return Path(_PRIVATE_DIR[0])


def export_path(embedder, cache_root: str | os.PathLike | None, maps: bool = False) -> Path:
    """The exported ONNX file for ``embedder``'s computation: from the cache when intact, else exported.

    ``maps``: a second graph that also outputs each layer's feature map (for heat maps).
    ``cache_root`` None: exported to a private temporary folder of this process
    (:func:`private_dir`). A cache root that cannot be written (read-only, full) gives one
    warning naming it and the graph goes to that private folder instead.
    """
    if cache_root is not None:
        try:
            return _export_path(embedder, Path(cache_root) / "onnx", maps)
        except OSError as exc:
            log.warning("cannot keep the exported model under %s (%s): using a private temporary folder",
                        Path(cache_root) / "onnx", exc.strerror or exc)
    return _export_path(embedder, private_dir(), maps)


def _export_path(embedder, folder: Path, maps: bool) -> Path:
    import torch
    key_src = {"backbone": embedder.backbone, "weights": embedder.weights_sha256(), "layers": list(embedder.layers),
               "pool": embedder.pool, "size": list(embedder.image_size), "torch": torch.__version__,
               "export": EXPORT_VERSION, "maps": bool(maps)}
    key = hashlib.sha256(json.dumps(key_src, sort_keys=True).encode()).hexdigest()[:24]
    path, sidecar = folder / f"{key}.onnx", folder / f"{key}.json"
    try:
        meta = json.loads(sidecar.read_text())
        if path.is_file() and meta.get("sha256") == _file_sha256(path):
            return path
        log.warning("exported model %s does not match its recorded hash: exporting again", path)
    except (OSError, ValueError):
        pass
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".onnx.tmp")
    os.close(fd)
    try:
        _export(embedder, tmp, maps)
        digest = _file_sha256(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    sidecar.write_text(json.dumps({**key_src, "sha256": digest}, indent=1))
    log.info("exported %s to %s", embedder.backbone, path)
    return path


def _export(embedder, path: str, maps: bool = False) -> None:
    import warnings

    import torch

    class _Graph(torch.nn.Module):
        """uint8 NHWC pixels -> pooled features (and the feature maps), exactly Embedder's PyTorch path."""

        def __init__(self, emb):
            super().__init__()
            self.emb = emb
            self.model = emb._load()

        def forward(self, x):
            return self.emb._features_torch(x, maps=maps)

    h, w = embedder.image_size
    dummy = torch.zeros((2, h, w, 3), dtype=torch.uint8)
    graph = _Graph(embedder).eval()
    names = ["features"] + ([f"map_{layer}" for layer in embedder.layers] if maps else [])
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(graph, (dummy,), path, input_names=["images"], output_names=names,
                          dynamic_axes={"images": {0: "n"}, **{n: {0: "n"} for n in names}}, opset_version=17,
                          dynamo=False)


#: whether :meth:`OnnxRunner.release` gives ONNX Runtime's memory arena back (after a fit, and on
#: ``HybridDetector.release_memory()``); a module setting so that ``benchmarks/memory.py --arena`` can
#: measure the same code with and without it
RELEASE_ARENA = True


class OnnxRunner:
    """ONNX Runtime session of the exported graph (fp32; CPU, or CUDA when asked and available)."""

    name = "onnxruntime"

    def __init__(self, path: Path, threads: int | None, device: str = "cpu"):
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = int(threads or 0)  # 0 = ONNX Runtime's choice (the physical cores)
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
        self.session = ort.InferenceSession(str(path), so, providers=providers)

    def __call__(self, batch: np.ndarray):
        out = self.session.run(None, {"images": np.ascontiguousarray(batch, dtype=np.uint8)})
        return out[0] if len(out) == 1 else out

    def release(self) -> None:
        """Give the session's memory arena back to the system.

        ONNX Runtime keeps the working memory of the largest batch it ran for the session's life: after
        a fit's batches of 32 frames at 288x384 (with the feature maps) about 850 MB more than after
        batches of 8, held by a detector that is then kept to score a few frames at a time. A run of one
        image with arena shrinkage on returns the free chunks (the next large batch takes them again:
        a run of many images pays it once, see ``benchmarks/memory.py``). Best effort: a runtime that
        refuses it (a provider without an arena to shrink) keeps its memory and says so in the log."""
        if not RELEASE_ARENA:
            return
        import onnxruntime as ort
        opts = ort.RunOptions()
        gpu = "CUDAExecutionProvider" in self.session.get_providers()
        opts.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0;gpu:0" if gpu else "cpu:0")
        shape = [d if isinstance(d, int) else 1 for d in self.session.get_inputs()[0].shape]
        try:
            self.session.run(None, {"images": np.zeros(shape, np.uint8)}, opts)
        except Exception as exc:  # noqa: BLE001 - onnxruntime's own error types; giving memory back must never fail a fit
            log.info("ONNX Runtime kept its memory arena (%s: %s)", type(exc).__name__, exc)


class OpenVinoRunner:
    """OpenVINO compiled model of the exported graph (CPU; fp32 unless bf16 is asked for)."""

    name = "openvino"

    def __init__(self, path: Path, threads: int | None, precision: str = "fp32"):
        import openvino as ov
        core = ov.Core()
        cfg = {"INFERENCE_PRECISION_HINT": "f32" if precision == "fp32" else "bf16"}
        if threads:
            cfg["INFERENCE_NUM_THREADS"] = int(threads)
        self.model = core.compile_model(core.read_model(str(path)), "CPU", cfg)
        self.request = self.model.create_infer_request()

    def __call__(self, batch: np.ndarray):
        out = self.request.infer({0: np.ascontiguousarray(batch, dtype=np.uint8)})
        arrays = [np.asarray(v, dtype=np.float32) for v in out.values()]
        return arrays[0] if len(arrays) == 1 else arrays
