"""Scale-out: job folders (atomic parts, manifest, resume) and scoring/fitting on a local Ray instance.

The Ray tests start one local Ray instance with 2 CPUs for this module; one of them
kills a scoring actor's process (SIGKILL) in the middle of a job.
"""

import json
import os
import signal
import sys

import numpy as np
import pandas as pd
import pytest

from hybrid_drift.io import expand_inputs
from hybrid_drift.scale import JobMismatchError, ScoreJob, read_results
from hybrid_drift.scale.parts import items_to_frame

ray = pytest.importorskip("ray", reason="the [ray] extra is part of the test install (make test)")


@pytest.fixture(scope="module")
def ray_local():
    from hybrid_drift.scale.ray_engine import connect
    connect(None, num_cpus=2)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def model_dir(fitted_detector, tmp_path_factory):
    """The fitted test detector with its CNN pinned to 2 torch threads, wherever it runs.

    PyTorch's CPU convolutions round differently with the number of threads (features
    differ by ~3e-5 between 1 and 2 threads), so the same thread count on both sides.
    """
    import copy
    det = copy.deepcopy(fitted_detector)
    cnn = next(b for b in det.branches_ if b.name == "cnn")
    cnn.threads = cnn.embedder.threads = 2
    out = tmp_path_factory.mktemp("model")
    det.save(out)
    return out


@pytest.fixture(scope="module")
def image_folder(tiny_dataset, tmp_path_factory):
    """40 real JPEG frames of the tiny crossroad set plus one broken file, in a folder of their own."""
    import shutil
    out = tmp_path_factory.mktemp("stream")
    paths = sorted((tiny_dataset / "images").rglob("*.jpg"))[:40]
    for i, p in enumerate(paths):
        shutil.copy(p, out / f"img{i:03d}.jpg")
    (out / "img017b.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return out


def assert_same_scores(ray_table, local):
    """Same rows, columns, errors and flags, bit for bit; colour scores equal to float64 rounding (NumPy
    sums a part of 2 histograms and a batch of 41 in another order: 2 of 41 differed by ~1e-15 once the
    grey tolerance moved near-grey pixels into one bin); CNN-based scores equal to float32 rounding:
    PyTorch's CPU convolutions round differently with the batch size (a part's last, shorter batch), by
    ~1e-7 relative; the shift branch's phase correlation (OpenCV's DFT) likewise in an actor (one value
    of 41 differed in the 7th digit)."""
    assert list(ray_table.columns) == list(local.columns)
    for col in local.columns:
        if col in ("cnn", "fused", "shift", "shift_x", "patch", "patch_x", "fused_x"):
            np.testing.assert_allclose(ray_table[col], local[col], rtol=1e-6, atol=0)
        elif col in ("colour", "colour_x"):
            np.testing.assert_allclose(ray_table[col], local[col], rtol=1e-12, atol=0)
        else:
            pd.testing.assert_series_equal(ray_table[col], local[col], check_exact=True, obj=col)


def _local_table(model_dir, folder):
    from hybrid_drift import HybridDetector
    det = HybridDetector.load(model_dir)
    return det.score([str(folder)])


# ---------------------------------------------------------------------------- job folders, no Ray
def _items(n, tmp_path):
    return expand_inputs([str(tmp_path / f"x{i:02d}.jpg") for i in range(n)])


def _fake_part(job, k):
    lst = job.part_listing(k)
    return pd.DataFrame({"path": lst["id"].tolist(), "fused": np.arange(len(lst), dtype=float)})


def test_job_parts_are_atomic_resumable_and_tied_to_their_inputs(tmp_path):
    out = tmp_path / "job"
    job = ScoreJob.open(out, _items(10, tmp_path), model="m1", part_size=4)
    assert job.n_parts == 3 and job.todo() == [0, 1, 2]
    job.write_part(0, _fake_part(job, 0))
    job.record(0, {"rows": 4})
    # a part written just before a crash, not yet in the manifest, is checked and kept
    job.write_part(2, _fake_part(job, 2))
    (out / "parts" / ".part-00001.parquet.dead.tmp").write_bytes(b"half a file")  # an interrupted write
    with open(out / "_manifest.jsonl", "a") as fh:
        fh.write('{"part": 1, "ro')  # torn last line
    again = ScoreJob.open(out, _items(10, tmp_path), model="m1", part_size=4)
    assert again.todo() == [1]
    assert [e.get("recovered", False) for _, e in sorted(again.manifest().items())] == [False, True]
    with pytest.raises(ValueError, match="1 of 3 parts not scored yet"):
        read_results(out)
    again.write_part(1, _fake_part(again, 1))
    again.write_part(1, _fake_part(again, 1))  # written twice (a retried part): replaced, not appended
    res = read_results(out)
    assert res["path"].tolist() == [str(tmp_path / f"x{i:02d}.jpg") for i in range(10)]
    # another model, other inputs or another part size is another job
    for kw, items in (({"model": "m2", "part_size": 4}, _items(10, tmp_path)),
                      ({"model": "m1", "part_size": 5}, _items(10, tmp_path)),
                      ({"model": "m1", "part_size": 4}, _items(11, tmp_path))):
        with pytest.raises(JobMismatchError, match="another job"):
            ScoreJob.open(out, items, **kw)
    fresh = ScoreJob.open(out, _items(11, tmp_path), model="m1", part_size=4, overwrite=True)
    assert fresh.todo() == [0, 1, 2] and not fresh.manifest()
    (tmp_path / "notajob").mkdir()
    (tmp_path / "notajob" / "precious.txt").write_text("keep me")
    with pytest.raises(JobMismatchError, match="not empty"):
        ScoreJob.open(tmp_path / "notajob", _items(3, tmp_path), model="m1")


def test_listing_keeps_video_frames_and_refuses_in_memory_inputs(data_dir):
    items = expand_inputs([str(data_dir / "vtest.avi")], video_step=300)
    df = items_to_frame(items)
    assert df["frame"].tolist() == [0, 300, 600] and df["id"].iloc[1].endswith("#frame=300")
    with pytest.raises(TypeError, match="in-memory"):
        items_to_frame(expand_inputs([np.zeros((4, 4, 3), np.uint8)]))


# ---------------------------------------------------------------------------- on Ray
def test_ray_scores_equal_the_local_path(ray_local, model_dir, image_folder, tmp_path):
    from pathlib import Path

    from hybrid_drift.scale.ray_engine import score_ray
    cache = Path(os.environ["HYBRID_DRIFT_CACHE"])  # set for the session by conftest, seen by Ray's workers
    cached_before = sorted(cache.rglob("*.npy"))
    res = score_ray(model_dir, [str(image_folder)], tmp_path / "job", part_size=6, actors=2)
    assert (res.n_inputs, res.n_parts, res.scored_parts, res.n_errors) == (41, 7, 7, 1)
    assert sorted(cache.rglob("*.npy")) == cached_before  # actors score each image once: no feature cache
    ray_table = read_results(tmp_path / "job")
    local = _local_table(model_dir, image_folder)
    assert_same_scores(ray_table, local)
    assert ray_table.loc[ray_table["path"].str.endswith("img017b.jpg"), "error"].notna().all()
    # the job folder reads as one dataset of scores: its bookkeeping files (_job.json, _inputs.parquet...)
    # are not mixed in
    import pandas as pd
    whole = pd.read_parquet(tmp_path / "job")
    assert len(whole) == 41 and sorted(whole["path"]) == sorted(ray_table["path"])
    assert set(whole.columns) == set(ray_table.columns)
    # two 1-CPU actors scoring parts side by side: still the same table
    res1 = score_ray(model_dir, [str(image_folder)], tmp_path / "job1", part_size=6, actors=2, cpus_per_actor=1)
    assert res1.scored_parts == 7
    assert_same_scores(read_results(tmp_path / "job1"), local)
    # the same command again: nothing left to do, nothing rescored
    again = score_ray(model_dir, [str(image_folder)], tmp_path / "job", part_size=6)
    assert (again.skipped_parts, again.scored_parts) == (7, 0)
    assert len(ScoreJob.open(tmp_path / "job", expand_inputs([str(image_folder)]), model=json.loads(
        (tmp_path / "job" / "_job.json").read_text())["model_sha1"], part_size=6).manifest()) == 7


def test_killing_a_scoring_actor_mid_run_loses_and_duplicates_nothing(ray_local, model_dir, image_folder, tmp_path):
    from hybrid_drift.scale.ray_engine import score_ray
    killed = []

    def kill_first_worker(entry):
        if not killed:  # SIGKILL the process of the actor that just finished a part: it holds queued parts
            killed.append(entry["pid"])
            os.kill(entry["pid"], signal.SIGKILL)

    res = score_ray(model_dir, [str(image_folder)], tmp_path / "job", part_size=2, actors=2,
                    on_part=kill_first_worker)
    assert killed and res.scored_parts == res.n_parts == 21
    table = read_results(tmp_path / "job")
    listed = [str(p) for p in sorted(image_folder.glob("*.jpg"))]
    assert sorted(table["path"]) == sorted(listed) and table["path"].is_unique  # every input once
    manifest = [json.loads(x) for x in (tmp_path / "job" / "_manifest.jsonl").read_text().splitlines()]
    assert sorted(e["part"] for e in manifest) == list(range(21))  # every part recorded once
    later = {e["pid"] for e in manifest[1:]}
    assert later - {killed[0]}, "parts after the kill were scored by a live (restarted) actor"
    assert_same_scores(table, _local_table(model_dir, image_folder))


def test_fit_on_ray_equals_fit_on_one_machine(ray_local, tiny_dataset, tmp_path):
    from hybrid_drift import CNNBranch, HybridDetector
    from hybrid_drift.datasets import read_manifest
    from hybrid_drift.scale.ray_engine import fit_ray
    from conftest import TEST_IMAGE_SIZE
    ds = read_manifest(tiny_dataset)
    train, val, labels = ds.paths("train")[:40], ds.paths("val"), ds.labels("val")

    def make():  # CNN pinned to 2 torch threads on both sides (see model_dir)
        return HybridDetector(cnn=CNNBranch(image_size=TEST_IMAGE_SIZE, n_components=20, cache_dir=False, threads=2))

    local = make().fit(train).calibrate(val, labels)
    on_ray = fit_ray(make(), train, val, labels, part_size=16, actors=2)
    np.testing.assert_allclose([b.threshold_ for b in on_ray.branches_], [a.threshold_ for a in local.branches_],
                               rtol=1e-6)
    assert_same_scores(on_ray.score(val), local.score(val))
    sampled = fit_ray(make(), train, val, labels, max_images=25, part_size=16)  # bounded driver memory
    assert sampled.n_train_ == 25


def test_cli_fit_on_ray_saves_the_model_the_local_fit_saves(ray_local, tiny_dataset, tmp_path, capsys):
    from hybrid_drift import HybridDetector
    from hybrid_drift.cli import main
    args = ["fit", str(tiny_dataset), "--no-cnn", "--no-progress"]  # a dataset: train + val normals
    assert main(args + ["--out", str(tmp_path / "local")]) == 0
    assert main(args + ["--out", str(tmp_path / "ray"), "--engine", "ray", "--fit-sample", "0"]) == 0
    assert "fitted on Ray on 90 images" in capsys.readouterr().out
    local, on_ray = HybridDetector.load(tmp_path / "local"), HybridDetector.load(tmp_path / "ray")
    assert [b.threshold_ for b in on_ray.branches_] == [b.threshold_ for b in local.branches_]


def test_resources_that_no_actor_can_get_are_an_error_not_a_hang(ray_local, model_dir, image_folder, tmp_path):
    from hybrid_drift.scale.ray_engine import score_ray
    with pytest.raises(ValueError, match="0 GPUs: no actor fits gpus_per_actor=1"):
        score_ray(model_dir, [str(image_folder)], tmp_path / "gpu", gpus_per_actor=1)
    with pytest.raises(ValueError, match="2 CPUs: no actor fits cpus_per_actor=4"):
        score_ray(model_dir, [str(image_folder)], tmp_path / "cpu", cpus_per_actor=4)


def test_engine_ray_without_ray_says_how_to_install(monkeypatch, model_dir, image_folder, tmp_path, capsys):
    from hybrid_drift.cli import main
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    monkeypatch.setitem(sys.modules, "ray.data", None)
    rc = main(["score", str(model_dir), str(image_folder), "--engine", "ray", "--out", str(tmp_path / "j")])
    assert rc == 2 and "pip install 'hybrid-drift[ray]'" in capsys.readouterr().err
