"""What the order handling of issue 20 costs a fit: 1,000 reference frames, side by side in one run.

    python benchmarks/fit_order.py [--rounds 2]

The default detector (colour + CNN on the default runtime, feature cache off) is fitted on
1,000 real 768x576 JPEG frames (the street video's 795 frames, then its first 205 frames
mirrored, so every frame is distinct) from a folder, in rounds:

* ``time``: names in time order (the check runs and keeps the order);
* ``uuid``: the same files with random names (the check runs and regroups);
* ``time_recompressed``: time order, with the CNN branch's opt-in recompressed reference copies
  (``CNNBranch(recompressed=100)``, 2026-12-03), for what those copies cost;
* and, inside each fit, the seconds spent putting the inputs in order (``order_inputs``:
  names, EXIF look-ups) and checking / regrouping them (``reference_order``).

The target is fit time growing by at most 20%: the order work as a share of the fit without
it, and the uuid fit (regrouped) against the time-ordered one; and the fit with the recompressed
copies against the default one.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)

    import cv2

    import hybrid_drift.io.order as order_mod
    import hybrid_drift.reference_order as ro
    from hybrid_drift import CNNBranch, HybridDetector
    from hybrid_drift.branches.cnn import RECOMPRESSED
    from hybrid_drift.datasets.crossroad import bundled_data_dir
    from hybrid_drift.io import iter_video_frames

    spent = {"order_inputs": 0.0, "reference_order": 0.0}

    def timed(name, fn):
        def wrapper(*args, **kw):
            t = time.perf_counter()
            try:
                return fn(*args, **kw)
            finally:
                spent[name] += time.perf_counter() - t
        return wrapper

    order_mod.order_inputs = timed("order_inputs", order_mod.order_inputs)
    import hybrid_drift.detector as det_mod
    det_mod.plan_crossfit = timed("reference_order", ro.plan_crossfit)  # the detector plans its cross-fitting

    with tempfile.TemporaryDirectory() as tmp:
        tdir, udir = Path(tmp) / "time", Path(tmp) / "uuid"
        tdir.mkdir()
        udir.mkdir()
        rnd = random.Random(0)
        frames = [f for _, f in iter_video_frames(bundled_data_dir() / "vtest.avi")]
        frames += [f[:, ::-1] for f in frames[:1000 - len(frames)]]
        for i, f in enumerate(frames):
            p = tdir / f"f{i:04d}.jpg"
            cv2.imwrite(str(p), cv2.cvtColor(f, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
            shutil.copy(p, udir / f"{uuid.UUID(int=rnd.getrandbits(128))}.jpg")
        rows = []
        for r in range(a.rounds):
            for name, folder, copies in (("time", tdir, 0), ("uuid", udir, 0), ("time_recompressed", tdir, RECOMPRESSED)):
                spent.update(order_inputs=0.0, reference_order=0.0)
                t = time.perf_counter()
                det = HybridDetector(cnn=CNNBranch(cache_dir=False, recompressed=copies)).fit(folder)
                total = time.perf_counter() - t
                order_s = spent["order_inputs"] + spent["reference_order"]
                rows.append({"round": r, "reference": name, "fit_s": round(total, 2),
                             "order_inputs_s": round(spent["order_inputs"], 3),
                             "reference_order_s": round(spent["reference_order"], 3),
                             "order_share_of_rest": round(order_s / (total - order_s), 4),
                             "action": det.order_check_.action, "leak": round(det.order_check_.leak, 3),
                             "thresholds": {b.name: round(b.threshold_, 5) for b in det.branches_}})
                print(json.dumps(rows[-1]), flush=True)
    best = {n: min(r["fit_s"] for r in rows if r["reference"] == n) for n in ("time", "uuid", "time_recompressed")}
    share = max(r["order_share_of_rest"] for r in rows)
    print(f"\nbest fit: time order {best['time']:.1f} s, random names {best['uuid']:.1f} s "
          f"({best['uuid'] / best['time']:.2f}x); order work at most {share:.1%} of the rest of a fit; "
          f"with {RECOMPRESSED} recompressed copies {best['time_recompressed']:.1f} s "
          f"({best['time_recompressed'] / best['time']:.2f}x)")
    if a.json:
        Path(a.json).write_text(json.dumps({"rows": rows, "best": best, "max_order_share": share}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
