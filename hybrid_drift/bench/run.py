"""Benchmark every method on a labelled dataset: fit on train, calibrate on val, report on test.

Features are extracted once per branch for all splits (timed per branch), then
every method — the min/max baseline, the colour branch with each distance, the
CNN branch, OR fusion and logistic fusion — is fitted, calibrated and evaluated
on those features, so the numbers of one run are directly comparable.
"""

from __future__ import annotations

import copy
import datetime as _dt
import logging
import os
import platform
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

from .._version import __version__
from ..branches import Branch, CNNBranch, ColourBranch, MinMaxBranch
from ..datasets.manifest import Dataset, read_manifest
from ..detector import HybridDetector
from ..exceptions import BackboneUnavailableError
from ..pipeline import Extracted, extract
from ..scorers.distances import DISTANCES

__all__ = ["BenchConfig", "run_bench", "markdown_table"]

log = logging.getLogger(__name__)

@dataclass
class BenchConfig:
    """What the benchmark runs.

    Attributes
    ----------
    backbone : str
        CNN backbone of the main CNN branch.
    extra_backbones : tuple of str
        Also report these backbones (skipped with a note when their weights cannot be had).
    colour : dict
        ``ColourBranch`` settings (bins, grid, joint_hs...); every distance is evaluated.
    cnn : dict
        ``CNNBranch`` settings other than the backbone (pool, layers, n_components...);
        empty = the library defaults.
    study_cnn : bool
        Also report the Tokyo study's CNN branch (global average pool of the last
        layer) on the same backbone, to show what the default's changes buy.
    calibration, fpr, k
        Per-branch threshold rule on val (see :func:`~hybrid_drift.calibration.choose_threshold`).
    colour_distance : str or None
        Distance of the colour branch used in fusion; None = the best on val (F1).
    limit : int or None
        At most this many images per split (quick runs, CI).
    """

    backbone: str = "efficientnet_lite0"
    weights: str | None = None
    extra_backbones: tuple[str, ...] = ("resnet18",)
    colour: dict = field(default_factory=lambda: {"bins": 32, "grid": (4, 4)})
    cnn: dict = field(default_factory=dict)
    study_cnn: bool = True
    calibration: str = "mean_std"
    fpr: float = 0.01
    k: float = 3.0
    colour_distance: str | None = None
    limit: int | None = None
    seed: int = 0
    workers: int | None = None
    cache_dir: Any = None
    progress: bool = True


def _metrics(y, pred, score) -> dict[str, float]:
    ok = np.isfinite(score)
    y, pred, score = y[ok], pred[ok], score[ok]
    out = {"precision": float(precision_score(y, pred, zero_division=0)),
           "recall": float(recall_score(y, pred, zero_division=0)),
           "f1": float(f1_score(y, pred, zero_division=0)),
           "auroc": float(roc_auc_score(y, score)) if len(np.unique(y)) == 2 else float("nan")}
    out.update(tp=int(((pred == 1) & (y == 1)).sum()), fp=int(((pred == 1) & (y == 0)).sum()),
               fn=int(((pred == 0) & (y == 1)).sum()), tn=int(((pred == 0) & (y == 0)).sum()))
    return out


def _per_kind(kinds, y, pred) -> dict[str, float]:
    df = pd.DataFrame({"kind": kinds, "y": y, "pred": pred})
    df = df[df["y"] == 1]
    return {k: float(g["pred"].mean()) for k, g in df.groupby("kind")}


def _split(ext: Extracted, ds: Dataset, name: str) -> Extracted:
    return ext.subset(ds.manifest["split"].to_numpy() == name)


def _det(branches: list[Branch], fusion: str, cfg: BenchConfig) -> HybridDetector:
    return HybridDetector(colour=False, cnn=False, extra_branches=tuple(branches), fusion=fusion,
                          calibration=cfg.calibration, fpr=cfg.fpr, k=cfg.k)


def run_bench(dataset: str | os.PathLike, config: BenchConfig | None = None) -> dict[str, Any]:
    """Run the benchmark; returns the result dict (schema in ``shared/DESIGN.md`` plus extras).

    The returned dict also holds, under the private key ``"_frames"``, per-image
    test scores per method (a DataFrame) for plots; it is dropped from JSON output.
    """
    cfg = config or BenchConfig()
    ds = read_manifest(dataset, limit=cfg.limit, seed=cfg.seed)
    m = ds.manifest
    for s in ("train", "val", "test"):
        if not (m["split"] == s).any():
            raise ValueError(f"{ds.root}/manifest.csv: the benchmark needs a '{s}' split")
    if not (ds.labels("test") == 1).any():
        raise ValueError(f"{ds.root}/manifest.csv: the test split has no outliers (label 1) to find")
    paths = m["abspath"].tolist()
    seconds: dict[str, float] = {}
    notes: list[str] = []

    colour = ColourBranch(**cfg.colour)
    minmax = MinMaxBranch()
    t0 = time.perf_counter()
    ext_c = extract([colour, minmax], paths, workers=cfg.workers, progress=cfg.progress, desc="colour features")
    seconds["colour"] = time.perf_counter() - t0

    # (method name, backbone, CNNBranch settings); the main one first
    # the study's branch: global average pool of the last layer at 224x224 (n_components as configured)
    study = {"image_size": 224, **cfg.cnn, "pool": "avg", "layers": ("head",)}
    variants = [("cnn", cfg.backbone, dict(cfg.cnn))]
    if cfg.study_cnn:
        variants.append((f"cnn_study_{cfg.backbone}", cfg.backbone, study))
    for bb in cfg.extra_backbones:
        if bb != cfg.backbone:
            variants += [(f"cnn_{bb}", bb, {k: v for k, v in cfg.cnn.items() if k != "layers"}),
                         (f"cnn_study_{bb}", bb, study)]
    cnn_exts: dict[str, tuple[CNNBranch, Extracted]] = {}
    skipped: set[str] = set()
    for name, bb, kw in variants:
        if bb in skipped:
            continue
        try:
            br = CNNBranch(backbone=bb, weights=cfg.weights if bb == cfg.backbone else None,
                           cache_dir=cfg.cache_dir, **kw)
            br._check_weights()  # fail fast, before decoding anything
            t0 = time.perf_counter()
            ext = extract([br], paths, workers=cfg.workers, progress=cfg.progress, desc=f"{name} features")
            seconds[name] = time.perf_counter() - t0
            br.name = name
            cnn_exts[name] = (br, ext)
        except BackboneUnavailableError as exc:
            if bb == cfg.backbone:
                raise
            skipped.add(bb)
            notes.append(f"{bb} skipped: {exc}")
            log.warning("%s skipped: %s", bb, exc)

    # one Extracted with every branch's features (same rows: same inputs, same readability)
    merged = Extracted(ext_c.ids, ext_c.errors, ext_c.meta, dict(ext_c.features))
    for name, (br, ext) in cnn_exts.items():
        if ext.errors != ext_c.errors:  # pragma: no cover - same files, same decoder
            raise RuntimeError("feature passes disagree on which images are readable")
        merged.features[name] = ext.features["cnn"]
    tr, va, te = (_split(merged, ds, s) for s in ("train", "val", "test"))
    y_val, y_test = ds.labels("val"), ds.labels("test")
    kinds_test = ds.split("test")["kind"].to_numpy()

    results: dict[str, dict] = {}
    per_kind: dict[str, dict] = {}
    thresholds: dict[str, float] = {}
    frames = pd.DataFrame({"path": te.ids, "label": y_test, "kind": kinds_test, "error": te.errors})

    def evaluate(name: str, det: HybridDetector):
        det.fit_features(tr)
        det.calibrate_features(va, y_val)  # quantile rules use the labelled normals only
        table = det.score_features(te)
        score = table["fused"].to_numpy(dtype=float)
        pred = table["is_outlier"].fillna(False).to_numpy(dtype=int)
        results[name] = _metrics(y_test, pred, score)
        per_kind[name] = _per_kind(kinds_test, y_test, pred)
        thresholds[name] = float(det.fusion_.threshold_ if len(det.branches_) > 1 else det.branches_[0].threshold_)
        if len(det.branches_) == 1:  # single branch: report its raw score and threshold
            b = det.branches_[0]
            frames[name] = table[b.name].to_numpy(dtype=float)
            thresholds[name] = float(b.threshold_)
            results[name]["auroc"] = _metrics(y_test, pred, frames[name].to_numpy())["auroc"]
        else:
            frames[name] = score
        frames[f"{name}_pred"] = pred
        return det

    evaluate("minmax", _det([minmax], "or", cfg))
    val_f1 = {}
    for d in DISTANCES:
        br = copy.deepcopy(colour)
        br.distance = d
        det = evaluate(f"colour_{d}", _det([br], "or", cfg))
        v = det.score_features(va)
        val_f1[d] = f1_score(y_val, v["is_outlier"].fillna(False).to_numpy(dtype=int), zero_division=0)
    best = cfg.colour_distance or max(val_f1, key=lambda d: (val_f1[d], -list(DISTANCES).index(d)))
    results["colour"] = dict(results[f"colour_{best}"], distance=best)
    per_kind["colour"] = per_kind[f"colour_{best}"]
    thresholds["colour"] = thresholds[f"colour_{best}"]
    frames["colour"], frames["colour_pred"] = frames[f"colour_{best}"], frames[f"colour_{best}_pred"]
    colour_best = copy.deepcopy(colour)
    colour_best.distance = best

    main_cnn = cnn_exts["cnn"][0]
    for name, (br, _) in cnn_exts.items():
        evaluate(name, _det([br], "or", cfg))
    evaluate("fusion_or", _det([copy.deepcopy(colour_best), main_cnn], "or", cfg))
    study_name = f"cnn_study_{cfg.backbone}"
    if study_name in cnn_exts:  # the study's own pairing: whylogs-style colour + avg-pool CNN
        evaluate("fusion_or_study", _det([copy.deepcopy(colour_best), cnn_exts[study_name][0]], "or", cfg))
    if (y_val == 1).any():
        evaluate("fusion_logistic", _det([copy.deepcopy(colour_best), main_cnn], "logistic", cfg))
    else:
        notes.append("fusion_logistic skipped: the val split has no labelled outliers")

    out = {
        "dataset": ds.name,
        "backbone": cfg.backbone,
        "n": {s: int((m["split"] == s).sum()) for s in ("train", "val", "test")},
        "n_outliers": {s: int(((m["split"] == s) & (m["label"] == 1)).sum()) for s in ("val", "test")},
        "methods": results,
        "per_kind_recall": per_kind,
        "seconds": seconds,
        "thresholds": thresholds,
        "colour_distance": best,
        "colour_val_f1": val_f1,
        "config": {"colour": {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.colour.items()},
                   "cnn": main_cnn.get_config(), "calibration": cfg.calibration, "fpr": cfg.fpr, "k": cfg.k,
                   "limit": cfg.limit},
        "unreadable": {i: e for i, e in zip(merged.ids, merged.errors) if e},
        "notes": notes,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, {platform.system()}",
        "date": _dt.date.today().isoformat(),
        "hybrid_drift_version": __version__,
        "_frames": frames,
    }
    return out


_LABELS = {"minmax": "Min/max range (trivial baseline)", "cnn": "CNN + PCA", "fusion_or": "Fusion (OR)",
           "fusion_logistic": "Fusion (logistic)", "fusion_or_study": "Fusion (OR) of colour + study CNN"}


def markdown_table(res: dict[str, Any]) -> str:
    """The study-style table: ``MODEL | Precision | Recall`` (+ F1, AUROC, FP/FN)."""
    lines = ["| MODEL | Precision | Recall | F1 | AUROC | FP | FN |", "|---|---:|---:|---:|---:|---:|---:|"]
    order = ["minmax"] + [f"colour_{d}" for d in DISTANCES] + \
        sorted(k for k in res["methods"] if k.startswith("cnn_study")) + ["cnn"] + \
        sorted(k for k in res["methods"] if k.startswith("cnn_") and not k.startswith("cnn_study")) + \
        ["fusion_or_study", "fusion_or", "fusion_logistic"]
    for k in order:
        if k not in res["methods"]:
            continue
        r = res["methods"][k]
        if k.startswith("colour_"):
            label = f"Colour HSB, {k[7:]}" + (" (best on val)" if k[7:] == res["colour_distance"] else "")
        elif k.startswith("cnn_study_"):
            label = f"CNN + PCA, study: avg-pool last layer, 224px ({k[10:]})"
        elif k.startswith("cnn_"):
            label = f"CNN + PCA, hybrid_drift default ({k[4:]})"
        elif k == "cnn":
            label = f"CNN + PCA, hybrid_drift default ({res['backbone']})"
        else:
            label = _LABELS[k]
        lines.append(f"| {label} | {r['precision']:.1%} | {r['recall']:.1%} | {r['f1']:.3f} | "
                     f"{r['auroc']:.3f} | {r['fp']} | {r['fn']} |")
    return "\n".join(lines)


def per_kind_table(res: dict[str, Any], methods=("minmax", "colour", "cnn_study_efficientnet_lite0", "cnn",
                                                 "fusion_or_study", "fusion_or", "fusion_logistic")) -> str:
    methods = [m for m in methods if m in res["per_kind_recall"]]
    kinds = sorted({k for m in methods for k in res["per_kind_recall"][m]})
    lines = ["| kind | " + " | ".join(methods) + " |", "|---|" + "---:|" * len(methods)]
    for kd in kinds:
        lines.append(f"| {kd} | " + " | ".join(
            f"{res['per_kind_recall'][m].get(kd, float('nan')):.0%}" for m in methods) + " |")
    return "\n".join(lines)
