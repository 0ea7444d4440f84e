"""The benchmark on a tiny generated set, and the CLI verbs with their exit codes."""

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from hybrid_drift.cli import main

SIZE = ["--image-size", "96", "128"]


@pytest.fixture(scope="module")
def bench_json(tiny_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    rc = main(["bench", str(tiny_dataset), "--json", str(out / "r.json"), "--report", str(out / "report"),
               "--n-components", "20", "--no-extra-backbones", "--no-progress", *SIZE])
    assert rc == 0
    return json.loads((out / "r.json").read_text()), out


def test_bench_json_schema_and_ranges(bench_json):
    res, _ = bench_json
    assert {"dataset", "backbone", "n", "methods", "per_kind_recall", "seconds"} <= set(res)
    assert res["n"] == {"train": 60, "val": 43, "test": 46}
    for m in ("colour", "cnn", "fusion_or", "fusion_logistic", "minmax"):
        r = res["methods"][m]
        for k in ("precision", "recall", "f1", "auroc"):
            assert 0.0 <= r[k] <= 1.0, (m, k, r[k])
        assert r["tp"] + r["fn"] == 16 and r["fp"] + r["tn"] == 30
        assert all(0 <= v <= 1 for v in res["per_kind_recall"][m].values())
    assert res["seconds"]["colour"] > 0 and res["seconds"]["cnn"] > 0
    assert res["colour_distance"] in {"kl", "js", "hellinger", "intersection", "chi2"}
    # numbers are sane: the fused detector is far better than chance on real frames
    assert res["methods"]["fusion_or"]["auroc"] > 0.8
    assert res["methods"]["cnn"]["auroc"] > res["methods"]["minmax"]["auroc"]


def test_bench_report_files(bench_json):
    _, out = bench_json
    rep = out / "report"
    for f in ("index.html", "scores_colour.png", "scores_cnn.png", "pr_curves.png", "per_kind_recall.png"):
        assert (rep / f).is_file() and (rep / f).stat().st_size > 1000, f
    html = (rep / "index.html").read_text()
    assert "fusion_or" in html and 'src="http' not in html
    assert html.count("data:image/png;base64,") >= 4  # distributions, PR curves, per-kind heat map
    # the methods table: counts as whole numbers (never "3.000"), rates as percentages, false alarms per 1,000
    import re
    table = html[html.index("<table"):html.index("</table>")]
    assert "false alarms / 1,000 clean" in table
    for row in re.findall(r"<tr>(.*?)</tr>", table, re.S)[1:]:
        cells = re.findall(r"<td>(.*?)</td>", row)
        assert cells[1].endswith("%") and cells[5].isdigit() and cells[6].isdigit(), cells


def test_cli_fit_score_roundtrip_and_exit_codes(frames, tmp_path, capsys):
    train, val, new = tmp_path / "train", tmp_path / "val", tmp_path / "new"
    for d, idx in ((train, range(0, 60)), (val, range(60, 90)), (new, range(90, 95))):
        d.mkdir()
        for i in idx:
            cv2.imwrite(str(d / f"{i:04d}.jpg"), cv2.cvtColor(frames[i], cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(new / "9999_inverted.jpg"), cv2.cvtColor(255 - frames[95], cv2.COLOR_RGB2BGR))
    (new / "9998_broken.jpg").write_bytes(b"")
    rc = main(["fit", str(train), "--val", str(val), "--out", str(tmp_path / "model"), "--n-components", "20",
               "--no-cache", "--no-progress", *SIZE])
    assert rc == 0
    rc = main(["score", str(tmp_path / "model"), str(new), "--out", str(tmp_path / "s.csv"), "--no-progress"])
    assert rc == 0
    t = pd.read_csv(tmp_path / "s.csv")
    assert len(t) == 7 and list(t.columns[:3]) == ["path", "colour", "cnn"]
    row = t.set_index(t.path.str.rsplit("/", n=1).str[-1])
    assert row.loc["9999_inverted.jpg", "is_outlier"] in (True, "True")
    assert row.loc["9998_broken.jpg", "error"] == "zero bytes"
    assert main(["report", str(tmp_path / "model"), str(new), "--out", str(tmp_path / "r.html"), "--no-progress"]) == 0
    page = (tmp_path / "r.html").read_text()
    assert "9999_inverted.jpg" in page and "9998_broken.jpg" in page and "data:image/jpeg;base64," in page
    capsys.readouterr()
    rc = main(["score", str(tmp_path / "model"), str(new), "--max-outliers", "0", "--json", "--no-progress"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 1 and out["outliers"] >= 1 and out["errors"] == 1
    video = Path(__file__).resolve().parents[1] / "data" / "opencv_samples" / "vtest.avi"
    assert main(["score", str(tmp_path / "model"), str(video), "--video-step", "400", "--json",
                 "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 2  # frames 0 and 400
    assert main(["score", str(tmp_path / "model"), str(video), "--video-step", "0"]) == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["score", str(tmp_path / "model"), str(empty)]) == 2
    assert "no images found" in capsys.readouterr().err
    assert main(["score", str(tmp_path / "nomodel"), str(new)]) == 2
    assert "not a hybrid_drift model directory" in capsys.readouterr().err


def test_cli_dataset_and_help(tiny_dataset, tmp_path, capsys):
    assert main(["fit", str(tiny_dataset), "--val", str(tiny_dataset), "--fusion", "logistic", "--no-cnn",
                 "--out", str(tmp_path / "m"), "--no-progress"]) == 0
    assert main(["score", str(tmp_path / "m"), str(tiny_dataset), "--split", "test", "--out",
                 str(tmp_path / "t.parquet"), "--no-progress"]) == 0
    assert len(pd.read_parquet(tmp_path / "t.parquet")) == 46
    assert main(["score", str(tmp_path / "m"), str(tiny_dataset)]) == 2  # dataset needs --split
    assert "--split" in capsys.readouterr().err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "manifest.csv").write_text("file,label\n")
    assert main(["bench", str(bad)]) == 2
    assert "missing column" in capsys.readouterr().err
    r = subprocess.run([sys.executable, "-m", "hybrid_drift.cli", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "exit codes" in r.stdout and "make-dataset" in r.stdout


def test_protocol_every_split_mean_and_worst(tmp_path):
    """bench on a protocol folder: each time-ordered split, the mean and the worst split, false alarms."""
    from hybrid_drift.datasets import CrossroadConfig
    from hybrid_drift.datasets.protocol import make_protocol, read_protocol
    base = CrossroadConfig(n_val_outliers=13, n_test_outliers=16, max_frames=140, downsample=4)
    desc = make_protocol(tmp_path / "p", seeds=(0,), splits={"A": (0, 50, 30, 30), "B": (20, 60, 25, 35)}, base=base,
                         orders=("uuid",))
    assert [d["name"] for d in desc["datasets"]] == ["A-s0", "A-s0-uuid", "B-s0", "B-s0-uuid"]
    assert [d["order"] for d in desc["datasets"]] == ["time", "uuid"] * 2
    # the renamed copy: same rows, random names, each split's rows sorted by name (a folder listing)
    u, t = pd.read_csv(tmp_path / "p" / "B-s0-uuid" / "manifest.csv"), pd.read_csv(tmp_path / "p" / "B-s0" / "manifest.csv")
    assert len(u) == len(t) and sorted(u["frame"]) == sorted(t["frame"])
    tr = u[u.split == "train"]
    assert tr["path"].is_monotonic_increasing and not tr["frame"].is_monotonic_increasing
    assert len(list((tmp_path / "p" / "frames").glob("*.jpg"))) == 140  # frames 0-139, written once, shared
    m = pd.read_csv(tmp_path / "p" / "B-s0" / "manifest.csv")
    assert m.loc[m.label == 0, "path"].str.startswith("../frames/").all()
    assert (m.loc[m.split == "train", "frame"].agg(["min", "max"]).tolist() == [20, 79])
    assert m.loc[m.kind.str.startswith("object"), "params"].map(lambda p: len(json.loads(p)["box"]) == 4).all()
    read_protocol(tmp_path / "p")
    out = tmp_path / "r.json"
    rc = main(["bench", str(tmp_path / "p"), "--json", str(out), "--no-progress", *SIZE])
    assert rc == 0
    res = json.loads(out.read_text())
    assert set(res["datasets"]) == {"A-s0", "B-s0", "A-s0-uuid", "B-s0-uuid"} and res["protocol"] == "report"
    # what each fit saw: time order kept; random names regrouped; the worst over splits *and* orders
    assert res["datasets"]["B-s0"]["reference"]["order_check"]["action"] == "kept"
    assert res["datasets"]["B-s0-uuid"]["reference"]["order_check"]["action"] == "reordered"
    assert set(res["by_order"]) == {"time", "uuid"}
    ratios = res["threshold_ratios"]["per_dataset"]
    assert set(ratios) == {"A-s0-uuid", "B-s0-uuid"} and set(ratios["A-s0-uuid"]) == {"colour", "cnn", "light", "shift",
                                                                                         "patch", "bands", "flat", "tear"}
    for name, r in res["datasets"].items():
        fo = r["methods"]["fusion_or"]
        assert fo["false_alarms_per_1000"] == pytest.approx(1000 * fo["fp"] / (fo["fp"] + fo["tn"]))
    s = res["summary"]["fusion_or"]
    f1 = {k: r["methods"]["fusion_or"]["f1"] for k, r in res["datasets"].items()}
    assert s["worst_split"] == min(f1, key=f1.get) and s["mean"]["f1"] == pytest.approx(np.mean(list(f1.values())))
    assert s["worst"]["recall"] == min(r["methods"]["fusion_or"]["recall"] for r in res["datasets"].values())
    assert res["headline"]["split"] == s["worst_split"]
    (tmp_path / "p" / "A-s0" / "manifest.csv").unlink()
    assert main(["bench", str(tmp_path / "p"), "--no-progress"]) == 2  # a broken protocol: exit 2, named


def test_score_refuses_an_output_format_it_cannot_write(tmp_path, capsys):
    """`--out scores.xlsx` used to write CSV under that name and exit 0 (issue 24)."""
    rc = main(["score", str(tmp_path / "no-model"), str(tmp_path), "--out", str(tmp_path / "scores.xlsx")])
    assert rc == 2 and "unknown table format '.xlsx'" in capsys.readouterr().err
    assert not (tmp_path / "scores.xlsx").exists()


def test_fit_takes_every_nth_frame_of_a_video(tmp_path, capsys, data_dir):
    """`score` and `report` had --video-step; `fit` did not (issue 24)."""
    rc = main(["fit", str(data_dir / "vtest.avi"), "--video-step", "50", "--no-cnn", "--out", str(tmp_path / "m"),
               "--no-progress"])
    assert rc == 0 and "fitted on 16 images" in capsys.readouterr().out  # 795 frames: 0, 50, ..., 750


def test_fit_takes_sensitivity_in_false_alarms_per_day(frames, tmp_path, capsys):
    import cv2
    ref = tmp_path / "ref"
    ref.mkdir()
    for i, f in enumerate(frames[:40]):
        cv2.imwrite(str(ref / f"{i:03d}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    assert main(["fit", str(ref), "--out", str(tmp_path / "m"), "--no-cnn", "--false-alarms-per-day", "2",
                 "--fps", "1", "--no-progress"]) == 0
    assert "about 2 false alarms a day at 1 frames/s" in capsys.readouterr().out
    fpr = json.loads((tmp_path / "m" / "config.json").read_text())["params"]["fpr"]
    assert fpr == pytest.approx(2 / 86_400 / 6)  # six branches: colour, light, shift, bands, flat rows and tear
    for bad in (["--fpr", "0.01", "--false-alarms-per-day", "2", "--fps", "1"], ["--false-alarms-per-day", "2"]):
        assert main(["fit", str(ref), "--out", str(tmp_path / "x"), "--no-cnn", *bad]) == 2


def test_fit_has_the_light_and_shift_branches_unless_told_otherwise(frames, tmp_path):
    import cv2
    ref = tmp_path / "ref"
    ref.mkdir()
    for i, f in enumerate(frames[:30]):
        cv2.imwrite(str(ref / f"{i:03d}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))

    def branches(*flags):
        out = tmp_path / ("m" + "".join(flags))
        assert main(["fit", str(ref), "--out", str(out), "--no-cnn", "--no-progress", *flags]) == 0
        return {b["class"]: b for b in json.loads((out / "config.json").read_text())["branches"]}
    light = branches()["LightBranch"]
    assert light["config"]["tolerance"] == 1.0 and light["calibration"]["threshold"] >= 1.0
    assert list(branches()) == ["ColourBranch", "LightBranch", "ShiftBranch", "BandBranch", "FlatBranch", "TearBranch"]
    assert branches("--light-tolerance", "2")["LightBranch"]["config"]["tolerance"] == 2.0
    assert list(branches("--no-light")) == ["ColourBranch", "ShiftBranch", "BandBranch", "FlatBranch", "TearBranch"]
    assert list(branches("--no-flat", "--no-tear")) == ["ColourBranch", "LightBranch", "ShiftBranch", "BandBranch"]
    assert list(branches("--no-tear")) == ["ColourBranch", "LightBranch", "ShiftBranch", "BandBranch", "FlatBranch"]
    assert list(branches("--no-light", "--no-shift", "--no-bands", "--no-flat", "--no-tear")) == ["ColourBranch"]
    assert main(["fit", str(ref), "--out", str(tmp_path / "bad"), "--no-cnn", "--light-tolerance", "-1"]) == 2


def test_bench_fits_each_branch_once_and_its_report_detector_is_the_published_one(tiny_dataset, monkeypatch):
    """The benchmark's detectors share branch objects: each is fitted on the reference once (the CNN
    branch sits in eight detectors), logistic fusion gets copies of its own, and the detector handed to the
    report (heat maps) has exactly the default fusion's published thresholds, cross-fitted on the reference
    (it used to carry the branches logistic fusion had refitted on train and recalibrated with labels)."""
    from hybrid_drift.bench.run import BenchConfig, run_bench
    from hybrid_drift.branches.base import Branch
    from hybrid_drift.runtime import Runtime
    fits: dict[int, int] = {}
    original = Branch.fit_features

    def counted(self, *a, **k):
        fits[id(self)] = fits.get(id(self), 0) + 1
        return original(self, *a, **k)
    monkeypatch.setattr(Branch, "fit_features", counted)
    cfg = BenchConfig(cnn={"n_components": 20, "image_size": (96, 128)}, extra_backbones=(), study_cnn=False,
                      runtime=Runtime(progress=False, cache=False))
    res = run_bench(tiny_dataset, cfg)
    det = res["_detector"]
    assert {b.name: b.threshold_ for b in det.branches_} == res["methods"]["fusion_or"]["branch_thresholds"]
    assert {b.calibration_.source for b in det.branches_} == {"crossfit"}
    assert all(fits[id(b)] == 1 for b in det.branches_)
    assert max(fits.values()) == 1  # no branch object fitted twice, the logistic copies included
