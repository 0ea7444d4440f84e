"""Ignore zones (issue 24): a change inside an ignored zone never alerts, the same change outside it does;
zones are part of the model (saved, used at fit and at scoring), given from the library or `fit --ignore`,
and heat maps are zero inside them."""

import cv2
import pytest

from conftest import TEST_IMAGE_SIZE
from hybrid_drift import CNNBranch, HybridDetector
from hybrid_drift.cli import main
from hybrid_drift.io.zones import check_zones, parse_zone

TOP_LEFT = [(0.0, 0.0), (0.5, 0.0), (0.5, 0.5), (0.0, 0.5)]


def _screen(f, x0, y0):
    """A TV screen showing something bright where the reference saw the scene: 40% x 40% of the frame."""
    g = f.copy()
    h, w = g.shape[:2]
    g[int(y0 * h):int((y0 + 0.4) * h), int(x0 * w):int((x0 + 0.4) * w)] = (250, 30, 200)
    return g


@pytest.fixture(scope="module")
def zoned(frames):
    det = HybridDetector(cnn=CNNBranch(image_size=TEST_IMAGE_SIZE, augment=0, cache_dir=False),
                         ignore=[TOP_LEFT]).fit(frames[:80])
    return det


def test_a_change_inside_an_ignored_zone_never_alerts_outside_it_does(zoned, frames):
    inside = [_screen(f, 0.05, 0.05) for f in frames[100:106]]
    outside = [_screen(f, 0.55, 0.55) for f in frames[100:106]]
    assert not zoned.score(inside)["is_outlier"].any()
    assert zoned.score(outside)["is_outlier"].all()
    plain = HybridDetector(cnn=CNNBranch(image_size=TEST_IMAGE_SIZE, augment=0, cache_dir=False)).fit(frames[:80])
    assert plain.score(inside)["is_outlier"].mean() >= 0.5  # without the zone the same screen alerts
    e = zoned.explain(outside[:1] + inside[:1])
    h, w = e[0].heatmap.shape
    assert e[1].heatmap[: h // 2 - 1, : w // 2 - 1].max() == 0 and e[0].heatmap.max() > 0


def test_zones_are_saved_with_the_model_and_given_on_the_command_line(zoned, frames, tmp_path, capsys):
    zoned.save(tmp_path / "m")
    back = HybridDetector.load(tmp_path / "m")
    assert check_zones(back.ignore) == check_zones([TOP_LEFT])
    assert not back.score([_screen(frames[110], 0.05, 0.05)])["is_outlier"].any()
    ref, today = tmp_path / "ref", tmp_path / "today"
    ref.mkdir(), today.mkdir()
    for i, f in enumerate(frames[:80]):
        cv2.imwrite(str(ref / f"{i:03d}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(today / "in.png"), cv2.cvtColor(_screen(frames[110], 0.05, 0.05), cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(today / "out.png"), cv2.cvtColor(_screen(frames[110], 0.55, 0.55), cv2.COLOR_RGB2BGR))
    assert main(["fit", str(ref), "--out", str(tmp_path / "cli"), "--ignore", "0,0 0.5,0 0.5,0.5 0,0.5",
                 "--image-size", "96", "128", "--no-progress"]) == 0
    assert "ignore zones: 1" in capsys.readouterr().out
    assert main(["score", str(tmp_path / "cli"), str(today), "--out", str(tmp_path / "s.csv"), "--no-progress"]) == 0
    import pandas as pd
    t = pd.read_csv(tmp_path / "s.csv")
    t.index = t["path"].map(lambda p: p.rsplit("/", 1)[-1])
    assert not t.loc["in.png", "is_outlier"] and t.loc["out.png", "is_outlier"]
    assert main(["fit", str(ref), "--out", str(tmp_path / "bad"), "--ignore", "0,0 2,0 0,1"]) == 2
    assert "fractions" in capsys.readouterr().err
    with pytest.raises(ValueError, match="at least 3 points"):
        parse_zone("0,0 1,1")
