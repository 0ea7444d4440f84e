"""Operator feedback (issue 24): an accepted false alarm stops alerting, the model records it, and frames far
from the reference are refused unless forced (drift is not absorbed silently)."""

import json

import cv2
import numpy as np
import pytest

from hybrid_drift import HybridDetector
from hybrid_drift.cli import main


@pytest.fixture(scope="module")
def colour_model(frames, tmp_path_factory):
    out = tmp_path_factory.mktemp("fb") / "m"
    HybridDetector(cnn=False).fit(frames[:100]).save(out)
    return out


def _warm(f, shift):
    """The frame with a warmer cast: a plausible false alarm (new light), not a broken camera."""
    g = f.astype(np.float32)
    g[..., 0] *= 1 + shift
    g[..., 2] *= 1 - shift
    return np.clip(np.rint(g), 0, 255).astype(np.uint8)


def test_an_accepted_false_alarm_stops_alerting_and_is_recorded(colour_model, frames, tmp_path):
    det = HybridDetector.load(colour_model)
    thr = det.branches_[0].calibration_.threshold
    # the mildest cast that alarms (in steps of 0.25% of red and blue: the colour branch reads 2 grey levels)
    shift = next(s for s in np.arange(0.0025, 0.5, 0.0025)
                 if 1.02 * thr < det.score([_warm(frames[120], s)])["colour"][0] < 1.25 * thr)
    alarms = [_warm(f, shift) for f in frames[120:125]]
    assert det.score(alarms)["is_outlier"].any()
    changed = det.accept(alarms, by="alice", note="sunset")
    assert changed["colour"][1] > changed["colour"][0] and not det.score(alarms)["is_outlier"].any()
    assert det.score([255 - frames[130]])["is_outlier"].all()  # a broken frame still alerts
    det.save(tmp_path / "m2")
    again = HybridDetector.load(tmp_path / "m2")
    assert not again.score(alarms)["is_outlier"].any()
    rec = json.loads((tmp_path / "m2" / "config.json").read_text())["accepted"]
    assert rec[0]["by"] == "alice" and rec[0]["note"] == "sunset" and rec[0]["n"] == 5 and not rec[0]["forced"]


def test_frames_far_from_the_reference_are_refused_unless_forced(colour_model, frames, tmp_path, capsys):
    det = HybridDetector.load(colour_model)
    before = det.branches_[0].calibration_.threshold
    inverted = [255 - f for f in frames[120:123]]
    with pytest.raises(ValueError, match=r"would widen the (colour|light|shift) threshold"):
        det.accept(inverted)
    assert det.branches_[0].calibration_.threshold == before and not getattr(det, "accepted_", [])
    img = tmp_path / "inverted.png"
    cv2.imwrite(str(img), cv2.cvtColor(inverted[0], cv2.COLOR_RGB2BGR))
    model = tmp_path / "m"
    HybridDetector.load(colour_model).save(model)
    assert main(["accept", str(model), str(img), "--no-progress"]) == 2
    assert "would widen" in capsys.readouterr().err
    assert main(["accept", str(model), str(img), "--force", "--by", "bob", "--no-progress"]) == 0
    out, err = capsys.readouterr()
    assert "colour: threshold" in out and "forced" in err
    assert not HybridDetector.load(model).score([inverted[0]])["is_outlier"].any()
    assert json.loads((model / "config.json").read_text())["accepted"][0]["forced"] is True
