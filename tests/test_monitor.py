"""Batch-level drift monitoring: profiles, statistics (checked against SciPy), calibrated alerts."""

import json

import cv2
import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from hybrid_drift.cli import main
from hybrid_drift.monitor import (BatchProfile, Compose, DriftMonitor, Resize, Saturation, chi2_categorical, ks,
                                  mmd_permutation, numeric_stat, profile_images, psi, register_feature)
from hybrid_drift.monitor.power import ks_expected_pvalue, ks_required_batch_size, power_curve


def _write(frames, folder, ext="jpg"):
    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        cv2.imwrite(str(folder / f"f{i:04d}.{ext}"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    return folder


@pytest.fixture(scope="module")
def blocks(frames):
    """Interleaved blocks of 10 frames: even blocks = baseline, odd blocks = a steady stream."""
    even = [f for i, f in enumerate(frames) if (i // 10) % 2 == 0]
    odd = [f for i, f in enumerate(frames) if (i // 10) % 2 == 1]
    return even, odd


def test_stats_match_scipy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=300), rng.normal(0.3, 1, size=200)
    r = st.ks_2samp(a, b)
    assert ks(a, b) == pytest.approx((r.statistic, r.pvalue))
    base = ["jpg"] * 50 + ["png"] * 10
    batch = ["jpg"] * 20 + ["tiff"] * 20
    stat, p, n_unique = chi2_categorical(base, batch)
    table = np.array([[50, 10, 0], [20, 0, 20]])
    ref = st.chi2_contingency(table, correction=False)
    assert (stat, p) == pytest.approx((ref.statistic, ref.pvalue)) and n_unique == 2
    assert chi2_categorical(["a"] * 5, ["a"] * 3) == (0.0, 1.0, 1)


def test_psi_by_hand():
    base = np.arange(100.0)
    same = psi(base, base)
    assert same == pytest.approx(0.0, abs=1e-9)
    # all batch values in the top decile: q = [eps.., 1], p = 0.1 each
    shifted = np.full(50, 99.5)
    eps = 1e-4
    p = np.full(10, (0.1 * 100 + eps) / (100 + 10 * eps))
    q = np.r_[np.full(9, eps), 50 + eps] / (50 + 10 * eps)
    assert psi(base, shifted) == pytest.approx(float(((q - p) * np.log(q / p)).sum()))
    assert numeric_stat("psi", base, shifted)[0] == pytest.approx(psi(base, shifted))
    with pytest.raises(ValueError, match="unknown statistic"):
        numeric_stat("t", base, shifted)


def test_mmd_permutation_separates():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    _, p_same = mmd_permutation(X, rng.normal(size=(40, 4)), n_permutations=100)
    mmd, p_diff = mmd_permutation(X, rng.normal(1.0, 1, size=(40, 4)), n_permutations=100)
    assert p_same > 0.05 and p_diff < 0.02 and mmd > 0


def test_profile_columns_merge_and_save(blocks, tmp_path):
    even, _ = blocks
    register_feature("sat50", Compose([Resize(50), Saturation()]), overwrite=True)
    folder = _write(even[:20], tmp_path / "a")
    (folder / "f9999.jpg").write_bytes(b"")
    whole = profile_images(folder, features=["sat50"])
    t = whole.table
    assert len(t) == 21 and whole.n_images == 20 and t["error"].iloc[-1] == "zero bytes"
    for c in ("brightness_mean", "hue_std", "width", "height", "mode", "format", "file_size",
              "sat50_mean", "sat50_std"):
        assert c in t.columns, c
    assert (t["format"].iloc[:20] == "JPEG").all() and (t["width"].iloc[:20] == 192).all()
    sat = cv2.cvtColor(cv2.resize(even[0], (50, 50), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2HSV)[..., 1]
    assert t["sat50_mean"].iloc[0] == pytest.approx(sat.mean() / 255, abs=0.02)
    # two halves merge to the whole
    merged = whole.slice(0, 10).merge(whole.slice(10, 21))
    pd.testing.assert_frame_equal(merged.table, whole.table)
    assert np.allclose(merged.hist, whole.hist)
    # a merged profile slices like the whole: per-image data follows the rows
    assert np.allclose(merged.slice(12, 18).hist, whole.slice(12, 18).hist)
    assert np.allclose(merged.slice(12, 18).hist, whole.slice(12, 18).mean_hist() * 6)
    again = BatchProfile.load(whole.save(tmp_path / "saved"))
    assert np.allclose(again.hist, whole.hist)
    pd.testing.assert_frame_equal(again.table[["path", "brightness_mean", "format"]],
                                  whole.table[["path", "brightness_mean", "format"]])
    with np.load(tmp_path / "saved" / "arrays.npz", allow_pickle=False) as npz:
        assert "hist" in npz.files


def test_steady_stream_no_alert_where_raw_ks_rejects(blocks):
    even, odd = blocks
    base, stream = profile_images(np.stack(even)), profile_images(np.stack(odd))
    mon = DriftMonitor(chunk=10).fit(base)
    res = mon.run(stream)
    means = res[res["check"].str.endswith(":mean")]
    assert not res["alert"].any()
    assert (means["p_value"] < 0.05).mean() > 0.5  # the textbook test would cry wolf


def test_darkening_and_metadata_change_are_flagged(blocks, tmp_path):
    even, odd = blocks
    base = profile_images(_write(even, tmp_path / "base"))
    mon = DriftMonitor(chunk=10).fit(base)
    dusk = [f if i < 30 else (f * 0.6).astype(np.uint8) for i, f in enumerate(odd)]
    s = DriftMonitor.summary(mon.run(profile_images(_write(dusk, tmp_path / "dusk"))))
    assert s.loc[s["chunk"] < 3, "alerts"].sum() == 0
    assert (s.loc[s["chunk"] >= 3, "alerts"] > 0).all()
    assert "brightness_mean:mean" in s.loc[3, "checks"]
    # TIFF files with the same pixels: metadata flags them, the pixel checks do not
    tiff = profile_images(_write(odd[:20], tmp_path / "tiff", "tiff"))
    r = mon.check(tiff).set_index("check")
    assert r.loc["format:chi2", "alert"] and "TIFF" in r.loc["format:chi2", "detail"]
    assert not r.loc[[c for c in r.index if c.endswith(":mean")], "alert"].any()


def test_monitor_errors(blocks):
    even, _ = blocks
    base = profile_images(np.stack(even[:15]))
    with pytest.raises(ValueError, match="at least 2 chunks"):
        DriftMonitor(chunk=10).fit(base)
    with pytest.raises(ValueError, match="not in the profile"):
        DriftMonitor(chunk=5, features=("nope",)).fit(base)
    with pytest.raises(ValueError, match="embeddings"):
        DriftMonitor(chunk=5, semantic=True).fit(base)


def test_power_analysis_consistent():
    rng = np.random.default_rng(0)
    base, shifted = rng.normal(size=400), rng.normal(0.5, 1, size=400)
    pc = power_curve(base, shifted, sizes=(5, 20, 80), n_boot=100)
    assert pc["power"].is_monotonic_increasing and pc["median_p"].is_monotonic_decreasing
    n = ks_required_batch_size(pc.attrs["D"], 400)
    assert ks_expected_pvalue(pc.attrs["D"], 400, n) <= 0.05 < ks_expected_pvalue(pc.attrs["D"], 400, n - 2)
    assert ks_required_batch_size(0.01, 400) == float("inf")


def test_cli_monitor_exit_codes(blocks, tmp_path, capsys):
    even, odd = blocks
    base = _write(even, tmp_path / "base")
    steady = _write(odd, tmp_path / "steady")
    dark = _write([(f * 0.5).astype(np.uint8) for f in odd], tmp_path / "dark")
    assert main(["monitor", str(base), str(steady), "--chunk", "10", "--no-progress"]) == 0
    capsys.readouterr()
    # alerts alone are not a failed constraint (exit 0); a constraint asked for is (exit 1)
    assert main(["monitor", str(base), str(dark), "--chunk", "10", "--json", "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["monitor", str(base), str(dark), "--chunk", "10", "--json", "--report",
                 str(tmp_path / "rep"), "--no-progress", "--max-alert-chunks", "0"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["alert_chunks"] == out["chunks"] and out["first_alert_chunk"] == 0
    assert (tmp_path / "rep" / "checks_over_time.png").stat().st_size > 1000
    assert (tmp_path / "rep" / "hsb_overlay.png").is_file()
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"max_alert_chunks": 99, "features": ["brightness_mean"]}))
    assert main(["monitor", str(base), str(dark), "--chunk", "10", "--config", str(cfg)]) == 0
    cfg.write_text(json.dumps({"chunks": 5}))
    assert main(["monitor", str(base), str(dark), "--config", str(cfg)]) == 2
    assert "unknown keys" in capsys.readouterr().err


def test_auto_band_is_a_prediction_interval_shared_by_the_checks(blocks):
    even, _ = blocks
    base = profile_images(np.stack(even))
    mon = DriftMonitor(chunk=10, layout=False).fit(base)  # 10 chunks, 6 HSB checks
    n, m = 10, 6
    assert mon.k_ == pytest.approx(st.t.ppf(1 - 0.05 / (2 * m), n - 1) * np.sqrt(1 + 1 / n))
    with_layout = DriftMonitor(chunk=10).fit(base)  # + the scene-layout check
    assert with_layout.k_ == pytest.approx(st.t.ppf(1 - 0.05 / (2 * 7), n - 1) * np.sqrt(1 + 1 / n))
    assert DriftMonitor(chunk=10, k=3).fit(base).k_ == 3.0
    loose = DriftMonitor(chunk=10, alpha=0.5).fit(base).k_
    assert loose < mon.k_


def test_time_ordered_clean_stream_is_quiet_and_changes_alert(frames):
    """Issue 13: a baseline strictly before the stream. The clean stream (people crossing the lawn, the
    light change near frame 500) raises no alert; a colour cast and a knocked camera alert at once."""
    base = profile_images(np.stack(frames[:75]))        # every 4th video frame: 0-296
    stream = frames[75:]                                 # 300-792, in chunks of 12 (48 video frames)
    mon = DriftMonitor(chunk=12).fit(base)
    clean = DriftMonitor.summary(mon.run(profile_images(np.stack(stream))))
    assert clean["alerts"].sum() == 0, clean
    cast = [np.clip(f * np.array([1.2, 1.0, 0.75]), 0, 255).astype(np.uint8) for f in stream[:48]]
    assert (DriftMonitor.summary(mon.run(profile_images(np.stack(cast))))["alerts"] > 0).all()
    h, w = stream[0].shape[:2]
    M = cv2.getRotationMatrix2D((w / 2, h / 2), 2.0, 1.06)
    M[:, 2] += (0.03 * w, 0.02 * h)
    knocked = [cv2.warpAffine(f, M, (w, h), borderMode=cv2.BORDER_REFLECT) for f in stream[:48]]
    res = mon.run(profile_images(np.stack(knocked)))
    assert res.loc[res["check"] == "layout:ncc", "alert"].all()
    # the band of six chunk means alone (no min_change) alerts on the clean stream: the light change
    bare = DriftMonitor(chunk=12, min_change=0.0).fit(base)
    assert DriftMonitor.summary(bare.run(profile_images(np.stack(stream))))["alerts"].sum() > 0


def test_hue_statistics_are_circular():
    red = np.zeros((8, 8, 3), np.uint8)
    red[:4, :, 0], red[4:, :, 0], red[..., 1:] = 1, 179, 200  # hues 2 and 358 degrees: nearly the same red
    from hybrid_drift.features.colour import ColourFeatures
    s = ColourFeatures.stats(hsv=red)
    assert s[1] < 0.01  # circular std: tiny (the linear std of 1 and 179 would be 0.5 of the range)
    assert min(s[0], 1 - s[0]) < 0.01  # mean direction: red (0 turns)


def test_a_short_last_chunk_joins_the_one_before(frames):
    """Issue 14: a clean stream of 51 frames with chunk 50 used to alert on its 1-frame tail."""
    base = profile_images(np.stack(frames[:100]))
    mon = DriftMonitor(chunk=20).fit(base)
    res = mon.run(profile_images(np.stack(frames[100:141])))  # 41 frames: 20 + 21
    assert sorted(set(zip(res["start"], res["stop"]))) == [(0, 20), (20, 41)]
    res = mon.run(profile_images(np.stack(frames[100:150])))  # 50 frames: 20 + 20 + 10 (half a chunk: kept)
    assert sorted(set(zip(res["start"], res["stop"]))) == [(0, 20), (20, 40), (40, 50)]


@pytest.mark.parametrize("kw, word", [({"chunk": 0}, "chunk"), ({"chunk": "50"}, "chunk"), ({"alpha": 0}, "alpha"),
                                      ({"alpha": 2}, "alpha"), ({"k": -1}, "k"), ({"min_change": -0.1}, "min_change"),
                                      ({"stats": ("t",)}, "unknown statistic")])
def test_monitor_settings_are_validated(frames, kw, word):
    with pytest.raises(ValueError, match=word):
        DriftMonitor(**kw).fit(profile_images(np.stack(frames[:40])))


def test_the_plot_draws_the_floor_that_keeps_a_point_outside_the_band_from_alerting(frames):
    """A chunk alerts only outside both the ±k band and the min_change floor: the figure draws the floor,
    in the band's units, so a point outside the grey band with no red dot is explained; chunks are whole."""
    from hybrid_drift.monitor.plots import checks_figure
    base = profile_images(np.stack(frames[:100]))
    darker = [np.clip(f.astype(int) - 3, 0, 255).astype(np.uint8) for f in frames[100:140]]  # a small change
    mon = DriftMonitor(chunk=10, min_change=0.5).fit(base)  # a floor far above it
    res = mon.run(profile_images(np.stack(darker)))
    means = res[res["check"].str.endswith(":mean")]
    assert "floor" in res and (means["floor"] > 0).all()
    quiet = means[(means["statistic"].abs() > means["threshold"]) & ~means["alert"]]
    assert len(quiet) and (quiet["statistic"].abs() <= quiet["floor"]).all()  # outside the band, inside the floor
    fig = checks_figure(res)
    ax = fig.axes[list(dict.fromkeys(means["check"])).index(quiet["check"].iloc[0])]
    dashed = sorted(round(ln.get_ydata()[0], 6) for ln in ax.lines if ln.get_linestyle() == "--")
    f = round(float(means.loc[means["check"] == quiet["check"].iloc[0], "floor"].max()), 6)
    assert dashed == [-f, f]
    assert all(float(t).is_integer() for t in ax.get_xticks())


def test_monitor_chunks_a_stream_by_the_hour_when_images_have_times(frames, tmp_path, capsys):
    """`--chunk-by hour`: one chunk per calendar hour of the images' times (here file times), in time order
    whatever the names; without a time per image it exits 2 naming one."""
    import os
    base, stream = tmp_path / "base", tmp_path / "stream"
    base.mkdir(), stream.mkdir()
    for i, f in enumerate(frames[:60]):
        cv2.imwrite(str(base / f"{i:03d}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    t0 = 1_764_460_800  # 2025-11-30T00:00Z
    for i, f in enumerate(frames[60:120]):  # names in reverse time order; 20 images an hour for 3 hours
        p = stream / f"{119 - i:03d}.png"
        cv2.imwrite(str(p), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
        os.utime(p, (t0 + i * 180, t0 + i * 180))
    assert main(["monitor", str(base), str(stream), "--chunk", "20", "--chunk-by", "hour", "--times", "mtime",
                 "--json", "--no-progress"]) == 0
    out = json.loads(capsys.readouterr().out)
    periods = [c["period"] for c in out["per_chunk"]]
    assert periods == ["2025-11-30T00:00Z", "2025-11-30T01:00Z", "2025-11-30T02:00Z"]
    assert [c["stop"] - c["start"] for c in out["per_chunk"]] == [20, 20, 20]
    assert main(["monitor", str(base), str(stream), "--chunk-by", "day", "--times", "exif", "--no-progress"]) == 2
    assert "needs a time for every image" in capsys.readouterr().err
