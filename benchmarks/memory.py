"""Peak memory of fitting and scoring as the number of images grows (each size in a fresh process).

    python benchmarks/memory.py            # fit on 1k, 10k, 100k feature rows; stream-score 1k, 10k images

Fit: the colour and CNN branches' scorers on synthetic features of the real dimensions
(colour 4x4x3x32 = 1536, CNN block10+head max-pooled = 1392, float32; computing 100,000
real CNN embeddings takes ~3 h on 2 CPU cores, the features' memory is the same).
Score: ``HybridDetector.score_iter`` (what ``hybrid-drift score --out x.csv`` uses) of a
colour-branch detector over N real 768x576 JPEG frames, cycling through the video's frames.

    python benchmarks/memory.py --arena     # only the last table

The CNN runtime's memory (ONNX Runtime keeps the working memory of the largest batch a session ran): the
default detector fitted on 300 of the video's frames, then 50 calls of 4 frames (a watch's way), then one
call of 200, then ``release_memory()``; RSS and time after each, with the arena given back after ``fit``
(the default) and kept (``runners.RELEASE_ARENA = False``), each in a fresh process, two rounds alternating.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def fit_job(n: int) -> dict:
    import numpy as np

    from hybrid_drift import CNNBranch, ColourBranch, HybridDetector
    from hybrid_drift.pipeline import Extracted
    rng = np.random.default_rng(0)
    colour = np.empty((n, 1536), np.float32)
    cnn = np.empty((n, 1392), np.float32)
    basis = rng.normal(size=(40, 1392)).astype(np.float32)
    for i in range(0, n, 10000):  # generated in blocks, like features arriving from the pipeline
        m = min(10000, n - i)
        colour[i:i + m] = rng.dirichlet(np.ones(32) * 20, size=(m, 48)).reshape(m, 1536)
        cnn[i:i + m] = rng.normal(size=(m, 40)).astype(np.float32) @ basis + 0.1 * rng.normal(size=(m, 1392))
    data_mb = peak_mb()
    ext = Extracted([f"<{i}>" for i in range(n)], [None] * n, [{}] * n, {"colour": colour, "cnn": cnn})
    t = time.perf_counter()
    det = HybridDetector(colour=ColourBranch(), cnn=CNNBranch(cache_dir=False)).fit_features(ext)
    fit_s = time.perf_counter() - t
    return {"n": n, "features_mb": round((colour.nbytes + cnn.nbytes) / 2**20), "rss_after_features_mb": round(data_mb),
            "peak_rss_mb": round(peak_mb()), "fit_s": round(fit_s, 1),
            "pca": type(det.branches_[1].scorer_).__name__ + f" ({det.branches_[1].scorer_.n_components_} comps)"}


def video_jpegs(folder: Path, n: int) -> list[str]:
    """The bundled street video's first ``n`` frames written to ``folder`` as JPEG files (OpenCV's default
    quality), their paths in order."""
    import cv2

    from hybrid_drift.datasets.crossroad import bundled_data_dir
    from hybrid_drift.io import iter_video_frames
    files = []
    for i, f in iter_video_frames(bundled_data_dir() / "vtest.avi", stop=n):
        p = folder / f"f{i:04d}.jpg"
        cv2.imwrite(str(p), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
        files.append(str(p))
    return files


def score_job(n: int) -> dict:
    from hybrid_drift import HybridDetector
    with tempfile.TemporaryDirectory() as tmp:
        files = video_jpegs(Path(tmp), 300)
        det = HybridDetector(cnn=False).fit(files[:200]).calibrate(files[200:])
        base = peak_mb()
        paths = [files[i % len(files)] for i in range(n)]
        t = time.perf_counter()
        rows = sum(len(part) for part in det.score_iter(paths, chunk=1024))
        dt = time.perf_counter() - t
    return {"n": n, "rows": rows, "peak_rss_mb": round(peak_mb()), "rss_before_scoring_mb": round(base),
            "images_per_s": round(n / dt)}


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) / 1024 for line in fh if line.startswith("VmRSS:"))


def arena_job(release: bool) -> dict:
    import hybrid_drift.features.runners as runners
    from hybrid_drift import HybridDetector
    from hybrid_drift.runtime import Runtime
    runners.RELEASE_ARENA = release
    out = {"arena": "given back" if release else "kept"}
    with tempfile.TemporaryDirectory() as tmp:
        files = video_jpegs(Path(tmp), 500)
        t = time.perf_counter()
        det = HybridDetector(runtime=Runtime(cache=False)).fit(files[:300])
        out.update(fit_s=time.perf_counter() - t, fit_mb=rss_mb())
        t = time.perf_counter()
        for i in range(50):
            det.score(files[300 + 4 * i:304 + 4 * i])
        out.update(small_s=time.perf_counter() - t, small_mb=rss_mb())
        t = time.perf_counter()
        det.score(files[300:500])
        out.update(large_s=time.perf_counter() - t, large_mb=rss_mb())
        det.release_memory()
        out.update(released_mb=rss_mb())
    return out


def arena_table(rounds: int = 2) -> None:
    print("\n| CNN runtime arena | fit on 300 s | RSS after fit MB | 50 x 4 frames s | RSS MB | score 200 s | RSS MB "
          "| after release_memory() MB |\n|---|---:|---:|---:|---:|---:|---:|---:|")
    for rnd in range(rounds):
        for mode in (("keep", "release") if rnd % 2 == 0 else ("release", "keep")):
            r = json.loads(subprocess.run([sys.executable, __file__, "arena", mode], capture_output=True, text=True,
                                          check=True).stdout.strip().splitlines()[-1])
            print(f"| {r['arena']} (round {rnd + 1}) | {r['fit_s']:.1f} | {r['fit_mb']:.0f} | {r['small_s']:.1f} | "
                  f"{r['small_mb']:.0f} | {r['large_s']:.1f} | {r['large_mb']:.0f} | {r['released_mb']:.0f} |")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "arena":
        print(json.dumps(arena_job(sys.argv[2] == "release")))
        sys.exit(0)
    if len(sys.argv) == 3:
        job = fit_job if sys.argv[1] == "fit" else score_job
        print(json.dumps(job(int(sys.argv[2]))))
        sys.exit(0)
    if sys.argv[1:] == ["--arena"]:
        arena_table()
        sys.exit(0)
    print("| job | images | features MB | RSS before MB | peak RSS MB | time s | note |\n|---|---:|---:|---:|---:|---:|---|")
    for kind, n in [("fit", 1000), ("fit", 10000), ("fit", 100000), ("score", 1000), ("score", 10000)]:
        r = json.loads(subprocess.run([sys.executable, __file__, kind, str(n)], capture_output=True, text=True,
                                      check=True).stdout.strip().splitlines()[-1])
        if kind == "fit":
            print(f"| fit (colour + CNN scorers) | {n:,} | {r['features_mb']} | {r['rss_after_features_mb']} | "
                  f"{r['peak_rss_mb']} | {r['fit_s']} | {r['pca']} |")
        else:
            print(f"| stream-score (colour branch, chunks of 1024) | {n:,} | - | {r['rss_before_scoring_mb']} | "
                  f"{r['peak_rss_mb']} | {n / r['images_per_s']:.1f} | {r['images_per_s']} images/s |")
    arena_table()
