"""Opt-in: the CNN branch fits reference frames again as a stream's JPEG would deliver them (``recompressed``),
so a camera whose stream is compressed harder than the snapshots of its reference does not page on every
frame (not the default: it cost a report scene false alarms, see README)."""

import json

import cv2
import numpy as np
import pytest

from conftest import TEST_IMAGE_SIZE
from hybrid_drift import CNNBranch, HybridDetector, PatchBranch
from hybrid_drift.branches.cnn import RECOMPRESS_QUALITY, RECOMPRESSED
from hybrid_drift.io import decode_image
from hybrid_drift.io.sources import expand_inputs

CNN_ONLY = dict(colour=False, light=False, shift=False, patch=False, bands=False, flat=False, tear=False, folds="time")


def _jpeg(rgb, quality):
    buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])[1]
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _branch(**kw):
    return CNNBranch(image_size=TEST_IMAGE_SIZE, n_components=30, cache_dir=False, **kw)


def test_the_copies_are_extra_reference_rows_named_by_their_source(frames):
    assert CNNBranch().recompressed == 0 and RECOMPRESSED == 100 and RECOMPRESS_QUALITY == (30, 70)
    b = _branch(augment=0, recompressed=RECOMPRESSED)
    feats, src = b.reference_extra(expand_inputs(frames[:40]))
    assert feats.shape == (40, b.embedder.dim) and src.tolist() == list(range(40))     # all 40, each its own source
    again, _ = b.reference_extra(expand_inputs(frames[:40]))
    np.testing.assert_array_equal(feats, again)                                         # seeded: the same copies
    images = [decode_image(f) for f in frames[:40]]
    plain = b.features([b.prepare(img) for img in images], images)                     # the frames themselves
    assert plain.shape == feats.shape and not np.allclose(plain, feats, atol=1e-3)
    assert _branch(augment=0).reference_extra(expand_inputs(frames[:40])) is None             # the default: none
    feats, src = _branch(augment=0, recompressed=7).reference_extra(expand_inputs(frames[:40]))
    assert len(src) == 7 and src[0] == 0 and src[-1] == 39                             # evenly spread
    assert "recompressed" not in PatchBranch().get_config()                              # the patch branch: none


def test_a_stream_compressed_harder_than_the_reference_pages_less(frames):
    """Fitted on lossless frames of the street, the same camera's later frames through a JPEG of quality 35:
    without the copies the CNN branch flags many more of them than of the same frames uncompressed (59 vs 27 of
    60 at this small test size, where people at new places already pass the threshold), with them few more
    (31 vs 27); faults are still caught."""
    ref, later = frames[:120], frames[130:190]
    streamed = [_jpeg(f, 35) for f in later]
    blurred = [cv2.GaussianBlur(f, (0, 0), 3) for f in later[:10]]
    flagged = {}
    for n in (0, 100):
        det = HybridDetector(cnn=_branch(recompressed=n), **CNN_ONLY).fit(ref)
        flags = det.score(later + streamed + blurred)["cnn_flag"].to_numpy()
        flagged[n] = (int(flags[:60].sum()), int(flags[60:120].sum()), int(flags[120:].sum()))
    excess = {n: flagged[n][1] - flagged[n][0] for n in flagged}          # flagged for the compression alone
    assert excess[0] >= 15 and excess[100] <= excess[0] // 3, flagged
    assert flagged[100][0] <= flagged[0][0] and flagged[100][2] == 10, flagged


def test_the_setting_is_saved_with_the_model_and_a_model_saved_before_it_loads_without_copies(frames, tmp_path):
    det = HybridDetector(cnn=_branch(augment=0, recompressed=5), **CNN_ONLY).fit(frames[:40])
    det.save(tmp_path / "m")
    assert HybridDetector.load(tmp_path / "m").branches_[0].recompressed == 5
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    del cfg["branches"][0]["config"]["recompressed"]
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    assert HybridDetector.load(tmp_path / "m").branches_[0].recompressed == 0
    with pytest.raises(ValueError, match="recompressed"):
        CNNBranch(recompressed=-1)


def test_fit_on_the_command_line_takes_the_opt_in(frames, tmp_path, capsys):
    """``fit --recompressed N`` reaches the CNN branch and is saved with the model (default 0: none)."""
    from hybrid_drift.cli import main
    ref = tmp_path / "ref"
    ref.mkdir()
    for i, f in enumerate(frames[:40]):
        cv2.imwrite(str(ref / f"f{i:03d}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    size = ["--image-size", str(TEST_IMAGE_SIZE[0]), str(TEST_IMAGE_SIZE[1]), "--n-components", "20"]
    common = ["--no-cache", "--no-progress", "--no-colour", "--no-light", "--no-shift", "--no-patch", "--no-bands",
              "--no-flat", "--no-tear", *size]
    for n in (None, 6):
        out = tmp_path / f"m{n}"
        assert main(["fit", str(ref), "--out", str(out), *common, *([] if n is None else ["--recompressed", str(n)])]) == 0
        loaded = HybridDetector.load(out)
        cnn = next(b for b in loaded.branches_ if b.name == "cnn")
        assert cnn.recompressed == (n or 0), cnn.get_config()
    assert main(["fit", str(ref), "--out", str(tmp_path / "bad"), "--recompressed", "-1", *common]) == 2
    assert "--recompressed" in capsys.readouterr().err
