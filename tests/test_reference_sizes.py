"""A reference of several image sizes (two streams of one camera, a substream mixed in) is named in the fit
summary and warned about; the model keeps the sizes it saw, and scoring warns only on a size it never saw."""

import json
import logging

import cv2
import numpy as np
import pytest

from hybrid_drift import HybridDetector, ModelFormatError
from hybrid_drift.cli import main
from hybrid_drift.reference_order import reference_lines, reference_warnings
from test_local import _scene

CHEAP = dict(cnn=False, patch=False, folds="time")


@pytest.fixture(scope="module")
def frames():
    return _scene(np.random.default_rng(3), 90)          # 192x144, a person walking, clouds


def _resized(frames, size):
    return [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames]


def test_a_reference_of_two_sizes_is_counted_named_and_warned_about(frames):
    mixed = HybridDetector(**CHEAP).fit(frames[:30] + _resized(frames[30:60], (160, 120)))
    summary = mixed.reference_summary()
    assert summary["sizes"] == {"160x120": 30, "192x144": 30}        # most frequent first, ties by name
    assert reference_lines(summary)[0] == "reference: 60 readable images, 2 sizes: 160x120 x30, 192x144 x30"
    warned = [w for w in reference_warnings(summary) if "mixes" in w]
    assert len(warned) == 1 and "Fit one model per stream" in warned[0]

    one = HybridDetector(**CHEAP).fit(frames[:60])
    assert one.reference_summary()["sizes"] == {"192x144": 60}
    assert reference_lines(one.reference_summary())[0] == "reference: 60 readable images, 192x144"
    assert not [w for w in reference_warnings(one.reference_summary()) if "mixes" in w]


def test_scoring_warns_only_on_a_size_the_reference_never_had(frames, caplog):
    mixed = HybridDetector(**CHEAP).fit(frames[:30] + _resized(frames[30:60], (160, 120)))
    with caplog.at_level(logging.WARNING, logger="hybrid_drift.detector"):
        mixed.score(frames[60:65] + _resized(frames[65:70], (160, 120)))        # both sizes it saw
    assert not [r for r in caplog.records if "reference size" in r.getMessage()]
    with caplog.at_level(logging.WARNING, logger="hybrid_drift.detector"):
        mixed.score(frames[70:75] + _resized(frames[75:78], (128, 96)))
    msgs = [r.getMessage() for r in caplog.records if "reference size" in r.getMessage()]
    assert len(msgs) == 1 and msgs[0].startswith("3 of 8 images are not 160x120 or 192x144") and "128x96 x3" in msgs[0]


def test_the_sizes_are_saved_with_the_model_and_a_model_saved_before_them_loads(frames, tmp_path, caplog):
    det = HybridDetector(**CHEAP).fit(frames[:30] + _resized(frames[30:60], (160, 120)))
    det.save(tmp_path / "m")
    back = HybridDetector.load(tmp_path / "m")
    assert back.reference_summary()["sizes"] == {"160x120": 30, "192x144": 30}
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    del cfg["reference"]["sizes"]                                        # as saved before 2026-12-03
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    old = HybridDetector.load(tmp_path / "m")
    assert old.reference_summary()["sizes"] is None
    with caplog.at_level(logging.WARNING, logger="hybrid_drift.detector"):   # the saved profile's sizes serve
        old.score(_resized(frames[60:62], (160, 120)) + frames[62:64])
    assert not [r for r in caplog.records if "reference size" in r.getMessage()]
    for bad in ({"160x120": 0}, {"160x120": True}, {"160 x 120": 3}, {"0x120": 3}, ["160x120"]):
        cfg["reference"]["sizes"] = bad
        (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
        with pytest.raises(ModelFormatError, match="sizes"):
            HybridDetector.load(tmp_path / "m")


def test_fit_on_the_command_line_names_the_sizes_and_warns(frames, tmp_path, capsys):
    ref = tmp_path / "ref"
    ref.mkdir()
    for i, f in enumerate(frames[:30] + _resized(frames[30:60], (160, 120))):
        cv2.imwrite(str(ref / f"f{i:03d}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    assert main(["fit", str(ref), "--out", str(tmp_path / "m"), "--no-cnn", "--no-patch", "--no-progress"]) == 0
    out, err = capsys.readouterr()
    assert "reference: 60 readable images, 2 sizes: 160x120 x30, 192x144 x30" in out
    assert "warning: the reference mixes 2 sizes" in err
