"""The branch contract. Detector branches: a feature extractor paired with a scorer, with the scorer's verbs on images.

Every branch implements the same small contract, so fusion, the detector, the
benchmark and the CLI treat them alike and a new branch touches no other code:

* ``prepare(img)`` — per-image work in the loader's worker threads (HSV, resize),
  on ``img.at_side(self.min_side)``: each branch names the shorter side it needs,
  the loader decodes each size the branches name (JPEG: in the DCT domain);
* ``features(prepared, images)`` — a batch of prepared items → ``(n, d)`` features;
* ``make_scorer()`` — a fresh, unfitted :class:`~hybrid_drift.scorers.BaseScorer`;
* optionally ``reference_extra(items)`` — extra training rows made from the
  reference images (the CNN branch's moved-foreground copies).

The branch's threshold lives in its :class:`~hybrid_drift.calibration.Calibration`
(``calibration_``) and nowhere else. ``fit`` / ``calibrate`` / ``score_samples`` /
``decision_function`` / ``predict`` then work on image inputs (paths, folders,
arrays, bytes, videos) for each branch alone.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any, ClassVar

import numpy as np

from ..calibration import Calibration, CalibrationRule, crossfit_scores, forward_scores
from ..exceptions import ModelFormatError, NotFittedError
from ..io.decode import DEFAULT_MIN_SIDE, DecodedImage
from ..scorers import BaseScorer, scorer_from_state
from .params import check_params

__all__ = ["Branch", "BRANCHES", "stack_rows"]


def stack_rows(prepared: list, n_features: int) -> np.ndarray:
    """A batch of per-image feature vectors (``prepare`` results) as one float32 ``(n, n_features)`` matrix;
    ``(0, n_features)`` for an empty batch."""
    return np.stack(prepared).astype(np.float32) if prepared else np.empty((0, n_features), np.float32)

log = logging.getLogger(__name__)


#: name -> class, used to rebuild saved branches without pickle.
BRANCHES: dict[str, type] = {}


def _constructor_args(config: dict) -> dict:
    """Constructor arguments from :meth:`Branch.get_config`'s JSON-able values (lists back to tuples)."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()}


class Branch:
    """Base class of detector branches (see module docstring for the contract).

    A branch pairs a feature extractor with a scorer (fits, scores) and a
    :class:`~hybrid_drift.calibration.Calibration` (decides). ``fit`` sets the
    calibration by time-blocked cross-fitting on the reference images, so a fitted
    branch can ``predict`` at once; ``calibrate`` adds held-out images.

    Attributes
    ----------
    scorer_ : BaseScorer
        The fitted scorer (after ``fit``).
    calibration_ : Calibration
        The branch's threshold: the only place it is stored.
    oof_scores_ : ndarray
        Out-of-sample scores of the reference images from cross-fitting (pooled
        with held-out scores by ``calibrate``).
    """

    #: default column name in result tables
    default_name: ClassVar[str] = "branch"
    #: shorter side (pixels) of the image ``prepare`` works on (see ``DecodedImage.at_side``)
    min_side: int = DEFAULT_MIN_SIDE
    #: calibration method this branch always uses (None = the detector's choice)
    calibration_method: ClassVar[str | None] = None
    _config_keys: ClassVar[tuple[str, ...]] = ()
    #: multiplier of the conformal threshold (see ``choose_threshold``); instances may set ``margin``
    margin: float = 1.0
    #: the least threshold, in the score's units (0: none; see ``Calibration.from_scores``)
    least_threshold: float = 0.0
    #: whether the reference-order check (:mod:`hybrid_drift.reference_order`) reads this branch's
    #: features: a handful of global numbers cannot tell near-duplicate frames apart
    checks_order: ClassVar[bool] = True

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

    def release_memory(self) -> None:
        """Give back working memory that grew with the largest batch this branch ran and is kept for the
        next one (:meth:`HybridDetector.release_memory`). Nothing by default."""

    def make_scorer(self) -> BaseScorer:  # pragma: no cover - abstract
        """A fresh, unfitted scorer for this branch's features."""
        raise NotImplementedError

    def explain_features(self, prepared: list, images: list[DecodedImage]) -> tuple[np.ndarray, list | None]:
        """Features of a batch (as :meth:`features`) and, per image, a 2-D map of where its score comes
        from (rows top to bottom, columns left to right, covering the whole image), or None when the
        branch has no spatial view. Needs a fitted branch."""
        return self.features(prepared, images), None

    def _explain_stripes(self, prepared: list, images: list[DecodedImage]) -> tuple[np.ndarray, list]:
        """:meth:`explain_features` for a scorer with one score per horizontal stripe (its
        ``feature_scores``): per image, a one-column map of them, top to bottom."""
        self._check_fitted()
        F = self.features(prepared, images)
        return F, [m[:, None] for m in self.scorer_.feature_scores(F)] if len(F) else []

    #: name -> rule (:mod:`hybrid_drift.branches.params`): checked at construction, which is also how a
    #: saved model is rebuilt, and read by the command line for its choices
    _parameter_constraints: ClassVar[dict] = {}
    #: settings a saved model must carry (not None), beyond what the constructor requires
    _saved_required: ClassVar[tuple[str, ...]] = ()

    def _check_params(self) -> None:
        """Check the settings against the class's constraints table (ValueError naming the setting)."""
        check_params(type(self), {k: getattr(self, k) for k in self._parameter_constraints})

    def reference_extra(self, items: list, **load_kw) -> tuple[np.ndarray, np.ndarray] | None:
        """Optional: extra training rows made from the readable reference ``items`` (in feature-row order).

        Returns ``(features, source_rows)`` or None. The CNN branch returns its
        reference frames with their moving foreground moved (see
        :mod:`hybrid_drift.features.foreground`).
        """
        return None

    @classmethod
    def saved_config(cls, cfg: dict) -> dict:
        """The constructor arguments of a saved branch, from its saved settings (a class whose defaults
        changed fills in what older model files did not say). Plainly ``cfg``."""
        return cfg

    @classmethod
    def default_beside(cls, before: list) -> Branch | None:
        """The branch a detector builds for this class's slot when it is left at None, given the
        branches built ``before`` it (None: none in this configuration). Plainly ``cls()``."""
        return cls()

    # --- runtime ------------------------------------------------------------------------
    #: how the branch runs here (a :class:`~hybrid_drift.runtime.Runtime`); None: nothing to set
    runtime = None

    def bind(self, runtime) -> Branch:
        """Run on ``runtime`` from now on (branches with runtime settings override this). Returns self."""
        return self

    # --- configuration ----------------------------------------------------------------
    def unfitted_copy(self) -> Branch:
        """A new, unfitted branch with this one's settings and name, bound to the same runtime (for a
        second detector that must not share this one's fit; ``copy.deepcopy`` cannot copy a bound
        network)."""
        obj = type(self)(**_constructor_args(self.get_config()))
        obj.name = self.name
        runtime = getattr(self, "_runtime", None)  # set by bind() on branches with runtime settings
        return obj if runtime is None else obj.bind(runtime)

    def get_config(self) -> dict:
        """The constructor arguments as JSON-able values (saved with the model)."""
        cfg = {k: getattr(self, k) for k in self._config_keys}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def _rule(self, rule: CalibrationRule | None) -> CalibrationRule:
        rule = rule or CalibrationRule()
        if self.calibration_method is not None and rule.method != self.calibration_method:
            rule = replace(rule, method=self.calibration_method)
        return rule

    # --- feature-level verbs (used by the detector and the benchmark) --------------------
    @property
    def fitted(self) -> bool:
        return getattr(self, "scorer_", None) is not None

    def _check_fitted(self):
        if not self.fitted:
            raise NotFittedError(f"This {type(self).__name__} is not fitted yet: call fit() with normal images first.")

    def _check_calibrated(self):
        self._check_fitted()
        if getattr(self, "calibration_", None) is None:
            raise NotFittedError(f"This {type(self).__name__} has no threshold yet: call calibrate() with "
                                 "held-out normal images (or fit with cross-fitting).")

    def fit_features(self, F: np.ndarray, *, extra: np.ndarray | None = None, extra_src=None,
                     rule: CalibrationRule | None = None, folds=None):
        """Fit the scorer on reference features ``F`` (time order) plus ``extra`` rows, and calibrate.

        With a cross-fitting rule (the default), the threshold comes from
        out-of-sample scores of ``F`` by time-blocked cross-fitting, or, with ``folds``
        (a list of fold-label arrays, one label per row of ``F``; see
        :class:`~hybrid_drift.reference_order.CrossfitPlan`), by cross-fitting over each
        set of folds, each row keeping its largest out-of-sample score. Returns self.
        """
        rule = self._rule(rule)
        F = np.asarray(F)
        train = F if extra is None or len(extra) == 0 else np.concatenate([F, extra])
        self.scorer_ = self.make_scorer().fit(train)
        self.calibration_ = None
        self.oof_scores_ = np.empty(0)
        if rule.method == "fixed":
            self.calibration_ = Calibration.from_scores(np.zeros(1), rule=rule)
        elif rule.crossfits:
            if len(F) < rule.blocks:
                raise ValueError(f"{self.name}: {len(F)} readable reference images are too few to set a threshold "
                                 f"by cross-fitting over {rule.blocks} time blocks; give at least {rule.blocks}")
            has_extra = extra is not None and len(extra) > 0
            ex, ex_src = (extra, extra_src) if has_extra else (None, None)
            runs = [crossfit_scores(self.make_scorer, F, blocks=rule.blocks, extra=ex, extra_src=ex_src,
                                    max_rows=rule.max_rows, folds=f)[0] for f in (folds or [None])]
            if rule.forward and not folds:  # time order: also score the late periods from the past only
                runs.append(forward_scores(self.make_scorer, F, blocks=rule.blocks, extra=ex, extra_src=ex_src,
                                           max_rows=rule.max_rows))
            self.oof_scores_ = np.max(runs, axis=0)
            self.calibration_ = Calibration.from_scores(self.oof_scores_, rule=rule, margin=self.margin,
                                                        source="crossfit", least=self.least_threshold)
        log.info("%s: fitted on %d reference rows (+%d extra); threshold %s", self.name, len(F),
                 0 if extra is None else len(extra),
                 "none yet" if self.calibration_ is None else f"{self.calibration_.threshold:.4g}")
        return self

    def calibrate_scores(self, scores, y=None, *, rule: CalibrationRule | None = None):
        """Set the threshold from out-of-sample ``scores`` (held-out images), pooled with the
        cross-fitted reference scores when there are any. Returns self."""
        self._check_fitted()
        rule = self._rule(rule)
        s = np.asarray(scores, dtype=np.float64)
        oof = getattr(self, "oof_scores_", np.empty(0))
        pooled = rule.method not in ("f1", "fixed") and len(oof) > 0
        if pooled:
            y0 = np.zeros(len(s), int) if y is None else np.asarray(y).astype(int)
            s, y = np.concatenate([oof, s]), (None if y is None else np.concatenate([np.zeros(len(oof), int), y0]))
        self.calibration_ = Calibration.from_scores(s, y, rule=rule, margin=self.margin,
                                                    source="crossfit+held-out" if pooled else "held-out",
                                                    least=self.least_threshold)
        return self

    #: an accepted frame's score times this is the least the threshold becomes (just above, not on it)
    ACCEPT_HEADROOM = 1.1

    def accept_scores(self, scores, *, dry_run: bool = False) -> tuple[float, float]:
        """Take ``scores`` of images a person marked as normal: the threshold becomes the larger of the
        current one and the largest accepted score times :data:`ACCEPT_HEADROOM` (just enough to cover
        them). Returns ``(old, new)`` thresholds; with ``dry_run`` nothing changes (the caller decides
        whether the widening is acceptable; :meth:`HybridDetector.accept` does). Accepted scores are
        kept (``accepted_scores_``, saved with the model)."""
        self._check_calibrated()
        s = np.asarray(scores, dtype=np.float64)
        s = s[np.isfinite(s)]
        old = self.calibration_.threshold
        new = max(old, float(s.max()) * self.ACCEPT_HEADROOM) if len(s) else old
        if not dry_run:
            self.accepted_scores_ = np.concatenate([getattr(self, "accepted_scores_", np.empty(0)), s])
            if new > old:
                self.calibration_ = replace(self.calibration_, threshold=new, source=self.calibration_.source +
                                            "+accepted")
        return old, new

    def score_features(self, F: np.ndarray) -> np.ndarray:
        """Scores (higher = stranger) of already extracted features."""
        self._check_fitted()
        return self.scorer_.score_samples(F)

    @property
    def threshold_(self) -> float:
        """The calibrated threshold (read from ``calibration_``, its only owner)."""
        self._check_calibrated()
        return self.calibration_.threshold

    # --- image-level verbs ------------------------------------------------------------
    def _extract(self, X, **load_kw):
        from ..pipeline import extract
        return extract([self], X, **load_kw)

    def fit(self, X, *, rule: CalibrationRule | None = None, order: str = "auto", **load_kw):
        """Fit on normal reference images (paths, a folder, arrays, bytes or a video) and set the
        threshold by cross-fitting. Returns self.

        ``order`` puts the inputs in time order as :meth:`HybridDetector.fit` does; when
        the result does not look like time on this branch's features, cross-fitting
        holds out groups of similar images instead (``order_check_`` says which).
        Inputs that cannot be read are logged and skipped for fitting; at least one
        must be readable.
        """
        from ..io.order import order_inputs
        from ..io.sources import expand_inputs
        from ..reference_order import plan_crossfit
        items, _ = order_inputs(expand_inputs(X), order)
        ext = self._extract(items, **load_kw)
        if ext.n_ok == 0:
            raise ValueError(f"no readable image among {len(ext.ids)} inputs; first error: {ext.first_error()}")
        plan = plan_crossfit(ext.features[self.name], blocks=self._rule(rule).blocks)
        self.order_check_ = plan.check
        if plan.check.action == "reordered":
            log.warning("%s: %s", self.name, plan.check.sentence())
        ext, items, _ = plan.apply(ext, items)
        extra = self.reference_extra([it for it, ok in zip(items, ext.ok) if ok], **load_kw)
        return self.fit_features(ext.features[self.name], extra=None if extra is None else extra[0],
                                 extra_src=None if extra is None else extra[1], rule=rule, folds=plan.folds)

    def score_samples(self, X, **load_kw) -> np.ndarray:
        """One score per input (higher = stranger); NaN where the input could not be read."""
        self._check_fitted()
        ext = self._extract(X, **load_kw)
        return ext.expand(self.score_features(ext.features[self.name]) if ext.n_ok else np.empty(0))

    def calibrate(self, X, y=None, *, rule: CalibrationRule | None = None, **load_kw):
        """Set the threshold from held-out images (labels optional, see ``choose_threshold``)."""
        return self.calibrate_scores(self.score_samples(X, **load_kw), y, rule=rule)

    def decision_function(self, X, **load_kw) -> np.ndarray:
        """Score minus threshold: > 0 means outlier (NaN for unreadable inputs)."""
        self._check_calibrated()
        return self.score_samples(X, **load_kw) - self.calibration_.threshold

    def predict(self, X, **load_kw) -> np.ndarray:
        """1 = outlier, 0 = normal, -1 = input could not be read."""
        d = self.decision_function(X, **load_kw)
        return np.where(np.isnan(d), -1, (d > 0).astype(int))

    # --- persistence ---------------------------------------------------------------
    def get_state(self):
        """``(json_state, arrays)`` describing the fitted branch, for :meth:`from_state`."""
        self._check_calibrated()
        state, arrays = self.scorer_.get_state()
        return {"class": type(self).__name__, "name": self.name, "config": self.get_config(),
                "scorer": state, "calibration": self.calibration_.get_state()}, \
            {**arrays, "oof_scores_": np.asarray(self.oof_scores_, dtype=np.float64),
             "accepted_scores_": np.asarray(getattr(self, "accepted_scores_", np.empty(0)), dtype=np.float64)}

    @classmethod
    def from_state(cls, state: dict, arrays: dict):
        """Rebuild a fitted branch from :meth:`get_state` (checked: model files are data)."""
        if not isinstance(state, dict) or not isinstance(state.get("config"), dict):
            raise ModelFormatError("branch state must be an object with a 'config' object")
        bcls = BRANCHES.get(state.get("class"))
        if bcls is None:
            raise ModelFormatError(f"unknown branch class {state.get('class')!r}")
        name = state.get("name")
        if not isinstance(name, str) or not name or len(name) > 64:
            raise ModelFormatError(f"bad branch name {name!r}")
        cfg = bcls.saved_config(_constructor_args(state["config"]))
        unknown = set(cfg) - set(bcls._config_keys)
        if unknown:
            raise ModelFormatError(f"branch {name!r}: unknown settings {sorted(unknown)}")
        missing = [k for k in bcls._saved_required if cfg.get(k) is None]
        if missing:
            raise ValueError(f"branch {name!r}: a saved model needs {', '.join(missing)}")
        obj = bcls(**cfg)  # the constructor checks every setting against the class's constraints table
        obj.name = name
        obj.scorer_ = scorer_from_state(state["scorer"], arrays)
        obj.calibration_ = Calibration.from_state(state.get("calibration"))
        oof = np.asarray(arrays.get("oof_scores_", np.empty(0)), dtype=np.float64)
        if oof.ndim != 1 or not np.isfinite(oof).all():
            raise ModelFormatError(f"branch {name!r}: oof_scores_ must be a finite vector")
        obj.oof_scores_ = oof
        acc = np.asarray(arrays.get("accepted_scores_", np.empty(0)), dtype=np.float64)
        if acc.ndim != 1 or not np.isfinite(acc).all():
            raise ModelFormatError(f"branch {name!r}: accepted_scores_ must be a finite vector")
        obj.accepted_scores_ = acc
        runtime = state.get("runtime")
        if isinstance(runtime, dict) and isinstance(runtime.get("backend"), str):
            obj.calibrated_backend_ = runtime["backend"]
        return obj


