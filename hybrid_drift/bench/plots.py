"""Plots for benchmark results: score distributions, PR curves, per-kind recall, thumbnails."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import precision_recall_curve  # noqa: E402

__all__ = ["write_bench_figures", "plot_score_distribution", "plot_pr_curves",
           "plot_kind_heatmap"]

_MAIN = ("colour", "cnn", "fusion_or", "fusion_logistic")


def plot_score_distribution(frames: pd.DataFrame, method: str, threshold: float, path) -> Path:
    """Histogram of one method's test scores, normals vs outliers, with its threshold."""
    s = frames[method].to_numpy(dtype=float)
    y = frames["label"].to_numpy()
    ok = np.isfinite(s)
    fig, ax = plt.subplots(figsize=(7, 3.2))
    lo, hi = np.nanmin(s[ok]), np.nanmax(s[ok])
    log = lo > 0 and hi / max(lo, 1e-12) > 50
    bins = np.geomspace(lo, hi, 50) if log else np.linspace(lo, hi, 50)
    ax.hist(s[ok & (y == 0)], bins=bins, alpha=0.7, label="normal", color="tab:blue")
    ax.hist(s[ok & (y == 1)], bins=bins, alpha=0.7, label="outlier", color="tab:red")
    ax.axvline(threshold, color="k", ls="--", label=f"threshold {threshold:.3g}")
    if log:
        ax.set_xscale("log")
    ax.set_xlabel(f"{method} score (higher = stranger)")
    ax.set_ylabel("test images")
    ax.legend(fontsize=8)
    ax.set_title(f"{method}: test score distribution")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return Path(path)


def plot_pr_curves(frames: pd.DataFrame, methods, path) -> Path:
    """Precision-recall curves of the given methods on the test split."""
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    y = frames["label"].to_numpy()
    for m in methods:
        s = frames[m].to_numpy(dtype=float)
        ok = np.isfinite(s)
        p, r, _ = precision_recall_curve(y[ok], s[ok])
        ax.plot(r, p, label=m)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8, loc="lower left")
    ax.set_title("precision-recall (test)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return Path(path)


def plot_kind_heatmap(per_kind: dict, methods, path) -> Path:
    """Recall per outlier kind (rows) and method (columns)."""
    kinds = sorted({k for m in methods for k in per_kind.get(m, {})})
    mat = np.array([[per_kind.get(m, {}).get(k, np.nan) for m in methods] for k in kinds])
    fig, ax = plt.subplots(figsize=(1.3 * len(methods) + 2.5, 0.35 * len(kinds) + 1.2))
    im = ax.imshow(mat, vmin=0, vmax=1, cmap="RdYlGn", aspect="auto")
    ax.set_xticks(range(len(methods)), methods, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(kinds)), kinds, fontsize=8)
    for i in range(len(kinds)):
        for j in range(len(methods)):
            if np.isfinite(mat[i, j]):
                ax.text(j, i, f"{mat[i, j]:.0%}", ha="center", va="center", fontsize=7)
    fig.colorbar(im, ax=ax, fraction=0.03)
    ax.set_title("recall per kind of outlier (test)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return Path(path)


def write_bench_figures(res: dict, frames: pd.DataFrame, out_dir) -> list[Path]:
    """Write the benchmark's PNG figures to ``out_dir`` (score distributions, PR curves,
    per-kind recall); returns their paths in page order."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [plot_score_distribution(frames, m, res["thresholds"][m], out / f"scores_{m}.png")
             for m in ("colour", "cnn") if m in frames]
    methods = [m for m in ("minmax", *_MAIN) if m in frames]
    methods += [m for m in frames.columns if m.startswith("cnn_") and not m.endswith("_pred")]
    paths.append(plot_pr_curves(frames, methods, out / "pr_curves.png"))
    paths.append(plot_kind_heatmap(res["per_kind_recall"], methods, out / "per_kind_recall.png"))
    return paths
