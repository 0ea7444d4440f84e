"""HybridDetector and branches on real frames: fit, calibrate, score, save/load, errors."""

import hashlib
import json

import cv2
import numpy as np
import pandas as pd
import pytest

from conftest import TEST_IMAGE_SIZE
from hybrid_drift import (CNNBranch, ColourBranch, HybridDetector, MinMaxBranch, ModelFormatError,
                          NotFittedError)
from hybrid_drift.corruptions import ObjectPaster, load_object_library


def test_score_table_has_every_input_with_scores_or_error(fitted_detector, frames, tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    inputs = [frames[150], str(tmp_path / "empty.jpg"), b"not an image", frames[151]]
    table = fitted_detector.score(inputs)
    names = ["colour", "cnn", "light", "shift", "patch", "bands", "flat", "tear"]
    assert list(table.columns) == ["path", *names, *(f"{n}_flag" for n in names), "fused", "is_outlier", "error",
                                   *(f"{n}_x" for n in names), "fused_x"]
    assert len(table) == 4
    assert table["error"].isna().tolist() == [True, False, False, True]
    assert np.isfinite(table.loc[[0, 3], ["colour", "cnn", "fused"]].to_numpy()).all()
    assert table.loc[[1, 2], "fused"].isna().all() and table["is_outlier"].isna().tolist() == [False, True, True, False]
    assert table.loc[1, "error"] == "zero bytes"


def test_colour_shift_raises_colour_score(fitted_detector, frames):
    normal = frames[160]
    hsv = cv2.cvtColor(normal, cv2.COLOR_RGB2HSV)
    hsv[..., 0] = (hsv[..., 0].astype(int) + 60) % 180  # strong hue rotation
    shifted = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    darker = (normal * 0.5).astype(np.uint8)  # dusk
    t = fitted_detector.score([normal, shifted, darker])
    thr = fitted_detector.branches_[0].threshold_
    assert t.loc[0, "colour"] < thr < t.loc[1, "colour"] and t.loc[2, "colour"] > thr
    assert t["is_outlier"].tolist() == [False, True, True]


def test_structural_change_raises_cnn_score(fitted_detector, frames, data_dir):
    normal = frames[165]
    flipped = np.ascontiguousarray(normal[::-1])
    obj, alpha = load_object_library([data_dir / "HappyFish.jpg"])["HappyFish"]
    pasted = ObjectPaster(obj, alpha, area=0.15, pos=(0.5, 0.5))(normal)
    t = fitted_detector.score([normal, flipped, pasted])
    thr = fitted_detector.branches_[1].threshold_
    assert t.loc[0, "cnn"] < thr
    assert t.loc[1, "cnn"] > thr and t.loc[2, "cnn"] > thr


def test_whole_frame_histogram_cannot_see_a_flip_but_a_grid_can(frames):
    normal, flipped = frames[100], np.ascontiguousarray(frames[100][::-1])
    whole = ColourBranch(grid=(1, 1)).fit(frames[:60])
    a, b = whole.score_samples([normal, flipped])
    assert a == pytest.approx(b)
    grid = ColourBranch(grid=(4, 4)).fit(frames[:60]).calibrate(frames[60:100])
    assert grid.predict([normal, flipped]).tolist() == [0, 1]


def test_save_load_identical_scores_and_determinism(fitted_detector, frames, tmp_path):
    batch = frames[140:150]
    a = fitted_detector.score(batch)
    b = fitted_detector.score(batch)
    pd.testing.assert_frame_equal(a, b)
    fitted_detector.save(tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["format_version"] == 2 and cfg["branches"][1]["config"]["weights_sha256"]
    loaded = HybridDetector.load(tmp_path / "m")
    pd.testing.assert_frame_equal(a, loaded.score(batch))
    with np.load(tmp_path / "m" / "arrays.npz", allow_pickle=False) as npz:  # no pickled objects
        assert all(npz[k].dtype != object for k in npz.files)


def test_load_errors_are_clear(fitted_detector, tmp_path):
    with pytest.raises(ModelFormatError, match="not a hybrid_drift model directory"):
        HybridDetector.load(tmp_path)
    fitted_detector.save(tmp_path / "m")
    cfg_path = tmp_path / "m" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["format_version"] = 99
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(ModelFormatError, match="format 99"):
        HybridDetector.load(tmp_path / "m")
    cfg_path.write_text("{ not json")
    with pytest.raises(ModelFormatError, match="corrupted config"):
        HybridDetector.load(tmp_path / "m")
    fitted_detector.save(tmp_path / "m")
    (tmp_path / "m" / "arrays.npz").write_bytes(b"garbage")
    with pytest.raises(ModelFormatError, match="SHA-256 differs"):
        HybridDetector.load(tmp_path / "m")
    cfg = json.loads(cfg_path.read_text())  # a config that vouches for the garbage: still refused
    cfg["arrays_sha256"] = hashlib.sha256(b"garbage").hexdigest()
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(ModelFormatError, match="corrupted arrays"):
        HybridDetector.load(tmp_path / "m")


def test_weights_mismatch_is_detected(fitted_detector, tmp_path, frames):
    fitted_detector.save(tmp_path / "m")
    cfg_path = tmp_path / "m" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["branches"][1]["config"]["weights_sha256"] = "0" * 64
    cfg_path.write_text(json.dumps(cfg))
    det = HybridDetector.load(tmp_path / "m")
    with pytest.raises(ModelFormatError, match="weights"):
        det.score(frames[:2])


def test_unfitted_and_uncalibrated_errors(frames):
    det = HybridDetector(cnn=False, blocks=0)
    with pytest.raises(NotFittedError, match="fit"):
        det.score(frames[:2])
    det.fit(frames[:30])
    with pytest.raises(NotFittedError, match="calibrate"):
        det.score(frames[:2])
    with pytest.raises(NotFittedError):
        ColourBranch().score_samples(frames[:2])


def test_logistic_fusion_without_labels_is_a_clear_error(frames):
    det = HybridDetector(cnn=False, extra_branches=[MinMaxBranch()], fusion="logistic").fit(frames[:30])
    with pytest.raises(ValueError, match="labels"):
        det.calibrate(frames[30:40])


def test_logistic_fusion_with_labels(frames):
    det = HybridDetector(cnn=False, extra_branches=[MinMaxBranch()], fusion="logistic").fit(frames[:80])
    val = list(frames[80:120]) + [255 - f for f in frames[120:130]]
    y = [0] * 40 + [1] * 10
    det.calibrate(val, labels=y)
    t = det.score([frames[130], 255 - frames[131]])
    assert 0 <= t.loc[0, "fused"] < 0.5 < t.loc[1, "fused"] <= 1
    assert det.predict([frames[130], 255 - frames[131], b""]).tolist() == [0, 1, -1]


def test_bad_configuration_errors(frames):
    with pytest.raises(ValueError, match="fusion"):
        HybridDetector(fusion="and").fit(frames[:5])
    with pytest.raises(ValueError, match="at least one branch"):
        HybridDetector(colour=False, cnn=False, light=False, shift=False, bands=False, flat=False, tear=False).fit(frames[:5])
    with pytest.raises(ValueError, match="unique"):
        HybridDetector(cnn=False, extra_branches=[ColourBranch()]).fit(frames[:5])
    with pytest.raises(ValueError, match="no readable training image"):
        HybridDetector(cnn=False).fit([b"", b"x"])


def test_each_branch_alone_has_the_same_verbs(frames):
    b = ColourBranch(bins=16, grid=(2, 2)).fit(frames[:60]).calibrate(frames[60:100])
    s = b.score_samples([frames[100], b""])
    assert np.isfinite(s[0]) and np.isnan(s[1])
    assert b.predict([frames[100], 255 - frames[101], b""]).tolist() == [0, 1, -1]
    cnn = CNNBranch(image_size=TEST_IMAGE_SIZE, n_components=20, cache_dir=False).fit(frames[:40])
    assert cnn.score_samples(frames[40:42]).shape == (2,)


def test_feature_cache_skips_the_cnn(frames, tmp_path, monkeypatch):
    b = CNNBranch(image_size=TEST_IMAGE_SIZE, n_components=5, cache_dir=tmp_path)
    first = b.fit(frames[:10]).score_samples(frames[:10])
    calls = []
    real = b.embedder.embed
    monkeypatch.setattr(b.embedder, "embed", lambda x: calls.append(len(x)) or real(x))
    again = b.score_samples(frames[:10] + frames[10:12])
    assert calls == [2]  # only the two new frames went through the network
    assert np.allclose(first, again[:10])


def test_cache_off_by_environment(frames, tmp_path, monkeypatch):
    monkeypatch.setenv("HYBRID_DRIFT_CACHE", str(tmp_path / "c"))
    on = CNNBranch(image_size=TEST_IMAGE_SIZE, n_components=5)
    on.fit(frames[:6])
    assert on.uses_content_hash and list((tmp_path / "c").rglob("*.f32"))
    monkeypatch.setenv("HYBRID_DRIFT_CACHE", "off")
    off = CNNBranch(image_size=TEST_IMAGE_SIZE, n_components=5)
    off.fit(frames[:6])
    assert not off.uses_content_hash and off._feature_cache() is None
    assert not (tmp_path / "off").exists() and not (tmp_path.parent / "off").exists()


def test_score_iter_streams_the_same_rows(fitted_detector, frames):
    batch = list(frames[140:150]) + [b""]
    whole = fitted_detector.score(batch)
    parts = list(fitted_detector.score_iter(batch, chunk=4))
    assert [len(p) for p in parts] == [4, 4, 3]
    streamed = pd.concat(parts, ignore_index=True)
    pd.testing.assert_frame_equal(streamed.drop(columns="path"), whole.drop(columns="path"))
    with pytest.raises(ValueError, match="chunk"):
        next(fitted_detector.score_iter(batch, chunk=0))


def test_colour_features_do_not_depend_on_the_branches_beside_them(tmp_path, data_dir):
    """Colour alone decodes JPEGs at 1/4; beside the CNN (1/2) it still sees the 1/4 decode."""
    from hybrid_drift import extract
    from hybrid_drift.io import iter_video_frames

    paths = []
    for i, frame in iter_video_frames(data_dir / "vtest.avi", step=300):
        paths.append(str(tmp_path / f"f{i}.jpg"))
        cv2.imwrite(paths[-1], cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))

    class NeedsHalfSize:  # stands in for the CNN's 288-pixel input without running it
        name, min_side = "big", 288
        seen = []

        def prepare(self, img):
            self.seen.append(img.at_side(self.min_side).shape)
            return 0

        def features(self, prepared, images):
            return np.zeros((len(prepared), 1), np.float32)

    colour = ColourBranch()
    alone = extract([colour], paths).features["colour"]
    beside = extract([colour, NeedsHalfSize()], paths).features["colour"]
    np.testing.assert_array_equal(alone, beside)
    assert set(NeedsHalfSize.seen) == {(288, 384, 3)}
    assert CNNBranch(cache_dir=False).min_side == 288 and colour.min_side == 128


def test_repr_names_the_branches_that_run():
    """It used to show `colour=None, cnn=None` for the default detector, whose two branches are both on."""
    from hybrid_drift import HybridDetector
    assert repr(HybridDetector()).startswith(
        "HybridDetector(branches=[ColourBranch(), CNNBranch(), LightBranch(), ShiftBranch(), PatchBranch(), BandBranch(), FlatBranch(),"
        " TearBranch()]")
    assert "CNNBranch" not in repr(HybridDetector(cnn=False))


def test_scores_in_threshold_units_say_the_same_as_the_flags(fitted_detector, frames):
    """``<branch>_x`` = score / threshold and ``fused_x`` = the largest of them (OR fusion): > 1 exactly when
    flagged, 1.0 on the threshold, and the raw scores stay beside them."""
    inverted = [255 - f for f in frames[150:155]]
    table = fitted_detector.score(frames[150:160] + inverted)
    for b, cal in zip(fitted_detector.branches_, fitted_detector.calibrations):
        np.testing.assert_allclose(table[f"{b.name}_x"], table[b.name] / cal.threshold)
        assert (table[f"{b.name}_x"] > 1).tolist() == table[f"{b.name}_flag"].tolist()
    np.testing.assert_allclose(table["fused_x"], table[["colour_x", "cnn_x", "light_x", "shift_x"]].max(axis=1))
    assert (table["fused_x"] > 1).tolist() == table["is_outlier"].tolist()
    assert table["fused_x"].iloc[10:].min() > 1 and table["fused_x"].iloc[:10].median() < 1


def test_scoring_another_resolution_than_the_reference_says_so_once(frames, caplog):
    import logging

    import cv2
    det = HybridDetector(cnn=False).fit(frames[:40])
    with caplog.at_level(logging.WARNING, logger="hybrid_drift.detector"):
        det.score(frames[40:45])
        assert "reference was" not in caplog.text  # same size: nothing to say
        big = [cv2.resize(f, (384, 288)) for f in frames[45:50]]
        det.score(big)
        det.score(big)
    assert caplog.text.count("5 of 5 images are not 192x144, the model's reference size (384x288 x5)") == 1
    # two other sizes in one batch: both are named, with their counts (the first message named one size for all)
    det2 = HybridDetector(cnn=False).fit(frames[:40])
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="hybrid_drift.detector"):
        det2.score([*big[:2], cv2.resize(frames[50], (96, 72)), frames[51]])
    assert "3 of 4 images are not 192x144, the model's reference size (384x288 x2, 96x72 x1)" in caplog.text


def _jpegs(frames, folder, quality):
    folder.mkdir()
    for i, f in enumerate(frames):
        cv2.imwrite(str(folder / f"f{i:03d}.jpg"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return folder


def test_scoring_jpegs_compressed_harder_than_the_reference_says_so_once_and_the_model_keeps_it(frames, caplog,
                                                                                                tmp_path):
    import logging
    ref = _jpegs(frames[:40], tmp_path / "ref", 92)
    det = HybridDetector(cnn=False).fit(ref)
    det.save(tmp_path / "m")
    back = HybridDetector.load(tmp_path / "m")
    assert back.reference_profile_.table["jpeg_quality"].tolist() == [92.0] * len(back.reference_profile_.table)
    same, mild, hard = (_jpegs(frames[40:45], tmp_path / str(q), q) for q in (92, 80, 40))
    with caplog.at_level(logging.WARNING, logger="hybrid_drift.detector"):
        back.score(same)
        back.score(mild)                                     # 12 points below: within JPEG_QUALITY_GAP
        back.score(frames[45:50])                            # arrays: no quality to compare
        assert "compression" not in caplog.text
        back.score(hard)
        back.score(hard)
    assert caplog.text.count("5 scored JPEGs have a median quality of 40, the model's reference 92") == 1


def test_a_model_saved_before_jpeg_qualities_were_kept_loads_and_says_nothing_about_them(frames, caplog, tmp_path):
    import logging
    det = HybridDetector(cnn=False).fit(_jpegs(frames[:30], tmp_path / "ref", 92))
    det.save(tmp_path / "m")
    with np.load(tmp_path / "m" / "arrays.npz") as z:
        arrays = {k: z[k] for k in z.files if k != "reference/jpeg_quality"}    # as a 2026-11-30 model file
    np.savez(tmp_path / "m" / "arrays.npz", **arrays)
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["arrays_sha256"] = hashlib.sha256((tmp_path / "m" / "arrays.npz").read_bytes()).hexdigest()
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    back = HybridDetector.load(tmp_path / "m")
    assert "jpeg_quality" not in back.reference_profile_.table
    with caplog.at_level(logging.WARNING, logger="hybrid_drift.detector"):
        back.score(_jpegs(frames[30:35], tmp_path / "hard", 40))
    assert "compression" not in caplog.text


def test_a_branch_fitted_by_the_caller_is_kept_not_refitted(frames, monkeypatch):
    """``fit_features(prefitted=...)``: a branch shared by two detectors is fitted once (the benchmark's
    eight detectors share the CNN branch); one said to be fitted but not is an error, not a silent miss."""
    from hybrid_drift.branches.base import Branch
    from hybrid_drift.exceptions import NotFittedError
    colour = ColourBranch()
    first = HybridDetector.of_branches([colour])
    ext = first.extract(frames[:40])
    first.fit_features(ext)
    threshold, scorer = colour.threshold_, colour.scorer_
    calls, original = [], Branch.fit_features

    def counted(self, *a, **k):
        calls.append(self.name)
        return original(self, *a, **k)
    monkeypatch.setattr(Branch, "fit_features", counted)
    second = HybridDetector.of_branches([colour, MinMaxBranch()])
    second.prepare_branches()
    ext2 = second.extract(frames[:40])
    with pytest.raises(ValueError, match="not branches of this detector"):
        second.fit_features(ext2, prefitted=["cnn"])
    with pytest.raises(NotFittedError):  # the min/max branch is not fitted yet
        second.fit_features(ext2, prefitted=["colour", "minmax"])
    second.fit_features(ext2, prefitted=["colour"])
    assert calls == ["minmax"]  # only the new branch was fitted
    assert colour.threshold_ == threshold and colour.scorer_ is scorer


def test_an_unfitted_copy_has_the_settings_and_name_but_not_the_fit(frames):
    b = ColourBranch(bins=16, margin=3.0)
    b.name = "colour_a"
    HybridDetector.of_branches([b]).fit(frames[:30])
    c = b.unfitted_copy()
    assert type(c) is ColourBranch and c is not b and c.name == "colour_a"
    assert c.get_config() == b.get_config() and not c.fitted and b.fitted
    cnn = CNNBranch(image_size=TEST_IMAGE_SIZE, n_components=5, cache_dir=False)
    assert cnn.unfitted_copy().get_config() == cnn.get_config()
