"""benchmarks/heldout_faults.py: the default detector on faults no benchmark set is built from."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from conftest import TEST_IMAGE_SIZE

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("heldout_faults", ROOT / "benchmarks" / "heldout_faults.py")
heldout = importlib.util.module_from_spec(spec)
spec.loader.exec_module(heldout)


def test_every_fault_scored_on_every_dataset_and_tabled(tiny_dataset, tmp_path, monkeypatch, capsys):
    from hybrid_drift import CNNBranch, HybridDetector

    small = lambda: HybridDetector(cnn=CNNBranch(image_size=TEST_IMAGE_SIZE, n_components=20, cache_dir=False))  # noqa: E731
    got = heldout.run_dataset(str(tiny_dataset), copies=3, kinds=("frame_tear", "decode_error"), make_detector=small)
    assert got["n_clean"] == 30 and got["copies"] == 3 and 0 <= got["false_alarms"] <= 30
    assert set(got["per_kind"]) == {"frame_tear", "decode_error"}
    for v in got["per_kind"].values():
        assert 0 <= v["recall"] <= 1 and set(v["by_branch"]) >= {"colour", "cnn", "bands", "flat"}
    # a flat green block over the lower 15-40% of the frame is caught by the cheap branches alone
    assert got["per_kind"]["decode_error"]["recall"] == 1.0
    text = heldout.table([got, {**got, "dataset": "other", "per_kind": {**got["per_kind"], "decode_error": None}}])
    lines = text.splitlines()
    assert lines[1].split()[-2:] == [f"{got['false_alarms']}/30"] * 2
    row = next(line for line in lines if line.startswith("decode_error"))
    assert "n/a" in row and row.split()[1:4] == ["100%", "n/a", "100%"]  # the worst is over the scored ones
    # the same 30 clean frames as each stream delivers them, each alarm a false one, tabled under the clean row
    assert set(got["benign"]) == {*heldout.BENIGN, heldout.SERVED}
    # FFmpeg (installed by make test) re-encodes the frames as H.264 and MJPEG, and serves the source video's
    # own frames as MJPEG at the dataset's size
    assert all(got["benign"][how] is not None for how in ("h264", "mjpeg", heldout.SERVED)), got["benign"]
    for how, v in got["benign"].items():
        assert v is None or (v["n"] == 30 and 0 <= v["false_alarms"] <= 30 and set(v["by_branch"]) >= {"cnn"}), how
        if v is not None:
            stream = next(line for line in lines if line.strip().startswith(f"as {how}"))
            assert stream.split()[2:4] == [f"{v['false_alarms']}/30"] * 2


def test_the_served_stream_delivers_the_datasets_own_frames(tiny_dataset):
    """The served row reads the dataset's source video through FFmpeg's MJPEG encoder: the same frames (by
    number, at the dataset's size), another encoder's pixels."""
    import cv2

    from hybrid_drift.datasets import read_manifest

    ds = read_manifest(tiny_dataset)
    clean = ds.manifest[(ds.manifest["split"] == "test") & (ds.manifest["label"] == 0)]
    files = np.stack([cv2.cvtColor(cv2.imread(p), cv2.COLOR_BGR2RGB) for p in clean["abspath"]]).astype(np.float32)
    served = heldout._served(ds, clean["frame"], (files.shape[2], files.shape[1]))
    assert served is not None and len(served) == len(files) and served[0].shape == files[0].shape
    served = np.stack(served).astype(np.float32)
    dist = np.abs(served[:, None] - files[None]).mean(axis=(2, 3, 4))     # served frame x dataset frame
    assert (dist.argmin(axis=1) == np.arange(len(files))).all()           # each is its own frame
    assert 0 < dist.diagonal().max() < 4                                  # through another encoder


def test_a_fault_a_camera_cannot_show_is_not_applicable(frames):
    grey = [np.repeat(f.mean(axis=2, keepdims=True).astype(np.uint8), 3, axis=2) for f in frames[:2]]
    assert heldout._copies(grey, "grayscale", np.random.default_rng(0)) is None
    got = heldout._copies(frames[:2], "grayscale", np.random.default_rng(0))
    assert len(got) == 2 and all(g.shape == frames[0].shape for g in got)


def test_main_prints_the_table_and_writes_json(monkeypatch, tmp_path, capsys):
    import json

    one = {"dataset": "d", "n_clean": 10, "false_alarms": 1, "false_alarms_per_1000": 100.0, "copies": 2,
           "per_kind": {"smear": {"recall": 0.5, "by_branch": {"cnn": 0.5}}}, "thresholds": {"cnn": 1.0}}
    seen = []
    monkeypatch.setattr(heldout, "run_dataset", lambda d, c, k: seen.append((d, c, k)) or {**one, "dataset": d})
    assert heldout.main(["a", "b", "--copies", "2", "--kinds", "smear", "--json", str(tmp_path / "h.json")]) == 0
    assert seen == [("a", 2, ["smear"]), ("b", 2, ["smear"])]
    out = capsys.readouterr().out
    assert "smear" in out and "cnn 50%" in out
    saved = json.loads((tmp_path / "h.json").read_text())
    assert [r["dataset"] for r in saved["datasets"]] == ["a", "b"] and saved["date"] and saved["machine"]


def test_by_default_every_held_out_study_and_unseen_fault_is_scored(tiny_dataset, monkeypatch):
    from hybrid_drift import CNNBranch, HybridDetector
    from hybrid_drift.corruptions import HELD_OUT_FAULTS, STUDY_FAULTS, UNSEEN_FAULTS

    asked = []
    monkeypatch.setattr(heldout, "_copies", lambda frames, kind, rng: asked.append(kind))  # every fault n/a
    small = lambda: HybridDetector(cnn=CNNBranch(image_size=TEST_IMAGE_SIZE, n_components=20, cache_dir=False))  # noqa: E731
    got = heldout.run_dataset(str(tiny_dataset), copies=2, make_detector=small)
    assert asked == list(HELD_OUT_FAULTS + STUDY_FAULTS + UNSEEN_FAULTS)
    assert set(got["per_kind"]) == set(asked) and all(v is None for v in got["per_kind"].values())


def test_table_columns_stay_aligned_under_long_fault_names():
    one = {"dataset": "d", "n_clean": 10, "false_alarms": 0, "copies": 2,
           "per_kind": {"smear": {"recall": 0.5, "by_branch": {}},
                        "chromatic_aberration": {"recall": 1.0, "by_branch": {}}}}
    lines = heldout.table([one, {**one, "dataset": "e"}]).splitlines()
    ends = {line.index("%") for line in lines[2:]}  # the first dataset's column ends at one place on every row
    assert len(ends) == 1 and lines[0].index("d") == min(ends)  # under its header


def test_streams_deliver_the_frames_re_encoded(frames):
    """JPEG 60 and 40 change the pixels a little (40 more than 60), keep the size; the MPEG-4 round trip gives
    every frame back, near the original; an unknown stream is an error."""
    import cv2

    bgr = [cv2.cvtColor(f, cv2.COLOR_RGB2BGR) for f in frames[:12]]
    diff = {}
    for how in heldout.BENIGN:
        got = heldout._reencoded(bgr, how)
        if got is None:  # this OpenCV cannot write MPEG-4: n/a, never an error
            assert how == "mpeg4"
            continue
        assert len(got) == len(bgr) and all(g.ndim == 3 for g in got)
        h, w = min(g.shape[0] for g in got), min(g.shape[1] for g in got)
        diff[how] = float(np.mean([np.abs(g[:h, :w].astype(int) - f[:h, :w]).mean() for g, f in zip(got, frames)]))
        assert 0 < diff[how] < 12, how
    assert diff["jpeg40"] > diff["jpeg60"]
    with pytest.raises(ValueError, match="unknown stream"):
        heldout._reencoded(bgr, "h265")
