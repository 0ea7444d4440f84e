"""The crossroad benchmark with each CNN runtime: identical precision / recall / F1, and the score differences.

    python benchmarks/backend_equality.py build/crossroad [--backends torch onnxruntime openvino]
                                          [--bf16]

Runs the full benchmark (every method) once per runtime on the same dataset, with the
feature cache off, and prints P / R / F1 per method and runtime, the largest relative
difference of the test scores against PyTorch per method, and per-kind recall where a
runtime differs. ``--bf16`` adds OpenVINO in bfloat16 (reduced precision, opt-in).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hybrid_drift.bench.run import BenchConfig, run_bench  # noqa: E402
from hybrid_drift.features.runners import backend_available  # noqa: E402
from hybrid_drift.runtime import Runtime  # noqa: E402

METHODS = ("colour", "cnn", "cnn_study_efficientnet_lite0", "fusion_or", "fusion_logistic")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset")
    ap.add_argument("--backends", nargs="+", default=["torch", "onnxruntime", "openvino"])
    ap.add_argument("--bf16", action="store_true")
    a = ap.parse_args()
    runs = [(b, "fp32") for b in a.backends if backend_available(b)] + ([("openvino", "bf16")] if a.bf16 else [])
    results = {}
    for backend, precision in runs:
        cfg = BenchConfig(cnn={"precision": precision}, extra_backbones=(),
                          runtime=Runtime(backend=backend, cache=False))
        t0 = time.time()
        results[(backend, precision)] = run_bench(a.dataset, cfg)
        print(f"{backend} {precision}: {time.time() - t0:.0f} s (features: "
              + ", ".join(f"{k} {v:.0f} s" for k, v in results[(backend, precision)]["seconds"].items()) + ")",
              flush=True)
    ref = results[runs[0]]
    print("\n| method | " + " | ".join(f"{b} {p}: P / R / F1" for b, p in runs) + " | largest relative score "
          "difference vs " + f"{runs[0][0]} |")
    print("|---|" + "---|" * len(runs) + "---|")
    for m in METHODS:
        if m not in ref["methods"]:
            continue
        cells = [f"{r['methods'][m]['precision']:.1%} / {r['methods'][m]['recall']:.1%} / {r['methods'][m]['f1']:.3f}"
                 for r in results.values()]
        diffs = []
        for key, r in list(results.items())[1:]:
            x, y = ref["_frames"][m].to_numpy(float), r["_frames"][m].to_numpy(float)
            diffs.append(f"{key[0]} {key[1]}: {np.nanmax(np.abs(y - x) / np.maximum(np.abs(x), 1e-12)):.1e}")
        print(f"| {m} | " + " | ".join(cells) + " | " + "; ".join(diffs) + " |")
    for key, r in list(results.items())[1:]:
        for m in METHODS:
            if m in r["per_kind_recall"] and r["per_kind_recall"][m] != ref["per_kind_recall"][m]:
                print(f"per-kind recall differs for {m} with {key}: {r['per_kind_recall'][m]} vs "
                      f"{ref['per_kind_recall'][m]}")


if __name__ == "__main__":
    main()
