"""Images/second scoring 2,000 images on this machine: the local path vs ``--engine ray``.

    python benchmarks/ray_overhead.py [--n 2000] [--part-size 250] [--models colour hybrid]

Writes ``--n`` distinct 768x576 JPEG frames of the bundled street video (a frame
counter is drawn in a corner so that no two files are alike: the CNN feature cache
cannot help), fits a colour-only and a hybrid (colour + CNN) detector on other
frames, then scores the same folder with

* the local path: ``hybrid-drift score MODEL IMAGES --out x.csv`` (streams in chunks of 1,024);
* Ray: ``hybrid-drift score MODEL IMAGES --engine ray --out JOB`` on a local Ray instance, as
  2 actors x 1 CPU and as 1 actor x 2 CPUs, Parquet parts.

Each is one command in a fresh process timed start to end (the Ray rows include starting Ray
and its actors, which each load the model), because that is what a user runs: a process that
has already run the CNN is faster than a fresh one (PyTorch's CPU kernels warm up), so timing
the local path inside this script would flatter it. The rate inside the actors (from the
manifest's seconds per part) is shown too. The feature cache is off (``HYBRID_DRIFT_CACHE=off``).
Prints a markdown table with images/second, the Ray/local ratio and whether the tables agree.

Not a test: these machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hybrid_drift import CNNBranch, HybridDetector  # noqa: E402
from hybrid_drift.datasets.crossroad import bundled_data_dir  # noqa: E402
from hybrid_drift.io import iter_video_frames  # noqa: E402


def write_frames(n: int, out: Path) -> None:
    frames = [f for _, f in iter_video_frames(bundled_data_dir() / "vtest.avi")]
    out.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        bgr = cv2.cvtColor(frames[i % len(frames)], cv2.COLOR_RGB2BGR)
        cv2.putText(bgr, f"{i:05d}", (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1)
        cv2.imwrite(str(out / f"f{i:05d}.jpg"), bgr, [cv2.IMWRITE_JPEG_QUALITY, 92])


def fit_models(tmp: Path, models) -> dict[str, Path]:
    frames = [f for _, f in iter_video_frames(bundled_data_dir() / "vtest.avi", step=3)]
    train, val = frames[:200], frames[200:260]
    out = {}
    for name in models:
        det = HybridDetector(cnn=False) if name == "colour" else HybridDetector(cnn=CNNBranch(cache_dir=False))
        det.fit(train).calibrate(val)
        det.save(tmp / f"model-{name}")
        out[name] = tmp / f"model-{name}"
    return out


def cli_run(args: list[str]) -> float:
    """Seconds of one ``hybrid-drift`` command in a fresh process (as a user runs it)."""
    env = dict(os.environ, HYBRID_DRIFT_CACHE="off")  # every run cold; Ray's actors never cache
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "hybrid_drift.cli", *args, "--no-progress", "--quiet"],
                       capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"hybrid-drift {' '.join(args)} failed: {r.stderr[-1500:]}")
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--part-size", type=int, default=250)
    ap.add_argument("--rounds", type=int, default=1, help="rounds of (local, Ray 2x1, Ray 1x2); best is kept")
    ap.add_argument("--models", nargs="+", default=["colour", "hybrid"], choices=["colour", "hybrid"])
    a = ap.parse_args()
    import json

    import pandas as pd
    import ray
    import torch

    from hybrid_drift.scale import read_results
    from hybrid_drift.scale.parts import MANIFEST_FILE

    cpus = os.cpu_count()
    configs = {"local": None, f"Ray, {cpus} actors x 1 CPU": (cpus, 1), f"Ray, 1 actor x {cpus} CPUs": (1, cpus)}
    best: dict[tuple[str, str], float] = {}
    steady: dict[tuple[str, str], float] = {}
    agree: dict[tuple[str, str], tuple[bool, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_frames(a.n, tmp / "images")
        models = fit_models(tmp, a.models)
        for r in range(a.rounds):
            for name, model in models.items():
                local_csv = tmp / f"local-{name}-{r}.csv"
                for cfg, spec in configs.items():
                    if spec is None:
                        secs = cli_run(["score", str(model), str(tmp / "images"), "--out", str(local_csv)])
                    else:
                        job = tmp / f"job-{name}-{r}-{spec[0]}"
                        secs = cli_run(["score", str(model), str(tmp / "images"), "--engine", "ray", "--out",
                                        str(job), "--part-size", str(a.part_size), "--actors", str(spec[0]),
                                        "--cpus-per-actor", str(spec[1])])
                        # inside the actors: images per second of actor time, from the manifest
                        entries = [json.loads(x) for x in (job / MANIFEST_FILE).read_text().splitlines()]
                        actor_s = sum(e["seconds"] for e in entries) / spec[0]
                        steady[name, cfg] = max(steady.get((name, cfg), 0.0), a.n / actor_s)
                        table = read_results(job)
                        local = pd.read_csv(local_csv)
                        same = bool((table["is_outlier"].astype(bool).to_numpy()
                                     == local["is_outlier"].astype(bool).to_numpy()).all())
                        f_ray, f_loc = table["fused"].to_numpy(float), local["fused"].to_numpy(float)
                        rel = float(np.nanmax(np.abs(f_ray - f_loc) / np.maximum(np.abs(f_loc), 1e-12)))
                        agree[name, cfg] = same, max(rel, agree.get((name, cfg), (True, 0.0))[1])
                    best[name, cfg] = max(best.get((name, cfg), 0.0), a.n / secs)

    print(f"\n{a.n} distinct 768x576 JPEG frames; {platform.machine()}, {cpus} cores, torch {torch.__version__}, "
          f"Ray {ray.__version__}, parts of {a.part_size}, best of {a.rounds} round(s), {time.strftime('%Y-%m-%d')}. "
          "Each row is one `hybrid-drift score` command in a fresh process, start to end (Ray rows include "
          "starting a local Ray instance and its actors).\n")
    print("| model | engine | images/s (whole command) | vs local | images/s inside actors | same flags as local "
          "| max relative fused difference |")
    print("|---|---|---:|---:|---:|---|---:|")
    for name in models:
        for cfg in configs:
            r = best[name, cfg]
            same, rel = agree.get((name, cfg), (None, None))
            inner = steady.get((name, cfg))
            print(f"| {name} | {cfg} | {r:,.1f} | {r / best[name, 'local']:.2f}x | "
                  f"{'' if inner is None else f'{inner:,.1f}'} | {'' if same is None else same} | "
                  f"{'' if rel is None else f'{rel:.1g}'} |")


if __name__ == "__main__":
    main()
