"""Nothing lost, nothing silently wrong (issue 14): damaged files, odd names, whole-or-partial outputs,
exit codes, the feature cache, model files checked as data, small reference sets."""

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.base import clone

from conftest import TEST_IMAGE_SIZE
from hybrid_drift import CNNBranch, ColourBranch, HybridDetector, ModelFormatError, NotFittedError
from hybrid_drift.cli import main
from hybrid_drift.features.cache import FeatureCache, cache_info
from hybrid_drift.io import decode_image, expand_inputs
from hybrid_drift.io.outputs import OutputBusyError, PartialOutput
from hybrid_drift.io.sources import path_of, scan_folder


def _png(rgb) -> bytes:
    return bytes(cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1])


def _jpg(rgb) -> bytes:
    return bytes(cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])[1])


# ------------------------------------------------------------------ silently wrong pixels
def test_a_png_with_one_flipped_bit_is_an_error_not_half_an_image():
    b = bytearray(_png(np.random.default_rng(0).integers(0, 255, (96, 128, 3), np.uint8)))
    i0, i1 = b.find(b"IDAT") + 4, b.rfind(b"IEND") - 8
    b[(i0 + i1) // 2] ^= 0x10
    out = decode_image(bytes(b))
    assert out.rgb is None and "corrupt" in out.error


def test_the_png_pixel_guard_runs_before_any_pixel_is_decoded(monkeypatch):
    big = _png(np.zeros((2000, 1500, 3), np.uint8))  # 3 MP of zeros: a small file
    calls = []
    real_imdecode, real_load = cv2.imdecode, Image.Image.load
    monkeypatch.setattr(cv2, "imdecode", lambda *a: calls.append("cv2") or real_imdecode(*a))
    monkeypatch.setattr(Image.Image, "load", lambda self: calls.append("pil") or real_load(self))
    out = decode_image(big, max_pixels=1_000_000)
    assert out.error.startswith("too many pixels") and calls == []
    ok = decode_image(_png(np.zeros((60, 80, 3), np.uint8)))
    assert ok.ok and calls == ["cv2"]  # a valid PNG is decoded once, by OpenCV


def _fresh_decodes(buf: bytes):
    """What strict decoders make of the bytes: OpenCV, and a Pillow image never loaded before."""
    rgb = cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_COLOR_RGB)
    out = [] if rgb is None else [rgb]
    try:
        with Image.open(io.BytesIO(buf)) as im:
            im.load()
            out.append(np.asarray(im.convert("RGB")))
    except Exception:
        pass
    return out


def test_fuzz_bit_flips_and_truncations_one_row_each_and_no_silently_damaged_pixels(frames, tmp_path):
    """Real frames as JPEG and PNG, each mutated 60 ways (bit flips anywhere, truncations): every
    mutant is one row, scored or with an error, and any pixels we return are what a strict decoder
    makes of those bytes (never a half-decoded image)."""
    rng = np.random.default_rng(7)
    originals = [_jpg(frames[10]), _jpg(frames[90]), _png(frames[20]), _png(frames[150][:72, :96])]
    mutants = []
    for buf in originals:
        for _ in range(45):
            b = bytearray(buf)
            b[int(rng.integers(len(b)))] ^= 1 << int(rng.integers(8))
            mutants.append(bytes(b))
        for _ in range(15):
            mutants.append(buf[:int(rng.integers(1, len(buf)))])
    folder = tmp_path / "mutants"
    folder.mkdir()
    for i, m in enumerate(mutants):
        ext = ".png" if m.startswith(b"\x89PNG") else ".jpg"
        (folder / f"m{i:03d}{ext}").write_bytes(m)
    damaged = 0
    for m in mutants:
        out = decode_image(m, reduce=1)
        if out.ok:
            assert any(np.array_equal(out.rgb, d) for d in _fresh_decodes(m)), "pixels no strict decoder gives"
        else:
            damaged += 1
    assert damaged > 60  # the checks fire, they are not vacuous
    det = HybridDetector(cnn=False).fit(frames[:40])
    table = det.score(folder)
    assert len(table) == len(mutants) and table["path"].is_unique
    assert (table["error"].notna() ^ table["colour"].notna()).all()  # a score or an error, never both or none


# ------------------------------------------------------------------ names, folders, special files
def _odd_folder(tmp_path: Path, frames) -> Path:
    d = tmp_path / "odd"
    (d / "sub").mkdir(parents=True)
    jpg = _jpg(frames[5])
    (d / "a.jpg").write_bytes(jpg)
    with open(os.path.join(os.fsencode(d), b"caf\xe9.jpg"), "wb") as fh:  # not UTF-8
        fh.write(jpg)
    (d / "cr\rlf.jpg").write_bytes(jpg)
    (d / "cam#frame=1.jpg").write_bytes(jpg)
    (d / "notes.txt").write_text("not an image")
    (d / "x.heic").write_bytes(b"\x00\x00\x00\x18ftypheic")
    os.symlink(d / "nowhere.jpg", d / "broken.jpg")
    os.mkfifo(d / "pipe.jpg")
    linked = tmp_path / "elsewhere"
    linked.mkdir()
    (linked / "b.jpg").write_bytes(jpg)
    os.symlink(linked, d / "sub" / "linked")
    os.symlink(d, d / "sub" / "loop")  # a loop back to the top: listed once
    return d


def test_every_entry_of_an_odd_folder_is_one_row_or_a_note(tmp_path, frames):
    d = _odd_folder(tmp_path, frames)
    notes = []
    items = expand_inputs(d, notes=notes)
    names = sorted(Path(path_of(i.id)).name for i in items)
    assert names == sorted(["a.jpg", os.fsdecode(b"caf\xe9.jpg"), "cr\rlf.jpg", "cam#frame=1.jpg", "x.heic",
                            "broken.jpg", "pipe.jpg", "b.jpg"])
    assert notes and ".txt x1" in notes[0]
    assert all(path_of(i.id) == i.src for i in items) and all(i.id.isprintable() for i in items)
    det = HybridDetector(cnn=False).fit(frames[:40])
    t = det.score(d)
    err = dict(zip([Path(path_of(p)).name for p in t["path"]], t["error"]))
    assert err["pipe.jpg"] == "not a regular file (FIFO)" and "broken symbolic link" in err["broken.jpg"]
    assert pd.notna(err["x.heic"]) and pd.isna(err["a.jpg"]) and pd.isna(err[os.fsdecode(b"caf\xe9.jpg")])
    for p in ("/dev/zero",):
        assert decode_image(p).error == "not a regular file (device)"


def test_unreadable_subfolder_is_an_error_row(tmp_path, monkeypatch, frames):
    d = tmp_path / "d"
    (d / "locked").mkdir(parents=True)
    (d / "a.jpg").write_bytes(_jpg(frames[0]))
    real = os.scandir

    def scandir(path):  # as root every folder is readable: simulate a permission error
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    scan = scan_folder(d)
    assert [Path(f).name for f in scan.files] == ["a.jpg"]
    assert scan.problems == [(str(d / "locked"), "cannot list folder: Permission denied")]
    items = expand_inputs(d)
    assert items[-1].src.reason == "cannot list folder: Permission denied"


def test_cli_odd_names_csv_round_trip_and_report(tmp_path, frames):
    d = _odd_folder(tmp_path, frames)
    model = tmp_path / "model"
    HybridDetector(cnn=False).fit(frames[:40]).save(model)
    out = tmp_path / "s.csv"
    assert main(["score", str(model), str(d), "--out", str(out), "--no-progress"]) == 0
    back = pd.read_csv(out)
    assert len(back) == 8 and back["path"].map(lambda p: os.path.lexists(path_of(p))).all()
    assert main(["report", str(model), str(d / "cam#frame=1.jpg"), str(d / "a.jpg"),
                 "--out", str(tmp_path / "r.html"), "--no-progress"]) == 0


# ------------------------------------------------------------------ outputs whole or visibly partial
def test_partial_output_is_renamed_only_when_whole_and_locked_against_a_second_writer(tmp_path):
    out = tmp_path / "t.csv"
    out.write_text("previous run\n")
    with pytest.raises(KeyboardInterrupt):
        with PartialOutput(out) as po:
            po.fh.write("row 1\n")
            with pytest.raises(OutputBusyError, match="another run"):
                with PartialOutput(out):
                    pass
            raise KeyboardInterrupt
    assert out.read_text() == "previous run\n" and (tmp_path / "t.csv.partial").read_text() == "row 1\n"
    with PartialOutput(out) as po:  # a stale .partial (no lock held) is taken over
        po.fh.write("whole\n")
        po.commit()
    assert out.read_text() == "whole\n" and not (tmp_path / "t.csv.partial").exists()


def test_cli_interrupted_score_leaves_a_visibly_partial_file(tmp_path, frames):
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for i in range(600):
        (imgs / f"{i:04d}.jpg").write_bytes(_jpg(frames[i % len(frames)]))
    model = tmp_path / "m"
    HybridDetector(cnn=False).fit(frames[:40]).save(model)
    out = tmp_path / "s.csv"
    proc = subprocess.Popen([sys.executable, "-m", "hybrid_drift.cli", "score", str(model), str(imgs), "--out",
                             str(out), "--chunk", "8", "--workers", "1"], stderr=subprocess.PIPE, text=True)
    partial = tmp_path / "s.csv.partial"
    for _ in range(600):
        if partial.exists() and partial.stat().st_size > 200:
            break
        proc.wait(timeout=0.05) if proc.poll() is not None else __import__("time").sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert not out.exists() and partial.exists() and "incomplete" in err


def test_cli_rejects_bad_values_before_touching_outputs_and_exits_2_with_one_line(tmp_path, frames):
    model = tmp_path / "m"
    HybridDetector(cnn=False).fit(frames[:40]).save(model)
    img = tmp_path / "a.jpg"
    img.write_bytes(_jpg(frames[0]))
    out = tmp_path / "keep.csv"
    out.write_text("keep me\n")
    assert main(["score", str(model), str(img), "--out", str(out), "--chunk", "0"]) == 2
    assert out.read_text() == "keep me\n"
    cases = [["score", str(model), str(img), "--out", str(tmp_path)],                 # --out is a folder
             ["score", str(model), str(img), "--out", str(img / "s.csv")],           # parent is a file
             ["score", str(model), str(tmp_path / "mistyped")],                      # a missing input
             ["score", str(tmp_path / "no-model"), str(img)]]
    for argv in cases:
        assert main([*argv, "--no-progress"]) == 2, argv
    cfg = tmp_path / "c.json"
    for bad in ('{"chunk": "50"}', '{"max_alert_chunks": null}', "5", '{"alpha": 0}', '{"k": -1}'):
        cfg.write_text(bad)
        assert main(["monitor", str(img), str(img), "--config", str(cfg), "--no-progress"]) == 2, bad


# ------------------------------------------------------------------ model files are data
def _tamper(src: Path, dst: Path, edit) -> Path:
    shutil.copytree(src, dst)
    cfg = json.loads((dst / "config.json").read_text())
    edit(cfg)
    (dst / "config.json").write_text(json.dumps(cfg))
    return dst


def test_tampered_models_are_refused_with_a_clear_error(fitted_detector, tmp_path):
    good = tmp_path / "good"
    fitted_detector.save(good)

    edits = {
        "threshold null": lambda c: c["branches"][0]["calibration"].update(threshold=None),
        "threshold 1e309": lambda c: c["branches"][0]["calibration"].update(threshold=float("inf")),
        "spread 0": lambda c: c["branches"][0]["calibration"].update(spread=0),
        "grid 3000": lambda c: c["branches"][0]["config"].update(grid=[3000, 3000]),
        "weights elsewhere": lambda c: c["branches"][1]["config"].update(weights_sha256=None),
        "n_features_in_": lambda c: c["branches"][1]["scorer"]["attrs"].update(n_features_in_=5),
        "unknown scorer param": lambda c: c["branches"][1]["scorer"]["params"].update(evil=1),
        "reduce": lambda c: c["params"].update(reduce=3),
    }
    for name, edit in edits.items():
        with pytest.raises(ModelFormatError):
            HybridDetector.load(_tamper(good, tmp_path / name.replace(" ", "_"), edit))
    # runtime settings in a model file are ignored: it cannot turn the bomb guard off
    relaxed = HybridDetector.load(_tamper(good, tmp_path / "mp", lambda c: c["params"].update(max_pixels=None,
                                                                                              workers="abc")))
    assert relaxed.runtime_.max_pixels == 100_000_000 and relaxed.runtime_.workers is None
    # a deeply nested config is a corrupted config, not a crash
    (deep := tmp_path / "deep").mkdir()
    shutil.copy(good / "arrays.npz", deep / "arrays.npz")
    (deep / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ModelFormatError, match="corrupted config"):
        HybridDetector.load(deep)


def test_weights_file_is_hashed_before_it_is_parsed(fitted_detector, tmp_path, monkeypatch, frames):
    fitted_detector.save(tmp_path / "g")
    m = _tamper(tmp_path / "g", tmp_path / "w", lambda c: c["branches"][1]["config"].update(weights="/etc/passwd"))
    import torch
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load ran before the hash check"))
    det = HybridDetector.load(m)
    with pytest.raises(ModelFormatError, match="weights"):
        det.score(frames[:1])


# ------------------------------------------------------------------ the feature cache
def test_cache_damage_is_a_recompute_never_a_wrong_score(frames, tmp_path, caplog):
    b = CNNBranch(image_size=TEST_IMAGE_SIZE, cache_dir=tmp_path, augment=0).fit(frames[:20])
    first = b.score_samples(frames[20:24])
    entries = sorted(tmp_path.rglob("*.f32"))
    assert len(entries) == 24
    raw = bytearray(entries[0].read_bytes())
    raw[20] ^= 0x40  # one flipped exponent bit
    entries[0].write_bytes(bytes(raw))
    nan = bytearray(entries[1].read_bytes())
    nan[8:12] = np.float32(np.nan).tobytes()
    body = bytes(nan[8:])
    nan[4:8] = zlib.crc32(body).to_bytes(4, "little")  # a valid checksum over a NaN: still refused
    entries[1].write_bytes(bytes(nan))
    b2 = CNNBranch(image_size=TEST_IMAGE_SIZE, cache_dir=tmp_path, augment=0)
    b2.scorer_, b2.calibration_ = b.scorer_, b.calibration_
    np.testing.assert_allclose(b2.score_samples(frames[20:24]), first, rtol=1e-5)
    np.testing.assert_allclose(b2.score_samples(frames[:4]), b.score_samples(frames[:4]), rtol=1e-5)


def test_read_only_cache_warns_and_scores(frames, tmp_path, caplog):
    ro = tmp_path / "ro"
    ro.mkdir()
    b = CNNBranch(image_size=TEST_IMAGE_SIZE, cache_dir=ro, augment=0)
    cache = b._feature_cache()
    cache.dir.mkdir(parents=True)
    cache.dir.chmod(0o500)
    try:
        if os.access(cache.dir, os.W_OK):  # root ignores modes: make writes fail another way
            cache.dir.chmod(0o700)
            cache.dir.rmdir()
            cache.dir.write_text("a file where the cache folder should be")
        s = b.fit(frames[:12]).score_samples(frames[12:14])
    finally:
        if cache.dir.is_dir():
            cache.dir.chmod(0o700)
    assert np.isfinite(s).all() and "not writable" in caplog.text


def test_cache_is_bounded_least_recently_used_first(tmp_path):
    c = FeatureCache(tmp_path, {"x": 1}, max_bytes=40 * 1024)  # room for ~10 entries of 4 KB
    for i in range(30):
        c.put(f"{i:040x}", np.full(1000, i, np.float32))
    info = cache_info(tmp_path)
    assert info["bytes"] <= 40 * 1024 and info["entries"] >= 5
    assert c.get(f"{29:040x}", 1000) is not None and c.get(f"{0:040x}", 1000) is None
    assert main(["cache", "info", "--cache-dir", str(tmp_path)]) == 0
    assert main(["cache", "clear", "--cache-dir", str(tmp_path)]) == 0 and cache_info(tmp_path)["entries"] == 0


# ------------------------------------------------------------------ small reference sets, API contract
def test_the_default_detector_fits_twenty_reference_images(frames):
    det = HybridDetector(cnn=CNNBranch(image_size=TEST_IMAGE_SIZE, cache_dir=False)).fit(frames[:20])
    nc = det.branches_[1].scorer_.n_components_
    assert 1 <= nc <= 20 and det.score(frames[20:22])["is_outlier"].notna().all()
    from hybrid_drift.scorers import PCAReconstructionScorer
    rows = np.random.default_rng(0).normal(size=(320, 200))
    assert PCAReconstructionScorer().fit(rows).n_components_ == 150   # room for the study's 150
    assert PCAReconstructionScorer().fit(rows[:60]).n_components_ == 30  # else half the rows
    with pytest.raises(ValueError, match="video_step"):
        expand_inputs(frames[:2], video_step=-1)


def test_unfitted_branches_raise_not_fitted_and_sklearn_clone_works():
    with pytest.raises(NotFittedError):
        ColourBranch().predict([np.zeros((8, 8, 3), np.uint8)])
    det = HybridDetector(cnn=False, fusion="or", fpr=0.01)
    twin = clone(det)
    assert twin is not det and twin.get_params()["fpr"] == 0.01 and twin.set_params(k=2.0).k == 2.0
    with pytest.raises(ValueError, match="unknown parameters"):
        det.set_params(bogus=1)


def test_the_colour_layout_cache_keeps_a_bounded_number_of_image_sizes():
    from hybrid_drift.features.colour import MAX_LAYOUTS, ColourFeatures
    cf = ColourFeatures()
    rng = np.random.default_rng(0)
    for k in range(MAX_LAYOUTS + 10):  # a folder of many image sizes
        cf.transform(rng.integers(0, 255, (40 + k, 60, 3), np.uint8))
    assert len(cf._layouts) == MAX_LAYOUTS
    assert (40 + MAX_LAYOUTS + 9, 60) in cf._layouts and (40, 60) not in cf._layouts  # least recently used out


def test_resnet18_without_its_weights_is_a_note_and_never_a_download(monkeypatch, tmp_path):
    import torch
    import torchvision

    from hybrid_drift import BackboneUnavailableError
    from hybrid_drift.features.cnn import Embedder
    monkeypatch.delenv("HYBRID_DRIFT_ALLOW_DOWNLOAD", raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))  # an empty torchvision cache
    tried = []
    monkeypatch.setattr(torchvision.models.WeightsEnum, "get_state_dict",
                        lambda self, *a, **kw: tried.append(self) or {})
    with pytest.raises(BackboneUnavailableError, match="no download was attempted"):
        Embedder("resnet18").embed(np.zeros((1, 224, 224, 3), np.uint8))
    assert not tried  # torchvision was never asked to fetch anything


def test_cache_info_counts_the_exported_graphs(tmp_path, capsys):
    """`cache info` said 0 while ~40 MB of exported ONNX graphs sat under onnx/ (issue 24)."""
    (tmp_path / "onnx").mkdir()
    (tmp_path / "onnx" / "a.onnx").write_bytes(b"x" * 2000)
    (tmp_path / "onnx" / "a.json").write_text("{}")
    info = cache_info(tmp_path)
    assert info["exported_graphs"] == {"files": 1, "bytes": 2000}
    assert all(c["key"] != "onnx" for c in info["configs"])
    assert main(["cache", "info", "--cache-dir", str(tmp_path)]) == 0
    assert "exported CNN graphs (ONNX, rebuilt when missing): 1 files" in capsys.readouterr().out
