"""``fit``: fit a detector on normal images and save it."""

from __future__ import annotations

import sys

from .common import (EXIT_OK, examples, UsageError, check_nonempty, default, is_dataset, load_inputs, n_components,
                     non_negative_int, positive_int, ray_engine, ray_kw, runtime_from)

__all__ = ["add"]


def add(sub, parents) -> None:
    from ..branches import CNNBranch, ColourBranch, LightBranch
    from ..calibration import CALIBRATION_METHODS
    from ..detector import HybridDetector
    from ..fusion import FUSIONS
    from ..io.order import ORDERS
    from ..reference_order import FOLDS
    s = sub.add_parser("fit", parents=[parents["common"], parents["engine"], parents["runtime"]],
                       help="fit a detector on normal images and save it",
                       **examples("hybrid-drift fit frames/reference --out model/",
                                  "hybrid-drift fit camera.mp4 --video-step 25 --out model/",
                                  "hybrid-drift fit export/ --order exif --ignore '0.7,0 1,0 1,0.1 0.7,0.1' --out model/",
                                  "hybrid-drift fit build/crossroad --fusion logistic --val build/crossroad --out model/"),
                       description="Fit on normal reference images; thresholds come from cross-fitting on "
                                   "them (--val adds held-out images). The images are put in time order "
                                   "(--order), and the fit checks on their features whether that order looks "
                                   "like time: when it does not (random names, a shuffled list), cross-fitting "
                                   "holds out groups of similar images instead of periods, and the summary "
                                   "says so.")
    s.add_argument("train", nargs="+", help="normal reference images: folders, files, videos, or a "
                                           "dataset folder (its train images and val normals)")
    s.add_argument("--order", choices=list(ORDERS), default="auto",
                   help="how to put the reference in time order: auto (default: a manifest's time column, else "
                        "EXIF DateTimeOriginal when every image has one, else the natural order of names, "
                        "frame_9 before frame_10), given, name, exif, mtime, time")
    s.add_argument("--video-step", type=positive_int, default=1,
                   help="fit on every N-th frame of videos (default 1: every frame)")
    s.add_argument("--folds", choices=list(FOLDS), default=default(HybridDetector, "folds"),
                   help="cross-fitting folds: auto (default: periods when the order looks like time, else groups "
                        "of similar images), time, similarity")
    s.add_argument("--val", nargs="+", help="optional held-out images, pooled with the cross-fitted reference "
                                            "scores (or a dataset folder: its val split, labelled; for "
                                            "--fusion logistic)")
    s.add_argument("--full-decode", action="store_true",
                   help="decode every JPEG at full size and area-average it to each feature's working size, as a "
                        "live stream's frames are (default: smaller sizes straight from the JPEG, faster). For a "
                        "model that will watch a stream: its files and the stream's pixels then score alike")
    s.add_argument("--out", required=True, help="model folder to write")
    s.add_argument("--fusion", choices=list(FUSIONS), default=default(HybridDetector, "fusion"),
                   help="or (default): an outlier when any branch is over its threshold; logistic: weights "
                        "learned from a labelled --val")
    cal = default(HybridDetector, "calibration")
    s.add_argument("--calibration", choices=[m for m in CALIBRATION_METHODS if m != "fixed"], default=cal,
                   help=f"threshold rule on out-of-sample normal scores (default: {cal}; f1 needs a labelled --val)")
    fpr = default(HybridDetector, "fpr")
    s.add_argument("--fpr", type=float, default=None,
                   help=f"target false-positive rate per branch and frame (default {fpr})")
    s.add_argument("--false-alarms-per-day", type=float, default=None, metavar="N",
                   help="the same in plain units: about N false alarms a day on clean footage, with --fps")
    s.add_argument("--fps", type=float, default=None, help="frames scored per second, for --false-alarms-per-day")
    k = default(HybridDetector, "k")
    s.add_argument("--k", type=float, default=k, help=f"standard deviations for --calibration mean_std (default {k:g})")
    g = s.add_argument_group("colour branch")
    g.add_argument("--bins", type=int, default=default(ColourBranch, "bins"), help="histogram bins per channel")
    g.add_argument("--grid", type=int, nargs=2, default=default(ColourBranch, "grid"), metavar=("ROWS", "COLS"),
                   help="histogram grid (default %d %d)" % default(ColourBranch, "grid"))
    g.add_argument("--distance", default=default(ColourBranch, "distance"),
                   choices=ColourBranch._parameter_constraints["distance"].choices, help="histogram distance")
    g.add_argument("--no-colour", action="store_true", help="no colour branch")
    g = s.add_argument_group("CNN branch")
    g.add_argument("--backbone", default=default(CNNBranch, "backbone"),
                   help="backbone (default %(default)s, bundled offline)")
    g.add_argument("--weights", default=None, help="weights file for the backbone")
    g.add_argument("--pool", choices=CNNBranch._parameter_constraints["pool"].choices,
                   default=default(CNNBranch, "pool"), help="global pooling of each feature map")
    g.add_argument("--layers", nargs="+", default=None, help="CNN feature maps (default: block10 head)")
    g.add_argument("--image-size", type=int, nargs=2, default=None, metavar=("H", "W"),
                   help="CNN input size (default %d %d)" % CNNBranch.DEFAULT_IMAGE_SIZE)
    g.add_argument("--n-components", type=n_components, default=default(CNNBranch, "n_components"),
                   help="PCA components: 'auto' (150, or half the reference rows when fewer than 300), an int, "
                        "or a variance fraction")
    g.add_argument("--recompressed", type=non_negative_int, default=default(CNNBranch, "recompressed"), metavar="N",
                   help="also fit the CNN branch on N evenly spread reference frames re-saved as JPEG quality "
                        "30-70, for a stream compressed harder than the reference you can take from it (opt-in, "
                        "default %(default)d: measured, most such false alarms gone on the development scenes, but "
                        "20 of 176 clean frames flagged on a report scene; check on clean footage first)")
    g.add_argument("--no-cnn", action="store_true", help="no CNN branch")
    g = s.add_argument_group("light branch")
    g.add_argument("--light-tolerance", type=float, default=default(LightBranch, "tolerance"),
                   help="light this many units (a quarter of a stop, 2 CIELAB units of colour cast) beyond what "
                        "the reference saw still counts as seen (default %(default)g)")
    g.add_argument("--no-light", action="store_true", help="no light branch")
    s.add_argument("--no-shift", action="store_true",
                   help="no shift branch (has the camera moved: phase correlation against the reference)")
    s.add_argument("--no-patch", action="store_true",
                   help="no patch branch (where in the picture: the CNN's mid-level map, position by position; "
                        "shares the CNN branch's pass)")
    s.add_argument("--no-bands", action="store_true",
                   help="no bands branch (a row-aligned fault across the frame: dead sensor rows, a half-decoded frame, "
                        "an overlay bar)")
    s.add_argument("--no-flat", action="store_true",
                   help="no flat-rows branch (a row at one grey level from edge to edge: dead or stuck sensor rows)")
    s.add_argument("--no-tear", action="store_true",
                   help="no tear branch (part of the picture displaced sideways: a torn frame)")
    s.add_argument("--ignore", type=_zone, action="append", default=[], metavar="'x,y x,y x,y ...'",
                   help="an ignore zone (repeatable): a polygon in fractions of the frame's width and height, "
                        "e.g. '0.7,0 1,0 1,0.1 0.7,0.1' for a clock in the top right corner; no branch looks there, "
                        "when fitting and when scoring (saved with the model)")
    s.add_argument("--fit-sample", type=non_negative_int, default=10_000,
                   help="--engine ray: fit on at most N training images, a random sample (bounds driver "
                        "memory to about N x 160 KB with the default branches; 0 = all)")
    s.set_defaults(fn=fit)


def _zone(text: str):
    import argparse

    from ..io.zones import parse_zone
    try:
        return parse_zone(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _fpr(a, branches: int) -> float:
    """--fpr, or --false-alarms-per-day with --fps mapped to it (one or the other)."""
    from ..calibration import fpr_for
    from ..detector import HybridDetector
    if a.false_alarms_per_day is None and a.fps is None:
        return a.fpr if a.fpr is not None else default(HybridDetector, "fpr")
    if a.fpr is not None:
        raise UsageError("give --fpr or --false-alarms-per-day with --fps, not both")
    if a.false_alarms_per_day is None or a.fps is None:
        raise UsageError("--false-alarms-per-day needs --fps (the frames scored per second), and --fps needs it")
    try:
        fpr = fpr_for(a.false_alarms_per_day, a.fps, max(branches, 1))
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    print(f"sensitivity: about {a.false_alarms_per_day:g} false alarms a day at {a.fps:g} frames/s = fpr {fpr:.3g} "
          f"per branch and frame")
    return fpr


def fit(a) -> int:
    from ..branches import CNNBranch, ColourBranch, LightBranch
    from ..detector import HybridDetector
    from ..reference_order import reference_lines, reference_warnings
    # a dataset: its reference (train + val normals); logistic fusion keeps the val split for calibration
    train, _ = load_inputs(a.train, ("train" if a.fusion == "logistic" else "reference")
                           if is_dataset(a.train) else None)
    items = check_nonempty(train, "training images", a.video_step)
    colour = ColourBranch(bins=a.bins, grid=tuple(a.grid), distance=a.distance) if not a.no_colour else False
    cnn = CNNBranch(backbone=a.backbone, weights=a.weights, n_components=a.n_components, pool=a.pool,
                    layers=tuple(a.layers) if a.layers else None, image_size=a.image_size,
                    recompressed=a.recompressed) if not a.no_cnn else False
    light = LightBranch(tolerance=a.light_tolerance) if not a.no_light else False
    shift = False if a.no_shift else None
    patch = False if a.no_patch else None
    bands = False if a.no_bands else None
    flat = False if a.no_flat else None
    tear = False if a.no_tear else None
    det = HybridDetector(colour=colour, cnn=cnn, light=light, shift=shift, patch=patch, bands=bands, flat=flat,
                         tear=tear, fusion=a.fusion,
                         calibration=a.calibration, k=a.k, folds=a.folds, runtime=runtime_from(a), ignore=a.ignore,
                         reduce=1 if a.full_decode else default(HybridDetector, "reduce"))
    det.set_params(fpr=_fpr(a, len(det.planned_branches())))  # per branch: as many as the fit will build
    val = labels = None
    if a.val:
        val, labels = load_inputs(a.val, "val" if is_dataset(a.val) else None)
        val = check_nonempty(val, "validation images")
    elif a.fusion == "logistic":
        raise UsageError("--fusion logistic needs labelled validation images: --val DATASET")
    if a.engine == "ray":
        ray_engine().fit_ray(det, items, val, labels, max_images=a.fit_sample or None, order=a.order, **ray_kw(a))
    else:
        det.fit(items, order=a.order)
        if val is not None:
            det.calibrate(val, labels)
    det.save(a.out)
    where = " on Ray" if a.engine == "ray" else ""
    print(f"fitted{where} on {det.n_train_} images ({len(det.fit_errors_)} unreadable); model saved to {a.out}")
    for b in det.branches_:
        c = b.calibration_
        nc = getattr(b.scorer_, "n_components_", None)
        print(f"  {b.name}: threshold {c.threshold:.4g} ({c.method}, from {c.n} {c.source} scores"
              + (f"; {nc} PCA components" if nc is not None else "") + ")")
    for line in reference_lines(det.reference_summary()):
        print(f"  {line}")
    if a.ignore:
        print(f"  ignore zones: {len(a.ignore)} (no branch looks there)")
    for line in reference_warnings(det.reference_summary(), det.fpr):
        print(f"warning: {line}", file=sys.stderr)
    return EXIT_OK
