"""Monitoring plots: HSB overlays, statistics over time with their band, embedding projection."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

__all__ = ["plot_hsb_overlay", "plot_checks_over_time", "checks_figure", "plot_embedding_projection", "write_monitor_figures"]


def plot_hsb_overlay(baseline, batch, path, label="batch") -> Path:
    """Mean hue, saturation and brightness histograms: baseline vs a batch."""
    fig, axes = plt.subplots(1, 3, figsize=(11, 2.8))
    for ax, name, b, x in zip(axes, ("hue", "saturation", "brightness"), baseline.mean_hist(), batch.mean_hist()):
        edges = np.arange(len(b) + 1)
        ax.stairs(b, edges, fill=True, alpha=0.5, label="baseline", color="teal")
        ax.stairs(x, edges, fill=True, alpha=0.5, label=label, color="gold")
        ax.set_title(name)
        ax.set_xticks([])
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return Path(path)


def plot_checks_over_time(results: pd.DataFrame, path, checks=None) -> Path:
    """Each ``:mean`` check's z-score per chunk with its ±k band, alerts in red (see :func:`checks_figure`)."""
    fig = checks_figure(results, checks)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return Path(path)


def checks_figure(results: pd.DataFrame, checks=None):
    """The figure of :func:`plot_checks_over_time`: per check, the chunk z-scores, the grey ±k band and, dashed,
    the ``min_change`` floor in the same units (a chunk alerts only outside both, so a point outside the
    band but inside the floor is not an alert), on an axis of whole chunks."""
    from matplotlib.ticker import MaxNLocator
    res = results[results["check"].str.endswith(":mean")]
    checks = checks or list(dict.fromkeys(res["check"]))
    fig, axes = plt.subplots(len(checks), 1, figsize=(9, 1.7 * len(checks) + 0.8), sharex=True, squeeze=False)
    for ax, c in zip(axes[:, 0], checks):
        r = res[res["check"] == c]
        k = float(r["threshold"].iloc[0])
        ax.axhspan(-k, k, color="0.9")
        if "floor" in r and np.isfinite(r["floor"]).any():
            f = float(r["floor"].max())
            if f > 0:
                ax.axhline(f, ls="--", lw=1, color="0.45")
                ax.axhline(-f, ls="--", lw=1, color="0.45")
        ax.plot(r["chunk"], r["statistic"], "-o", ms=3, color="tab:blue")
        al = r[r["alert"]]
        ax.plot(al["chunk"], al["statistic"], "o", color="tab:red", ms=6)
        ax.set_ylabel(c.replace(":mean", ""), fontsize=9, rotation=0, ha="right", va="center")
        ax.tick_params(labelsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[-1, 0].set_xlabel("chunk (z-score of the chunk mean against the baseline's chunks; grey: the ±k band, "
                           "dashed: the min_change floor; red: an alert, outside both)", fontsize=9)
    fig.tight_layout()
    return fig


def plot_embedding_projection(embeddings, batch_ids, path) -> Path:
    """2-D projection of embeddings coloured by batch: UMAP when installed, else PCA."""
    X = np.asarray(embeddings, float)
    try:
        import umap  # optional
        Y = umap.UMAP(random_state=0).fit_transform(X)
        how = "UMAP"
    except ImportError:
        from sklearn.decomposition import PCA
        Y = PCA(n_components=2, random_state=0).fit_transform(X)
        how = "PCA"
    fig, ax = plt.subplots(figsize=(6, 5))
    for b in dict.fromkeys(batch_ids):
        m = np.asarray(batch_ids) == b
        ax.scatter(Y[m, 0], Y[m, 1], s=6, label=str(b))
    ax.legend(fontsize=7, markerscale=2)
    ax.set_title(f"embeddings ({how})")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return Path(path)


def write_monitor_figures(results: pd.DataFrame, baseline, stream, out_dir, *, chunk: int) -> list[Path]:
    """Write the monitoring PNG figures to ``out_dir``: checks over time, HSB overlay and,
    when both profiles hold embeddings, their 2-D projection by chunk; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [plot_checks_over_time(results, out / "checks_over_time.png"),
             plot_hsb_overlay(baseline, stream, out / "hsb_overlay.png", label="stream")]
    if baseline.embeddings is not None and stream.embeddings is not None:
        ids = ["baseline"] * len(baseline.embeddings) + [f"chunk {i // chunk}" for i in range(len(stream.embeddings))]
        paths.append(plot_embedding_projection(np.concatenate([baseline.embeddings, stream.embeddings]), ids,
                                               out / "embeddings.png"))
    return paths
