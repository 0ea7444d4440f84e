"""The shift branch (issue 21): a knocked mount moves the whole picture; people, a board moving in front
of the camera and light changes do not make it alert."""

import cv2
import numpy as np
import pytest

from hybrid_drift import HybridDetector, ModelFormatError, ShiftBranch
from hybrid_drift.scorers import ShiftScorer
from test_local import _board_scene, _scene

H, W = 144, 192


def _knock(rgb, dx=0.04, dy=0.03, rot=1.5):
    M = cv2.getRotationMatrix2D((W / 2, H / 2), rot, 1.0)
    M[:, 2] += (dx * W, dy * H)
    return cv2.warpAffine(rgb, M, (W, H), borderMode=cv2.BORDER_REFLECT)


def test_a_knocked_camera_alerts_and_moving_content_does_not():
    frames = _scene(np.random.default_rng(0), 160)                # a person walking, clouds
    ref, later = frames[:120], frames[120:]
    b = HybridDetector(colour=False, cnn=False, light=False, bands=False, flat=False, tear=False, shift=ShiftBranch(),
                       folds="time").fit(ref).branches_[0]
    knocked = [_knock(f) for f in later[:10]]
    small = [_knock(f, 0.002, 0.0, 0.0) for f in later[10:20]]   # a quarter of a pixel: vibration
    pred = b.predict(later + knocked + small)
    assert pred[:40].sum() == 0 and pred[40:50].sum() == 10 and pred[50:].sum() == 0
    assert b.calibration_.threshold >= 1.0  # never under `least` percent of the frame


def test_shift_scores_are_percent_of_the_frame_and_the_model_round_trips(tmp_path):
    frames = _scene(np.random.default_rng(1), 60)
    det = HybridDetector(colour=False, cnn=False, light=False, bands=False, flat=False, tear=False, shift=ShiftBranch()).fit(frames)
    moved = np.roll(frames[0], 10, axis=1)                       # 10 of 192 columns
    s = det.score([frames[1], moved])["shift"].to_numpy()
    assert s[0] < 0.5 and s[1] == pytest.approx(100 * 10 / W, abs=0.6)
    det.save(tmp_path / "m")
    np.testing.assert_allclose(HybridDetector.load(tmp_path / "m").score([moved])["shift"], s[1:], rtol=1e-6)
    with pytest.raises(ValueError, match="least"):
        ShiftBranch(least=-1)
    with pytest.raises(ValueError, match="features per row"):
        ShiftScorer(size=(16, 16)).fit(np.zeros((3, 100)))
    arrays = dict(np.load(tmp_path / "m" / "arrays.npz"))
    key = next(k for k in arrays if k.endswith("median_"))
    arrays[key] = arrays[key][:10]
    np.savez(tmp_path / "m" / "arrays.npz", **arrays)
    with pytest.raises(ModelFormatError):
        HybridDetector.load(tmp_path / "m")


def test_a_large_board_moving_in_front_of_the_camera_widens_the_threshold_instead_of_alerting():
    """Phase correlation follows a board that fills a quarter of a low-texture frame: the cross-fitted
    threshold covers what the reference did (a known limit: such a scene's knocks go unseen here)."""
    frames = _board_scene(np.random.default_rng(0), 160)
    b = HybridDetector(colour=False, cnn=False, light=False, bands=False, flat=False, tear=False, shift=ShiftBranch(),
                       folds="time").fit(frames[:120]).branches_[0]
    assert b.predict(frames[120:]).sum() == 0 and b.calibration_.threshold > 10
