"""The shift branch (issue 21): a knocked mount moves the whole picture; people, a board moving in front
of the camera and light changes do not make it alert."""

import hashlib
import json

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


def _board_on_one_side(rng, n):
    """A textured wall, steady over most of the frame, and a board a fifth of the frame moving about its left
    half (a hand-held board, a parked lorry coming and going)."""
    yy, xx = np.mgrid[0:H, 0:W]
    base = 110 + 60 * np.sin(xx / 6.0) * np.cos(yy / 9.0) + rng.normal(0, 6, (H, W))
    out = []
    for i in range(n):
        img = base + rng.normal(0, 2, (H, W))
        cx, cy = int(50 + 25 * np.sin(i / 5.0)), int(H / 2 + 30 * np.cos(i / 3.3))
        img[max(0, cy - 35):cy + 35, max(0, cx - 40):cx + 40] = 230 if i % 2 else 25
        cv2.circle(img, (cx, cy), 10, 25 if i % 2 else 230, -1)
        out.append(np.repeat(np.clip(img, 0, 255).astype(np.uint8)[..., None], 3, axis=2))
    return out


def test_pixels_that_moved_in_the_reference_do_not_vote_so_a_board_is_not_a_moved_camera():
    """Weighted by how still each pixel was in the reference, the correlation follows the wall, not the board:
    a tight threshold and every knock caught; with every pixel alike it follows the board, and the threshold
    that covers the board's moves hides the knocks."""
    frames = _board_on_one_side(np.random.default_rng(0), 160)
    later = frames[120:]
    knocked = [_knock(f) for f in later[:20]]
    got = {}
    for steady in (16.0, 0.0):
        b = HybridDetector(colour=False, cnn=False, light=False, bands=False, flat=False, tear=False,
                           shift=ShiftBranch(steady=steady), folds="time").fit(frames[:120]).branches_[0]
        pred = b.predict(later + knocked)
        got[steady] = (round(b.threshold_, 1), int(pred[:40].sum()), int(pred[40:].sum()))
    assert ShiftBranch().steady == 16.0
    assert got[16.0][0] < 5 and got[16.0][1:] == (0, 20)      # no false alarm on 40 board frames, 20 of 20 knocks
    assert got[0.0][0] > 20 and got[0.0][1:] == (0, 0)        # the board's own moves set the threshold


def test_a_shift_model_saved_before_the_steadiness_weights_loads_and_scores_as_it_was(tmp_path):
    frames = _board_on_one_side(np.random.default_rng(1), 80)
    old = HybridDetector(colour=False, cnn=False, light=False, bands=False, flat=False, tear=False,
                         shift=ShiftBranch(steady=0.0)).fit(frames[:60])
    old.save(tmp_path / "m")
    spec = json.loads((tmp_path / "m" / "config.json").read_text())
    state = next(b for b in spec["branches"] if b["name"] == "shift")
    del state["config"]["steady"], state["scorer"]["params"]["steady"]   # as written before the setting existed
    (tmp_path / "m" / "config.json").write_text(json.dumps(spec))
    back = HybridDetector.load(tmp_path / "m")
    assert back.branches_[0].steady == 0.0
    np.testing.assert_allclose(back.score(frames[60:])["shift"], old.score(frames[60:])["shift"], rtol=1e-6)
    assert not any(k.endswith("weight_") for k in np.load(tmp_path / "m" / "arrays.npz"))
    new = HybridDetector(colour=False, cnn=False, light=False, bands=False, flat=False, tear=False,
                         shift=ShiftBranch()).fit(frames[:60])
    new.save(tmp_path / "n")
    arrays = dict(np.load(tmp_path / "n" / "arrays.npz"))
    key = next(k for k in arrays if k.endswith("weight_"))
    arrays[key] = arrays[key] * 0                                          # a zero weight is not a model
    np.savez(tmp_path / "n" / "arrays.npz", **arrays)
    spec = json.loads((tmp_path / "n" / "config.json").read_text())
    spec["arrays_sha256"] = hashlib.sha256((tmp_path / "n" / "arrays.npz").read_bytes()).hexdigest()
    (tmp_path / "n" / "config.json").write_text(json.dumps(spec))
    with pytest.raises(ModelFormatError, match="weight_"):
        HybridDetector.load(tmp_path / "n")
    spec["branches"][0]["scorer"]["params"]["steady"] = -3                # not a grey level
    (tmp_path / "n" / "config.json").write_text(json.dumps(spec))
    with pytest.raises(ModelFormatError, match="steady"):
        HybridDetector.load(tmp_path / "n")


def test_a_large_board_moving_in_front_of_the_camera_widens_the_threshold_instead_of_alerting():
    """Phase correlation follows a board that fills a quarter of a low-texture frame and sweeps over all of its
    middle: no part the window looks at stayed still, so the steadiness weights cannot help, and the
    cross-fitted threshold covers what the reference did (a known limit: such a scene's knocks go unseen)."""
    frames = _board_scene(np.random.default_rng(0), 160)
    b = HybridDetector(colour=False, cnn=False, light=False, bands=False, flat=False, tear=False, shift=ShiftBranch(),
                       folds="time").fit(frames[:120]).branches_[0]
    assert b.predict(frames[120:]).sum() == 0 and b.calibration_.threshold > 10
