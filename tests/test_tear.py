"""The tear branch (issue 21): part of the picture displaced sideways (a torn frame, from a video link
losing packets) fits the reference moved sideways; a person, a large board, clouds and blur do not."""

import json

import cv2
import numpy as np
import pytest

from hybrid_drift import HybridDetector, ModelFormatError, ShiftBranch, TearBranch
from hybrid_drift.corruptions import apply_corruption
from hybrid_drift.scorers import TearScorer
H, W = 144, 192


def _street(rng, n, board=False):
    """A fixed camera on a textured, non-repeating scene (a wall of sine stripes repeats itself sideways, and
    a repeating scene torn by its own period is the same picture): a person-sized blob walks up and down
    the left third, the light drifts by +-25% (clouds); with ``board``, a dark or bright board a fifth of
    the frame moves all over it, like the ``wall`` scene."""
    base = (cv2.GaussianBlur(rng.normal(0, 1, (H, W)), (0, 0), 3) * 45 / 0.094 + 120).clip(10, 230)  # sd about 45
    frames = []
    for i in range(n):
        img = base + rng.normal(0, 2, (H, W))
        t = (i * 7) % (2 * (H - 40))
        cv2.ellipse(img, (int(25 + 10 * np.sin(i / 9.0)), int(20 + (t if t < H - 40 else 2 * (H - 40) - t))),
                    (6, 14), 0, 0, 360, 30, -1)
        if board:
            cx, cy = int(W / 2 + 60 * np.sin(i / 11.0)), int(H / 2 + 35 * np.cos(i / 7.0))
            img[max(0, cy - 35):cy + 35, max(0, cx - 50):cx + 50] = 20 + 200 * (i % 3 == 0)
        img *= 1.0 + 0.25 * np.sin(i / n * 2 * np.pi) * (not board)
        frames.append(np.repeat(np.clip(img, 0, 255).astype(np.uint8)[..., None], 3, axis=2))
    return frames


def _torn(frame, row=0.5, by=0.2):
    out = frame.copy()
    h, w = frame.shape[:2]
    out[int(row * h):] = np.roll(frame[int(row * h):], int(by * w), axis=1)
    return out


def _only(branch, ref, **kw):
    return HybridDetector.of_branches([branch], folds="time", **kw).fit(ref).branches_[0]


@pytest.mark.parametrize("board", [False, True], ids=["person and clouds", "large moving board"])
def test_torn_frames_alert_and_moving_content_does_not(board):
    frames = _street(np.random.default_rng(0), 160, board)
    ref, later = frames[:120], frames[120:]
    tear = _only(TearBranch(), ref)
    torn = [_torn(later[i], row, by) for i, (row, by) in enumerate([(0.3, 0.1), (0.5, -0.2), (0.7, 0.3), (0.8, 0.12)])]
    assert tear.predict(later).sum() == 0                      # 40 clean frames
    assert tear.predict(torn).tolist() == [1, 1, 1, 1]
    assert tear.calibration_.threshold >= 1.0                  # never under `least` units


def test_light_the_reference_saw_and_blur_do_not_alert():
    frames = _street(np.random.default_rng(6), 160)
    tear = _only(TearBranch(), frames[:120])
    darker = [(f.astype(np.float32) * 0.85).astype(np.uint8) for f in frames[120:130]]   # clouds went to 0.75x
    blurred = [cv2.GaussianBlur(f, (5, 5), 0) for f in frames[130:140]]
    assert tear.predict(darker + blurred).sum() == 0


def test_it_catches_the_torn_frames_the_whole_frame_shift_misses():
    """The benchmark's own fault (corruptions.frame_tear): the shift branch registers the whole frame, and
    a tear far down moves too little of it."""
    frames = _street(np.random.default_rng(1), 160)
    ref, later = frames[:120], frames[120:]
    rng = np.random.default_rng(3)
    torn = [apply_corruption(f, "frame_tear", rng)[0] for f in later[:12]]
    tear, shift = _only(TearBranch(), ref), _only(ShiftBranch(), ref)
    assert tear.predict(torn).sum() == 12
    assert shift.predict(torn).sum() < 12


def test_the_stripes_below_the_tear_light_up():
    frames = _street(np.random.default_rng(2), 150)
    det = HybridDetector.of_branches([TearBranch()], folds="time").fit(frames[:120])
    e = det.explain([frames[130], _torn(frames[131], row=0.5, by=0.25)])
    assert e[0].branch_heatmaps["tear"].max() == 0
    rows = e[1].branch_heatmaps["tear"][:, 0]
    half = len(rows) // 2
    assert rows[half + 1:].min() > 1 and rows[:half - 1].max() == 0


def test_round_trip_bad_settings_and_a_model_saved_before_it(tmp_path):
    frames = _street(np.random.default_rng(4), 140)
    ref, later = frames[:120], frames[120:]
    det = HybridDetector(colour=False, cnn=False, light=False, shift=False, bands=False, flat=False,
                         folds="time").fit(ref)
    assert [b.name for b in det.branches_] == ["tear"]
    inputs = later[:5] + [_torn(later[5])]
    det.save(tmp_path / "m")
    back = HybridDetector.load(tmp_path / "m")
    np.testing.assert_array_equal(back.score(inputs)["tear"], det.score(inputs)["tear"])
    assert back.score(inputs)["tear_flag"].tolist() == [False] * 5 + [True]
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["branches"][0]["config"]["min_lag"] = 0.5                 # past max_lag
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelFormatError):
        HybridDetector.load(tmp_path / "m")
    for bad in ({"min_lag": 0.3, "max_lag": 0.2}, {"bins": 64, "size": (16, 16)}, {"unit": 0}):
        with pytest.raises(ValueError):
            TearBranch(**bad)
    with pytest.raises(ValueError, match="features per row"):
        TearScorer(size=(48, 64)).fit(np.zeros((3, 100)))
    old = HybridDetector(colour=False, cnn=False, tear=False, folds="time").fit(ref)   # as saved before 2026-12-01
    old.save(tmp_path / "old")
    assert [b.name for b in HybridDetector.load(tmp_path / "old").branches_] == ["light", "shift", "bands", "flat"]


def test_the_statistic_is_the_better_fit_of_the_gradients_in_grey_levels():
    rng = np.random.default_rng(5)
    scene = cv2.GaussianBlur(rng.integers(0, 255, (48, 64)).astype(np.float32), (5, 5), 2) * 3 - 200
    ref = np.stack([scene + rng.normal(0, 1, scene.shape) for _ in range(20)]).reshape(20, -1)
    s = TearScorer(bins=4).fit(ref)
    moved = np.roll(scene, 10, axis=1)                           # every stripe: a whole-frame shift sideways
    gains = s.stripe_gains(moved.reshape(1, -1))[0]
    in_place = np.abs(np.diff(moved, axis=1) - np.diff(s.median_, axis=1)).mean()   # horizontal gradients
    assert (gains > 0.8 * in_place).all()                        # the shifted fit is near perfect
    assert s.score_samples(moved.reshape(1, -1))[0] == pytest.approx((gains - s.max_).max())   # unit: 1 level
    brighter = scene + 40                                        # the light level does not count
    np.testing.assert_allclose(s.stripe_gains(brighter.reshape(1, -1)), s.stripe_gains(scene.reshape(1, -1)),
                               atol=1e-3)
