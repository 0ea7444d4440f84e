"""The colour branch on a grey camera: the few grey levels of tint an encoder adds are not a colour change,
a real colour cast still is (grey tolerance, 2026-12-01)."""

import json

import numpy as np
import pytest

from hybrid_drift import HybridDetector
from hybrid_drift.branches import ColourBranch
from hybrid_drift.branches.colour import GREY_TOLERANCE
from hybrid_drift.features import ColourFeatures
from test_local import _scene

#: what OpenCV's MPEG-4 writer and reader did to the grey cameras' frames (blue, green, red grey levels;
#: measured on the tank, desk and wall scenes, 2026-12-01); as RGB
MPEG4_TINT = np.array([-3, -1, -4])


def _tinted(frames, tint=MPEG4_TINT):
    return [np.clip(f.astype(np.int16) + tint, 0, 255).astype(np.uint8) for f in frames]


def _cast(frames, s=0.15):
    """A warm white-balance cast (the benchmark's colour temperature fault at its mildest end)."""
    return [np.clip(f.astype(np.float32) * np.array([1 + s, 1.0, 1 - s]), 0, 255).astype(np.uint8) for f in frames]


@pytest.fixture(scope="module")
def grey_scene():
    frames = _scene(np.random.default_rng(3), 150)        # a grey camera: R = G = B
    return frames[:120], frames[120:]


def test_a_few_grey_levels_of_tint_leave_the_histograms_of_a_grey_frame_as_they_were():
    frame = _scene(np.random.default_rng(0), 1)[0]
    tinted = _tinted([frame])[0]
    plain, tolerant = ColourFeatures(grid=(2, 2)), ColourFeatures(grid=(2, 2), grey_tolerance=4)
    b = tolerant.group_bounds()
    hue_sat = np.concatenate([np.arange(b[g], b[g + 1]) for g, n in enumerate(tolerant.group_names())
                              if not n.startswith("brightness")])            # brightness drops by a level
    np.testing.assert_array_equal(tolerant.transform(tinted)[hue_sat], tolerant.transform(frame)[hue_sat])
    np.testing.assert_array_equal(tolerant.transform(frame), plain.transform(frame))  # a grey frame: no change
    # plain HSV reads the tint as a hue: every pixel leaves the grey bin
    hue_grey_share = plain.transform(tinted)[0]
    assert hue_grey_share < 0.05 and plain.transform(frame)[0] == pytest.approx(1.0)


def test_colourful_pixels_keep_their_hue_and_the_input_is_not_changed():
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    f0, f8 = ColourFeatures(bins=16), ColourFeatures(bins=16, grey_tolerance=8)
    hsv = f0.hsv(rgb)
    before = hsv.copy()
    got = f8.transform(hsv=hsv)
    np.testing.assert_array_equal(hsv, before)                      # shared with other branches: untouched
    chroma = rgb.max(axis=2).astype(int) - rgb.min(axis=2)
    keep = hsv.copy()
    keep[chroma <= 8, :2] = 0                                         # the definition, per pixel, with numpy
    np.testing.assert_allclose(got, f0.transform(hsv=keep), atol=1e-6)
    assert (chroma <= 8).any() and not np.allclose(got, f0.transform(hsv=hsv))


@pytest.mark.parametrize("bad", [-1, 256, 2.5, True, "3"])
def test_a_grey_tolerance_out_of_range_is_refused(bad):
    with pytest.raises(ValueError, match="grey_tolerance"):
        ColourBranch(grey_tolerance=bad)
    with pytest.raises(ValueError, match="grey_tolerance"):
        ColourFeatures(grey_tolerance=bad)


def test_a_grey_camera_through_an_encoder_does_not_alarm_and_a_colour_cast_still_does(grey_scene):
    ref, later = grey_scene
    flags = {}
    for tol in (0, GREY_TOLERANCE):
        det = HybridDetector(colour=ColourBranch(grey_tolerance=tol), cnn=False, light=False, shift=False,
                             bands=False, flat=False, tear=False, folds="time").fit(ref)
        f = det.score(later + _tinted(later) + _cast(later))["is_outlier"].astype(bool).to_numpy()
        flags[tol] = (int(f[:30].sum()), int(f[30:60].sum()), int(f[60:].sum()))
    assert GREY_TOLERANCE >= 4                    # the default covers the measured tint
    assert flags[0] == (0, 30, 30)                # plain HSV: every tinted clean frame is an alarm
    assert flags[GREY_TOLERANCE] == (0, 0, 30)    # tolerant: none is, and every cast frame still is


def test_a_model_saved_before_the_grey_tolerance_loads_as_it_was_saved(grey_scene, tmp_path):
    ref, later = grey_scene
    det = HybridDetector.of_branches([ColourBranch(grey_tolerance=0)], folds="time").fit(ref)
    det.save(tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    del cfg["branches"][0]["config"]["grey_tolerance"]        # what a model file of 2026-11-30 said
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    back = HybridDetector.load(tmp_path / "m")
    assert back.branches_[0].grey_tolerance == 0
    probe = later[:5] + _tinted(later[:5])
    np.testing.assert_array_equal(back.score(probe)["colour"], det.score(probe)["colour"])
    assert ColourBranch().grey_tolerance == GREY_TOLERANCE    # a new fit gets the default
