"""The colour branch through an encoder: on a grey camera the few grey levels of tint an encoder adds are not a
colour change, a real colour cast still is (grey tolerance, 2026-12-01); on a colour camera the hue an encoder
gives a low-chroma pixel is not either (soft hue votes, 2026-12-02)."""

import json

import cv2
import numpy as np
import pytest

from hybrid_drift import HybridDetector
from hybrid_drift.branches import ColourBranch
from hybrid_drift.branches.colour import GREY_TOLERANCE, HUE_RAMP
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


@pytest.mark.parametrize("tol", [1, 4, 12, 255])
def test_greyed_is_the_per_pixel_definition_on_8_bit_and_float_hsv(tol):
    """greyed() runs on OpenCV masks for 8-bit HSV (a boolean index cost 3x the rest of the features): the same
    pixels as the definition, chroma = saturation * brightness / 255 rounded, at most ``tol`` -> hue and
    saturation 0; the float path gives the same; nothing grey -> the input itself."""
    rng = np.random.default_rng(tol)
    hsv = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    hsv[..., 0] %= 180
    fx = ColourFeatures(grey_tolerance=tol)
    chroma = np.round(hsv[..., 1].astype(np.float64) * hsv[..., 2] / 255)
    want = hsv.copy()
    want[chroma <= tol, :2] = 0
    before = hsv.copy()
    got = fx.greyed(hsv)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(hsv, before)                      # the input is shared: untouched
    assert got.dtype == np.uint8 and (chroma <= tol).any()
    f = fx.greyed(hsv.astype(np.float32))
    np.testing.assert_array_equal(f[chroma > tol + 1], hsv.astype(np.float32)[chroma > tol + 1])
    assert (f[chroma < tol, :2] == 0).all()
    vivid = np.dstack([hsv[..., 0], np.full(hsv.shape[:2], 255, np.uint8), np.full(hsv.shape[:2], 255, np.uint8)])
    assert ColourFeatures(grey_tolerance=min(tol, 254)).greyed(vivid) is vivid


@pytest.mark.parametrize("bad", [-1, 256, 2.5, True, "3"])
def test_a_grey_tolerance_out_of_range_is_refused(bad):
    with pytest.raises(ValueError, match="grey_tolerance"):
        ColourBranch(grey_tolerance=bad)
    with pytest.raises(ValueError, match="grey_tolerance"):
        ColourFeatures(grey_tolerance=bad)


def test_a_grey_camera_through_an_encoder_does_not_alarm_and_a_colour_cast_still_does(grey_scene):
    ref, later = grey_scene
    flags = {}
    for tol in (0, GREY_TOLERANCE):  # hard hue votes: the tolerance alone
        det = HybridDetector(colour=ColourBranch(grey_tolerance=tol, hue_ramp=0), cnn=False, light=False, shift=False,
                             bands=False, flat=False, tear=False, folds="time").fit(ref)
        f = det.score(later + _tinted(later) + _cast(later))["is_outlier"].astype(bool).to_numpy()
        flags[tol] = (int(f[:30].sum()), int(f[30:60].sum()), int(f[60:].sum()))
    assert GREY_TOLERANCE >= 4                    # the default covers the measured tint
    assert flags[0] == (0, 30, 30)                # plain HSV: every tinted clean frame is an alarm
    assert flags[GREY_TOLERANCE] == (0, 0, 30)    # tolerant: none is, and every cast frame still is


def test_a_model_saved_before_the_grey_tolerance_or_soft_hue_loads_as_it_was_saved(grey_scene, tmp_path):
    ref, later = grey_scene
    det = HybridDetector.of_branches([ColourBranch(grey_tolerance=0, hue_ramp=0)], folds="time").fit(ref)
    det.save(tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    del cfg["branches"][0]["config"]["grey_tolerance"]        # what a model file of 2026-11-30 said
    del cfg["branches"][0]["config"]["hue_ramp"]              # ... and one of 2026-12-01
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    back = HybridDetector.load(tmp_path / "m")
    assert back.branches_[0].grey_tolerance == 0 and back.branches_[0].hue_ramp == 0
    probe = later[:5] + _tinted(later[:5])
    np.testing.assert_array_equal(back.score(probe)["colour"], det.score(probe)["colour"])
    assert ColourBranch().grey_tolerance == GREY_TOLERANCE    # a new fit gets the default
    assert ColourBranch().hue_ramp == HUE_RAMP


# ------------------------------------------------------------------ soft hue votes (a colour camera's stream)
def test_a_hue_vote_grows_with_chroma_and_is_split_between_the_two_nearest_bins():
    f = ColourFeatures(bins=18, grey_tolerance=4, hue_ramp=16)      # 10 OpenCV hues (20 degrees) a bin

    def hue_hist(*pixels):                                           # HSV pixels, one row
        return f.transform(hsv=np.array([pixels], np.uint8))[:18]

    np.testing.assert_allclose(hue_hist((95, 200, 255)), np.eye(18)[9])            # a bin's centre: that bin
    np.testing.assert_allclose(hue_hist((100, 200, 255)), (np.eye(18)[9] + np.eye(18)[10]) / 2)  # between two
    np.testing.assert_allclose(hue_hist((0, 200, 255)), (np.eye(18)[17] + np.eye(18)[0]) / 2)    # hue wraps
    # chroma 12 = 8 levels above the tolerance, half the ramp: half a vote, the other half grey (bin 0)
    np.testing.assert_allclose(hue_hist((95, 12, 255)), (np.eye(18)[9] + np.eye(18)[0]) / 2, atol=1e-6)
    np.testing.assert_allclose(hue_hist((95, 4, 255)), np.eye(18)[0])              # at the tolerance: grey
    np.testing.assert_allclose(hue_hist((95, 20, 255)), np.eye(18)[9])             # past the ramp: whole
    # histograms still sum to one per cell, the other channels are counted as before
    rgb = np.random.default_rng(0).integers(0, 256, (30, 50, 3), dtype=np.uint8)
    soft = ColourFeatures(grid=(2, 3), grey_tolerance=4, hue_ramp=16)
    hard = ColourFeatures(grid=(2, 3), grey_tolerance=4)
    a, b = soft.transform(rgb).reshape(6, 3, 32), hard.transform(rgb).reshape(6, 3, 32)
    np.testing.assert_allclose(a.sum(axis=2), 1.0, atol=1e-5)
    np.testing.assert_array_equal(a[:, 1:], b[:, 1:])
    assert not np.allclose(a[:, 0], b[:, 0])


@pytest.mark.parametrize("bad", [-1, 256, 2.5, True])
def test_a_hue_ramp_out_of_range_is_refused(bad):
    with pytest.raises(ValueError, match="hue_ramp"):
        ColourBranch(hue_ramp=bad)
    with pytest.raises(ValueError, match="hue_ramp"):
        ColourFeatures(hue_ramp=bad)


def _jpeg(rgb, quality=92):
    encoded = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])[1]
    bgr = cv2.imdecode(encoded, cv2.IMREAD_COLOR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def street_files_and_stream(tmp_path_factory):
    """The bundled street video's frames 0-39 as the JPEG files a reference is made of (quality 92, as
    make-dataset writes them), and frames 100-139 as FFmpeg's MJPEG encoder serves the video (``ffmpeg -f
    mpjpeg``, quality 3): a camera's snapshots and its stream."""
    import shutil
    import subprocess

    from hybrid_drift.datasets.crossroad import bundled_data_dir
    from hybrid_drift.io import iter_video_frames

    ffmpeg = shutil.which("ffmpeg")
    assert ffmpeg, "make test installs ffmpeg (Debian package) when run as root"
    video = bundled_data_dir() / "vtest.avi"
    files = [_jpeg(f) for i, f in iter_video_frames(video) if i < 40]
    served = tmp_path_factory.mktemp("served") / "cam.avi"
    subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-i", str(video), "-an", "-frames:v", "140",
                    "-c:v", "mjpeg", "-q:v", "3", "-pix_fmt", "yuvj420p", str(served)], check=True)
    stream = [f for i, f in iter_video_frames(served) if 100 <= i < 140]
    assert len(files) == len(stream) == 40
    return files, stream


def test_a_colour_camera_fitted_on_its_jpeg_files_does_not_alarm_on_its_mjpeg_stream(street_files_and_stream):
    """Measured 2026-12-02 (a newcomer's watch on the street's MJPEG stream, model fitted on its JPEG files): with
    hard hue votes every stream frame alarmed (the hue histograms 3x as far from the reference as the files'), the
    grey asphalt's low-chroma pixels taking other hues through the encoder."""
    files, stream = street_files_and_stream
    hard, soft = ColourBranch(hue_ramp=0).fit(files), ColourBranch().fit(files)
    assert HUE_RAMP == soft.hue_ramp == 8
    assert hard.predict(stream).sum() >= 30                       # hard votes: the encoder alone alarms
    assert soft.predict(stream).sum() == 0                        # soft votes: none of the 40 frames
    assert soft.predict(_cast(stream)).sum() == 40                # a white-balance cast on the stream still does


# ------------------------------------------------------------------ the drift monitor and watch's drift check
def _hue_sat_alerts(res):
    """Chunks whose hue or saturation checks alerted."""
    hs = res[res["alert"] & res["check"].str.match(r"(hue|saturation)_")]
    return sorted(set(hs["chunk"]))


def test_the_drift_monitor_reads_a_grey_camera_through_an_encoder_as_grey_and_a_cast_as_drift(grey_scene):
    from hybrid_drift.monitor import DriftMonitor, profile_images
    ref, later = grey_scene
    stream = np.stack(later + _tinted(later) + _cast(later))          # chunks: clean, tinted, cast
    alerts = {}
    for tol in (0, GREY_TOLERANCE):
        mon = DriftMonitor(chunk=30).fit(profile_images(np.stack(ref), grey_tolerance=tol))
        alerts[tol] = _hue_sat_alerts(mon.run(profile_images(stream, grey_tolerance=tol)))
    assert alerts[0] == [1, 2]                    # plain HSV: the encoder's tint is a new hue
    assert alerts[GREY_TOLERANCE] == [2]          # tolerant: only the real cast drifts
    assert profile_images(np.stack(ref[:3])).grey_tolerance == GREY_TOLERANCE   # the default


def test_a_live_frame_is_profiled_as_the_batch_was():
    from hybrid_drift.monitor import profile_images
    from hybrid_drift.monitor.profile import frame_profile
    frame = _tinted(_scene(np.random.default_rng(5), 1))[0]
    for tol in (0, GREY_TOLERANCE):
        batch = profile_images(frame[None], grey_tolerance=tol)
        live = frame_profile(frame, grey_tolerance=tol)
        np.testing.assert_allclose(live["hist"], batch.per_image_hist[0], atol=1e-6)
        assert live["table"]["saturation_mean"] == pytest.approx(batch.table["saturation_mean"][0], abs=1e-6)
    assert frame_profile(frame)["table"]["saturation_mean"] == 0.0     # the tint is grey by default
    assert frame_profile(frame, grey_tolerance=0)["table"]["saturation_mean"] > 0.0


def test_profiles_and_models_saved_before_the_tolerance_say_0_and_mixing_them_is_refused_or_warned(
        grey_scene, tmp_path, caplog):
    from hybrid_drift.monitor import BatchProfile, DriftMonitor, profile_images
    ref, later = grey_scene
    new = profile_images(np.stack(ref[:60]))
    # a model's reference profile keeps the tolerance; one saved before it has no such array: 0
    arrays = new.to_arrays()
    assert BatchProfile.from_arrays(arrays).grey_tolerance == GREY_TOLERANCE
    old_arrays = {k: v for k, v in arrays.items() if k != "grey_tolerance"}
    assert BatchProfile.from_arrays(old_arrays).grey_tolerance == 0
    with pytest.raises(ValueError, match="grey_tolerance"):
        BatchProfile.from_arrays({**arrays, "grey_tolerance": np.array([4, 4])})
    # a saved profile of version 2 without it: 0
    new.save(tmp_path / "p")
    meta = json.loads((tmp_path / "p" / "profile.json").read_text())
    assert meta["grey_tolerance"] == GREY_TOLERANCE
    del meta["grey_tolerance"]
    (tmp_path / "p" / "profile.json").write_text(json.dumps(meta))
    old = BatchProfile.load(tmp_path / "p")
    assert old.grey_tolerance == 0
    with pytest.raises(ValueError, match="grey_tolerance 0 and 4"):
        old.merge(new)
    mon = DriftMonitor(chunk=30).fit(old)
    with caplog.at_level("WARNING", logger="hybrid_drift.monitor.drift"):
        mon.check(profile_images(np.stack(later)))
        mon.check(profile_images(np.stack(later)))
    said = [r for r in caplog.records if "grey_tolerance=4, the baseline with 0" in r.getMessage()]
    assert len(said) == 1                        # once
    caplog.clear()
    with caplog.at_level("WARNING", logger="hybrid_drift.monitor.drift"):
        mon.check(profile_images(np.stack(later), grey_tolerance=0))
    assert not [r for r in caplog.records if "grey_tolerance" in r.getMessage()]


def test_watch_profiles_live_frames_with_the_tolerance_of_the_models_reference(grey_scene, tmp_path):
    from hybrid_drift.watch.config import CameraSpec
    from hybrid_drift.watch.health import HealthSettings
    from hybrid_drift.watch.runner import _Camera
    ref, _ = grey_scene
    det = HybridDetector(cnn=False, light=False, shift=False, bands=False, flat=False, tear=False,
                         folds="time").fit(ref)
    assert det.reference_profile_.grey_tolerance == GREY_TOLERANCE
    det.save(tmp_path / "m")
    back = HybridDetector.load(tmp_path / "m")
    (tmp_path / "frames").mkdir()
    cv2.imwrite(str(tmp_path / "frames" / "f0.png"), ref[0])                   # the reader is not started
    spec = CameraSpec(name="cam", source=str(tmp_path / "frames"), model=back)
    cam = _Camera(spec, back, HealthSettings(drift_window=20), realtime=False, queue=4, drift=True, settle=0.0)
    assert cam.grey_tolerance == GREY_TOLERANCE and cam.health.monitor is not None
    back.reference_profile_.info.pop("grey_tolerance")               # as a model saved before it loads
    assert _Camera(spec, back, HealthSettings(drift_window=20), realtime=False, queue=4, drift=True,
                   settle=0.0).grey_tolerance == 0
