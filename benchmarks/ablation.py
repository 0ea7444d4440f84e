"""What each default of the time-ordered benchmark buys, measured on the DEVELOPMENT splits.

    python benchmarks/ablation.py DEV_PROTOCOL_FOLDER      # hybrid-drift make-dataset crossroad-protocol OUT --dev

Each row turns one default off (or back to what version 0.1 did) and reruns the development
protocol (D1-D3, seeds 2 and 3): worst split and mean of the default fusion and of
each branch. These are the splits the defaults were chosen on; the report splits are
in README's headline table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hybrid_drift.runtime import Runtime  # noqa: E402
from hybrid_drift.bench.run import BenchConfig, run_protocol  # noqa: E402

VARIANTS = {
    "defaults": {},
    "no moved-foreground copies (CNNBranch(augment=0))": {"cnn": {"augment": 0}},
    "colour: per-cell maximum, margin 1 (as 0.1 scored it)": {"colour": {"combine": "max", "margin": 1.0}},
    "colour: margin 1": {"colour": {"margin": 1.0}},
    "thresholds: mean + 3 sd of the cross-fitted scores": {"calibration": "mean_std"},
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("protocol")
    a = ap.parse_args()
    print("| variant | fusion OR: worst split P / R / FA | mean P / R / FA | CNN worst P / R / FA | "
          "colour worst P / R / FA | seconds |")
    print("|---|---|---|---|---|---:|")
    for name, change in VARIANTS.items():
        cfg = BenchConfig(study_cnn=False, extra_backbones=(), runtime=Runtime())
        cfg.colour = {**cfg.colour, **change.get("colour", {})}
        cfg.cnn = {**cfg.cnn, **change.get("cnn", {})}
        if "calibration" in change:
            cfg.calibration = change["calibration"]
        t0 = time.time()
        res = run_protocol(a.protocol, cfg)
        s = res["summary"]

        def f(m, key):
            r = s[m][key]
            return f"{r['precision']:.1%} / {r['recall']:.1%} / {r['false_alarms_per_1000']:.1f}"
        print(f"| {name} | {s['fusion_or']['worst_split']}: {f('fusion_or', 'worst_split_metrics')} | "
              f"{f('fusion_or', 'mean')} | {f('cnn', 'worst_split_metrics')} | {f('colour', 'worst_split_metrics')} | "
              f"{time.time() - t0:.0f} |", flush=True)


if __name__ == "__main__":
    main()
