"""Self-contained HTML reports (images embedded, no network needed) for score, bench and monitor.

Pages are rendered from a Jinja2 template; plots are matplotlib figures and
thumbnails are JPEGs, all embedded as base64 ``data:`` URIs, so one ``.html`` file
can be mailed to a colleague.
"""

from __future__ import annotations

import base64
import datetime as _dt
import io
from html import escape
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from jinja2 import Environment, select_autoescape  # noqa: E402

from ._version import __version__  # noqa: E402

__all__ = ["Section", "render_report", "score_report", "bench_report", "write_bench_report", "monitor_report", "png_uri",
           "thumb_uri"]


def png_uri(fig) -> str:
    """A matplotlib figure as a ``data:image/png;base64,...`` URI (the figure is closed)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def thumb_uri(src, size=(192, 144)) -> str | None:
    """A small JPEG thumbnail as a data URI (None if unreadable).

    ``src``: an :class:`~hybrid_drift.io.InputItem` (what to decode is typed: a path, a
    video frame, an array) or a path.
    """
    import cv2

    from .io import load_images
    from .io.sources import InputItem
    item = src if isinstance(src, InputItem) else InputItem(str(src), str(src))
    img = next(iter(load_images([item], reduce="auto")))[0]
    if not img.ok:
        return None
    t = cv2.resize(img.rgb, size, interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(t, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80])
    return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode() if ok else None


def _item(src):
    from .io.sources import InputItem
    return src if isinstance(src, InputItem) else InputItem(str(src), str(src))


def overlay_uris(detector, srcs, captions) -> list[tuple[str, str]]:
    """``(data URI, caption)`` of each image with its fused heat map on top (one explain pass);
    the caption gets the branch the map comes from. Unreadable images are left out."""
    return [(u, f"{cap} · heat map: {branch}") for (u, branch, _), cap in zip(_overlays(detector, srcs), captions)
            if u]


def _overlays(detector, srcs, width: int = 192) -> list[tuple[str | None, str | None, str | None]]:
    """Per input, ``(data URI of the image with its fused heat map, the branch the map comes from, data URI
    of the image as it is)`` from one decode and one explain pass; None where an image cannot be read
    (or, for the first two, has no map)."""
    import cv2

    from .explain import overlay
    from .io import load_images
    items = [_item(x) for x in srcs]
    if not items:
        return []
    _, explained = detector.score(items, explain=True)

    def jpeg(rgb):
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80])
        return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode() if ok else None

    out = []
    for (img, _), e in zip(load_images(items, reduce="auto", min_side=288), explained):
        if not img.ok:
            out.append((None, None, None))
            continue
        h, w = img.rgb.shape[:2]
        raw = jpeg(cv2.resize(img.rgb, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA))
        uri = jpeg(overlay(img.rgb, e.heatmap, width=width)) if e.heatmap is not None else None
        out.append((uri, e.branch if uri else None, raw))
    return out


@dataclass
class Section:
    """One part of a report: a title, a paragraph, figures, a table and thumbnails."""

    title: str
    text: str = ""
    figures: list[str] = field(default_factory=list)  # data URIs
    table: str = ""  # HTML table (escaped by pandas)
    thumbs: list[tuple[str, str]] = field(default_factory=list)  # (data URI, caption)


_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>
body{font-family:system-ui,sans-serif;max-width:1150px;margin:1.5em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{font-size:1.2em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 7px}
th{background:#f4f4f4}.summary{display:flex;gap:1em;flex-wrap:wrap}
.card{background:#f6f8fa;border-radius:6px;padding:.6em 1em}.card b{font-size:1.4em;display:block}
.thumbs{display:flex;flex-wrap:wrap;gap:8px}.thumbs figure{margin:0;width:196px;font-size:.75em}
.thumbs img{width:192px;border:2px solid #c33}img.plot{max-width:100%}
footer{margin-top:2em;color:#777;font-size:.8em}
</style></head><body>
<h1>{{ title }}</h1>
<div class="summary">{% for label, value in cards %}<div class="card"><b>{{ value }}</b>{{ label }}</div>{% endfor %}</div>
{% for s in sections %}<section><h2>{{ s.title }}</h2>
{% if s.text %}<p>{{ s.text }}</p>{% endif %}
{% for f in s.figures %}<img class="plot" src="{{ f }}" alt="{{ s.title }}">{% endfor %}
{% if s.table %}{{ s.table | safe }}{% endif %}
{% if s.thumbs %}<div class="thumbs">{% for uri, cap in s.thumbs %}<figure><img src="{{ uri }}" alt="{{ cap }}"><figcaption>{{ cap }}</figcaption></figure>{% endfor %}</div>{% endif %}
</section>{% endfor %}
<footer>hybrid_drift {{ version }} · {{ date }}</footer>
</body></html>"""


def _html_path(out) -> Path:
    """``out`` itself when it names an .html file, else ``out/report.html``; parent created."""
    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        out = out / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


def _file_uri(png: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(png).read_bytes()).decode()


def render_report(title: str, cards: list[tuple[str, str]], sections: list[Section], out) -> Path:
    """Write one self-contained HTML file; returns its path (``out`` may be a folder)."""
    out = _html_path(out)
    env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
    html = env.from_string(_TEMPLATE).render(title=title, cards=cards, sections=sections, version=__version__,
                                             date=_dt.datetime.now().strftime("%Y-%m-%d %H:%M"))
    out.write_text(html, encoding="utf-8")
    return out


def _hist_fig(scores, threshold, name, labels=None):
    s = np.asarray(scores, float)
    ok = np.isfinite(s)
    fig, ax = plt.subplots(figsize=(6.5, 2.8))
    if ok.any():
        lo, hi = s[ok].min(), s[ok].max()
        bins = np.linspace(lo, hi if hi > lo else lo + 1, 40)
        if labels is not None:
            y = np.asarray(labels)
            ax.hist(s[ok & (y == 0)], bins=bins, alpha=0.7, label="normal")
            ax.hist(s[ok & (y == 1)], bins=bins, alpha=0.7, label="outlier", color="tab:red")
        else:
            ax.hist(s[ok], bins=bins, alpha=0.8)
    if threshold is not None and np.isfinite(threshold):
        ax.axvline(threshold, color="k", ls="--", label=f"threshold {threshold:.3g}")
    ax.set_xlabel(f"{name} score (higher = stranger)")
    ax.legend(fontsize=8)
    return fig


def _time_fig(table: pd.DataFrame, branch_names, thresholds):
    fig, axes = plt.subplots(len(branch_names), 1, figsize=(9, 1.9 * len(branch_names) + 0.4), sharex=True,
                             squeeze=False)
    x = np.arange(len(table))
    out = table["is_outlier"].fillna(False).to_numpy(dtype=bool)
    for ax, b in zip(axes[:, 0], branch_names):
        s = table[b].to_numpy(dtype=float)
        ax.plot(x, s, lw=0.8, color="tab:blue")
        ax.plot(x[out], s[out], "o", ms=3, color="tab:red", label="outlier (fused)")
        if thresholds.get(b) is not None:
            ax.axhline(thresholds[b], color="k", ls="--", lw=0.8)
        ax.set_ylabel(b)
    axes[0, 0].legend(fontsize=8, loc="upper left")
    axes[-1, 0].set_xlabel("image index (input order)")
    return fig


def score_report(table: pd.DataFrame, detector, out, *, labels=None, kinds=None, top_k: int = 12,
                 title: str = "hybrid_drift: outlier report", items=None) -> Path:
    """Report for a scored table (``HybridDetector.score`` output).

    Parameters
    ----------
    table : DataFrame
        From :meth:`HybridDetector.score`.
    detector : HybridDetector
        For branch names and thresholds.
    labels, kinds : array-like, optional
        Ground truth (0/1) and outlier kind per row: adds per-kind recall and PR curves.
    top_k : int
        Thumbnails of the most outlying images.
    items : list of InputItem, optional
        The scored inputs, one per row in order (thumbnails of video frames and
        arrays need them; without them rows are read as paths).
    """
    from sklearn.metrics import precision_recall_curve
    names = [b.name for b in detector.branches_]
    thr = {b.name: b.calibration_.threshold for b in detector.branches_}
    n = len(table)
    errors = table[table["error"].notna()]
    outl = table[table["is_outlier"].fillna(False).astype(bool)]
    cards = [("images", str(n)), ("outliers", str(len(outl))), ("unreadable", str(len(errors))),
             ("fusion", detector.fusion)]
    sections = [Section("Summary", f"{n} inputs scored by branches {', '.join(names)} with {detector.fusion} "
                                   f"fusion; {len(outl)} flagged as outliers, {len(errors)} could not be read."),
                _reference_section(detector.reference_summary(),
                                   {b.name: b.calibration_.threshold for b in detector.branches_})]
    sections.append(Section("Score distributions", "Each branch's scores with its calibrated threshold.",
                            [png_uri(_hist_fig(table[b], thr[b], b, labels)) for b in names]))
    sections.append(Section("Scores over time", "Branch scores in input order; red dots are fused outliers.",
                            [png_uri(_time_fig(table, names, thr))]))
    top = table[table["error"].isna()].sort_values("fused", ascending=False).head(top_k)
    thumbs, flagged_srcs, flagged_caps = [], [], []
    for i, r in top.iterrows():  # the table's index is the input's position
        src = items[i] if items is not None else r["path"]
        flagged = [b for b in names if bool(r.get(f"{b}_flag", False))]
        cap = f"{Path(str(r['path'])).name} · {r.get('fused_x', float('nan')):.2f}× threshold · " + \
              (("flagged by " + ", ".join(flagged)) if flagged else "not flagged")
        if bool(r["is_outlier"]):  # flagged: the heat map shows where
            flagged_srcs.append(src)
            flagged_caps.append(cap)
        else:
            uri = thumb_uri(src)
            if uri:
                thumbs.append((uri, cap))
    thumbs = overlay_uris(detector, flagged_srcs, flagged_caps) + thumbs
    sections.append(Section(f"Top {len(thumbs)} images by fused score",
                            "Which branch flagged each one is in the caption, with its fused score in threshold units "
                            "(1.0 is on the threshold); flagged images carry their heat map (brighter = stranger; the "
                            "cross marks the hottest point).", thumbs=thumbs))
    sections.append(_flagged_section(table, detector, names, items))
    if labels is not None:
        y = np.asarray(labels).astype(int)
        pred = table["is_outlier"].fillna(False).to_numpy(dtype=int)
        fig, ax = plt.subplots(figsize=(5, 4))
        for col in [*names, "fused"]:
            s = table[col].to_numpy(dtype=float)
            ok = np.isfinite(s)
            if len(np.unique(y[ok])) == 2:
                p, r, _ = precision_recall_curve(y[ok], s[ok])
                ax.plot(r, p, label=col)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.legend(fontsize=8)
        per_kind = pd.DataFrame({"kind": kinds if kinds is not None else ["outlier"] * n, "y": y, "pred": pred})
        pk = per_kind[per_kind["y"] == 1].groupby("kind")["pred"].agg(["mean", "count"]).rename(
            columns={"mean": "recall", "count": "n"})
        sections.append(Section("Against the labels", "Precision-recall curves and recall per kind of outlier.",
                                [png_uri(fig)], pk.to_html(float_format=lambda v: f"{v:.0%}")))
    if len(errors):
        sections.append(Section("Files that could not be read", "",
                                table=errors[["path", "error"]].to_html(index=False)))
    return render_report(title, cards, sections, out)


#: flagged images shown with their pictures in the table (the rest are listed without, so a page stays small)
FLAGGED_PICTURES = 500

_FLAGGED_JS = """<script>
(function () {
  const t = document.getElementById('flagged'), sel = document.getElementById('flag-branch'),
        q = document.getElementById('flag-search'), n = document.getElementById('flag-shown');
  function filter() {
    let shown = 0;
    for (const r of t.tBodies[0].rows) {
      const ok = (sel.value === '' || r.dataset.branches.split(' ').includes(sel.value)) &&
                 r.dataset.name.toLowerCase().includes(q.value.toLowerCase());
      r.style.display = ok ? '' : 'none';
      shown += ok;
    }
    n.textContent = shown;
  }
  t.tHead.querySelectorAll('th[data-key]').forEach((th, i) => th.addEventListener('click', () => {
    const key = th.dataset.key, desc = th.dataset.dir !== 'desc';
    th.dataset.dir = desc ? 'desc' : 'asc';
    const rows = Array.from(t.tBodies[0].rows);
    rows.sort((a, b) => {
      const x = a.dataset[key], y = b.dataset[key], nx = parseFloat(x), ny = parseFloat(y);
      const c = isNaN(nx) || isNaN(ny) ? x.localeCompare(y) : nx - ny;
      return desc ? -c : c;
    });
    rows.forEach(r => t.tBodies[0].appendChild(r));
  }));
  sel.addEventListener('change', filter);
  q.addEventListener('input', filter);
  filter();
})();
</script>"""


def _flagged_section(table: pd.DataFrame, detector, names: list[str], items=None) -> Section:
    """Every flagged image in one sortable, filterable table: input position, file, the image as it is
    and with its heat map, the fused score and each branch's in threshold units, the branches that
    flagged it. Sorting and filtering run in the page (no server)."""
    flagged = table[table["is_outlier"].fillna(False).astype(bool)].sort_values("fused", ascending=False)
    pics = flagged.head(FLAGGED_PICTURES)
    srcs = [items[i] if items is not None else r["path"] for i, r in pics.iterrows()]
    pictures = dict(zip(pics.index, _overlays(detector, srcs, width=128)))  # (overlay, branch, image) per row
    head = "".join(f'<th data-key="{k}">{escape(label)} &#x21C5;</th>' for k, label in
                   [("row", "input #"), ("name", "file")]) + "<th>image</th><th>where (heat map)</th>" + \
        "".join(f'<th data-key="x{j}">{escape(c)} &#xD7; threshold &#x21C5;</th>'
                for j, c in enumerate(["fused", *names])) + "<th>flagged by</th>"
    rows = []
    for i, r in flagged.iterrows():
        by = [b for b in names if bool(r.get(f"{b}_flag", False))]
        xs = [r.get(f"{c}_x", np.nan) for c in ["fused", *names]]
        name = Path(str(r["path"])).name
        heat, _, raw = pictures.get(i, (None, None, None))
        img = (lambda u: f'<img src="{u}" alt="{escape(name)}" width="128">' if u else "")
        attrs = " ".join([f'data-row="{i}"', f'data-name="{escape(name)}"', f'data-branches="{" ".join(by)}"'] +
                         [f'data-x{j}="{x:.6g}"' for j, x in enumerate(xs)])
        rows.append(f"<tr {attrs}><td>{i}</td><td>{escape(name)}</td><td>{img(raw)}</td>"
                    f"<td>{img(heat)}</td>" + "".join(f"<td>{x:.2f}</td>" for x in xs) +
                    f"<td>{escape(', '.join(by))}</td></tr>")
    options = '<option value="">every branch</option>' + "".join(
        f'<option value="{escape(b)}">flagged by {escape(b)}</option>' for b in names)
    controls = (f'<p><label>show <select id="flag-branch">{options}</select></label> '
                f'<label>file name contains <input id="flag-search" type="search"></label> '
                f'&#x2014; <span id="flag-shown">{len(flagged)}</span> of {len(flagged)} shown</p>')
    html = controls + f'<table id="flagged"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>' + \
        _FLAGGED_JS
    note = (f" Pictures for the {FLAGGED_PICTURES} strangest; the rest are listed." if len(flagged) > len(pics) else "")
    return Section(f"Every flagged image ({len(flagged)})",
                   "Scores are in threshold units: 1.0 is on the branch's threshold, 2.0 twice as strange as the "
                   "strangest score allowed for normal frames (the raw scores are in the score table). Click a "
                   "column to sort; choose a branch or type part of a name to filter." + note, table=html)


def _reference_section(summary: dict, thresholds: dict) -> Section:
    """What the model was fitted on: reference size, the order used, the order check, the thresholds."""
    from .reference_order import reference_lines
    lines = reference_lines(summary) + [f"threshold of {k}: {v:.4g}" for k, v in thresholds.items()]
    table = "<ul>" + "".join(f"<li>{escape(line)}</li>" for line in lines) + "</ul>"
    return Section("What the model was fitted on", "", table=table)


def _methods_table(res: dict) -> pd.DataFrame:
    """The benchmark's methods as people read them: percentages, counts as whole numbers, and the false
    alarms per 1,000 clean frames (the number that decides a deployment)."""
    rows = []
    for name, r in res["methods"].items():
        rows.append({"method": name, "precision": f"{r['precision']:.1%}", "recall": f"{r['recall']:.1%}",
                     "F1": f"{r['f1']:.3f}", "AUROC": f"{r['auroc']:.3f}", "false alarms": int(r["fp"]),
                     "missed": int(r["fn"]), "false alarms / 1,000 clean": f"{r['false_alarms_per_1000']:.1f}"})
    return pd.DataFrame(rows)


def bench_report(res: dict, frames: pd.DataFrame, out, detector=None) -> Path:
    """Self-contained page for a benchmark result (``run_bench`` output and its per-image frame).

    ``detector``: the fitted default detector; flagged thumbnails then carry heat maps. The
    PNG figures are also written beside the page.
    """
    from .bench.plots import write_bench_figures
    from .branches import DEFAULT_BRANCHES
    out = _html_path(out)
    figs = [_file_uri(p) for p in write_bench_figures(res, frames, out.parent)]
    m = _methods_table(res)
    best = "fusion_or" if "fusion_or" in frames else "cnn"
    y, pred = frames["label"].to_numpy(), frames[f"{best}_pred"].to_numpy()
    miss = frames[(y == 1) & (pred == 0)]
    fa = frames[(y == 0) & (pred == 1)]

    det = detector

    def thumbs(df, flagged=False):
        caps = [f"{k} · {s:.3g}" for k, s in zip(df["kind"], df[best])]
        if flagged and det is not None:  # flagged images carry their heat map
            return overlay_uris(det, list(df["path"]), caps)
        return [(u, c) for u, c in ((thumb_uri(p), c) for p, c in zip(df["path"], caps)) if u]

    default_names = {c.default_name for c in DEFAULT_BRANCHES}  # the default detector's branches
    n = res["n"]
    cards = [("train", str(n["train"])), ("val", str(n["val"])), ("test", str(n["test"])),
             (f"{best} precision", f"{res['methods'][best]['precision']:.1%}"),
             (f"{best} recall", f"{res['methods'][best]['recall']:.1%}")]
    sections = [Section("Methods (test split)", f"{res['date']} · {res['machine']} · backbone {res['backbone']}",
                        table=m.to_html(index=False)),
                _reference_section(res.get("reference") or {}, {k: v for k, v in res.get("thresholds", {}).items()
                                                                  if k in default_names}),
                Section("Plots", "", figs),
                Section(f"{best}: missed outliers ({len(miss)})", thumbs=thumbs(miss)),
                Section(f"{best}: false alarms ({len(fa)})", thumbs=thumbs(fa, flagged=True))]
    hits = frames[(y == 1) & (pred == 1)].sort_values(best, ascending=False)
    if det is not None and len(hits):
        sample = pd.concat([hits[hits["kind"].str.startswith("object")], hits]).drop_duplicates("path").head(12)
        sections.append(Section(f"{best}: flagged outliers with their heat maps (pasted objects first, "
                                f"{len(sample)} of {len(hits)})", thumbs=thumbs(sample, flagged=True)))
    return render_report(f"hybrid_drift benchmark: {res['dataset']}", cards, sections, out)


def monitor_report(results: pd.DataFrame, baseline, stream, out, *, chunk: int, why=None) -> Path:
    """Self-contained page for a monitoring run (``DriftMonitor.run`` output and both profiles).

    ``why``: ``DriftMonitor.explain`` output: each alerting chunk gets a section with the checks
    that fired and thumbnails of the images that moved them most. The PNG figures are also
    written beside the page.
    """
    from .monitor.drift import DriftMonitor
    from .monitor.plots import write_monitor_figures
    summ = DriftMonitor.summary(results)
    n_alert = int((summ["alerts"] > 0).sum())
    out = _html_path(out)
    figs = [_file_uri(p) for p in write_monitor_figures(results, baseline, stream, out.parent, chunk=chunk)]
    cards = [("chunks", str(len(summ))), ("chunks with alerts", str(n_alert)),
             ("baseline images", str(baseline.n_images)), ("stream images", str(stream.n_images))]
    errs = pd.concat([baseline.table, stream.table])
    errs = errs[errs["error"].notna()]
    sections = [Section("Alerts per chunk", "Thresholds come from the baseline's own chunk-to-chunk variation.",
                        table=summ.to_html(index=False)),
                Section("Statistics over time and distributions", "", figs)]
    for w in why or []:
        text = "; ".join(f"{c['check']}: {c['statistic']:.3g} against a band of {c['threshold']:.3g} ({c['detail']})"
                         for c in w["checks"])
        thumbs, seen = [], set()
        for c in w["checks"]:
            for im in c["images"]:
                if im["path"] in seen:
                    continue
                seen.add(im["path"])
                uri = thumb_uri(im["path"])
                if uri:
                    thumbs.append((uri, f"{Path(im['path']).name} · moved {c['check']} by {im['value']:.3g}"))
        sections.append(Section(f"Chunk {w['chunk']} (images {w['start']}-{w['stop'] - 1}): why it alerted",
                                text, thumbs=thumbs[:8]))
    sections.append(Section("All checks", table=results.to_html(index=False, float_format=lambda v: f"{v:.4g}")))
    if len(errs):
        sections.append(Section("Files that could not be read", table=errs[["path", "error"]].to_html(index=False)))
    return render_report("hybrid_drift: drift monitoring", cards, sections, out)


def write_bench_report(res: dict, frames: pd.DataFrame, out_dir, detector=None) -> Path:
    """Write ``results.json``, the PNG figures and a self-contained ``index.html``; returns the HTML path.

    ``detector``: the fitted default detector, for heat maps on the flagged thumbnails. (It lived in
    ``bench/plots.py``, which imported this module back: the report depends on the plots, not the
    other way round.)"""
    import json
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(res, indent=2, default=str))
    return bench_report(res, frames, out / "index.html", detector=detector)
