"""Model files: ``config.json`` + ``arrays.npz`` in a folder, no pickle; read as data.

What is checked before anything is built from a model folder: both files exist, their sizes
(a config of at most 16 MB, arrays of at most 512 MB, also once inflated: zip bombs), the config
is this library's format and a version it reads, and the arrays file is the one the config was
saved with (its SHA-256). Format 1 (0.1) is migrated to format 2 on reading. Writing is atomic
per file, arrays first; the config records the arrays' hash, so a save interrupted between the
two renames is refused on reading. Building a detector from what is read (types, ranges, shapes)
is :meth:`hybrid_drift.detector.HybridDetector.load`'s business.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._version import __version__
from .branches import Branch
from .exceptions import ModelFormatError
from .io.zones import check_zones as _zones
from .fusion import fusion_from_state
from .reference_order import OrderCheck
from .io.outputs import atomic_write_bytes

__all__ = ["FORMAT_VERSION", "ModelFile", "ModelParts", "read_model", "write_model"]

#: version of the saved-model layout (config.json + arrays.npz); format 1 files are migrated on load
FORMAT_VERSION = 2
_FORMAT_NAME = "hybrid_drift.detector"
#: size limits of a model's files (a fitted model is a few MB)
_MAX_CONFIG_BYTES = 16 << 20
_MAX_ARRAYS_BYTES = 512 << 20


def _read_npz(path: Path, blob: bytes) -> dict[str, np.ndarray]:
    """Members of an ``.npz`` (no pickle), after checking their inflated sizes (zip bombs)."""
    try:
        with zipfile.ZipFile(io.BytesIO(blob)) as zf:
            total = sum(i.file_size for i in zf.infolist())
            if total > _MAX_ARRAYS_BYTES:
                raise ModelFormatError(f"{path}: members inflate to {total:,} bytes, more than a model holds")
        with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except ModelFormatError:
        raise
    except Exception as exc:
        raise ModelFormatError(f"{path}: corrupted arrays file ({type(exc).__name__}: {exc})") from exc


def _migrate_v1(config: dict, arrays: dict) -> tuple[dict, dict]:
    """A format-1 model in format 2: thresholds move from the scorers and OR fusion to each
    branch's calibration; the colour scorer keeps its format-1 scoring (``combine`` as saved)."""
    params = config.get("params") if isinstance(config.get("params"), dict) else {}
    fusion = config.get("fusion") if isinstance(config.get("fusion"), dict) else {}
    scales = arrays.get("fusion/scales_")
    branches = []
    for j, st in enumerate(config.get("branches") or []):
        st = dict(st)
        scorer = dict(st["scorer"])
        attrs = dict(scorer["attrs"])
        thr = attrs.pop("threshold_", None)
        scorer["attrs"] = attrs
        st["scorer"] = scorer
        if scorer.get("class") == "HistogramScorer":
            prefix = f"branch/{st['name']}/"
            n_groups = len(arrays[prefix + "loc_"])
            arrays[prefix + "channels_"] = np.zeros(n_groups, np.int64)
            arrays[prefix + "unit_"] = np.ones(1)
            scorer["params"] = {**scorer["params"], "combine": scorer["params"].get("combine", "max")}
        spread = float(scales[j]) if scales is not None and j < len(scales) else 1.0
        st["calibration"] = {"method": params.get("calibration", "mean_std"), "threshold": thr,
                             "spread": spread, "n": 0, "source": "migrated", "params": {}}
        branches.append(st)
    config = {**config, "branches": branches, "fusion": {k: v for k, v in fusion.items() if k != "threshold_"},
              "params": {**params, "blocks": 0}}
    arrays = {k: v for k, v in arrays.items() if k not in ("fusion/thresholds_", "fusion/scales_")}
    return config, arrays


def write_model(out: Path, branches, fusion, reference_profile, config: dict) -> Path:
    """Write a fitted detector's parts to ``out``: each branch's and the fusion's state, the reference
    profile when there is one, and ``config`` (the detector's settings), with the format header and
    the arrays' hash added."""
    out.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    states = []
    for b in branches:
        st, arr = b.get_state()
        states.append(st)
        arrays.update({f"branch/{b.name}/{k}": v for k, v in arr.items()})
    fst, farr = fusion.get_state()
    arrays.update({f"fusion/{k}": v for k, v in farr.items()})
    if reference_profile is not None and reference_profile.n_images:
        arrays.update({f"reference/{k}": v for k, v in reference_profile.to_arrays().items()})
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    blob = buf.getvalue()
    config = {"format": _FORMAT_NAME, "format_version": FORMAT_VERSION, "library_version": __version__,
              "params": config["params"], "branches": states, "fusion": fst,
              **{k: v for k, v in config.items() if k != "params"}, "arrays_sha256": hashlib.sha256(blob).hexdigest()}
    for name, data in (("arrays.npz", blob), ("config.json", json.dumps(config, indent=2).encode())):
        atomic_write_bytes(out / name, data)
    return out


@dataclass
class ModelParts:
    """What a model folder holds, each part checked as data (see :func:`read_model`)."""

    branches: list
    fusion: Any
    params: dict
    n_train: int
    reference_profile: Any
    input_order: Any
    order_check: Any
    accepted: list
    reference_sizes: dict | None = None


def read_model(p: Path, param_names) -> ModelParts:
    """The parts of the model folder ``p`` (branches, fusion, the settings named in ``param_names``...),
    checked as described above."""
    config, arrays = _read_files(p)
    try:
        if not isinstance(config.get("branches"), list) or not config["branches"]:
            raise ValueError("'branches' must be a non-empty list")
        branches = []
        for st in config["branches"]:
            name = st.get("name") if isinstance(st, dict) else None
            if not isinstance(name, str):
                raise ValueError(f"branch without a name: {str(st)[:80]}")
            prefix = f"branch/{name}/"
            branches.append(Branch.from_state(st, {k[len(prefix):]: v for k, v in arrays.items()
                                                   if k.startswith(prefix)}))
        fusion = fusion_from_state(config.get("fusion"), {k[7:]: v for k, v in arrays.items()
                                                          if k.startswith("fusion/")}, len(branches))
        params = config.get("params")
        if not isinstance(params, dict):
            raise ValueError("'params' must be an object")
        n_train = config.get("n_train", 0)
        if isinstance(n_train, bool) or not isinstance(n_train, int) or n_train < 0:
            raise ValueError(f"n_train must be a non-negative int, got {n_train!r}")
    except ModelFormatError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as exc:
        raise ModelFormatError(f"{p}: inconsistent model files ({type(exc).__name__}: {exc})") from exc
    profile = None
    ref = {k[10:]: v for k, v in arrays.items() if k.startswith("reference/")}
    if ref:
        from .monitor.profile import BatchProfile
        try:
            profile = BatchProfile.from_arrays(ref)
        except (KeyError, ValueError) as exc:
            raise ModelFormatError(f"{p}: inconsistent reference profile ({exc})") from exc
    input_order, order_check, sizes = _read_reference(config.get("reference"), p)
    accepted = config.get("accepted", [])
    if not (isinstance(accepted, list) and all(isinstance(a, dict) for a in accepted)):
        raise ModelFormatError(f"{p}: 'accepted' must be a list of records")
    return ModelParts(branches, fusion, {k: v for k, v in params.items() if k in param_names}, n_train, profile,
                      input_order, order_check, accepted, sizes)


def _read_reference(ref, path):
    """``(input_order, order_check, sizes)`` from a saved model's ``reference`` object (absent before 0.3;
    ``sizes`` absent before 2026-12-03)."""
    from .io.order import ORDERS, InputOrder
    if ref is None:
        return None, None, None
    try:
        if not isinstance(ref, dict):
            raise ValueError("'reference' must be an object")
        io_ = ref.get("input_order")
        if io_ is not None:
            if not isinstance(io_, dict) or io_.get("requested") not in ORDERS or \
                    not all(isinstance(io_.get(k), str) for k in ("used", "detail")):
                raise ValueError(f"bad input_order {str(io_)[:80]}")
            io_ = InputOrder(io_["requested"], io_["used"], io_["detail"][:500], bool(io_.get("changed", False)))
        chk = ref.get("order_check")
        return io_, None if chk is None else OrderCheck.from_dict(chk), _read_sizes(ref.get("sizes"))
    except ValueError as exc:
        raise ModelFormatError(f"{path}: inconsistent reference description ({exc})") from exc


#: at most this many distinct reference sizes are kept in a model file
_MAX_SIZES = 1000


def _read_sizes(sizes) -> dict[str, int] | None:
    """The reference's ``{"WxH": count}`` as saved, checked; None when absent."""
    if sizes is None:
        return None
    if not isinstance(sizes, dict) or len(sizes) > _MAX_SIZES or not all(
            isinstance(k, str) and re.fullmatch(r"[1-9][0-9]{0,5}x[1-9][0-9]{0,5}", k) and isinstance(n, int)
            and not isinstance(n, bool) and n > 0 for k, n in sizes.items()):
        raise ValueError(f"bad sizes {str(sizes)[:80]}")
    return dict(sizes)


def _read_files(p: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """``(config, arrays)`` of the model folder ``p``, checked as described above, in format 2."""
    cfg_path, arr_path = p / "config.json", p / "arrays.npz"
    if not cfg_path.is_file() or not arr_path.is_file():
        raise ModelFormatError(f"{p}: not a hybrid_drift model directory (needs config.json and arrays.npz)")
    if cfg_path.stat().st_size > _MAX_CONFIG_BYTES:
        raise ModelFormatError(f"{cfg_path}: {cfg_path.stat().st_size:,} bytes is too large for a model config")
    try:
        config = json.loads(cfg_path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ModelFormatError(f"{cfg_path}: corrupted config ({type(exc).__name__}: {exc})") from exc
    if not isinstance(config, dict) or config.get("format") != _FORMAT_NAME:
        raise ModelFormatError(f"{cfg_path}: not a hybrid_drift detector config")
    version = config.get("format_version")
    if version not in (1, FORMAT_VERSION):
        raise ModelFormatError(
            f"{p}: saved with model format {version!r} (hybrid_drift {config.get('library_version')}); "
            f"this hybrid_drift {__version__} reads formats 1 and {FORMAT_VERSION}. Refit the model "
            "with this version.")
    blob = arr_path.read_bytes() if arr_path.stat().st_size <= _MAX_ARRAYS_BYTES else None
    if blob is None:
        raise ModelFormatError(f"{arr_path}: {arr_path.stat().st_size:,} bytes is too large for a model")
    want = config.get("arrays_sha256")
    if version == FORMAT_VERSION and want != hashlib.sha256(blob).hexdigest():
        raise ModelFormatError(f"{arr_path}: does not match {cfg_path.name} (SHA-256 differs: the files come "
                               "from different saves, or one was changed); save the model again")
    arrays = _read_npz(arr_path, blob)
    if version == 1:
        try:
            config, arrays = _migrate_v1(config, arrays)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelFormatError(f"{p}: inconsistent model files ({type(exc).__name__}: {exc})") from exc
    return config, arrays


class ModelFile:
    """Saving and loading a detector (mixed into :class:`~hybrid_drift.detector.HybridDetector`; the host
    names the settings it saves in ``_MODEL_PARAMS`` and checks them in ``_build_branches``)."""

    def _model_params(self) -> dict:
        """Settings saved with the model (branches are saved separately)."""
        return {**{k: getattr(self, k) for k in self._MODEL_PARAMS},
                "ignore": [[list(p) for p in poly] for poly in _zones(self.ignore)]}

    def save(self, path) -> Path:
        """Write ``config.json`` + ``arrays.npz`` to the directory ``path`` (no pickle).

        Each file is written to a temporary name and renamed, arrays first; the
        config records the arrays' SHA-256, so a save interrupted between the two
        renames (new arrays beside an old config) is refused by :meth:`load`.
        """
        self._check_fitted(calibrated=True)
        return write_model(Path(path), self.branches_, self.fusion_, getattr(self, "reference_profile_", None),
                           {"params": self._model_params(), "n_train": int(self.n_train_),
                            "reference": self.reference_summary(), "accepted": getattr(self, "accepted_", [])})

    @classmethod
    def load(cls, path, *, runtime=None,
             backend: str | None = None):
        """Load a detector saved by :meth:`save` (format 2, or format 1 migrated); never executes code.

        Every field is checked as data: types and ranges of the settings, array
        shapes against the config, finite values, the arrays file's hash and its
        members' sizes before they are inflated. ``runtime`` says how it runs here
        (never read from the model file); ``backend`` is a shortcut for
        ``runtime=Runtime(backend=...)``.
        """
        p = Path(path)
        m = read_model(p, cls._MODEL_PARAMS)
        try:
            det = cls.of_branches(m.branches, **m.params)
            det._build_branches()  # validates fusion, calibration rule and branch names
            if det.reduce not in (1, 2, 4, 8, "auto"):
                raise ValueError(f"reduce must be 1, 2, 4, 8 or 'auto', got {det.reduce!r}")
            if type(m.fusion).kind != det.fusion:
                raise ValueError(f"fusion state is {type(m.fusion).kind!r} but params say {det.fusion!r}")
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelFormatError(f"{p}: inconsistent model files ({type(exc).__name__}: {exc})") from exc
        if m.reference_profile is not None:
            det.reference_profile_ = m.reference_profile
        det.branches_, det.fusion_, det.n_train_ = m.branches, m.fusion, m.n_train
        det.input_order_, det.order_check_ = m.input_order, m.order_check
        det.reference_sizes_ = m.reference_sizes
        det.accepted_ = m.accepted
        import pandas as pd
        det.fit_errors_ = pd.DataFrame({"path": [], "error": []})
        if backend is not None:
            from .runtime import Runtime
            runtime = (runtime or Runtime()).replace(backend=backend)
        if runtime is not None:
            det.bind(runtime)
        return det

