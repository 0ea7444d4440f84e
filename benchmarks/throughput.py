"""Images/second of each stage and branch, measured side by side in one run.

    python benchmarks/throughput.py [--n 300] [--workers 2]

Uses real 768x576 JPEG frames of the bundled street video (written to a temporary
folder first), a cold feature cache (the CNN cache is disabled) and prints a
markdown table with absolute rates and the ratios that matter:

* colour branch (decode + HSV + histograms) vs the bare reduced-size decode,
  and vs a plain PIL + NumPy HSB implementation (full decode, per-channel histograms);
* CNN branch end-to-end (decode → resize → backbone → pooled features) vs the bare
  backbone forward pass on the same input size and batch size;
* PCA reconstruction scoring per image.

Not a test: these machines are shared and noisy; run it a few times.
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

from hybrid_drift import CNNBranch, ColourBranch, extract  # noqa: E402
from hybrid_drift.datasets.crossroad import bundled_data_dir  # noqa: E402
from hybrid_drift.io import iter_video_frames, list_images  # noqa: E402
from hybrid_drift.scorers import PCAReconstructionScorer  # noqa: E402


def write_frames(n: int, out: Path) -> list[str]:
    for i, rgb in iter_video_frames(bundled_data_dir() / "vtest.avi", stop=n):
        cv2.imwrite(str(out / f"f{i:04d}.jpg"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
    return list_images(out)


def rate(n: int, fn) -> float:
    t0 = time.perf_counter()
    fn()
    return n / (time.perf_counter() - t0)


def pil_numpy_hsb(paths, bins=32):
    """The peer: what a user would write with PIL and NumPy alone."""
    from PIL import Image
    for p in paths:
        hsv = np.asarray(Image.open(p).convert("HSV"))
        for c in range(3):
            np.histogram(hsv[..., c], bins=bins, range=(0, 256))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=300, help="frames (default 300)")
    ap.add_argument("--n-cnn", type=int, default=128, help="frames for the CNN rows (default 128)")
    ap.add_argument("--workers", type=int, default=None, help="decode threads (default: one per core)")
    a = ap.parse_args()
    import torch
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_frames(a.n, Path(tmp))
        n = len(paths)
        for p in paths:  # warm the OS page cache so every row reads from memory
            Path(p).read_bytes()
        r_decode_full = rate(n, lambda: [cv2.imread(p) for p in paths])
        r_decode_red = rate(n, lambda: [cv2.imread(p, cv2.IMREAD_REDUCED_COLOR_2) for p in paths])
        r_peer = rate(n, lambda: pil_numpy_hsb(paths))
        colour = ColourBranch()
        r_colour_1 = rate(n, lambda: extract([colour], paths, workers=1))
        r_colour = rate(n, lambda: extract([colour], paths, workers=a.workers))
        rows += [("decode, full size (cv2.imread), 1 thread", r_decode_full, ""),
                 ("decode, 1/2 size in the DCT domain (IMREAD_REDUCED_COLOR_2), 1 thread", r_decode_red, ""),
                 ("peer: PIL decode + HSV + NumPy histograms, 1 thread", r_peer, ""),
                 ("colour branch (decode 1/2 + HSV + 4x4 grid histograms), 1 thread", r_colour_1,
                  f"{r_colour_1 / r_decode_red:.2f}x bare reduced decode; {r_colour_1 / r_peer:.1f}x peer"),
                 (f"colour branch, {a.workers or os.cpu_count()} threads", r_colour,
                  f"{r_colour / r_decode_red:.2f}x one-thread reduced decode")]

        cnn_paths = paths[: a.n_cnn]
        m = len(cnn_paths)
        for name, kw in (("default: max-pool block10+head, 288x384", {}),
                         ("study: avg-pool head, 224x224", {"pool": "avg", "layers": ("head",), "image_size": 224})):
            br = CNNBranch(cache_dir=False, **kw)
            emb = br.embedder
            h, w = emb.image_size
            batch = np.random.default_rng(0).integers(0, 255, (m, h, w, 3), dtype=np.uint8)
            emb.embed(batch[:8])  # load + warm up
            r_bare = rate(m, lambda: emb.embed(batch))
            r_e2e = rate(m, lambda: extract([br], cnn_paths, workers=a.workers))
            rows += [(f"CNN forward only ({name}), batch {emb.batch_size}", r_bare, ""),
                     (f"CNN branch end-to-end incl. decode ({name})", r_e2e, f"{r_e2e / r_bare:.2f}x forward only")]
        rng = np.random.default_rng(0)
        X = rng.normal(size=(400, 1392)).astype(np.float32)
        sc = PCAReconstructionScorer(150).fit(X)
        Y = rng.normal(size=(10000, 1392)).astype(np.float32)
        r_pca = rate(len(Y), lambda: sc.score_samples(Y))
        r_pca1 = rate(200, lambda: [sc.score_samples(Y[i:i + 1]) for i in range(200)])
        rows += [("PCA reconstruction scoring, 1392-D, 150 components, batch of 10,000", r_pca,
                  f"{1e6 / r_pca:.1f} us/image"),
                 ("PCA reconstruction scoring, one image per call", r_pca1, f"{1e3 / r_pca1:.3f} ms/image")]

    print(f"\n{n} frames 768x576 JPEG (CNN rows: {m}); {platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads), OpenCV {cv2.__version__}, "
          f"{time.strftime('%Y-%m-%d')}\n")
    print("| stage | images/s | ratio |\n|---|---:|---|")
    for name, r, ratio in rows:
        print(f"| {name} | {r:,.1f} | {ratio} |")


if __name__ == "__main__":
    main()
