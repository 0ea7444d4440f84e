"""``score`` (a table of every input) and ``report`` (the same, as one HTML page)."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from .common import (EXIT_CONSTRAINT, examples, EXIT_OK, UsageError, check_nonempty, is_dataset, load_inputs, positive_int,
                     ray_engine, ray_kw, runtime_from)

__all__ = ["add"]

log = logging.getLogger("hybrid_drift.cli")


def add(sub, parents) -> None:
    from ..io.outputs import TABLE_FORMATS
    common, engine, runtime = parents["common"], parents["engine"], parents["runtime"]
    scoring = parents["scoring"] = _scoring_parent()
    s = sub.add_parser("score", parents=[common, scoring, engine, runtime], help="score images with a saved detector",
                       **examples("hybrid-drift score model/ frames/today --out scores.csv --max-outliers 0",
                                  "hybrid-drift score model/ camera.mp4 --video-step 25 --out video.parquet",
                                  "hybrid-drift score model/ frames/today --report today.html --explain overlays/",
                                  "hybrid-drift score model/ /data/cam12 --engine ray --address auto --out job/"),
                       description="One row per input: path, branch scores, fused, is_outlier, error. "
                                   "With --engine ray: a resumable job folder of Parquet parts.")
    s.add_argument("--out", help=f"write the table ({' or '.join(TABLE_FORMATS)}); default: CSV on stdout. "
                                 "--engine ray: the job folder (re-run the same command to resume)")
    s.add_argument("--part-size", type=positive_int, default=1000,
                   help="--engine ray: inputs per part, the unit of retry and resume (default 1000)")
    s.add_argument("--overwrite", action="store_true",
                   help="--engine ray: start afresh when --out holds a different job")
    s.add_argument("--json", action="store_true", help="print a JSON summary instead of text")
    s.add_argument("--max-outliers", type=int, default=None, help="exit 1 when more outliers are found")
    s.add_argument("--report", help="write a self-contained HTML report (a .html path or a folder)")
    s.add_argument("--explain", metavar="DIR", default=None,
                   help="write a heat-map overlay (PNG) of every flagged image to DIR, named after its row")
    s.add_argument("--explain-arrays", action="store_true", help="with --explain: also each map as .npy")
    s.add_argument("--chunk", type=positive_int, default=1024,
                   help="images per chunk when streaming to a CSV --out (memory stays flat)")
    s.set_defaults(fn=score)

    s = sub.add_parser("report", parents=[common, scoring, runtime],
                       **examples("hybrid-drift report model/ frames/today --out today.html",
                                  "hybrid-drift report model/ build/crossroad --split test --out build/report.html"),
                       help="score images and write a self-contained HTML report",
                       description="Score INPUT with a saved model and write one HTML file (images embedded).")
    s.add_argument("--out", required=True, help="report path (.html) or folder")
    s.set_defaults(fn=report)


def _scoring_parent():
    import argparse
    scoring = argparse.ArgumentParser(add_help=False)  # shared by score and report
    scoring.add_argument("model", help="model folder written by 'fit'")
    scoring.add_argument("inputs", nargs="+", help="images, folders, videos, or a dataset folder with --split")
    scoring.add_argument("--split", choices=["train", "val", "test"], default=None)
    scoring.add_argument("--video-step", type=positive_int, default=1,
                         help="score every N-th frame of videos (default 1)")
    return scoring


def report(a) -> int:
    a.report, a.json, a.max_outliers, a.chunk = a.out, False, None, 1024
    a.explain = None
    a.out = None
    return score(a, quiet_table=True)


def score(a, quiet_table: bool = False) -> int:
    from ..io.outputs import TABLE_FORMATS, OutputBusyError, stream_csv, write_table
    if getattr(a, "engine", "local") == "ray":
        return _score_on_ray(a)
    if a.cmd == "score" and a.out and Path(a.out).suffix.lower() not in TABLE_FORMATS:
        raise UsageError(f"--out {a.out}: unknown table format {Path(a.out).suffix or '(no extension)'!r}; "
                         f"write {' or '.join(TABLE_FORMATS)}")
    from ..detector import HybridDetector
    det = HybridDetector.load(a.model, runtime=runtime_from(a))
    inputs, labels = load_inputs(a.inputs, a.split)
    kinds = None
    if labels is not None:
        from ..datasets import read_manifest
        kinds = read_manifest(a.inputs[0]).split(a.split)["kind"].tolist()
    items = check_nonempty(inputs, "images to score", getattr(a, "video_step", 1))
    explain_dir = getattr(a, "explain", None)

    def parts():
        """Score tables chunk by chunk; with --explain, overlays of the flagged rows are written as they come."""
        row = 0
        for got in det.score_iter(items, chunk=a.chunk, explain=bool(explain_dir)):
            part = got
            if explain_dir:
                from ..explain import write_explanations
                part, ex = got
                for i, png in write_explanations(ex, items[row:row + len(part)], explain_dir, arrays=a.explain_arrays,
                                                 first_row=row):
                    log.info("explained row %d: %s", i, png)
            row += len(part)
            yield part

    try:
        if a.out and not a.report and Path(a.out).suffix != ".parquet":
            try:  # stream: constant memory whatever the number of images; whole or visibly partial
                c = stream_csv(parts(), a.out)
            except KeyboardInterrupt as exc:
                print(f"interrupted: {getattr(exc, 'rows', 0)} of {len(items)} rows in {getattr(exc, 'partial', '?')} "
                      f"(incomplete; {a.out} not written)", file=sys.stderr)
                raise
            return _summary(a, c.rows, c.outliers, c.errors)
        import pandas as pd
        table = pd.concat(list(parts()), ignore_index=True)
        if a.report:
            from ..report import score_report
            print(f"report: {score_report(table, det, a.report, labels=labels, kinds=kinds, items=items)}",
                  file=sys.stderr)
        if a.out:
            write_table(table, a.out)
    except OutputBusyError as exc:
        raise UsageError(str(exc)) from exc
    if not a.out and not quiet_table and not a.json:
        print(table.to_csv(index=False), end="")
    return _summary(a, len(table), int(table["is_outlier"].fillna(False).sum()), int(table["error"].notna().sum()))


def _score_on_ray(a) -> int:
    if not a.out:
        raise UsageError("--engine ray writes a job folder: give --out DIR")
    if a.report:
        raise UsageError("--report is not available with --engine ray; run 'hybrid-drift report' on a sample")
    if a.split is not None or is_dataset(a.inputs):
        raise UsageError("--engine ray scores files, folders and videos (not a dataset split)")
    eng = ray_engine()
    from ..scale.parts import JobMismatchError
    try:
        res = eng.score_ray(a.model, a.inputs, a.out, part_size=a.part_size, video_step=a.video_step,
                            overwrite=a.overwrite, runtime=runtime_from(a), **ray_kw(a))
    except JobMismatchError as exc:
        raise UsageError(str(exc)) from exc
    except KeyboardInterrupt:
        done = len(list((Path(a.out) / "parts").glob("part-*.parquet")))
        print(f"interrupted: {done} parts on disk in {a.out}; run the same command again to resume",
              file=sys.stderr)
        raise
    print(f"{res.n_parts} parts ({res.skipped_parts} already done, {res.scored_parts} scored on "
          f"{res.actors or 0} actors) in {res.seconds:.1f} s", file=sys.stderr)
    return _summary(a, res.n_inputs, res.n_outliers, res.n_errors)


def _summary(a, n: int, n_out: int, n_err: int) -> int:
    if a.json:
        print(json.dumps({"n": n, "outliers": n_out, "errors": n_err, "out": a.out}))
    else:
        print(f"scored {n} inputs: {n_out} outliers, {n_err} unreadable"
              + (f"; table written to {a.out}" if a.out else ""), file=sys.stderr)
    if a.max_outliers is not None and n_out > a.max_outliers:
        print(f"constraint failed: {n_out} outliers > --max-outliers {a.max_outliers}", file=sys.stderr)
        return EXIT_CONSTRAINT
    return EXIT_OK
