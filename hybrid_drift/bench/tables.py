"""The benchmark's tables (Markdown): the study-style table of one dataset, recall per kind, and the
protocol's per-split rows and summaries, with the worst split first-class."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..scorers.distances import DISTANCES

__all__ = ["markdown_table", "per_kind_table", "protocol_tables", "scene_kind_table"]

_LABELS = {"minmax": "Min/max range (trivial baseline)", "cnn": "CNN + PCA",
           "fusion_or": "Fusion (OR) of colour + CNN + light + shift + patch + bands + flat rows + tear (default)",
           "fusion_or_before_tear": "Fusion (OR) of colour + CNN + light + shift + patch + bands + flat rows (before the tear branch)",
           "tear": "Tear (a stripe fits the reference moved sideways better than in place, per eighth of the height)",
           "fusion_or_before_flat": "Fusion (OR) of colour + CNN + light + shift + patch + bands (before the flat-rows branch)",
           "flat": "Flat rows (share of a row at its own grey level, per eighth of the height)",
           "flat_mode": "Flat rows around the row's densest level (opt-in)",
           "fusion_or_flat_mode": "Fusion (OR), default but flat rows around the densest level (opt-in)",
           "fusion_or_before_bands": "Fusion (OR) of colour + CNN + light + shift + patch (before the bands branch)",
           "bands": "Bands (strongest row step over 40% of the width, per eighth of the height)",
           "bands_whole": "Bands, one range for the whole frame (the first design)",
           "fusion_or_before_patch": "Fusion (OR) of colour + CNN + light + shift (before the patch branch)",
           "patch": "Patch (CNN map, position-free PCA, strongest band)",
           "fusion_or_colour_cnn": "Fusion (OR) of colour + CNN (before the light and shift branches)",
           "local": "Local cells (opt-in)", "light": "Light range (and sharpness)",
           "fusion_or_local": "Fusion (OR) + local cells (opt-in)",
           "shift": "Camera shift (phase correlation)",
           "fusion_logistic": "Fusion (logistic)", "fusion_or_study": "Fusion (OR) of colour + study CNN"}


def markdown_table(res: dict[str, Any]) -> str:
    """The study-style table: ``MODEL | Precision | Recall`` (+ F1, AUROC, FP/FN, false alarms per 1,000 clean)."""
    lines = ["| MODEL | Precision | Recall | F1 | AUROC | FP | FN | false alarms /1,000 clean |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    order = ["minmax"] + [f"colour_{d}" for d in DISTANCES] + \
        sorted(k for k in res["methods"] if k.startswith("cnn_study")) + ["cnn"] + \
        sorted(k for k in res["methods"] if k.startswith("cnn_") and not k.startswith("cnn_study")) + \
        ["light", "shift", "patch", "bands", "bands_whole", "flat", "flat_mode", "tear", "local", "fusion_or_study",
         "fusion_or_colour_cnn", "fusion_or_before_patch", "fusion_or_before_bands", "fusion_or_before_flat",
         "fusion_or_before_tear", "fusion_or", "fusion_or_flat_mode", "fusion_or_local",
         "fusion_logistic"]
    for k in order:
        if k not in res["methods"]:
            continue
        r = res["methods"][k]
        if k.startswith("colour_"):
            label = f"Colour HSB, {k[7:]}" + (" (default)" if k[7:] == res["colour_distance"] else "")
        elif k.startswith("cnn_study_"):
            label = f"CNN + PCA, study: avg-pool last layer, 224px ({k[10:]})"
        elif k.startswith("cnn_"):
            label = f"CNN + PCA, hybrid_drift default ({k[4:]})"
        elif k == "cnn":
            label = f"CNN + PCA, hybrid_drift default ({res['backbone']})"
        else:
            label = _LABELS[k]
        lines.append(f"| {label} | {r['precision']:.1%} | {r['recall']:.1%} | {r['f1']:.3f} | "
                     f"{r['auroc']:.3f} | {r['fp']} | {r['fn']} | {r['false_alarms_per_1000']:.1f} |")
    return "\n".join(lines)


def per_kind_table(res: dict[str, Any], methods=("minmax", "colour", "cnn_study_efficientnet_lite0", "cnn", "light", "shift",
                                                 "patch", "bands", "bands_whole", "flat", "flat_mode", "tear", "fusion_or_study",
                                                 "fusion_or_colour_cnn", "fusion_or_before_patch",
                                                 "fusion_or_before_bands", "fusion_or_before_flat", "fusion_or_before_tear",
                                                 "fusion_or", "fusion_or_flat_mode",
                                                 "fusion_logistic")) -> str:
    methods = [m for m in methods if m in res["per_kind_recall"]]
    kinds = sorted({k for m in methods for k in res["per_kind_recall"][m]})
    lines = ["| kind | " + " | ".join(methods) + " |", "|---|" + "---:|" * len(methods)]
    for kd in kinds:
        lines.append(f"| {kd} | " + " | ".join(
            f"{res['per_kind_recall'][m].get(kd, float('nan')):.0%}" for m in methods) + " |")
    return "\n".join(lines)


def scene_kind_table(res: dict[str, Any], method: str = "fusion_or") -> str:
    """Markdown: recall per kind of outlier and scene (mean over the scene's seeds, time order only)."""
    scenes = list(res.get("by_scene") or {})
    if not scenes:
        return ""
    per = {sc: [r["per_kind_recall"].get(method, {}) for r in res["datasets"].values()
                if r.get("scene") == sc and r.get("order", "time") == "time"] for sc in scenes}
    kinds = sorted({k for rows in per.values() for r in rows for k in r})
    lines = [f"| kind ({method}) | " + " | ".join(scenes) + " |", "|---|" + "---:|" * len(scenes)]
    for kd in kinds:
        cells = []
        for sc in scenes:
            vals = [r[kd] for r in per[sc] if kd in r]
            cells.append(f"{np.mean(vals):.0%}" if vals else "")
        lines.append(f"| {kd} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _prf(r: dict) -> str:
    return f"{r['precision']:.1%} / {r['recall']:.1%} / {r['false_alarms_per_1000']:.1f}"


def protocol_tables(res: dict[str, Any]) -> str:
    """Markdown: one row per split and seed (P / R / false alarms per 1,000 clean frames), then the summary."""
    methods = [m for m in ("colour", "cnn", "fusion_or_colour_cnn", "fusion_or", "fusion_logistic", "fusion_or_local")
               if m in res["summary"]]
    lines = ["| split | order | frames train / val / test | " + " | ".join(f"{m}: P / R / FA" for m in methods)
             + " |", "|---|---|---|" + "---:|" * len(methods)]
    for name, r in res["datasets"].items():
        fr = r.get("frames") or {}
        span = " / ".join(f"{a}-{b - 1}" for a, b in (fr.get(s, (0, 1)) for s in ("train", "val", "test")))
        chk = (r.get("reference") or {}).get("order_check") or {}
        order = r.get("order", "time") + (" (regrouped)" if chk.get("action") == "reordered" else "")
        lines.append(f"| {r.get('base', name)} | {order} | {span} | "
                     + " | ".join(_prf(r["methods"][m]) for m in methods) + " |")
    head = "| method | worst (by F1) | worst P / R / FA | F1 | mean P / R / FA | mean F1 | lowest P | lowest R | most FA |"
    rule = "|---|---|---:|---:|---:|---:|---:|---:|---:|"
    blocks = [("every split and order", res["summary"])] + \
        [(f"order: {o}", s) for o, s in (res.get("by_order") or {}).items()] + \
        [(f"scene: {sc}", s) for sc, s in (res.get("by_scene") or {}).items()]
    for title, summ in blocks:
        lines += ["", f"**{title}**", "", head, rule]
        for m, s in summ.items():
            w, mean, worst = s["worst_split_metrics"], s["mean"], s["worst"]
            lines.append(f"| {m} | {s['worst_split']} | {_prf(w)} | {w['f1']:.3f} | {_prf(mean)} | "
                         f"{mean['f1']:.3f} | {worst['precision']:.1%} | {worst['recall']:.1%} | "
                         f"{worst['false_alarms_per_1000']:.1f} |")
    far = (res.get("threshold_ratios") or {}).get("farthest")
    if far:
        lines += ["", f"Thresholds of the renamed references against time order (default fusion's branches): "
                      f"farthest {far['ratio']:.3f}x ({far['branch']}, {far['dataset']})."]
    return "\n".join(lines)
