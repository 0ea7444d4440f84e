"""Images/second scoring 2,000 images on this machine: the local path vs ``--engine ray``.

    python benchmarks/ray_overhead.py [--n 2000] [--part-size 250] [--models colour hybrid]

Writes ``--n`` distinct 768x576 JPEG frames of the bundled street video (a frame
counter is drawn in a corner so that no two files are alike: the CNN feature cache
cannot help), fits a colour-only and a hybrid (colour + CNN) detector on other
frames, then scores the same folder with

* the local path: ``HybridDetector.score_iter`` in chunks of 1,024, as ``hybrid-drift score --out x.csv``;
* Ray: ``score_ray`` on a local Ray instance (2 CPUs), one actor per CPU, Parquet parts.

Ray's start-up (``ray.init``) is timed apart from the jobs; each Ray job still starts its
own actors (each loads the model). The feature cache is off (``HYBRID_DRIFT_CACHE=off``).
Rounds interleave the engines and the best rate of each is kept. Prints a markdown table
with images/second, the Ray/local ratio and whether the two tables agree.

Not a test: these machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import os
import platform
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


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--part-size", type=int, default=250)
    ap.add_argument("--rounds", type=int, default=2, help="rounds of (local, Ray 2x1, Ray 1x2); best is kept")
    ap.add_argument("--models", nargs="+", default=["colour", "hybrid"], choices=["colour", "hybrid"])
    a = ap.parse_args()
    os.environ["HYBRID_DRIFT_CACHE"] = "off"  # every run cold; Ray's actors never cache
    import pandas as pd
    import ray
    import torch

    from hybrid_drift.scale import read_results
    from hybrid_drift.scale.ray_engine import connect, score_ray

    cpus = os.cpu_count()
    configs = {"local": None, f"Ray, {cpus} actors x 1 CPU": (cpus, 1), f"Ray, 1 actor x {cpus} CPUs": (1, cpus)}
    best: dict[tuple[str, str], float] = {}
    agree: dict[tuple[str, str], tuple[bool, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_frames(a.n, tmp / "images")
        models = fit_models(tmp, a.models)
        t0 = time.perf_counter()
        connect(None, num_cpus=cpus)
        t_init = time.perf_counter() - t0
        for r in range(a.rounds):
            for name, model in models.items():
                local = None
                for cfg, spec in configs.items():
                    t0 = time.perf_counter()
                    if spec is None:
                        det = HybridDetector.load(model)
                        local = pd.concat(list(det.score_iter([str(tmp / "images")], chunk=1024)), ignore_index=True)
                    else:
                        job = tmp / f"job-{name}-{r}-{spec[0]}"
                        score_ray(model, [str(tmp / "images")], job, part_size=a.part_size, actors=spec[0],
                                  cpus_per_actor=spec[1])
                    rate = a.n / (time.perf_counter() - t0)
                    best[name, cfg] = max(best.get((name, cfg), 0.0), rate)
                    if spec is not None:
                        table = read_results(job)
                        same = bool((table["is_outlier"].astype(object) == local["is_outlier"].astype(object)).all())
                        f_ray, f_loc = table["fused"].to_numpy(float), local["fused"].to_numpy(float)
                        rel = float(np.nanmax(np.abs(f_ray - f_loc) / np.maximum(np.abs(f_loc), 1e-12)))
                        agree[name, cfg] = same, max(rel, agree.get((name, cfg), (True, 0.0))[1])
        ray.shutdown()

    print(f"\n{a.n} distinct 768x576 JPEG frames; {platform.machine()}, {cpus} cores, torch {torch.__version__}, "
          f"Ray {ray.__version__}, parts of {a.part_size}, best of {a.rounds} interleaved rounds, "
          f"{time.strftime('%Y-%m-%d')}. Ray start-up (ray.init, once): {t_init:.1f} s, not in the rates.\n")
    print("| model | engine | images/s | vs local | same flags as local | max relative fused difference |")
    print("|---|---|---:|---:|---|---:|")
    for name in models:
        for cfg in configs:
            r = best[name, cfg]
            same, rel = agree.get((name, cfg), (None, None))
            print(f"| {name} | {cfg} | {r:,.1f} | {r / best[name, 'local']:.2f}x | "
                  f"{'' if same is None else same} | {'' if rel is None else f'{rel:.1g}'} |")


if __name__ == "__main__":
    main()
