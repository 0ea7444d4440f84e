"""The bands branch (issue 21): row-aligned faults across the frame (dead sensor rows, an overlay bar)
against the strongest band edge the reference had; people and cars cover too little of a row."""

import json

import cv2
import numpy as np
import pytest

from hybrid_drift import BandBranch, HybridDetector, ModelFormatError
from hybrid_drift.features.geometry import BandFeatures
from hybrid_drift.scorers import RangeScorer
from test_local import _board_scene, _scene


@pytest.fixture(scope="module")
def scene():
    frames = _scene(np.random.default_rng(0), 150)   # a person walking on a path, clouds
    return frames[:120], frames[120:]


def _faults(later):
    dead, bar, person, half = (later[i].copy() for i in range(4))
    dead[100:103] = 0                                                   # 3 of 144 rows, the whole width
    bar[4:12, 5:120] = 160                                              # a grey overlay bar, 60% of the width
    cv2.ellipse(person, (150, 60), (6, 14), 0, 0, 360, (30, 30, 30), -1)  # a person where nobody walked
    half[100:103, :40] = 0                                              # dead pixels over 20% of the width
    return dead, bar, person, half


def test_dead_rows_and_an_overlay_bar_alert_and_a_person_or_a_short_run_of_dead_pixels_does_not(scene):
    ref, later = scene
    det = HybridDetector(colour=False, cnn=False, flat=False, tear=False, folds="time").fit(ref)     # light, shift, bands
    assert [b.name for b in det.branches_] == ["light", "shift", "bands"]
    dead, bar, person, half = _faults(later)
    table = det.score(later + [dead, bar, person, half])
    assert table["bands_flag"].iloc[:len(later)].sum() == 0                  # 30 clean frames
    assert table["bands_flag"].iloc[len(later):].tolist() == [True, True, False, False]
    assert table["is_outlier"].iloc[len(later):len(later) + 2].all()
    # without the branch, the light and shift branches see neither
    without = HybridDetector(colour=False, cnn=False, bands=False, flat=False, tear=False, folds="time").fit(ref)
    assert without.score([dead, bar])["is_outlier"].astype(bool).sum() == 0
    b = det.branches_[-1]
    assert b.calibration_.threshold >= 1.0                                  # never under one unit (4 levels)


def test_the_threshold_covers_the_wide_edges_a_moving_board_makes_in_the_reference():
    """A board that fills a fifth of the frame moves about during the reference: its horizontal edges
    are the scene's own, so none of the later frames alerts; a band of dead rows is still stronger."""
    frames = _board_scene(np.random.default_rng(0), 160)
    det = HybridDetector.of_branches([BandBranch()], folds="time").fit(frames[:120])
    b = det.branches_[0]
    assert b.predict(frames[120:]).sum() == 0
    dead = frames[130].copy()
    dead[60:63] = 0
    assert b.predict([dead]).tolist() == [1]


def test_the_band_statistic_and_its_scorer(scene):
    _, later = scene
    dead, bar, person, half = _faults(later)
    fx = BandFeatures()
    clean, d, p, h = (float(fx.transform(x).max()) for x in (later[0], dead, person, half))
    assert d > 80 and p < 40 and h < 40 and clean < 40                    # grey levels
    assert fx.steps(np.zeros((2, 10), np.uint8)).size == 0                # too small: no row pair
    with pytest.raises(ValueError, match="share"):
        BandFeatures(share=0.7)
    with pytest.raises(ValueError, match="share"):
        BandBranch(share=0.9)
    with pytest.raises(ValueError, match="bins"):
        BandFeatures(bins=0)
    # only above the range counts: a frame with weaker band edges than the reference (fog) is not a band
    s = RangeScorer(floors=[4.0], lower=False).fit(np.array([[10.0], [20.0]]))
    assert s.score_samples(np.array([[0.0], [28.0]])).tolist() == [0.0, 8.0 / np.std([10.0, 20.0], ddof=1)]
    assert RangeScorer(floors=[4.0]).fit(np.array([[10.0], [20.0]])).score_samples(np.array([[0.0]]))[0] > 0


def test_a_model_with_the_bands_branch_round_trips_and_one_saved_before_it_loads_without_it(scene, tmp_path):
    ref, later = scene
    dead = _faults(later)[0]
    det = HybridDetector(colour=False, cnn=False, light=False, shift=False, flat=False, tear=False, folds="time").fit(ref)
    det.save(tmp_path / "m")
    back = HybridDetector.load(tmp_path / "m")
    np.testing.assert_array_equal(back.score(later[:5] + [dead])["bands"], det.score(later[:5] + [dead])["bands"])
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["branches"][0]["class"] == "BandBranch" and cfg["branches"][0]["config"]["share"] == 0.4
    cfg["branches"][0]["config"]["share"] = 2.0
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelFormatError):
        HybridDetector.load(tmp_path / "m")
    # a model saved before the branch existed lists its own branches and gets no bands branch on load
    old = HybridDetector(colour=False, cnn=False, bands=False, flat=False, tear=False, folds="time").fit(ref)
    old.save(tmp_path / "old")
    assert [b.name for b in HybridDetector.load(tmp_path / "old").branches_] == ["light", "shift"]


def _ceiling_scene(rng, n):
    """``_scene`` under a dark ceiling: the top sixth is black, a step of ~90 grey levels over the whole
    width at a fixed height, the scene's own band edge."""
    frames = _scene(rng, n)
    for f in frames:
        f[:24] = 5
    return frames


def test_each_stripe_has_its_own_range_so_a_strong_fixed_edge_does_not_hide_a_weaker_banner_elsewhere():
    frames = _ceiling_scene(np.random.default_rng(1), 150)
    ref, later = frames[:120], frames[120:]
    banner = later[0].copy()
    banner[120:130, 5:125] = 40             # a dark bar over 60% of the width near the bottom, ~50 levels
    assert BandFeatures(bins=1).transform(banner)[0] == BandFeatures(bins=1).transform(later[0])[0]  # the ceiling's
    flags = {}
    for bins, spread in ((8, False), (1, True)):
        det = HybridDetector.of_branches([BandBranch(bins=bins, spread=spread)], folds="time").fit(ref)
        flags[bins] = det.branches_[0].predict(later + [banner]).tolist()
    assert flags[8] == [0] * len(later) + [1]       # per stripe: 30 clean frames quiet, the banner alerts
    assert flags[1][-1] == 0                        # one range for the frame: the ceiling's edge hides it


def test_a_bimodal_stripe_does_not_widen_the_unit():
    """Where the board comes and goes, a stripe's values are bimodal (edge in / edge out): with their
    standard deviation as unit, a band of dead rows 40 levels past the stripe's strongest edge scored under
    one unit; in fixed units of 4 grey levels it scores ten."""
    frames = _board_scene(np.random.default_rng(0), 160)
    dead = frames[130].copy()
    dead[60:63] = 0
    caught = {}
    for spread in (False, True):
        b = HybridDetector.of_branches([BandBranch(spread=spread)], folds="time").fit(frames[:120]).branches_[0]
        assert b.predict(frames[120:]).sum() == 0
        caught[spread] = int(b.predict([dead])[0])
    assert caught == {False: 1, True: 0}


def test_a_model_saved_before_the_stripes_loads_as_it_was_saved(scene, tmp_path):
    ref, later = scene
    dead = _faults(later)[0]
    det = HybridDetector.of_branches([BandBranch(bins=1, spread=True)], folds="time").fit(ref)
    det.save(tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    for k in ("bins", "spread"):                      # what a model file of 2026-11-30 said
        del cfg["branches"][0]["config"][k]
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    back = HybridDetector.load(tmp_path / "m")
    assert (back.branches_[0].bins, back.branches_[0].spread) == (1, True)
    np.testing.assert_array_equal(back.score(later[:5] + [dead])["bands"], det.score(later[:5] + [dead])["bands"])


def test_the_explanation_lights_up_the_stripe_that_holds_the_band(scene):
    ref, later = scene
    dead = _faults(later)[0]                                # rows 100-102 of 144: the sixth and seventh eighths
    det = HybridDetector(colour=False, cnn=False, light=False, shift=False, flat=False, tear=False, folds="time").fit(ref)
    e = det.explain([later[0], dead])
    assert e[0].branch_heatmaps["bands"].max() == 0                  # a clean frame: every stripe in range
    m = e[1].branch_heatmaps["bands"]
    assert e[1].branch == "bands" and m.shape == (18, 24)       # 1/8 of 144x192, any column the same
    rows = m[:, 0]
    assert 96 // 8 <= int(rows.argmax()) <= 104 // 8 and rows[:8].max() == 0
