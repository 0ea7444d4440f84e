"""Where and why (issue 16): heat maps per image and branch, overlays, and the monitor's alert evidence."""

import json

import cv2
import numpy as np
import pytest

from hybrid_drift.cli import main
from hybrid_drift.corruptions import ObjectPaster, load_object_library
from hybrid_drift.monitor import DriftMonitor, profile_images


def _pasted(frame, data_dir, pos):
    obj, alpha = load_object_library([data_dir / "HappyFish.jpg"])["HappyFish"]
    paster = ObjectPaster(obj, alpha, area=0.08, pos=pos)
    return paster(frame), paster.box(frame.shape)


def test_explain_gives_one_item_per_input_with_maps_covering_the_image(fitted_detector, frames, data_dir):
    fish, box = _pasted(frames[150], data_dir, (0.2, 0.8))
    table, ex = fitted_detector.score([frames[150], fish, b"junk", np.zeros((96, 256, 3), np.uint8)], explain=True)
    assert [e.path for e in ex] == table["path"].tolist() and len(ex) == 4
    assert ex[2].error and ex[2].heatmap is None and not ex[2].branch_heatmaps
    for e, (h, w) in ((ex[0], (144, 192)), (ex[3], (96, 256))):
        assert e.heatmap.shape == (h // 8, w // 8)  # 1/8 of the image, same aspect ratio
        assert set(e.branch_heatmaps) == {"colour", "cnn", "patch", "bands", "flat", "tear"}  # light and shift: no map
        assert all(m.shape == e.heatmap.shape and np.isfinite(m).all() for m in e.branch_heatmaps.values())
    # the explained scores are the scored ones
    assert ex[1].scores["cnn"] == pytest.approx(table.loc[1, "cnn"]) and ex[1].is_outlier == table.loc[1, "is_outlier"]
    # on the branch's own grid: the colour map's mean is the colour score, the CNN map sums to at most the score
    b_colour, b_cnn = fitted_detector.branches_[:2]
    F, maps = b_colour.explain_features([b_colour.prepare(_decoded(fish))], [None])
    assert maps[0].shape == b_colour.grid and maps[0].mean() == pytest.approx(b_colour.score_features(F)[0])
    prep = [b_cnn.prepare(_decoded(fish))]
    F, maps = b_cnn.explain_features(prep, [None])
    assert 0 < maps[0].sum() <= b_cnn.score_features(F)[0] * (1 + 1e-6)


def _decoded(rgb):
    from hybrid_drift.io import decode_image
    return decode_image(rgb, reduce="auto", min_side=(128, 96))


def test_the_hottest_point_is_on_a_pasted_object(fitted_detector, frames, data_dir):
    hits = []
    for i, pos in enumerate([(0.2, 0.8), (0.7, 0.2), (0.5, 0.5), (0.1, 0.1), (0.8, 0.9)]):
        fish, (x, y, w, h) = _pasted(frames[140 + i], data_dir, pos)
        e = fitted_detector.explain([fish])[0]
        hm = e.branch_heatmaps["cnn"]
        iy, ix = np.unravel_index(np.argmax(hm), hm.shape)
        py, px = (iy + 0.5) * 144 / hm.shape[0], (ix + 0.5) * 192 / hm.shape[1]
        m = 0.05 * 192  # this test's CNN input is 96x128: a coarse 6x8 grid
        hits.append(x - m <= px <= x + w + m and y - m <= py <= y + h + m)
    assert sum(hits) >= 4, hits


def test_cli_score_explain_writes_one_overlay_per_flagged_row(fitted_detector, frames, tmp_path, data_dir):
    model = tmp_path / "m"
    fitted_detector.save(model)
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for i in range(4):
        cv2.imwrite(str(imgs / f"f{i}.jpg"), cv2.cvtColor(frames[150 + i], cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(imgs / "f4_inverted.jpg"), cv2.cvtColor(255 - frames[155], cv2.COLOR_RGB2BGR))
    out = tmp_path / "expl"
    assert main(["score", str(model), str(imgs), "--out", str(tmp_path / "s.csv"), "--explain", str(out),
                 "--explain-arrays", "--no-progress"]) == 0
    table = __import__("pandas").read_csv(tmp_path / "s.csv")
    flagged = [i for i, v in enumerate(table["is_outlier"]) if v]
    assert 4 in flagged
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == [f"{i:06d}_{table['path'][i].split('/')[-1][:-4]}.png" for i in flagged]
    assert (out / "000004_f4_inverted.npy").is_file() and (out / "000004_f4_inverted.cnn.npy").is_file()
    assert cv2.imread(str(out / pngs[-1])).shape[1] == 384


def test_monitor_alerts_name_their_checks_and_the_images_that_moved_them(frames, tmp_path):
    base, stream = tmp_path / "base", tmp_path / "stream"
    for folder, fr in ((base, frames[:60]), (stream, frames[60:80])):
        folder.mkdir()
        for i, f in enumerate(fr):
            if folder is stream and i >= 10 and i % 3 == 0:
                f = (f * 0.4).astype(np.uint8)  # a third of the second chunk goes dark
            cv2.imwrite(str(folder / f"f{i:03d}.jpg"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    mon = DriftMonitor(chunk=10, min_change=0.0).fit(profile_images(base))
    prof = profile_images(stream)
    why = mon.explain(mon.run(prof), prof, top=3)
    assert [w["chunk"] for w in why] == [1]
    c = next(c for c in why[0]["checks"] if c["check"] == "brightness_mean:mean")
    assert c["statistic"] < -c["threshold"] and len(c["images"]) == 3
    assert {int(i["path"][-7:-4]) % 3 for i in c["images"]} == {0}  # the darkened frames moved it most
    js = tmp_path / "o.json"
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"min_change": 0.0, "max_alert_chunks": 5}))
    import contextlib
    import io
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["monitor", str(base), str(stream), "--chunk", "10", "--config", str(cfg), "--json",
                     "--report", str(tmp_path / "rep"), "--no-progress"]) == 0
    out = json.loads(buf.getvalue().strip().splitlines()[-1])
    assert out["alerts"] and out["alerts"][0]["checks"][0]["images"]
    js.write_text(buf.getvalue())
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "why it alerted" in html and html.count("moved brightness_mean:mean") >= 3
