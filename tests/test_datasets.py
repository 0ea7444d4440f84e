"""The crossroad builder is deterministic and the manifest reader validates its input."""

import hashlib

import pandas as pd
import pytest

from hybrid_drift.datasets import CrossroadConfig, make_crossroad, read_manifest


def _digest(root):
    h = hashlib.sha1()
    for p in sorted(root.rglob("*.jpg")):
        h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()


def test_tiny_crossroad_layout(tiny_dataset):
    ds = read_manifest(tiny_dataset)
    m = ds.manifest
    counts = m.groupby(["split", "label"]).size().to_dict()
    assert counts == {("train", 0): 60, ("val", 0): 30, ("val", 1): 13, ("test", 0): 30, ("test", 1): 16}
    assert (m.loc[m.split == "train", "kind"] == "normal").all()
    assert m.loc[m.label == 1, "params"].str.len().gt(0).sum() >= 11
    # time order: all train frames precede val frames, which precede test frames
    assert m.loc[m.split == "train", "frame"].max() < m.loc[m.split == "val", "frame"].min()
    assert m.loc[m.split == "val", "frame"].max() < m.loc[m.split == "test", "frame"].min()
    assert {"object_small", "object_large"} & set(m.kind)
    assert all((tiny_dataset / p).is_file() for p in m.path)


def test_same_seed_same_files_other_seed_differs(tiny_dataset, tmp_path):
    cfg = CrossroadConfig(n_train=60, n_test_normal=30, n_val_outliers=13, n_test_outliers=16,
                          max_frames=120, downsample=4)
    again = make_crossroad(tmp_path / "again", seed=0, config=cfg)
    pd.testing.assert_frame_equal(pd.read_csv(tiny_dataset / "manifest.csv"),
                                  pd.read_csv(tmp_path / "again" / "manifest.csv"))
    assert _digest(tiny_dataset) == _digest(tmp_path / "again")
    other = make_crossroad(tmp_path / "other", seed=1, config=cfg)
    assert not other[other.label == 1]["path"].tolist() == again[again.label == 1]["path"].tolist() or \
        _digest(tmp_path / "other") != _digest(tiny_dataset)


def test_manifest_errors_name_the_file_and_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="manifest.csv"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.csv").write_text("file,split\na.jpg,train\n")
    with pytest.raises(ValueError, match=r"missing column\(s\) \['path', 'label', 'kind'\]"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.csv").write_text("path,split,label,kind\na.jpg,training,0,normal\n")
    with pytest.raises(ValueError, match="unknown split"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.csv").write_text("path,split,label,kind\na.jpg,train,1,x\n")
    with pytest.raises(ValueError, match="normal images only"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.csv").write_text("path,split,label,kind\na.jpg,train,yes,x\n")
    with pytest.raises(ValueError, match="label"):
        read_manifest(tmp_path)


def test_limit_keeps_outliers_in_every_split(tiny_dataset):
    ds = read_manifest(tiny_dataset, limit=10)
    m = ds.manifest
    assert m.groupby("split").size().max() <= 10
    assert (m[m.split == "test"].label == 1).any() and (m[m.split == "val"].label == 1).any()


def test_missing_video_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="vtest.avi"):
        make_crossroad(tmp_path / "out", source=tmp_path)
