"""Pointing game: does the hottest point of a heat map fall on the pasted object?

    python benchmarks/pointing.py [--seeds 0 1]

For the crossroad test split of each seed (``make-dataset crossroad``, the study's split),
the default detector is fitted on the reference (train + val normals) and explains every
test image. A pasted object counts as found when the arg-max of a map lies inside the
object's box (recorded in the manifest) widened by 2% of the image width on each side.
Reported per branch and fused, for small (2-5% of the frame) and large (5-20%) objects.

For global changes (colour jitter, grey, negative, channel shuffle, rain, noise, blur,
Sobel...) there is no box: the table says how spread the fused map is (the share of the
map's cells above half its maximum, and the hottest cell's share of the total), so a
reader can see they do not point at one random cell.

It also times explain() against score() on the same images with the feature cache off
(target: explain <= 2x score).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hybrid_drift import CNNBranch, HybridDetector  # noqa: E402
from hybrid_drift.datasets import make_crossroad, read_manifest  # noqa: E402


def hit(hm: np.ndarray, box, W: int, H: int, margin: float = 0.02) -> bool:
    iy, ix = np.unravel_index(int(np.argmax(hm)), hm.shape)
    py, px = (iy + 0.5) * H / hm.shape[0], (ix + 0.5) * W / hm.shape[1]
    x, y, w, h = box
    mg = margin * W
    return bool(x - mg <= px <= x + w + mg and y - mg <= py <= y + h + mg)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    a = ap.parse_args()
    rows, spread, timing = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in a.seeds:
            root = Path(tmp) / f"s{seed}"
            make_crossroad(root, seed=seed)
            m = read_manifest(root).manifest
            ref = m[(m.split == "train") | ((m.split == "val") & (m.label == 0))]
            te = m[m.split == "test"].reset_index(drop=True)
            det = HybridDetector(cnn=CNNBranch(cache_dir=False)).fit(ref.abspath.tolist())
            paths = te.abspath.tolist()
            det.score(paths[:8])  # warm up both graphs
            det.score(paths[:8], explain=True)
            t0 = time.perf_counter()
            det.score(paths)
            t_score = time.perf_counter() - t0
            t0 = time.perf_counter()
            table, ex = det.score(paths, explain=True)
            t_explain = time.perf_counter() - t0
            timing.append((seed, len(paths), t_score, t_explain))
            for (_, r), e in zip(te.iterrows(), ex):
                if r.label == 0 or e.heatmap is None:
                    continue
                maps = {"fused": e.heatmap, **e.branch_heatmaps}
                if r.kind.startswith("object"):
                    box = json.loads(r.params)["box"]
                    rows.append({"seed": seed, "kind": r.kind, "flagged": bool(e.is_outlier), "fused_branch": e.branch,
                                 **{k: hit(v, box, 768, 576) for k, v in maps.items()}})
                else:
                    hm = e.heatmap
                    spread.append({"kind": r.kind, "above_half": float((hm > hm.max() / 2).mean()),
                                   "top_share": float(hm.max() / max(hm.sum(), 1e-12)), "fused_from": e.branch})
    df = pd.DataFrame(rows)
    print(f"\npointing game: {len(df)} pasted objects on the test splits of seeds {a.seeds} "
          "(arg-max inside the box + 2% of the width)\n")
    print("| objects | n | fused | cnn | colour |\n|---|---:|---:|---:|---:|")
    for name, g in [("all", df), ("small (2-5%)", df[df.kind == "object_small"]),
                    ("large (5-20%)", df[df.kind == "object_large"])]:
        print(f"| {name} | {len(g)} | {g.fused.mean():.1%} | {g.cnn.mean():.1%} | {g.colour.mean():.1%} |")
    for seed in a.seeds:
        g = df[df.seed == seed]
        print(f"seed {seed}: fused {g.fused.mean():.1%} ({g.fused.sum()}/{len(g)}), small "
              f"{g[g.kind == 'object_small'].fused.mean():.1%}")
    sp = pd.DataFrame(spread)
    print("\nglobal changes: how spread the fused map is (mean over the test images of each kind)\n")
    print("| kind | images | cells above half the max | hottest cell's share of the map | fused map from |")
    print("|---|---:|---:|---:|---|")
    for kind, g in sp.groupby("kind"):
        sources = ", ".join(f"{k} {v}" for k, v in g["fused_from"].value_counts().items())
        print(f"| {kind} | {len(g)} | {g['above_half'].mean():.0%} | {g['top_share'].mean():.1%} | {sources} |")
    print("\n| seed | images | score() s | explain() s | explain / score |\n|---:|---:|---:|---:|---:|")
    for seed, n, ts, te_ in timing:
        print(f"| {seed} | {n} | {ts:.1f} | {te_:.1f} | {te_ / ts:.2f}x |")


if __name__ == "__main__":
    main()
