"""HybridDetector: every branch scores every image; a fusion layer decides."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from .branches import DEFAULT_BRANCHES, Branch
from .calibration import Calibration, CalibrationRule
from .exceptions import NotFittedError
from .fusion import FUSIONS, OrFusion, make_fusion
from .reference_order import FOLDS, CrossfitPlan, plan_crossfit
from .io.loader import LoadSettings
from .io.zones import check_zones
from .model_file import FORMAT_VERSION, ModelFile
from .pipeline import Extracted, extract
from .runtime import UNSET as _UNSET
from .runtime import RuntimeOwner
from .sampling import evenly_spread
from .feedback import OperatorFeedback

__all__ = ["HybridDetector", "FORMAT_VERSION"]

log = logging.getLogger(__name__)

class HybridDetector(RuntimeOwner, OperatorFeedback, ModelFile):
    """Outlier detector for fixed-camera images: colour, CNN, light, shift, patch, bands, flat-rows and
    tear branches + fusion.

    Parameters
    ----------
    colour : ColourBranch, None or False
        The colour branch; ``None`` = ``ColourBranch()``; ``False`` = no colour branch.
    cnn : CNNBranch, None or False
        The CNN branch; ``None`` = ``CNNBranch()`` (bundled offline EfficientNet-Lite0);
        ``False`` = no CNN branch.
    light : LightBranch, None or False
        The light branch (:class:`~hybrid_drift.branches.LightBranch`: global light and colour
        cast outside the range the reference covered, a quarter of a stop of tolerance);
        ``None`` = ``LightBranch()``; ``False`` = none. Cheap (no network), and it keeps
        catching night, fog and a colour cast on scenes where moving content makes the
        other branches' thresholds wide.
    shift : ShiftBranch, None or False
        The shift branch (:class:`~hybrid_drift.branches.ShiftBranch`: has the camera moved,
        by phase correlation against the reference's median picture, in percent of the
        frame, never under 1%); ``None`` = ``ShiftBranch()``; ``False`` = none. Cheap.
    patch : PatchBranch, None or False
        The patch branch (:class:`~hybrid_drift.branches.PatchBranch`: where in the picture, a
        position-free PCA of the CNN's mid-level map, scored by its strongest horizontal band:
        dead pixel rows, a frozen banner, a smudge that the pooled embedding dilutes); ``None`` =
        one on the CNN branch's network, fed by the CNN branch's pass (no second pass; none when
        ``cnn=False``); ``False`` = none.
    bands : BandBranch, None or False
        The bands branch (:class:`~hybrid_drift.branches.BandBranch`: the strongest grey-level step
        between rows that 40% of the width shares, above the reference's range: dead sensor rows, a
        half-decoded frame, an overlay bar); ``None`` = ``BandBranch()``; ``False`` = none. Cheap.
    flat : FlatBranch, None or False
        The flat-rows branch (:class:`~hybrid_drift.branches.FlatBranch`: in each eighth of the height,
        the largest share of a row at the row's own grey level, above the reference's range there: a dead
        or stuck row, which needs no contrast with its neighbours); ``None`` = ``FlatBranch()``;
        ``False`` = none. Cheap.
    tear : TearBranch, None or False
        The tear branch (:class:`~hybrid_drift.branches.TearBranch`: in each eighth of the height, how
        much better the picture fits the reference's median picture moved sideways than in place, above
        the reference's range there: a torn frame); ``None`` = ``TearBranch()``; ``False`` = none. Cheap.
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
    ignore : list of polygons
        Ignore zones: parts of the frame no branch looks at (a TV screen, a clock overlay), each a
        list of ``(x, y)`` points in fractions of the width and height (:mod:`hybrid_drift.io.zones`).
        Part of the model: saved with it, used when it fits and when it scores.
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
                 runtime=None, ignore=(), light=None, shift=None, patch=None, bands=None,
                 flat=None, tear=None):
        self.colour = colour
        self.cnn = cnn
        self.light = light
        self.shift = shift
        self.patch = patch
        self.bands = bands
        self.flat = flat
        self.tear = tear
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
        self.ignore = ignore
        if any(v is not _UNSET for v in (workers, max_pixels, progress)):
            import warnings
            warnings.warn("HybridDetector(workers=, max_pixels=, progress=) are deprecated: pass "
                          "runtime=Runtime(workers=..., max_pixels=..., progress=...)", DeprecationWarning, stacklevel=2)

    # ------------------------------------------------------------------ runtime (see RuntimeOwner)
    def _runtime_targets(self) -> list[Branch]:
        """The branches a runtime is handed to: the fitted ones and those the next ``fit`` uses."""
        given = [x for x in self._default_slots() if isinstance(x, Branch)]
        return list({id(b): b for b in (*getattr(self, "branches_", ()), *given, *self.extra_branches)}.values())

    @classmethod
    def of_branches(cls, branches, **params) -> HybridDetector:
        """A detector of exactly ``branches`` (none of the default ones besides), with ``params``."""
        return cls(**{c.default_name: False for c in DEFAULT_BRANCHES}, extra_branches=tuple(branches), **params)

    def _default_slots(self) -> list:
        """The ``colour``, ``cnn``, ``light``, ``shift``, ``patch``, ``bands``, ``flat`` and ``tear`` arguments, in
        :data:`DEFAULT_BRANCHES` order."""
        return [getattr(self, c.default_name) for c in DEFAULT_BRANCHES]

    def planned_branches(self) -> list:
        """The branches the next ``fit`` builds, in column order (the default slots', then
        ``extra_branches``), not bound to a runtime: how many there are sets a per-branch false-alarm
        rate (:func:`~hybrid_drift.calibration.fpr_for`)."""
        return [*self._planned_defaults(), *self.extra_branches]

    def _planned_defaults(self) -> list:
        """The default slots' branches (a slot left at None gets ``cls.default_beside``, built lazily:
        no network is loaded here)."""
        out = []
        for cls, v in zip(DEFAULT_BRANCHES, self._default_slots()):
            b = cls.default_beside(out) if v is None else v
            if b is not None and b is not False:
                out.append(b)
        return out

    # ------------------------------------------------------------------ helpers
    def _rule(self) -> CalibrationRule:
        """The calibration settings as one checked object."""
        return CalibrationRule(method=self.calibration, fpr=self.fpr, k=self.k, blocks=self.blocks)

    def _build_branches(self) -> list[Branch]:
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {sorted(FUSIONS)}, got {self.fusion!r}")
        if self.folds not in FOLDS:
            raise ValueError(f"folds must be one of {FOLDS}, got {self.folds!r}")
        check_zones(self.ignore)
        self._rule()
        branches = self._planned_defaults()
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
        return extract(branches, X, **self.load_settings.kw(), progress=self.runtime_.progress, desc=desc,
                       ignore=check_zones(self.ignore))

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
        self.release_memory()  # a fitted detector is usually kept to score a few frames at a time
        return self

    def release_memory(self) -> None:
        """Give back the memory the CNN runtime kept from its largest batch.

        ONNX Runtime keeps the working memory of the largest batch a session ran for the
        session's life: after :meth:`fit` and :meth:`calibrate` (done there already) or a :meth:`score` of a whole
        folder, about 1.7 GB more than a detector that scored a few frames at a time, with
        the default branches at 288x384. The next large batch takes it again (0.2-0.4 s on
        2 cores: ``benchmarks/memory.py --arena``), so call this when a long-lived process is done
        with large batches, not between them. Scores are unchanged."""
        for b in getattr(self, "branches_", []):
            b.release_memory()

    def plan_crossfit(self, ext: Extracted) -> CrossfitPlan:
        """Check whether the reference rows of ``ext`` look like time and plan cross-fitting: periods
        of the given order, or (when it does not look like time, or ``folds`` says so) groups of
        similar images, so that near-identical frames are never on both sides of a split."""
        if not hasattr(self, "branches_"):
            self.branches_ = self._build_branches()
        mode = {"auto": "auto", "time": "given", "similarity": "similarity"}[self.folds]
        readers = [b for b in self.branches_ if b.checks_order] or self.branches_
        plan = plan_crossfit({b.name: ext.features[b.name] for b in readers}, mode=mode, blocks=self._rule().blocks)
        (log.warning if not plan.check.time_like and mode == "auto" else log.info)("%s", plan.check.sentence())
        return plan

    def fit_features(self, ext: Extracted, items=None, extra: dict | None = None, plan: CrossfitPlan | None = None,
                     prefitted=()):
        """:meth:`fit` on already extracted features (rows in the order of the inputs).

        ``items`` (the inputs of ``ext``) lets branches build extra reference rows
        (the CNN branch's moved-foreground copies); ``extra`` gives them instead,
        precomputed: ``{branch name: (features, source_rows)}``. The order of the rows
        is checked here (``order_check_``) and, when it does not look like time,
        cross-fitting holds out groups of similar images (see ``folds``); ``plan``
        (from :meth:`plan_crossfit`) gives that decision instead. ``prefitted`` names
        branches (given as ``extra_branches``) that the caller has already fitted on exactly
        these features, extra rows, plan and calibration rule, e.g. one branch shared by
        several detectors as the benchmark does: they are kept as they are, not fitted again.
        """
        if not hasattr(self, "branches_"):
            self.branches_ = self._build_branches()
        keep = set(prefitted)
        unknown = keep - {b.name for b in self.branches_}
        if unknown:  # before any work: checking the order and cross-fitting take a while
            raise ValueError(f"prefitted names {sorted(unknown)}, which are not branches of this detector "
                             f"({[b.name for b in self.branches_]})")
        if ext.n_ok == 0:
            raise ValueError(f"no readable training image among {len(ext.ids)} inputs; first error: {ext.first_error()}")
        rule = self._rule()
        self.input_order_ = None
        plan = plan or self.plan_crossfit(ext)
        self.order_check_ = plan.check
        ext, items, extra = plan.apply(ext, items, extra)
        ok_items = None if items is None else [it for it, ok in zip(items, ext.ok) if ok]
        for b in self.branches_:
            if b.name in keep:
                b._check_calibrated()  # a branch said to be fitted must be, threshold and all
                continue
            if b.name not in extra and ok_items is not None:
                extra[b.name] = b.reference_extra(ok_items, **self.load_settings.kw(), progress=self.runtime_.progress,
                                                  ignore=check_zones(self.ignore))
            ex = extra.get(b.name)
            b.fit_features(ext.features[b.name], extra=None if ex is None else ex[0],
                           extra_src=None if ex is None else ex[1], rule=rule, folds=plan.folds)
        self.fit_errors_ = pd.DataFrame({"path": [i for i, e in zip(ext.ids, ext.errors) if e],
                                         "error": [e for e in ext.errors if e]})
        self.n_train_ = ext.n_ok
        self.reference_sizes_ = ext.sizes()
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
        pick = evenly_spread(len(items), self.REFERENCE_PROFILE_SIZE)
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
        self.calibrate_features(self.extract(X, desc="calibrate"), labels)
        self.release_memory()  # as at the end of fit
        return self

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
    def _note_resolution(self, ext: Extracted) -> None:
        """Say once when scored images have another size than the reference's: scores of another
        resolution or crop are not comparable with the thresholds (fit on frames of this stream)."""
        if getattr(self, "_resolution_noted", False):
            return
        want = self.reference_size_set()
        got = ext.sizes()
        if not want or not got:
            return
        other = {k: n for k, n in got.items() if k not in want}
        if other:
            self._resolution_noted = True
            log.warning("%d of %d images are not %s, the model's reference size%s (%s): scores of another resolution "
                        "are not comparable with its thresholds (fit on frames of this camera's stream)",
                        sum(other.values()), sum(got.values()), " or ".join(sorted(want)), "s" if len(want) > 1 else "",
                        ", ".join(f"{k} x{n}" for k, n in other.items()))

    def reference_size_set(self) -> set[str]:
        """The reference's image sizes (``"WxH"``): as counted at fit, or for a model saved before they were
        counted, those of its saved reference profile (a sample of up to 1,000 reference frames)."""
        sizes = getattr(self, "reference_sizes_", None)
        if sizes:
            return set(sizes)
        ref = getattr(self, "reference_profile_", None)
        if ref is None or not ref.n_images or "width" not in ref.table:
            return set()
        t = ref.table.dropna(subset=["width", "height"])
        return {f"{int(w)}x{int(h)}" for w, h in zip(t["width"], t["height"])}

    #: scored JPEGs whose median quality is this many points below the reference's get a warning
    JPEG_QUALITY_GAP = 20

    def _note_compression(self, ext: Extracted) -> None:
        """Say once when scored JPEGs are compressed clearly harder than the reference's: block artefacts
        the reference never had move the CNN's embedding (measured 2026-12-01: the `desk` scene's clean
        frames re-saved at JPEG 60 against a JPEG 92 reference, 26 of 77 flagged)."""
        ref = getattr(self, "reference_profile_", None)
        if ref is None or "jpeg_quality" not in ref.table or getattr(self, "_compression_noted", False):
            return
        want = pd.to_numeric(ref.table["jpeg_quality"], errors="coerce").median()
        got = [m["jpeg_quality"] for m, e in zip(ext.meta, ext.errors) if not e and m and m.get("jpeg_quality")]
        if not np.isfinite(want) or not got or np.median(got) > want - self.JPEG_QUALITY_GAP:
            return
        self._compression_noted = True
        log.warning("%d scored JPEGs have a median quality of %.0f, the model's reference %.0f: compression "
                    "artefacts the reference never had can raise false alarms (fit on frames saved the way "
                    "these are)", len(got), np.median(got), want)

    def score_features(self, ext: Extracted) -> pd.DataFrame:
        """:meth:`score` on already extracted features."""
        self._check_fitted(calibrated=True)
        self._note_resolution(ext)
        self._note_compression(ext)
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
        # the same scores in threshold units (1.0 = on the threshold; > 1 = flagged), for people to read
        for j, b in enumerate(self.branches_):
            df[f"{b.name}_x"] = cals[j].times_threshold(S[:, j])
        fused_x = np.full(len(ext.ids), np.nan)
        if ok.any():
            fused_x[ok] = self.fusion_.times_threshold(S[ok], cals)
        df["fused_x"] = fused_x
        return df

    def score(self, X, explain: bool = False):
        """One row per input: ``path``, each branch's score, ``<branch>_flag``, ``fused``,
        ``is_outlier`` (nullable boolean, NA when unreadable), ``error``, then each score in
        threshold units, ``<branch>_x`` and ``fused_x`` (score / threshold: 1.0 is on the
        threshold, > 1 is flagged; NaN where a rule has no positive threshold).

        With ``explain=True`` returns ``(table, explanations)``: the same table and one
        :class:`~hybrid_drift.explain.Explanation` (heat maps) per row, from the same pass.
        """
        self._check_fitted(calibrated=True)
        if not explain:
            return self.score_features(self.extract(X, desc="score"))
        from .explain import explanations
        zones = check_zones(self.ignore)
        ext = extract(self.branches_, X, **self.load_settings.kw(), progress=self.runtime_.progress, desc="explain",
                      maps=True, ignore=zones)
        table = self.score_features(ext)
        return table, [e.without(zones) for e in explanations(self, ext, table)]

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
    _MODEL_PARAMS = ("fusion", "calibration", "fpr", "k", "blocks", "folds", "reduce", "ignore")

    _INIT_PARAMS = ("colour", "cnn", "extra_branches", "fusion", "calibration", "fpr", "k", "blocks", "folds",
                    "workers", "reduce", "max_pixels", "progress", "runtime", "ignore", "light", "shift", "patch",
                    "bands", "flat", "tear")

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

    def reference_summary(self) -> dict:
        """What the model was fitted on, for the fit summary, the model file, reports and the benchmark:
        ``n`` readable reference images, ``input_order`` (how they were ordered, or None when
        features were given), ``order_check`` (whether that looked like time, what cross-fitting did) and
        ``sizes`` (``{"WxH": count}`` of the reference images, or None when not known: features given
        without images, or a model saved before 2026-12-03)."""
        self._check_fitted()
        io_ = getattr(self, "input_order_", None)
        chk = getattr(self, "order_check_", None)
        return {"n": int(self.n_train_), "input_order": None if io_ is None else io_.as_dict(),
                "order_check": None if chk is None else chk.as_dict(),
                "sizes": getattr(self, "reference_sizes_", None)}

    def __repr__(self):
        """The branches that run (the fitted ones, or those the next fit builds: ``None`` means the
        default branch, which is on), not the constructor's ``None``."""
        if hasattr(self, "branches_"):
            names = [type(b).__name__ for b in self.branches_]
        else:  # the planned ones, not bound to a runtime (that checks the device)
            names = [type(b).__name__ for b in self.planned_branches()]
        shown = "[" + ", ".join(f"{n}()" for n in names) + "]"
        return (f"HybridDetector(branches={shown}, fusion={self.fusion!r}, calibration={self.calibration!r}, "
                f"folds={self.folds!r}" + (", fitted" if hasattr(self, "branches_") else "") + ")")
