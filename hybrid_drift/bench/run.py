"""Benchmark every method on a labelled dataset, the way a deployment lives: time-ordered.

Features are extracted once per branch for all splits (timed per branch), then
every method — the min/max baseline, the colour branch with each distance, the
CNN branch, OR fusion and logistic fusion — is fitted and evaluated on those
features, so the numbers of one run are directly comparable:

* methods that use normal images only (every branch, OR fusion) are fitted on the
  **reference**: the train images and the val split's normals, in time order;
  their thresholds come from time-blocked cross-fitting on it (no labels);
* logistic fusion, which learns from labels, is fitted on train and calibrated on
  the labelled val split (normals and outliers);
* every number is on the test split, which comes after both in time.

Beside precision / recall / F1 / AUROC, ``false alarms per 1,000 clean frames``
(test normals over the threshold) is the number a person watching a camera cares
about most.
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
from ..branches import (BandBranch, Branch, CNNBranch, ColourBranch, FlatBranch, LightBranch, LocalBranch, MinMaxBranch, PatchBranch,
                        ShiftBranch, TearBranch)

from ..datasets.manifest import Dataset, read_manifest
from ..detector import HybridDetector
from ..runtime import Runtime
from ..exceptions import BackboneUnavailableError
from ..io.order import order_inputs
from ..io.sources import InputItem
from ..reference_order import input_rows, plan_crossfit
from ..pipeline import Extracted, extract
from ..scorers.distances import DISTANCES

__all__ = ["BenchConfig", "run_bench", "run_protocol", "PROTOCOL_METHODS"]

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
    calibration, fpr, k, blocks
        Per-branch threshold rule (see :class:`~hybrid_drift.detector.HybridDetector`).
    colour_distance : str or None
        Distance of the colour branch used in fusion; None = the branch's default.
    limit : int or None
        At most this many images per split (quick runs, CI).
    runtime : Runtime
        How the branches run here (CNN backend, decode workers, feature cache, progress bars).
    """

    backbone: str = "efficientnet_lite0"
    weights: str | None = None
    extra_backbones: tuple[str, ...] = ("resnet18",)
    colour: dict = field(default_factory=lambda: {"bins": 32, "grid": (4, 4)})
    cnn: dict = field(default_factory=dict)
    study_cnn: bool = True
    calibration: str = "conformal"
    fpr: float = 0.001
    k: float = 3.0
    blocks: int = 5
    colour_distance: str | None = None
    limit: int | None = None
    seed: int = 0
    runtime: Runtime = field(default_factory=lambda: Runtime(progress=True))
    #: also evaluate the opt-in local branch (issue 21) alone and added to OR fusion
    local: bool = True


def _metrics(y, pred, score) -> dict[str, float]:
    ok = np.isfinite(score)
    y, pred, score = y[ok], pred[ok], score[ok]
    out = {"precision": float(precision_score(y, pred, zero_division=0)),
           "recall": float(recall_score(y, pred, zero_division=0)),
           "f1": float(f1_score(y, pred, zero_division=0)),
           "auroc": float(roc_auc_score(y, score)) if len(np.unique(y)) == 2 else float("nan")}
    out.update(tp=int(((pred == 1) & (y == 1)).sum()), fp=int(((pred == 1) & (y == 0)).sum()),
               fn=int(((pred == 0) & (y == 1)).sum()), tn=int(((pred == 0) & (y == 0)).sum()))
    out["false_alarms_per_1000"] = 1000.0 * out["fp"] / max(out["fp"] + out["tn"], 1)
    return out


def _per_kind(kinds, y, pred) -> dict[str, float]:
    df = pd.DataFrame({"kind": kinds, "y": y, "pred": pred})
    df = df[df["y"] == 1]
    return {k: float(g["pred"].mean()) for k, g in df.groupby("kind")}


def _split(ext: Extracted, ds: Dataset, name: str) -> Extracted:
    return ext.subset(ds.manifest["split"].to_numpy() == name)


def _det(branches: list[Branch], fusion: str, cfg: BenchConfig) -> HybridDetector:
    return HybridDetector.of_branches(branches, fusion=fusion, calibration=cfg.calibration, fpr=cfg.fpr, k=cfg.k,
                                      blocks=cfg.blocks)


def machine_description() -> str:
    """The machine a benchmark ran on, as every result file records it."""
    return f"{platform.machine()}, {os.cpu_count()} CPU cores, {platform.system()}"


def run_bench(dataset: str | os.PathLike, config: BenchConfig | None = None) -> dict[str, Any]:
    """Run the benchmark; returns the result dict (schema in ``shared/DESIGN.md`` plus extras).

    The returned dict also holds, under the private keys ``"_frames"`` and ``"_detector"``,
    per-image test scores per method (a DataFrame) for plots and the fitted default
    fusion detector (for heat maps in the report); they are dropped from JSON output.
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
    light = LightBranch()  # a default branch
    shift = ShiftBranch()
    bands = BandBranch()
    bands_whole = BandBranch(bins=1, spread=True)  # the first design: one range for the frame (ablation)
    bands_whole.name = "bands_whole"
    flat = FlatBranch()
    flat_mode = FlatBranch(level="mode")  # opt-in: flat around the row's densest level (measured, not the default)
    flat_mode.name = "flat_mode"
    tear = TearBranch()
    local = LocalBranch() if cfg.local else None
    t0 = time.perf_counter()
    ext_c = extract([b for b in (colour, minmax, local, light, shift, bands, bands_whole, flat, flat_mode, tear) if b is not None], paths,
                    workers=cfg.runtime.workers, progress=cfg.runtime.progress, desc="colour features")
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
    # the default detector's patch branch on the main CNN's network (fed by its pass); None when that CNN
    # does not compute the map the patch branch reads
    patch = PatchBranch.default_beside([CNNBranch(backbone=cfg.backbone, weights=cfg.weights, **cfg.cnn)])
    if patch is not None:
        patch.bind(cfg.runtime)
    skipped: set[str] = set()
    for name, bb, kw in variants:
        if bb in skipped:
            continue
        try:
            br = CNNBranch(backbone=bb, weights=cfg.weights if bb == cfg.backbone else None, **kw).bind(cfg.runtime)
            br.check_weights()  # fail fast, before decoding anything
            t0 = time.perf_counter()
            fed = [patch] if name == "cnn" and patch is not None else []  # the patch branch reads the same pass
            ext = extract([br, *fed], paths, workers=cfg.runtime.workers, progress=cfg.runtime.progress,
                          desc=f"{name} features")
            seconds[name] = time.perf_counter() - t0
            br.name = name
            cnn_exts[name] = (br, ext)
        except BackboneUnavailableError as exc:
            if bb == cfg.backbone:
                raise
            skipped.add(bb)
            notes.append(f"{bb} skipped: {exc}")
            log.info("%s skipped: %s", bb, exc)  # said once, as a note with the results

    # one Extracted with every branch's features (same rows: same inputs, same readability)
    merged = Extracted(ext_c.ids, ext_c.errors, ext_c.meta, dict(ext_c.features))
    for name, (br, ext) in cnn_exts.items():
        if ext.errors != ext_c.errors:  # pragma: no cover - same files, same decoder
            raise RuntimeError("feature passes disagree on which images are readable")
        merged.features[name] = ext.features["cnn"]
    if patch is not None:
        merged.features[patch.name] = cnn_exts["cnn"][1].features[patch.name]
    split, label = m["split"].to_numpy(), m["label"].to_numpy()
    is_ref = (split == "train") | ((split == "val") & (label == 0))
    # the reference as `fit` sees it: put in time order from the data (order="auto": a time column, EXIF,
    # natural order of names), then checked on the default fusion's features and, when that order does
    # not look like time, put in similarity order for cross-fitting (see hybrid_drift.reference_order)
    ref_rows = np.flatnonzero(is_ref)
    given = ds.items(is_ref)
    ordered, input_order = order_inputs(given, "auto")
    pos = {it.id: i for i, it in enumerate(given)}
    ref_rows = ref_rows[[pos[it.id] for it in ordered]]
    ref = merged.subset(ref_rows)
    plan = plan_crossfit({n: ref.features[n] for n in (colour.name, "cnn")}, blocks=cfg.blocks)
    order_check = plan.check
    ref_rows = ref_rows[input_rows(ref.ok, plan.perm)]
    ref = merged.subset(ref_rows)
    plan = plan.reordered()
    in_train = split[ref_rows] == "train"
    tr = merged.subset(ref_rows[in_train])  # logistic fusion fits on train alone, in the same order
    va, te = _split(merged, ds, "val"), _split(merged, ds, "test")
    y_val, y_test = ds.labels("val"), ds.labels("test")
    kinds_test = ds.split("test")["kind"].to_numpy()
    # rows made from the reference images (the CNN branches' moved-foreground copies), once per branch
    ref_ok = ref.ok
    ref_items = [InputItem(p, p) for p, ok in zip(m["abspath"].to_numpy()[ref_rows], ref_ok) if ok]
    train_ok = in_train[ref_ok]                       # which readable reference rows are train rows
    train_rank = np.cumsum(train_ok) - 1              # their row among the readable train rows
    extras: dict[str, tuple] = {}
    for name, (br, _) in cnn_exts.items():
        t0 = time.perf_counter()
        got = br.reference_extra(ref_items, workers=cfg.runtime.workers, progress=cfg.runtime.progress)
        seconds[f"{name}_augment"] = time.perf_counter() - t0
        if got is not None:
            extras[name] = got

    results: dict[str, dict] = {}
    per_kind: dict[str, dict] = {}
    thresholds: dict[str, float] = {}
    frames = pd.DataFrame({"path": te.ids, "label": y_test, "kind": kinds_test, "error": te.errors})

    # Branch objects are shared between the detectors below (the CNN branch is in eight of them): each is
    # fitted on the reference once, the first time a detector needs it, and kept by the later ones (same
    # features, extra rows, plan and rule, so the same fit). Logistic fusion, which refits on train alone and
    # moves the thresholds with labels, gets copies of its own.
    fitted_on_ref: dict[int, Branch] = {}

    def fit(det: HybridDetector, train_only: bool):
        """Fit on the reference (or on train alone: its rows come first), with each CNN branch's extra rows."""
        keep = {n: train_ok[ex[1]] if train_only else np.ones(len(ex[1]), bool) for n, ex in extras.items()}
        branches = det.prepare_branches()
        done = [] if train_only else [b.name for b in branches if fitted_on_ref.get(id(b)) is b]
        det.fit_features(tr if train_only else ref,
                         extra={n: (ex[0][keep[n]], train_rank[ex[1][keep[n]]] if train_only else ex[1])
                                for n, ex in extras.items()},
                         plan=plan.subset(train_ok) if train_only else plan, prefitted=done)
        if not train_only:
            fitted_on_ref.update((id(b), b) for b in branches)

    def evaluate(name: str, det: HybridDetector):
        if det.fusion == "logistic":  # learns from labels: fit on train, calibrate on the labelled val split
            fit(det, train_only=True)
            det.calibrate_features(va, y_val)
        else:  # normal images only: fit on the reference, thresholds by cross-fitting on it
            fit(det, train_only=False)
        table = det.score_features(te)
        score = table["fused"].to_numpy(dtype=float)
        pred = table["is_outlier"].fillna(False).to_numpy(dtype=int)
        results[name] = _metrics(y_test, pred, score)
        per_kind[name] = _per_kind(kinds_test, y_test, pred)
        thresholds[name] = float(det.fusion_.threshold_)
        results[name]["branch_thresholds"] = {b.name: float(b.threshold_) for b in det.branches_}
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
    by_distance = {}
    for d in DISTANCES:
        br = copy.deepcopy(colour)
        br.distance = d
        by_distance[d] = br
        evaluate(f"colour_{d}", _det([br], "or", cfg))
    best = cfg.colour_distance or colour.distance  # a choice on labelled val outliers would use labels
    results["colour"] = dict(results[f"colour_{best}"], distance=best)
    per_kind["colour"] = per_kind[f"colour_{best}"]
    thresholds["colour"] = thresholds[f"colour_{best}"]
    frames["colour"], frames["colour_pred"] = frames[f"colour_{best}"], frames[f"colour_{best}_pred"]
    colour_best = by_distance[best]  # fitted above; every fusion below shares it

    main_cnn = cnn_exts["cnn"][0]
    for name, (br, _) in cnn_exts.items():
        evaluate(name, _det([br], "or", cfg))
    # the default detector: colour + CNN + light + shift + patch + bands + flat + tear; before the tear branch; before
    # the flat-rows branch; before the bands branch; before the patch branch; before light and shift
    with_patch = [patch] if patch is not None else []
    evaluate("light", _det([light], "or", cfg))
    evaluate("shift", _det([shift], "or", cfg))
    if patch is not None:
        evaluate("patch", _det([patch], "or", cfg))
    evaluate("bands", _det([bands], "or", cfg))
    evaluate("bands_whole", _det([bands_whole], "or", cfg))
    evaluate("flat", _det([flat], "or", cfg))
    evaluate("flat_mode", _det([flat_mode], "or", cfg))
    evaluate("tear", _det([tear], "or", cfg))
    evaluate("fusion_or_colour_cnn", _det([colour_best, main_cnn], "or", cfg))
    evaluate("fusion_or_before_patch", _det([colour_best, main_cnn, light, shift], "or", cfg))
    before_bands = [main_cnn, light, shift, *with_patch]
    before_flat = [*before_bands, bands]
    before_tear = [*before_flat, flat]
    defaults = [*before_tear, tear]  # besides the colour branch (colour_best, shared like these)
    evaluate("fusion_or_before_bands", _det([colour_best, *before_bands], "or", cfg))
    evaluate("fusion_or_before_flat", _det([colour_best, *before_flat], "or", cfg))
    evaluate("fusion_or_before_tear", _det([colour_best, *before_tear], "or", cfg))
    fusion_or_det = evaluate("fusion_or", _det([colour_best, *defaults], "or", cfg))
    evaluate("fusion_or_flat_mode", _det([colour_best, *[flat_mode if b is flat else b for b in defaults]], "or", cfg))
    study_name = f"cnn_study_{cfg.backbone}"
    if study_name in cnn_exts:  # the study's own pairing: whylogs-style colour + avg-pool CNN
        evaluate("fusion_or_study", _det([colour_best, cnn_exts[study_name][0]], "or", cfg))
    if local is not None:  # the opt-in local branch (issue 21), alone and added to the default fusion
        evaluate("local", _det([local], "or", cfg))
        evaluate("fusion_or_local", _det([colour_best, *defaults, local], "or", cfg))
    if (y_val == 1).any():  # its own copies: fitted on train alone, thresholds moved by the val labels
        evaluate("fusion_logistic", _det([b.unfitted_copy() for b in (colour_best, *defaults)], "logistic", cfg))
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
        "config": {"colour": {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.colour.items()},
                   "cnn": main_cnn.get_config(), "calibration": cfg.calibration, "fpr": cfg.fpr, "k": cfg.k,
                   "blocks": cfg.blocks, "limit": cfg.limit,
                   "protocol": "branches and OR fusion: fit on train + val normals (time order), thresholds by "
                               "time-blocked cross-fitting; logistic fusion: fit on train, calibrated on the "
                               "labelled val split; all numbers on test"},
        "unreadable": {i: e for i, e in zip(merged.ids, merged.errors) if e},
        "reference": {"n": int(ref.n_ok), "input_order": input_order.as_dict(), "order_check": order_check.as_dict()},
        "notes": notes,
        "machine": machine_description(),
        "date": _dt.date.today().isoformat(),
        "hybrid_drift_version": __version__,
        "_frames": frames,
        "_detector": fusion_or_det,
    }
    return out


#: methods summarised across the splits of a protocol (the default fusion first)
PROTOCOL_METHODS = ("fusion_or", "fusion_logistic", "cnn", "colour", "light", "fusion_or_colour_cnn", "minmax", "local",
                    "fusion_or_local", "shift", "patch", "fusion_or_before_patch", "bands", "bands_whole",
                    "fusion_or_before_bands", "flat", "fusion_or_before_flat", "tear", "fusion_or_before_tear",
                    "flat_mode", "fusion_or_flat_mode")
_METRICS = ("precision", "recall", "f1", "auroc", "false_alarms_per_1000")


def run_protocol(path: str | os.PathLike, config: BenchConfig | None = None) -> dict[str, Any]:
    """Run the benchmark on every dataset of a protocol folder (see :mod:`hybrid_drift.datasets.protocol`).

    Returns ``{"protocol", "datasets": {name: run_bench result}, "summary": {method: ...},
    "headline": ...}``. The summary gives, per method, the mean over datasets of each
    metric and the worst value (lowest precision / recall / F1 / AUROC, highest false
    alarms), and the worst dataset by F1 (ties: more false alarms). The headline is
    the default fusion's worst dataset.
    """
    from ..datasets.protocol import read_protocol
    desc = read_protocol(path)
    cfg = config or BenchConfig(study_cnn=False, extra_backbones=())
    per: dict[str, dict] = {}
    for d in desc["datasets"]:
        log.info("protocol dataset %s", d["name"])
        res = run_bench(d["path"], cfg)
        res.pop("_frames", None)
        res.pop("_detector", None)
        res["frames"] = d.get("frames")
        res["order"] = d.get("order", "time")
        res["base"] = d.get("base", d["name"])
        res["scene"] = d.get("scene")
        per[d["name"]] = res
    summary = _summarise(per)
    orders = list(dict.fromkeys(r["order"] for r in per.values()))
    by_order = {o: _summarise({k: r for k, r in per.items() if r["order"] == o}) for o in orders} \
        if len(orders) > 1 else {}
    scenes = list(dict.fromkeys(r["scene"] for r in per.values() if r["scene"]))
    by_scene = {sc: _summarise({k: r for k, r in per.items() if r["scene"] == sc}) for sc in scenes}
    head = summary.get("fusion_or")
    return {"protocol": desc.get("kind", "report"), "datasets": per, "summary": summary, "by_order": by_order,
            "by_scene": by_scene,
            "threshold_ratios": _threshold_ratios(per),
            "headline": None if head is None else {"method": "fusion_or", "split": head["worst_split"],
                                                   **head["worst_split_metrics"]},
            "machine": machine_description(),
            "date": _dt.date.today().isoformat(), "hybrid_drift_version": __version__}


def _summarise(per: dict[str, dict]) -> dict[str, dict]:
    """Per method: the mean and worst of each metric over the datasets, and the worst dataset by F1."""
    summary = {}
    for m in PROTOCOL_METHODS:
        rows = {k: r["methods"][m] for k, r in per.items() if m in r["methods"]}
        if not rows:
            continue
        worst_name = min(rows, key=lambda k: (rows[k]["f1"], -rows[k]["false_alarms_per_1000"]))
        summary[m] = {
            "mean": {k: float(np.mean([r[k] for r in rows.values()])) for k in _METRICS},
            "worst": {k: float(max(r[k] for r in rows.values()) if k == "false_alarms_per_1000"
                               else min(r[k] for r in rows.values())) for k in _METRICS},
            "worst_split": worst_name, "worst_split_metrics": {k: rows[worst_name][k] for k in _METRICS},
            "n_datasets": len(rows)}
    return summary


def _threshold_ratios(per: dict[str, dict], method: str = "fusion_or") -> dict[str, Any]:
    """Each order variant's branch thresholds over those of the same split in time order (1.0 = the same),
    and the one farthest from 1."""
    ratios: dict[str, dict[str, float]] = {}
    for name, r in per.items():
        base = per.get(r.get("base", name))
        if base is None or base is r or method not in r["methods"] or method not in base["methods"]:
            continue
        mine, ref = r["methods"][method]["branch_thresholds"], base["methods"][method]["branch_thresholds"]
        ratios[name] = {b: float(mine[b] / ref[b]) for b in mine if b in ref and ref[b] > 0}
    flat = [(abs(np.log(v)), k, b, v) for k, d in ratios.items() for b, v in d.items() if v > 0]
    far = max(flat) if flat else None
    return {"per_dataset": ratios,
            "farthest": None if far is None else {"dataset": far[1], "branch": far[2], "ratio": far[3]}}
