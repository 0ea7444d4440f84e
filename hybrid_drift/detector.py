"""HybridDetector: every branch scores every image; a fusion layer decides."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from ._version import __version__
from .branches import Branch, CNNBranch, ColourBranch
from .calibration import Calibration, CalibrationRule
from .exceptions import ModelFormatError, NotFittedError
from .fusion import FUSIONS, OrFusion, fusion_from_state, make_fusion
from .reference_order import FOLDS, CrossfitPlan, OrderCheck, plan_crossfit
from .io.loader import LoadSettings
from .io.outputs import atomic_write_bytes
from .pipeline import Extracted, extract
from .runtime import Runtime

__all__ = ["HybridDetector", "FORMAT_VERSION"]

log = logging.getLogger(__name__)

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


_UNSET = _Unset()

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



def _read_reference(ref, path):
    """``(input_order, order_check)`` from a saved model's ``reference`` object (absent before 0.3)."""
    from .io.order import ORDERS, InputOrder
    if ref is None:
        return None, None
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
        return io_, None if chk is None else OrderCheck.from_dict(chk)
    except ValueError as exc:
        raise ModelFormatError(f"{path}: inconsistent reference description ({exc})") from exc


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
    calibration : {"conformal", "quantile", "mean_std", "f1"}
        How each branch's threshold is set from out-of-sample normal scores (see
        :func:`~hybrid_drift.calibration.choose_threshold`). The default,
        ``"conformal"``, takes the conformal ``1 - fpr`` quantile (with few reference
        images: the largest score) times the branch's ``margin``.
    fpr : float
        Target false-positive rate per branch for ``"conformal"`` and ``"quantile"``.
    k : float
        Standard deviations for ``calibration="mean_std"``.
    blocks : int
        :meth:`fit` cuts the reference images (in time order) into this many
        contiguous blocks and scores each with a model fitted on the others; those
        out-of-sample scores set the thresholds, so a fitted detector is ready to
        score. 0 = no cross-fitting: thresholds then come from :meth:`calibrate` only.
    folds : {"auto", "time", "similarity"}
        How the cross-fitting blocks are formed. ``"auto"`` (default): periods of the
        reference in its order when that order looks like time (images' nearest
        neighbours in their own period, :mod:`hybrid_drift.reference_order`), else
        groups of similar images, so that near-identical frames are never on both
        sides of a split whatever the file names; ``"time"``: always periods of the
        given order; ``"similarity"``: always groups of similar images.
    reduce : {1, 2, 4, 8, "auto"}
        Reduced-size decode (``"auto"``: keep the shorter side >= 256 px).
    runtime : Runtime, optional
        How the model runs here (:class:`~hybrid_drift.runtime.Runtime`: CNN backend, device,
        threads, decode workers, feature cache, progress bars, the pixel guard). Not saved with
        the model. Given here (or to :meth:`load`, or :meth:`bind`), it is handed to every branch
        and replaces their own runtime settings (``CNNBranch(backend=..., cache_dir=...)``);
        ``None``: the default :class:`~hybrid_drift.runtime.Runtime` for reading inputs, and each
        branch as constructed.
    workers, max_pixels, progress
        Deprecated shortcuts for ``runtime=Runtime(workers=..., max_pixels=..., progress=...)``.

    Attributes
    ----------
    branches_ : list of Branch
        The fitted branches, in column order.
    fusion_ : OrFusion or LogisticFusion
        OR fusion after :meth:`fit`; logistic fusion after :meth:`calibrate` with labels.
    fit_errors_ : pandas.DataFrame
        Training inputs that could not be read (path, error).

    Examples
    --------
    With folders of a real camera: ``HybridDetector().fit("frames/reference")
    .score("frames/today")``. A self-contained run on synthetic grey frames
    (colour branch only, to keep it fast):

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> frames = [rng.integers(100, 120, (48, 64, 3), dtype=np.uint8) for _ in range(60)]
    >>> det = HybridDetector(cnn=False).fit(frames)
    >>> red = np.zeros((48, 64, 3), np.uint8); red[..., 0] = 200
    >>> table = det.score([frames[0], red, b"not an image"])
    >>> table["is_outlier"].tolist()
    [False, True, <NA>]
    >>> table["error"].tolist()[2]
    'not an image (unrecognised file format)'
    """

    def __init__(self, colour=None, cnn=None, extra_branches=(), fusion: str = "or",
                 calibration: str = "conformal", fpr: float = 0.001, k: float = 3.0, blocks: int = 5,
                 workers=_UNSET, reduce="auto", max_pixels=_UNSET, progress=_UNSET, folds: str = "auto",
                 runtime=None):
        self.colour = colour
        self.cnn = cnn
        self.extra_branches = extra_branches
        self.fusion = fusion
        self.calibration = calibration
        self.fpr = fpr
        self.k = k
        self.blocks = blocks
        self.folds = folds
        self.workers = workers
        self.reduce = reduce
        self.max_pixels = max_pixels
        self.progress = progress
        self.runtime = runtime
        if any(v is not _UNSET for v in (workers, max_pixels, progress)):
            import warnings
            warnings.warn("HybridDetector(workers=, max_pixels=, progress=) are deprecated: pass "
                          "runtime=Runtime(workers=..., max_pixels=..., progress=...)", DeprecationWarning, stacklevel=2)

    # ------------------------------------------------------------------ runtime
    @property
    def runtime_(self) -> Runtime:
        """The runtime in effect: ``runtime`` (default :class:`~hybrid_drift.runtime.Runtime`) with the
        deprecated ``workers`` / ``max_pixels`` / ``progress`` shortcuts applied."""
        rt = self.runtime if self.runtime is not None else Runtime()
        legacy = {k: getattr(self, k) for k in ("workers", "max_pixels", "progress") if getattr(self, k) is not _UNSET}
        return rt.replace(**legacy) if legacy else rt

    def _binds(self) -> bool:
        """Whether a runtime was given (then it is handed to the branches; else they keep their own)."""
        return self.runtime is not None or any(getattr(self, k) is not _UNSET
                                               for k in ("workers", "max_pixels", "progress"))

    def bind(self, runtime: Runtime) -> HybridDetector:
        """Run on ``runtime`` from now on: the fitted branches and those the next ``fit`` builds.

        The one way to change how a detector runs after construction (backend, device, threads,
        workers, cache, progress, pixel guard); a runtime that cannot run here (a backend not
        installed, ``device="cuda"`` without a GPU) is an error naming it. Returns self.
        """
        if not isinstance(runtime, Runtime):
            raise TypeError(f"runtime must be a hybrid_drift.Runtime, got {type(runtime).__name__}")
        self.workers = self.max_pixels = self.progress = _UNSET
        self.runtime = runtime
        for b in {id(b): b for b in (*getattr(self, "branches_", ()), *(x for x in (self.colour, self.cnn)
                                                                          if isinstance(x, Branch)),
                                     *self.extra_branches)}.values():
            b.bind(runtime)
        return self

    def set_backend(self, backend: str) -> HybridDetector:
        """Deprecated: ``bind(det.runtime_.replace(backend=...))``. Returns self."""
        import warnings
        warnings.warn("HybridDetector.set_backend is deprecated; use bind(det.runtime_.replace(backend=...)) "
                      "or HybridDetector.load(path, runtime=Runtime(backend=...))", DeprecationWarning, stacklevel=2)
        return self.bind(self.runtime_.replace(backend=backend))

    # ------------------------------------------------------------------ helpers
    def _rule(self) -> CalibrationRule:
        """The calibration settings as one checked object."""
        return CalibrationRule(method=self.calibration, fpr=self.fpr, k=self.k, blocks=self.blocks)

    def _build_branches(self) -> list[Branch]:
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {sorted(FUSIONS)}, got {self.fusion!r}")
        if self.folds not in FOLDS:
            raise ValueError(f"folds must be one of {FOLDS}, got {self.folds!r}")
        self._rule()
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
        if self._binds():
            rt = self.runtime_
            for b in branches:
                b.bind(rt)
        return branches

    def prepare_branches(self) -> list[Branch]:
        """Build the branches a fit starts from (settings checked, runtime bound) as ``branches_``;
        for engines that extract features themselves (Ray) and then call :meth:`fit_features`."""
        self.branches_ = self._build_branches()
        return self.branches_

    def _check_fitted(self, calibrated: bool = False):
        if not hasattr(self, "branches_"):
            raise NotFittedError("This HybridDetector is not fitted yet: call fit() with normal images first.")
        if calibrated and (getattr(self, "fusion_", None) is None or
                           any(getattr(b, "calibration_", None) is None for b in self.branches_)):
            raise NotFittedError("This HybridDetector has no thresholds yet: call calibrate() with held-out "
                                 "images (normal images, or labelled normals and outliers; fusion='logistic' "
                                 "needs labels).")

    @property
    def calibrations(self) -> list[Calibration]:
        """Each branch's calibration (its threshold), in column order."""
        self._check_fitted(calibrated=True)
        return [b.calibration_ for b in self.branches_]

    @property
    def branch_names(self) -> list[str]:
        self._check_fitted()
        return [b.name for b in self.branches_]

    @property
    def load_settings(self) -> LoadSettings:
        """How this detector reads inputs (passed whole to every path: local, Ray, augmentation)."""
        rt = self.runtime_
        return LoadSettings(rt.workers, self.reduce, rt.max_pixels)

    def extract(self, X, *, desc: str = "features") -> Extracted:
        """Load ``X`` once and compute every branch's features (for reuse across calls)."""
        branches = self.branches_ if hasattr(self, "branches_") else self._build_branches()
        return extract(branches, X, **self.load_settings.kw(), progress=self.runtime_.progress, desc=desc)

    # ------------------------------------------------------------------ fit
    def fit(self, X, y=None, *, order: str = "auto"):
        """Fit every branch on normal reference images and set their thresholds.

        ``X``: paths, folders, arrays, bytes or videos of normal footage, ideally
        the longest stretch you have. ``order`` says how to put them in time order
        (:func:`hybrid_drift.io.order.order_inputs`): ``"auto"`` (default) uses a
        manifest's time column, else EXIF ``DateTimeOriginal`` when every image has
        one, else the natural order of the names (``frame_9`` before ``frame_10``;
        video frames by position); ``"given"``, ``"name"``, ``"exif"``, ``"mtime"``
        or ``"time"`` force one. Whether the result looks like time is then checked
        on the features (``order_check_``); see ``folds``. With ``blocks`` > 1
        (default) thresholds come from cross-fitting on ``X``, so the detector can
        score right away; :meth:`calibrate` can add held-out images. Returns self.
        """
        from .io.order import order_inputs
        from .io.sources import expand_inputs
        self.branches_ = self._build_branches()
        items, input_order = order_inputs(expand_inputs(X), order)
        if input_order.changed:
            log.info("reference: %s", input_order.detail)
        self.fit_features(self.extract(items, desc="fit"), items=items)
        self.input_order_ = input_order
        return self

    def plan_crossfit(self, ext: Extracted) -> CrossfitPlan:
        """Check whether the reference rows of ``ext`` look like time and plan cross-fitting: periods
        of the given order, or (when it does not look like time, or ``folds`` says so) groups of
        similar images, so that near-identical frames are never on both sides of a split."""
        if not hasattr(self, "branches_"):
            self.branches_ = self._build_branches()
        mode = {"auto": "auto", "time": "given", "similarity": "similarity"}[self.folds]
        plan = plan_crossfit({b.name: ext.features[b.name] for b in self.branches_}, mode=mode,
                             blocks=self._rule().blocks)
        (log.warning if not plan.check.time_like and mode == "auto" else log.info)("%s", plan.check.sentence())
        return plan

    def fit_features(self, ext: Extracted, items=None, extra: dict | None = None, plan: CrossfitPlan | None = None):
        """:meth:`fit` on already extracted features (rows in the order of the inputs).

        ``items`` (the inputs of ``ext``) lets branches build extra reference rows
        (the CNN branch's moved-foreground copies); ``extra`` gives them instead,
        precomputed: ``{branch name: (features, source_rows)}``. The order of the rows
        is checked here (``order_check_``) and, when it does not look like time,
        cross-fitting holds out groups of similar images (see ``folds``); ``plan``
        (from :meth:`plan_crossfit`) gives that decision instead.
        """
        if not hasattr(self, "branches_"):
            self.branches_ = self._build_branches()
        if ext.n_ok == 0:
            raise ValueError(f"no readable training image among {len(ext.ids)} inputs; first error: {ext.first_error()}")
        rule = self._rule()
        self.input_order_ = None
        plan = plan or self.plan_crossfit(ext)
        self.order_check_ = plan.check
        ext, items, extra = plan.apply(ext, items, extra)
        ok_items = None if items is None else [it for it, ok in zip(items, ext.ok) if ok]
        for b in self.branches_:
            if b.name not in extra and ok_items is not None:
                extra[b.name] = b.reference_extra(ok_items, **self.load_settings.kw(), progress=self.runtime_.progress)
            ex = extra.get(b.name)
            b.fit_features(ext.features[b.name], extra=None if ex is None else ex[0],
                           extra_src=None if ex is None else ex[1], rule=rule, folds=plan.folds)
        self.fit_errors_ = pd.DataFrame({"path": [i for i, e in zip(ext.ids, ext.errors) if e],
                                         "error": [e for e in ext.errors if e]})
        self.n_train_ = ext.n_ok
        if ok_items is not None:
            self.reference_profile_ = self._reference_profile(ok_items)
        ready = all(b.calibration_ is not None for b in self.branches_)
        self.fusion_ = OrFusion() if ready and self.fusion == "or" else None
        return self

    #: reference frames whose monitor profile is kept with the model (for watch's drift check)
    REFERENCE_PROFILE_SIZE = 1000

    def _reference_profile(self, items):
        """The monitor's profile of up to ``REFERENCE_PROFILE_SIZE`` reference frames, evenly spread."""
        from .monitor.profile import profile_images
        pick = np.unique(np.linspace(0, len(items) - 1, min(len(items), self.REFERENCE_PROFILE_SIZE)).round()
                         .astype(int))
        return profile_images([items[i] for i in pick], **self.load_settings.kw())

    # ------------------------------------------------------------------ calibrate
    def branch_scores(self, ext: Extracted) -> np.ndarray:
        """``(n_inputs, n_branches)`` raw branch scores (NaN rows for unreadable inputs)."""
        self._check_fitted()
        cols = [ext.expand(b.score_features(ext.features[b.name])) if ext.n_ok else np.full(len(ext.ids), np.nan)
                for b in self.branches_]
        return np.column_stack(cols) if cols else np.empty((len(ext.ids), 0))

    def calibrate(self, X, labels=None):
        """Set branch thresholds (and logistic weights) from held-out images.

        The held-out normal scores are pooled with the cross-fitted reference scores
        from :meth:`fit` (when there are any) and the calibration rule is applied to
        all of them.

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
        rule = self._rule()
        for j, b in enumerate(self.branches_):
            b.calibrate_scores(S[:, j], y, rule=rule)
        fusion = make_fusion(self.fusion)
        ok = np.isfinite(S).all(axis=1)
        fusion.fit(S[ok], None if y is None else y[ok], [b.calibration_ for b in self.branches_])
        self.fusion_ = fusion
        return self

    # ------------------------------------------------------------------ score
    def score_features(self, ext: Extracted) -> pd.DataFrame:
        """:meth:`score` on already extracted features."""
        self._check_fitted(calibrated=True)
        S = self.branch_scores(ext)
        cals = self.calibrations
        ok = np.isfinite(S).all(axis=1)
        fused = np.full(len(ext.ids), np.nan)
        if ok.any():
            fused[ok] = self.fusion_.score(S[ok], cals)
        df = pd.DataFrame({"path": ext.ids})
        for j, b in enumerate(self.branches_):
            df[b.name] = S[:, j]
        for j, b in enumerate(self.branches_):
            df[f"{b.name}_flag"] = pd.array(np.where(ok, cals[j].flags(S[:, j]), None), dtype="boolean")
        df["fused"] = fused
        df["is_outlier"] = pd.array(np.where(ok, fused > self.fusion_.threshold_, None), dtype="boolean")
        df["error"] = pd.array(ext.errors, dtype="string")  # same dtype whatever the chunk holds
        return df

    def score(self, X, explain: bool = False):
        """One row per input: ``path``, each branch's score, ``<branch>_flag``, ``fused``,
        ``is_outlier`` (nullable boolean, NA when unreadable) and ``error``.

        With ``explain=True`` returns ``(table, explanations)``: the same table and one
        :class:`~hybrid_drift.explain.Explanation` (heat maps) per row, from the same pass.
        """
        self._check_fitted(calibrated=True)
        if not explain:
            return self.score_features(self.extract(X, desc="score"))
        from .explain import explanations
        ext = extract(self.branches_, X, **self.load_settings.kw(), progress=self.runtime_.progress, desc="explain",
                      maps=True)
        table = self.score_features(ext)
        return table, explanations(self, ext, table)

    def explain(self, X) -> list:
        """Where each input is strange: one :class:`~hybrid_drift.explain.Explanation` per input, in order.

        Each has ``heatmap`` (fused), ``branch_heatmaps`` (per branch; 2-D, covering the
        whole image at 1/8 of its size, higher = stranger), the scores and the decision as
        :meth:`score` gives them, and ``error`` for an unreadable input (then no maps).
        One pass over the inputs; the CNN's forward pass also returns its feature maps.
        """
        return self.score(X, explain=True)[1]

    def score_iter(self, X, chunk: int = 1024, explain: bool = False):
        """Score in chunks of ``chunk`` inputs, yielding one DataFrame per chunk
        (``(DataFrame, explanations)`` with ``explain``).

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
            if explain:
                yield self.score(items[i:i + chunk], explain=True)
            else:
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
    #: settings saved with the model (runtime settings -- workers, progress and the max_pixels safety
    #: guard -- are not: a model file cannot switch the decompression-bomb guard off)
    _MODEL_PARAMS = ("fusion", "calibration", "fpr", "k", "blocks", "folds", "reduce")

    _INIT_PARAMS = ("colour", "cnn", "extra_branches", "fusion", "calibration", "fpr", "k", "blocks", "folds",
                    "workers", "reduce", "max_pixels", "progress", "runtime")

    def get_params(self, deep: bool = True) -> dict:
        """The constructor arguments (scikit-learn's contract: ``sklearn.base.clone`` works)."""
        return {k: getattr(self, k) for k in self._INIT_PARAMS}

    def set_params(self, **params) -> HybridDetector:
        """Set constructor arguments (takes effect at the next ``fit``). Returns self."""
        unknown = set(params) - set(self._INIT_PARAMS)
        if unknown:
            raise ValueError(f"unknown parameters {sorted(unknown)}; valid: {list(self._INIT_PARAMS)}")
        for k, v in params.items():
            setattr(self, k, v)
        return self

    def _model_params(self) -> dict:
        """Settings saved with the model (branches are saved separately)."""
        return {k: getattr(self, k) for k in self._MODEL_PARAMS}

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``config.json`` + ``arrays.npz`` to the directory ``path`` (no pickle).

        Each file is written to a temporary name and renamed, arrays first; the
        config records the arrays' SHA-256, so a save interrupted between the two
        renames (new arrays beside an old config) is refused by :meth:`load`.
        """
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
        ref = getattr(self, "reference_profile_", None)
        if ref is not None and ref.n_images:
            arrays.update({f"reference/{k}": v for k, v in ref.to_arrays().items()})
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        blob = buf.getvalue()
        config = {"format": _FORMAT_NAME, "format_version": FORMAT_VERSION, "library_version": __version__,
                  "params": self._model_params(), "branches": branches, "fusion": fst,
                  "n_train": int(self.n_train_), "reference": self.reference_summary(),
                  "arrays_sha256": hashlib.sha256(blob).hexdigest()}
        for name, data in (("arrays.npz", blob), ("config.json", json.dumps(config, indent=2).encode())):
            atomic_write_bytes(out / name, data)
        return out

    def reference_summary(self) -> dict:
        """What the model was fitted on, for the fit summary, the model file, reports and the benchmark:
        ``n`` readable reference images, ``input_order`` (how they were ordered, or None when
        features were given) and ``order_check`` (whether that looked like time, what cross-fitting did)."""
        self._check_fitted()
        io_ = getattr(self, "input_order_", None)
        chk = getattr(self, "order_check_", None)
        return {"n": int(self.n_train_), "input_order": None if io_ is None else io_.as_dict(),
                "order_check": None if chk is None else chk.as_dict()}

    @classmethod
    def load(cls, path: str | os.PathLike, *, runtime: Runtime | None = None,
             backend: str | None = None) -> HybridDetector:
        """Load a detector saved by :meth:`save` (format 2, or format 1 migrated); never executes code.

        Every field is checked as data: types and ranges of the settings, array
        shapes against the config, finite values, the arrays file's hash and its
        members' sizes before they are inflated. ``runtime`` says how it runs here
        (never read from the model file); ``backend`` is a shortcut for
        ``runtime=Runtime(backend=...)``.
        """
        p = Path(path)
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
        try:
            if version == 1:
                config, arrays = _migrate_v1(config, arrays)
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
            params = {k: v for k, v in params.items() if k in cls._MODEL_PARAMS}
            det = cls(colour=False, cnn=False, extra_branches=tuple(branches), **params)
            det._build_branches()  # validates fusion, calibration rule and branch names
            if det.reduce not in (1, 2, 4, 8, "auto"):
                raise ValueError(f"reduce must be 1, 2, 4, 8 or 'auto', got {det.reduce!r}")
            if type(fusion).kind != det.fusion:
                raise ValueError(f"fusion state is {type(fusion).kind!r} but params say {det.fusion!r}")
            n_train = config.get("n_train", 0)
            if isinstance(n_train, bool) or not isinstance(n_train, int) or n_train < 0:
                raise ValueError(f"n_train must be a non-negative int, got {n_train!r}")
        except ModelFormatError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as exc:
            raise ModelFormatError(f"{p}: inconsistent model files ({type(exc).__name__}: {exc})") from exc
        ref = {k[10:]: v for k, v in arrays.items() if k.startswith("reference/")}
        if ref:
            from .monitor.profile import BatchProfile
            try:
                det.reference_profile_ = BatchProfile.from_arrays(ref)
            except (KeyError, ValueError) as exc:
                raise ModelFormatError(f"{p}: inconsistent reference profile ({exc})") from exc
        det.branches_ = branches
        det.fusion_ = fusion
        det.n_train_ = n_train
        det.input_order_, det.order_check_ = _read_reference(config.get("reference"), p)
        det.fit_errors_ = pd.DataFrame({"path": [], "error": []})
        if backend is not None:
            runtime = (runtime or Runtime()).replace(backend=backend)
        if runtime is not None:
            det.bind(runtime)
        return det

    def __repr__(self):
        """The branches that run (the fitted ones, or those the next fit builds: ``None`` means the
        default branch, which is on), not the constructor's ``None``."""
        if hasattr(self, "branches_"):
            names = [type(b).__name__ for b in self.branches_]
        else:  # without building them (a CNN branch loads its network)
            names = [cls for cls, v in (("ColourBranch", self.colour), ("CNNBranch", self.cnn)) if v is not False]
            names += [type(b).__name__ for b in self.extra_branches]
        shown = "[" + ", ".join(f"{n}()" for n in names) + "]"
        return (f"HybridDetector(branches={shown}, fusion={self.fusion!r}, calibration={self.calibration!r}, "
                f"folds={self.folds!r}" + (", fitted" if hasattr(self, "branches_") else "") + ")")
