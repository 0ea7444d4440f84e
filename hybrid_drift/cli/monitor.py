"""``monitor``: batch drift of a stream against a baseline, chunk by chunk."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path

from .common import (EXIT_CONSTRAINT, EXIT_OK, UsageError, check_nonempty, non_negative_int, positive_int,
                     runtime_from)

__all__ = ["add"]


def add(sub, parents) -> None:
    from ..monitor import DriftMonitor
    s = sub.add_parser("monitor", parents=[parents["common"], parents["runtime"]],
                       help="batch drift of a stream against a baseline",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Per-chunk drift of STREAM against BASELINE (folders in time order, or "
                                   "videos), with alert thresholds set from the baseline's own "
                                   "chunk-to-chunk variation.",
                       epilog=textwrap.dedent("""\
                           examples:
                             hybrid-drift monitor frames/last_week frames/today --chunk 50 --report build/monitor
                             hybrid-drift monitor baseline.mp4 today.mp4 --config constraints.json --json
                           constraints file (JSON), all keys optional:
                             {"chunk": 50, "k": "auto", "alpha": 0.05, "max_alert_chunks": 0, "semantic": false,
                              "features": ["brightness_mean", "saturation_mean"], "stats": ["psi"],
                              "metadata": ["format", "mode", "resolution"]}
                           exit code 1 when more than max_alert_chunks chunks alert (a constraint only when the
                           file or --max-alert-chunks sets it: alerts alone exit 0)."""))
    s.add_argument("baseline", help="normal images (folder, video, files)")
    s.add_argument("stream", help="images to monitor, in time order (folder, video)")
    chunk = DriftMonitor.chunk
    s.add_argument("--chunk", type=positive_int, default=chunk, help=f"images per chunk (default {chunk})")
    s.add_argument("--chunk-by", choices=["hour", "day"], default=None,
                   help="cut the stream into calendar hours or days (UTC) instead of --chunk images; needs a time "
                        "per image (--times); the baseline's bands still come from chunks of --chunk images")
    s.add_argument("--times", choices=["auto", "time", "exif", "mtime"], default="auto",
                   help="where --chunk-by reads each image's time: auto (a manifest's time column, else EXIF), time, "
                        "exif, mtime (file modification time)")
    s.add_argument("--config", help="constraints file (JSON)")
    s.add_argument("--max-alert-chunks", type=non_negative_int, default=None, metavar="N",
                   help="a constraint: exit 1 when more than N chunks alert (default: none; alerts alone exit 0)")
    s.add_argument("--semantic", action="store_true", help="also test CNN embeddings (slower)")
    s.add_argument("--out", help="write every check of every chunk as CSV")
    s.add_argument("--json", action="store_true", help="print a JSON summary")
    s.add_argument("--report", help="write plots and monitor.csv to this folder")
    s.set_defaults(fn=monitor)


#: the DriftMonitor settings a constraints file may set (and max_alert_chunks, the constraint)
_MONITOR_ARGS = ("chunk", "k", "alpha", "features", "stats", "metadata", "semantic", "n_clusters", "min_change",
                 "layout")


def _config(a) -> dict:
    """The monitor settings (constraints file over defaults, --chunk over both), every value checked
    before any image is read: a wrong type fails here with the file and key, not after the run."""
    keys = set(_MONITOR_ARGS) | {"max_alert_chunks"}
    # no constraint unless one is asked for (a constraints file, --max-alert-chunks): exit 1 is for those only
    cfg = {"chunk": a.chunk, "k": "auto", "max_alert_chunks": None, "semantic": a.semantic}
    if a.config:
        try:
            user = json.loads(Path(a.config).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise UsageError(f"{a.config}: cannot read the constraints file ({exc})") from exc
        if not isinstance(user, dict):
            raise UsageError(f"{a.config}: the constraints file must hold a JSON object, got {type(user).__name__}")
        unknown = set(user) - keys
        if unknown:
            raise UsageError(f"{a.config}: unknown keys {sorted(unknown)}; allowed: {sorted(keys)}")
        cfg.update(user)
        if "--chunk" in (a.argv or []):
            cfg["chunk"] = a.chunk
        cfg["semantic"] = cfg["semantic"] or a.semantic
    if a.max_alert_chunks is not None:
        cfg["max_alert_chunks"] = a.max_alert_chunks
    where = a.config or "--chunk"
    m = cfg["max_alert_chunks"]
    if m is not None and (isinstance(m, bool) or not isinstance(m, int) or m < 0):
        raise UsageError(f"{where}: max_alert_chunks must be an int >= 0, got {m!r}")
    for key in ("semantic", "layout"):
        if key in cfg and not isinstance(cfg[key], bool):
            raise UsageError(f"{where}: {key} must be true or false, got {cfg[key]!r}")
    for key in ("features", "stats", "metadata"):
        if key in cfg and not (isinstance(cfg[key], list) and all(isinstance(v, str) for v in cfg[key])):
            raise UsageError(f"{where}: {key} must be a list of names, got {cfg[key]!r}")
    try:
        _monitor(cfg).validate()
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{where}: {exc}") from exc
    return cfg


def _monitor(cfg: dict):
    from ..monitor import DriftMonitor
    return DriftMonitor(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in cfg.items() if k in _MONITOR_ARGS})


def _by_time(a):
    """The stream's images in time order, and its chunks by calendar period (UsageError when a time is missing)."""
    from ..io import expand_inputs
    from ..io.order import input_times
    from ..monitor.drift import time_bounds
    items = expand_inputs([a.stream])
    times = input_times(items, a.times)
    missing = [it.id for it, t in zip(items, times) if t is None]
    if missing:
        raise UsageError(f"--chunk-by {a.chunk_by} needs a time for every image ({a.times}); {missing[0]} has none "
                         f"({len(missing)} of {len(items)}): try --times mtime, or a manifest with a time column")
    order = sorted(range(len(items)), key=lambda i: times[i])
    bounds, labels = time_bounds([times[i] for i in order], a.chunk_by)
    print(f"stream: {len(items)} images in {len(bounds)} {a.chunk_by}s ({labels[0]} to {labels[-1]})",
          file=sys.stderr)
    return [items[i] for i in order], bounds, labels


def monitor(a) -> int:
    from ..monitor import DriftMonitor, profile_images
    cfg = _config(a)
    embedder = None
    if cfg["semantic"]:
        from ..branches import CNNBranch
        embedder = CNNBranch(pool="avg", layers=("head",), image_size=224).bind(runtime_from(a))
    for x in (a.baseline, a.stream):
        check_nonempty([x], "images")
    base = profile_images(a.baseline, embedder=embedder, workers=a.workers, progress=a.progress)
    bounds = labels = None
    if a.chunk_by:
        items, bounds, labels = _by_time(a)
        stream = profile_images(items, embedder=embedder, workers=a.workers, progress=a.progress)
    else:
        stream = profile_images(a.stream, embedder=embedder, workers=a.workers, progress=a.progress)
    mon = _monitor(cfg).fit(base)
    res = mon.run(stream, bounds=bounds, labels=labels)
    summ = DriftMonitor.summary(res)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        from ..io.outputs import atomic_write_bytes
        atomic_write_bytes(a.out, res.to_csv(index=False).encode())
    n_alert = int((summ["alerts"] > 0).sum())
    first = summ.loc[summ["alerts"] > 0, "chunk"].min() if n_alert else None
    why = mon.explain(res, stream)
    if a.json:
        from ..watch.wire import jsonable
        print(json.dumps(jsonable({"chunks": len(summ), "alert_chunks": n_alert,
                                "first_alert_chunk": None if first is None else int(first),
                                "per_chunk": summ.to_dict(orient="records"), "alerts": why})))
    else:
        print(summ.to_string(index=False))
        for w in why:
            print(f"\nchunk {w['chunk']} (images {w['start']}-{w['stop'] - 1}):")
            for c in w["checks"]:
                print(f"  {c['check']}: {c['statistic']:.3g} (band {c['threshold']:.3g}); moved most by "
                      + ", ".join(Path(i["path"]).name for i in c["images"][:5]))
        print(f"\n{n_alert} of {len(summ)} chunks alerted" +
              (f" (first: chunk {first})" if n_alert else ""), file=sys.stderr)
    if a.report:
        from ..report import monitor_report
        page = monitor_report(res, base, stream, Path(a.report) / "report.html", chunk=cfg["chunk"], why=why)
        res.to_csv(page.parent / "monitor.csv", index=False)
        print(f"report: {page}", file=sys.stderr)
    if cfg["max_alert_chunks"] is not None and n_alert > cfg["max_alert_chunks"]:
        print(f"constraint failed: {n_alert} chunks alerted > max_alert_chunks {cfg['max_alert_chunks']}",
              file=sys.stderr)
        return EXIT_CONSTRAINT
    return EXIT_OK
