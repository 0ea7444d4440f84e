"""Calibration: cross-fitted conformal thresholds, one owner per threshold, and false alarms on clean footage."""

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from conftest import TEST_IMAGE_SIZE
from hybrid_drift import CNNBranch, ColourBranch, HybridDetector, ModelFormatError, NotFittedError
from hybrid_drift.calibration import Calibration, CalibrationRule, choose_threshold, crossfit_scores, time_blocks
from hybrid_drift.scorers import PCAReconstructionScorer

DATA = Path(__file__).parent / "data"


def test_conformal_threshold_is_an_order_statistic_times_the_margin():
    s = np.arange(1.0, 11.0)  # 10 scores
    # fewer than 1/fpr scores: the largest one
    assert choose_threshold(s, method="conformal", fpr=0.001) == 10.0
    assert choose_threshold(s, method="conformal", fpr=0.001, margin=2.5) == 25.0
    # ceil((n + 1)(1 - fpr))-th smallest: n = 10, fpr = 0.2 -> ceil(8.8) = 9th -> 9
    assert choose_threshold(s, method="conformal", fpr=0.2) == 9.0
    assert choose_threshold(np.r_[s, np.nan], method="conformal", fpr=0.2) == 9.0  # unreadable ignored
    with pytest.raises(ValueError, match="non-negative"):
        choose_threshold(s - 5, method="conformal")
    with pytest.raises(ValueError, match="margin"):
        choose_threshold(s, method="conformal", margin=0.5)
    assert choose_threshold(s, method="fixed") == 0.0


def test_rule_validation_names_the_parameter():
    for kw, word in (({"method": "magic"}, "calibration"), ({"fpr": 0}, "fpr"), ({"fpr": 1.5}, "fpr"),
                     ({"k": -1}, "k"), ({"blocks": 1}, "blocks"), ({"max_rows": 1}, "max_rows")):
        with pytest.raises(ValueError, match=word):
            CalibrationRule(**kw)
    assert not CalibrationRule(blocks=0).crossfits and not CalibrationRule(method="fixed").crossfits


def test_time_blocks_cover_every_row_once_in_order():
    blocks = time_blocks(11, 3)
    assert np.array_equal(np.concatenate(blocks), np.arange(11))
    assert [len(b) for b in blocks] in ([4, 3, 4], [4, 4, 3], [3, 4, 4])


class _Recorder:
    """A scorer that remembers what it was fitted on (rows are identified by their value)."""

    fits: list = []

    def fit(self, X):
        self.seen = set(X[:, 0].tolist())
        _Recorder.fits.append(self.seen)
        return self

    def score_samples(self, X):
        assert not set(X[:, 0].tolist()) & self.seen, "a held-out row was in the training rows"
        return X[:, 0] * 0 + len(self.seen)


def test_crossfit_never_scores_a_row_with_a_model_that_saw_its_period():
    _Recorder.fits = []
    F = np.arange(20, dtype=float)[:, None]          # row i has value i
    extra = 100 + np.arange(20, dtype=float)[:, None]  # an extra row made from each reference row
    oof, rows = crossfit_scores(_Recorder, F, blocks=4, extra=extra, extra_src=np.arange(20))
    assert np.array_equal(rows, np.arange(20)) and len(_Recorder.fits) == 4
    for held, seen in zip(time_blocks(20, 4), _Recorder.fits):
        assert not set(held.tolist()) & seen                 # its own rows: out
        assert not {100 + i for i in held.tolist()} & seen   # extra rows made from them: out too
        assert {100 + i for i in range(20) if i not in held} <= seen
    # a bounded sample of rows, evenly spread, when there are many
    oof, rows = crossfit_scores(lambda: PCAReconstructionScorer(2), np.random.default_rng(0).normal(size=(50, 5)),
                                blocks=5, max_rows=20)
    assert len(rows) == len(oof) == 20 and rows[0] == 0 and rows[-1] == 49


def test_crossfit_over_groups_never_scores_a_row_with_a_model_that_saw_its_group():
    _Recorder.fits = []
    F = np.arange(12, dtype=float)[:, None]
    extra = 100 + np.arange(12, dtype=float)[:, None]
    folds = np.array([0, 1, 2] * 4)                      # interleaved groups, not periods
    oof, rows = crossfit_scores(_Recorder, F, blocks=3, extra=extra, extra_src=np.arange(12), folds=folds)
    assert len(_Recorder.fits) == 3
    for f, seen in zip(range(3), _Recorder.fits):
        held = set(np.flatnonzero(folds == f).tolist())
        assert not held & seen and not {100 + i for i in held} & seen
        assert set(np.flatnonzero(folds != f).tolist()) <= seen
    with pytest.raises(ValueError, match="one label per"):
        crossfit_scores(_Recorder, F, blocks=3, folds=folds[:5])


def test_calibration_state_is_checked_on_load():
    good = Calibration("conformal", 1.5, 0.2, 10, "crossfit", {"fpr": 0.001})
    assert Calibration.from_state(good.get_state()) == good
    for bad in ({**good.get_state(), "threshold": None}, {**good.get_state(), "threshold": float("inf")},
                {**good.get_state(), "spread": 0}, {**good.get_state(), "method": "magic"},
                {**good.get_state(), "n": -1}, "not an object"):
        with pytest.raises(ValueError):
            Calibration.from_state(bad)


def test_a_fitted_detector_is_ready_without_held_out_images(frames):
    det = HybridDetector(cnn=False).fit(frames[:60])
    c = det.branches_[0].calibration_
    assert c.source == "crossfit" and c.n == 60 and c.method == "conformal"
    assert det.score(frames[60:62])["is_outlier"].notna().all()
    # calibrate() pools the held-out scores with the cross-fitted ones
    det.calibrate(frames[60:80])
    assert det.branches_[0].calibration_.n == 80 and det.branches_[0].calibration_.source == "crossfit+held-out"
    # without cross-fitting, thresholds need held-out images
    plain = HybridDetector(cnn=False, blocks=0).fit(frames[:60])
    with pytest.raises(NotFittedError, match="calibrate"):
        plain.score(frames[:2])
    plain.calibrate(frames[60:80])
    assert plain.branches_[0].calibration_.source == "held-out"


def test_one_owner_per_threshold_flags_and_decision_cannot_disagree(frames):
    """After recalibrating one branch, its flag and OR fusion's decision still agree (issue 13)."""
    whole = ColourBranch(grid=(1, 1), margin=1.0)
    whole.name = "colour_whole"
    det = HybridDetector(cnn=False, extra_branches=[whole]).fit(frames[:60])
    assert not hasattr(det.branches_[0].scorer_, "threshold_") and not vars(det.fusion_)
    tight = det.branches_[0]
    tight.calibrate(frames[60:70], rule=CalibrationRule(method="quantile", fpr=0.5))  # a threshold far too low
    table = det.score(frames[100:140])
    flags = table[["colour_flag", "colour_whole_flag"]].to_numpy(dtype=bool)
    assert flags[:, 0].any()  # the new threshold is used at once ...
    assert table["is_outlier"].to_numpy(dtype=bool).tolist() == flags.any(axis=1).tolist()  # ... by OR fusion too
    np.testing.assert_allclose(table["colour"] > tight.threshold_, flags[:, 0])


def _scene(rng, n, side, cast=None):
    """A fixed camera: a static street background and 1-2 people walking on the left or right half."""
    bg = _scene.bg
    out = []
    for _ in range(n):
        f = bg.astype(np.float32).copy()
        for _ in range(int(rng.integers(1, 3))):
            w, h = 6, 16
            x = int(rng.integers(4, 90)) + (96 if side == "right" else 0)
            y = int(rng.integers(40, 120))
            coat = rng.integers(0, 255, 3).astype(np.float32)
            cv2.ellipse(f, (x, y), (w // 2, h // 2), 0, 0, 360, coat.tolist(), -1)
            cv2.circle(f, (x, y - h // 2 - 2), 2, (40.0, 30.0, 30.0), -1)
        f += rng.normal(0, 2, f.shape)
        if cast is not None:
            f *= cast
        out.append(np.clip(f, 0, 255).astype(np.uint8))
    return out


def test_a_clean_stream_with_people_somewhere_new_does_not_alert_but_a_colour_cast_does(frames):
    """Issue 13 on a tiny generated scene: reference people walk on the left, later on the right."""
    rng = np.random.default_rng(0)
    _scene.bg = np.median(np.stack(frames[:40]), axis=0).astype(np.uint8)
    reference = _scene(rng, 120, "left")
    clean_later = _scene(rng, 40, "right")
    cast = _scene(rng, 10, "right", cast=np.array([1.25, 1.0, 0.7], np.float32))
    det = HybridDetector(cnn=CNNBranch(image_size=TEST_IMAGE_SIZE, cache_dir=False)).fit(reference)
    clean = det.score(clean_later)
    assert int(clean["is_outlier"].sum()) <= 2  # <= 2 of 40 at this tiny CNN input (0 colour flags)
    assert not clean["colour_flag"].any()
    assert det.score(cast)["is_outlier"].all()
    # without the moved-foreground copies the CNN branch flags people who walk somewhere new (22 of 40)
    plain = HybridDetector(colour=False, cnn=CNNBranch(image_size=TEST_IMAGE_SIZE, cache_dir=False, augment=0))
    assert plain.fit(reference).score(clean_later)["is_outlier"].sum() >= 10
    # what issue 13 saw in the colour branch: the per-cell maximum with a threshold from a short val
    # window of the same period as training flags them too
    old = HybridDetector(colour=ColourBranch(combine="max"), cnn=False, calibration="mean_std", blocks=0)
    old.fit(reference[:80]).calibrate(reference[80:])
    assert old.score(clean_later)["is_outlier"].sum() >= 10


def test_format_1_models_are_migrated(frames):
    """A model saved by hybrid_drift 0.1 (format 1) loads and scores exactly as it did then."""
    det = HybridDetector.load(DATA / "model_v1")
    want = pd.read_csv(DATA / "model_v1" / "expected_scores.csv")
    inputs = list(frames[90:100]) + [255 - frames[100], np.ascontiguousarray(frames[101][::-1])]
    got = det.score(inputs)
    np.testing.assert_allclose(got["colour"], want["colour"], rtol=1e-9)
    np.testing.assert_allclose(got["fused"], want["fused"], rtol=1e-9, atol=1e-12)
    assert got["is_outlier"].tolist() == want["is_outlier"].tolist()
    assert got["colour_flag"].tolist() == want["colour_flag"].tolist()
    assert det.branches_[0].calibration_.source == "migrated"


def test_a_save_interrupted_between_its_two_files_is_refused(fitted_detector, tmp_path, frames):
    fitted_detector.save(tmp_path / "a")
    other = HybridDetector(cnn=False).fit(frames[:40])
    other.save(tmp_path / "b")
    (tmp_path / "a" / "arrays.npz").write_bytes((tmp_path / "b" / "arrays.npz").read_bytes())
    with pytest.raises(ModelFormatError, match="different saves"):
        HybridDetector.load(tmp_path / "a")
    cfg = json.loads((tmp_path / "b" / "config.json").read_text())
    assert cfg["format_version"] == 2 and "max_pixels" not in cfg["params"]


def test_forward_chaining_widens_thresholds_where_new_content_keeps_appearing():
    """Time-blocked cross-fitting fits on periods before *and after* a held-out one, so a state that
    appears in period 3 and again in period 5 is never new to it; a deployment only has the past. The
    forward (past-only) scores measure how new each period was when it came: a reference that keeps
    showing new states gets a wider threshold, a steady one the same."""
    from hybrid_drift.calibration import forward_scores
    rng = np.random.default_rng(0)
    n, d = 500, 20
    steady = rng.normal(size=(n, d))
    switching = steady + np.repeat([0, 0, 4, 0, 4], 100)[:, None] * np.eye(d)[0]  # a state that comes and goes
    make = lambda: PCAReconstructionScorer(n_components=3)  # noqa: E731
    fwd = forward_scores(make, switching, blocks=5)
    assert np.isneginf(fwd[:200]).all() and np.isfinite(fwd[200:]).all()  # periods 3-5 scored from their past
    thresholds = {}
    for name, F in (("steady", steady), ("switching", switching)):
        for forward in (False, True):
            b = ColourBranch()  # any branch: its scorer is replaced
            b.make_scorer = make
            b.fit_features(F, rule=CalibrationRule(forward=forward))
            thresholds[name, forward] = b.calibration_.threshold
    assert thresholds["switching", True] > 1.2 * thresholds["switching", False]
    assert thresholds["steady", True] == pytest.approx(thresholds["steady", False], rel=0.02)
    # not in a reference that is not in time order (groups of similar images): there is no past
    b = ColourBranch()
    b.make_scorer = make
    folds = [np.arange(n) % 3]
    b.fit_features(switching, rule=CalibrationRule(forward=True), folds=folds)
    alone = ColourBranch()
    alone.make_scorer = make
    alone.fit_features(switching, rule=CalibrationRule(forward=False), folds=folds)
    assert b.calibration_.threshold == alone.calibration_.threshold
