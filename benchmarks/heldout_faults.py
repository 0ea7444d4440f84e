"""Faults the defaults were never chosen on: how the default detector fares on them, scene by scene.

    python benchmarks/heldout_faults.py build/scenes-dev/tank_a-s2 build/scenes/wall-s0 ... \\
        [--copies 20] [--json build/heldout.json]

Each argument is a benchmark dataset (``make-dataset scenes`` / ``crossroad-protocol``: a
``manifest.csv`` with train / val / test splits in time order). The default detector is fitted the
way ``bench`` fits it (train plus the val split's normal frames as the reference, order from the
data), then scores the test split's clean frames (false alarms) and ``--copies`` copies of clean
test frames under each held-out fault: :data:`hybrid_drift.corruptions.HELD_OUT_FAULTS` (a torn
frame, a half-decoded frame, error-concealment smear, over-exposure, snow, defocus, hot pixels),
which no benchmark set is built from, and the study's camera-like transforms
(:data:`~hybrid_drift.corruptions.STUDY_FAULTS`), which only the street's sets contain. Copies go
through a JPEG at quality 92, as the benchmark sets' do. A fault that leaves a scene's frames
unchanged (grey scale on a grey camera) is ``n/a`` there.

Printed: recall of the default fusion per fault and dataset, the worst dataset, and the branches
that caught each fault; JSON with every number. Offline; a dataset takes about a minute on 2
cores with a warm feature cache.
"""

from __future__ import annotations

import argparse
import json
import sys
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _copies(frames, kind, rng):
    """JPEG'd corrupted copies of ``frames``; None when the fault does not change this scene's frames."""
    import cv2

    from hybrid_drift.corruptions import apply_corruption

    out = []
    for rgb in frames:
        try:
            img, _ = apply_corruption(rgb, kind, rng)
        except ValueError:  # unchanged five times: the fault does not exist on this camera
            return None
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
        out.append(cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB))
    return out


def run_dataset(path: str, copies: int = 20, kinds=None, make_detector=None) -> dict:
    """Fit the default detector (or ``make_detector()``) on one dataset's reference and score its clean test
    frames and the copies."""
    import cv2
    import numpy as np

    from hybrid_drift import HybridDetector
    from hybrid_drift.corruptions import HELD_OUT_FAULTS, STUDY_FAULTS
    from hybrid_drift.datasets import read_manifest

    kinds = tuple(kinds or (HELD_OUT_FAULTS + STUDY_FAULTS))
    ds = read_manifest(path)
    m = ds.manifest
    ref = m[(m["split"] == "train") | ((m["split"] == "val") & (m["label"] == 0))]
    clean = m[(m["split"] == "test") & (m["label"] == 0)]
    det = (make_detector or HybridDetector)().fit(ref["abspath"].tolist())
    fa = det.score(clean["abspath"].tolist())
    alarms = fa["is_outlier"].fillna(False)
    rng = np.random.default_rng(zlib.crc32(ds.root.name.encode()))
    picked = clean["abspath"].to_numpy()[rng.choice(len(clean), min(copies, len(clean)), replace=False)]
    frames = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in picked]
    branches = [c[: -len("_flag")] for c in fa.columns if c.endswith("_flag")]
    per_kind = {}
    for kind in kinds:
        imgs = _copies(frames, kind, rng)
        if imgs is None:
            per_kind[kind] = None
            continue
        t = det.score(imgs)
        per_kind[kind] = {"recall": float(t["is_outlier"].fillna(False).mean()),
                          "by_branch": {b: float(t[f"{b}_flag"].fillna(False).mean()) for b in branches}}
    return {"dataset": ds.root.name, "n_clean": int(len(fa)),
            "false_alarms": int(alarms.sum()), "false_alarms_per_1000": 1000.0 * float(alarms.mean()),
            "copies": len(frames), "per_kind": per_kind,
            "thresholds": {n: float(c.threshold) for n, c in zip(det.branch_names, det.calibrations)}}


def _pct(v: float) -> str:
    return f"{100 * v:.0f}%"


def table(results: list[dict]) -> str:
    """Recall per fault (rows) and dataset (columns), the worst dataset, and the branches that caught it."""
    names = [r["dataset"] for r in results]
    kinds = list(dict.fromkeys(k for r in results for k in r["per_kind"]))
    w = max(12, *(len(n) for n in names))
    head = f"{'fault':<16}" + "".join(f"{n:>{w + 1}}" for n in names) + f"{'worst':>8}  caught by (mean share)"
    fa = "".join(f"{str(r['false_alarms']) + '/' + str(r['n_clean']):>{w + 1}}" for r in results)
    lines = [head, f"{'false alarms':<16}{fa}"]
    for k in kinds:
        vals = [r["per_kind"].get(k) for r in results]
        got = [v["recall"] for v in vals if v is not None]
        cells = "".join(f"{_pct(v['recall']) if v else 'n/a':>{w + 1}}" for v in vals)
        by: dict[str, float] = {}
        for v in vals:
            for b, s in (v or {}).get("by_branch", {}).items():
                by[b] = by.get(b, 0.0) + s / max(1, len(got))
        top = ", ".join(f"{b} {100 * s:.0f}%" for b, s in sorted(by.items(), key=lambda x: -x[1])[:3] if s > 0)
        worst = _pct(min(got)) if got else "n/a"
        lines.append(f"{k:<16}{cells}{worst:>8}  {top}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("datasets", nargs="+")
    ap.add_argument("--copies", type=int, default=20, help="copies of clean test frames per fault (default 20)")
    ap.add_argument("--kinds", default=None, help="comma-separated faults (default: held-out and study faults)")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    from datetime import date

    from hybrid_drift.bench.run import machine_description

    results = []
    for d in a.datasets:
        results.append(run_dataset(d, a.copies, a.kinds.split(",") if a.kinds else None))
        print(f"{results[-1]['dataset']}: done", file=sys.stderr, flush=True)
    print(table(results))
    if a.json:
        Path(a.json).write_text(json.dumps({"date": date.today().isoformat(), "machine": machine_description(),
                                            "datasets": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
