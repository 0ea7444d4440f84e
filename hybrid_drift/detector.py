"""HybridDetector: every branch scores every image; a fusion layer decides."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from ._version import __version__
from .branches import Branch, CNNBranch, ColourBranch
from .calibration import CALIBRATION_METHODS
from .exceptions import ModelFormatError, NotFittedError
from .fusion import fusion_from_state, make_fusion
from .io.decode import DEFAULT_MAX_PIXELS
from .pipeline import Extracted, extract

__all__ = ["HybridDetector", "FORMAT_VERSION"]

log = logging.getLogger(__name__)

#: version of the saved-model layout (config.json + arrays.npz)
FORMAT_VERSION = 1
_FORMAT_NAME = "hybrid_drift.detector"


class HybridDetector:
    """Outlier detector for fixed-camera images: colour branch + CNN branch + fusion.

    Parameters
    ----------
    colour : ColourBranch, None or False
        The colour branch; ``None`` = ``ColourBranch()``; ``False`` = no colour branch.
    cnn : CNNBranch, None or False
        The CNN branch; ``None`` = ``CNNBranch()`` (bundled offline EfficientNet-Lite0);
        ``False`` = no CNN branch.
    extra_branches : sequence of Branch
        More branches (each with a unique ``name``); fusion handles any number.
    fusion : {"or", "logistic"}
        ``"or"``: outlier when any branch is over its threshold. ``"logistic"``:
        learned weights; needs labelled outliers in :meth:`calibrate`.
    calibration : {"quantile", "mean_std", "f1"}
        How each branch's threshold is set from the calibration images. The
        default, NannyML's ``mean + k * std`` of the held-out normal scores, transfers
        better to later frames than a tight quantile of a small validation set
        (measured on the crossroad set, see README).
    fpr : float
        Target false-positive rate per branch for ``calibration="quantile"``.
    k : float
        Standard deviations for ``calibration="mean_std"``.
    workers : int, optional
        Decode threads (default: one per core).
    reduce : {1, 2, 4, 8, "auto"}
        Reduced-size decode (``"auto"``: keep the shorter side >= 256 px).
    max_pixels : int or None
        Decompression-bomb guard: larger images become error records.
    progress : bool
        Show tqdm progress bars.

    Attributes
    ----------
    branches_ : list of Branch
        The fitted branches, in column order.
    fusion_ : OrFusion or LogisticFusion
        Set by :meth:`calibrate`.
    fit_errors_ : pandas.DataFrame
        Training inputs that could not be read (path, error).

    Examples
    --------
    With folders of a real camera: ``HybridDetector().fit("frames/train")
    .calibrate("frames/val").score("frames/today")``. A self-contained run on
    synthetic grey frames (colour branch only, to keep it fast):

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> frames = [rng.integers(100, 120, (48, 64, 3), dtype=np.uint8) for _ in range(60)]
    >>> det = HybridDetector(cnn=False).fit(frames[:40]).calibrate(frames[40:])
    >>> red = np.zeros((48, 64, 3), np.uint8); red[..., 0] = 200
    >>> table = det.score([frames[0], red, b"not an image"])
    >>> table["is_outlier"].tolist()
    [False, True, <NA>]
    >>> table["error"].tolist()[2]
    'not an image (unrecognised file format)'
    """

    def __init__(self, colour=None, cnn=None, extra_branches=(), fusion: str = "or",
                 calibration: str = "mean_std", fpr: float = 0.01, k: float = 3.0,
                 workers: int | None = None, reduce="auto", max_pixels: int | None = DEFAULT_MAX_PIXELS,
                 progress: bool = False):
        self.colour = colour
        self.cnn = cnn
        self.extra_branches = extra_branches
        self.fusion = fusion
        self.calibration = calibration
        self.fpr = fpr
        self.k = k
        self.workers = workers
        self.reduce = reduce
        self.max_pixels = max_pixels
        self.progress = progress

    # ------------------------------------------------------------------ helpers
    def _build_branches(self) -> list[Branch]:
        if self.fusion not in ("or", "logistic"):
            raise ValueError(f"fusion must be 'or' or 'logistic', got {self.fusion!r}")
        if self.calibration not in CALIBRATION_METHODS:
            raise ValueError(f"calibration must be one of {CALIBRATION_METHODS}, got {self.calibration!r}")
        branches = []
        if self.colour is not False:
            branches.append(self.colour if self.colour is not None else ColourBranch())
        if self.cnn is not False:
            branches.append(self.cnn if self.cnn is not None else CNNBranch())
        branches.extend(self.extra_branches)
        if not branches:
            raise ValueError("HybridDetector needs at least one branch")
        for b in branches:
            if not isinstance(b, Branch):
                raise TypeError(f"branches must be Branch instances, got {type(b).__name__}")
        names = [b.name for b in branches]
        if len(set(names)) != len(names):
            raise ValueError(f"branch names must be unique, got {names}")
        return branches

    def _check_fitted(self, calibrated: bool = False):
        if not hasattr(self, "branches_"):
            raise NotFittedError("This HybridDetector is not fitted yet: call fit() with normal images first.")
        if calibrated and getattr(self, "fusion_", None) is None:
            raise NotFittedError("This HybridDetector has no thresholds yet: call calibrate() with held-out "
                                 "images (normal images, or labelled normals and outliers).")

    @property
    def branch_names(self) -> list[str]:
        self._check_fitted()
        return [b.name for b in self.branches_]

    def extract(self, X, *, desc: str = "features") -> Extracted:
        """Load ``X`` once and compute every branch's features (for reuse across calls)."""
        branches = self.branches_ if hasattr(self, "branches_") else self._build_branches()
        return extract(branches, X, workers=self.workers, reduce=self.reduce, max_pixels=self.max_pixels,
                       progress=self.progress, desc=desc)

    # ------------------------------------------------------------------ fit
    def fit(self, X, y=None):
        """Fit every branch on normal images (paths, folders, arrays, bytes, videos). Returns self."""
        self.branches_ = self._build_branches()
        return self.fit_features(self.extract(X, desc="fit"))

    def fit_features(self, ext: Extracted):
        """:meth:`fit` on already extracted features."""
        if not hasattr(self, "branches_"):
            self.branches_ = self._build_branches()
        if ext.n_ok == 0:
            raise ValueError(f"no readable training image among {len(ext.ids)} inputs; first error: {ext.first_error()}")
        for b in self.branches_:
            b.fit_features(ext.features[b.name])
        self.fit_errors_ = pd.DataFrame({"path": [i for i, e in zip(ext.ids, ext.errors) if e],
                                         "error": [e for e in ext.errors if e]})
        self.n_train_ = ext.n_ok
        self.fusion_ = None
        return self

    # ------------------------------------------------------------------ calibrate
    def branch_scores(self, ext: Extracted) -> np.ndarray:
        """``(n_inputs, n_branches)`` raw branch scores (NaN rows for unreadable inputs)."""
        self._check_fitted()
        cols = [ext.expand(b.score_features(ext.features[b.name])) if ext.n_ok else np.full(len(ext.ids), np.nan)
                for b in self.branches_]
        return np.column_stack(cols) if cols else np.empty((len(ext.ids), 0))

    def calibrate(self, X, labels=None):
        """Set branch thresholds (and logistic weights) from held-out images.

        Parameters
        ----------
        X : inputs
            Held-out images of the same camera, not used in :meth:`fit`.
        labels : array-like of int, optional
            0 = normal, 1 = outlier, one per input. Without labels all are taken as
            normal; ``fusion="logistic"`` and ``calibration="f1"`` need labels.
        """
        return self.calibrate_features(self.extract(X, desc="calibrate"), labels)

    def calibrate_features(self, ext: Extracted, labels=None):
        """:meth:`calibrate` on already extracted features."""
        self._check_fitted()
        S = self.branch_scores(ext)
        y = None if labels is None else np.asarray(labels).astype(int)
        if y is not None and len(y) != len(ext.ids):
            raise ValueError(f"labels has {len(y)} entries for {len(ext.ids)} inputs")
        if self.fusion == "logistic" and y is None:
            raise ValueError("fusion='logistic' learns from labelled images: pass labels to calibrate() "
                             "(0 = normal, 1 = outlier), or use fusion='or'")
        for j, b in enumerate(self.branches_):
            b.scorer_.set_threshold(S[:, j], y, method=self.calibration, fpr=self.fpr, k=self.k)
        fusion = make_fusion(self.fusion)
        ok = np.isfinite(S).all(axis=1)
        fusion.fit(S[ok], None if y is None else y[ok], thresholds=[b.threshold_ for b in self.branches_])
        self.fusion_ = fusion
        return self

    # ------------------------------------------------------------------ score
    def score_features(self, ext: Extracted) -> pd.DataFrame:
        """:meth:`score` on already extracted features."""
        self._check_fitted(calibrated=True)
        S = self.branch_scores(ext)
        ok = np.isfinite(S).all(axis=1)
        fused = np.full(len(ext.ids), np.nan)
        if ok.any():
            fused[ok] = self.fusion_.score(S[ok])
        df = pd.DataFrame({"path": ext.ids})
        for j, b in enumerate(self.branches_):
            df[b.name] = S[:, j]
        for j, b in enumerate(self.branches_):
            df[f"{b.name}_flag"] = pd.array(np.where(ok, S[:, j] > b.threshold_, None), dtype="boolean")
        df["fused"] = fused
        df["is_outlier"] = pd.array(np.where(ok, fused > self.fusion_.threshold_, None), dtype="boolean")
        df["error"] = pd.array(ext.errors, dtype="string")  # same dtype whatever the chunk holds
        return df

    def score(self, X) -> pd.DataFrame:
        """One row per input: ``path``, each branch's score, ``<branch>_flag``, ``fused``,
        ``is_outlier`` (nullable boolean, NA when unreadable) and ``error``."""
        self._check_fitted(calibrated=True)
        return self.score_features(self.extract(X, desc="score"))

    def score_iter(self, X, chunk: int = 1024):
        """Score in chunks of ``chunk`` inputs, yielding one DataFrame per chunk.

        Memory stays flat in the number of inputs: only one chunk's images and
        features are held at a time. Rows come in input order, with the same
        columns as :meth:`score`.
        """
        from .io.sources import expand_inputs
        self._check_fitted(calibrated=True)
        if chunk < 1:
            raise ValueError(f"chunk must be >= 1, got {chunk}")
        items = expand_inputs(X)
        for i in range(0, len(items), chunk):
            yield self.score_features(self.extract(items[i:i + chunk], desc=f"score {i}-{i + chunk}"))

    def score_samples(self, X) -> np.ndarray:
        """Fused score per input (higher = stranger); NaN for unreadable inputs."""
        return self.score(X)["fused"].to_numpy(dtype=float)

    def decision_function(self, X) -> np.ndarray:
        """Fused score minus the fusion threshold: > 0 means outlier."""
        return self.score_samples(X) - self.fusion_.threshold_

    def predict(self, X) -> np.ndarray:
        """1 = outlier, 0 = normal, -1 = input could not be read."""
        d = self.decision_function(X)
        return np.where(np.isnan(d), -1, (d > 0).astype(int))

    # ------------------------------------------------------------------ persistence
    def get_params(self) -> dict:
        """Settings saved with the model (branches are saved separately)."""
        return {k: getattr(self, k) for k in ("fusion", "calibration", "fpr", "k", "workers", "reduce",
                                              "max_pixels", "progress")}

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``config.json`` + ``arrays.npz`` to the directory ``path`` (no pickle)."""
        self._check_fitted(calibrated=True)
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {}
        branches = []
        for b in self.branches_:
            st, arr = b.get_state()
            branches.append(st)
            arrays.update({f"branch/{b.name}/{k}": v for k, v in arr.items()})
        fst, farr = self.fusion_.get_state()
        arrays.update({f"fusion/{k}": v for k, v in farr.items()})
        config = {"format": _FORMAT_NAME, "format_version": FORMAT_VERSION, "library_version": __version__,
                  "params": self.get_params(), "branches": branches, "fusion": fst,
                  "n_train": int(self.n_train_)}
        # write both files atomically: a crash never leaves a half-written model
        for name, writer in (("arrays.npz", lambda fh: np.savez(fh, **arrays)),
                             ("config.json", lambda fh: fh.write(json.dumps(config, indent=2).encode()))):
            fd, tmp = tempfile.mkstemp(dir=out, suffix=".tmp")
            with os.fdopen(fd, "wb") as fh:
                writer(fh)
            os.replace(tmp, out / name)
        return out

    @classmethod
    def load(cls, path: str | os.PathLike) -> HybridDetector:
        """Load a detector saved by :meth:`save`; never executes code from the files."""
        p = Path(path)
        cfg_path, arr_path = p / "config.json", p / "arrays.npz"
        if not cfg_path.is_file() or not arr_path.is_file():
            raise ModelFormatError(f"{p}: not a hybrid_drift model directory (needs config.json and arrays.npz)")
        try:
            config = json.loads(cfg_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ModelFormatError(f"{cfg_path}: corrupted config ({exc})") from exc
        if not isinstance(config, dict) or config.get("format") != _FORMAT_NAME:
            raise ModelFormatError(f"{cfg_path}: not a hybrid_drift detector config")
        if config.get("format_version") != FORMAT_VERSION:
            raise ModelFormatError(
                f"{p}: saved with model format {config.get('format_version')} (hybrid_drift "
                f"{config.get('library_version')}); this hybrid_drift {__version__} reads format "
                f"{FORMAT_VERSION}. Refit the model with this version.")
        try:
            with np.load(arr_path, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except Exception as exc:
            raise ModelFormatError(f"{arr_path}: corrupted arrays file ({type(exc).__name__}: {exc})") from exc
        try:
            branches = []
            for st in config["branches"]:
                prefix = f"branch/{st['name']}/"
                branches.append(Branch.from_state(st, {k[len(prefix):]: v for k, v in arrays.items()
                                                       if k.startswith(prefix)}))
            fusion = fusion_from_state(config["fusion"], {k[7:]: v for k, v in arrays.items()
                                                          if k.startswith("fusion/")})
            det = cls(colour=False, cnn=False, extra_branches=tuple(branches), **config["params"])
        except ModelFormatError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFormatError(f"{p}: inconsistent model files ({type(exc).__name__}: {exc})") from exc
        det.branches_ = branches
        det.fusion_ = fusion
        det.n_train_ = config.get("n_train", 0)
        det.fit_errors_ = pd.DataFrame({"path": [], "error": []})
        return det

    def __repr__(self):
        return (f"HybridDetector(colour={self.colour!r}, cnn={self.cnn!r}, fusion={self.fusion!r}, "
                f"calibration={self.calibration!r})")
