"""``hybrid-drift score --engine ray``: the driver is interrupted (Ctrl-C) mid-job, then the same
command resumes it. Runs the CLI in a subprocess that starts its own local Ray instance."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("ray", reason="the [ray] extra is part of the test install (make test)")


def _cli(*args):
    return [sys.executable, "-m", "hybrid_drift.cli", *map(str, args)]


def _manifest(job: Path) -> list[dict]:
    f = job / "_manifest.jsonl"
    return [json.loads(x) for x in f.read_text().splitlines() if x.strip()] if f.is_file() else []


def test_interrupted_driver_resumes_with_every_input_once(fitted_detector, tiny_dataset, tmp_path):
    import ray
    if ray.is_initialized():  # the subprocess starts its own local instance
        ray.shutdown()
    from hybrid_drift.scale import read_results
    model = tmp_path / "model"
    fitted_detector.save(model)
    images = tiny_dataset / "images"
    job = tmp_path / "job"
    cmd = _cli("score", model, images, "--engine", "ray", "--out", job, "--part-size", "1",
               "--actors", "1", "--json", "--no-progress")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 240
    while len(_manifest(job)) < 3 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, f"the job ended before it could be interrupted: {proc.communicate()[1][-2000:]}"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "run the same command again to resume" in err
    first = _manifest(job)
    n_parts = json.loads((job / "_job.json").read_text())["n_inputs"]
    assert 3 <= len(first) < n_parts
    with pytest.raises(ValueError, match="not scored yet"):
        read_results(job)

    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert f"{len(first)} already done" in done.stderr
    table = read_results(job)
    listed = pd.read_parquet(job / "_inputs.parquet")["id"].tolist()
    assert table["path"].tolist() == listed and table["path"].is_unique and summary["n"] == len(listed)
    entries = _manifest(job)
    assert sorted(e["part"] for e in entries) == list(range(n_parts))  # each part once: none redone
    assert entries[:len(first)] == first
    # another model on the same folder is refused, not mixed in
    other = tmp_path / "other-model"
    fitted_detector.save(other)
    (other / "config.json").write_text((other / "config.json").read_text().replace('"fpr": 0.001', '"fpr": 0.002'))
    clash = subprocess.run(_cli("score", other, images, "--engine", "ray", "--out", job, "--part-size", "1"),
                           capture_output=True,
                           text=True, env=env, timeout=120)
    assert clash.returncode == 2 and "another job (different model_sha1)" in clash.stderr
