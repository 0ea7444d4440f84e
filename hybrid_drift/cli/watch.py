"""``watch``: live cameras as a service (the work is :func:`hybrid_drift.watch.service.run_service`'s)."""

from __future__ import annotations

import argparse
import sys
import textwrap
from dataclasses import fields
from pathlib import Path

from .common import EXIT_OK, UsageError, at_least, default, non_negative_float, positive_int, runtime_from

__all__ = ["add"]


def add(sub, parents) -> None:
    from ..watch import HealthSettings, watch
    from ..watch.config import CAMERA_KEYS
    hs = {f.name: f.default for f in fields(HealthSettings)}
    s = sub.add_parser("watch", parents=[parents["common"], parents["runtime"]],
                       help="watch live cameras: scores, stream health, alerts, metrics",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Read RTSP / HTTP(S) MJPEG or HLS streams, video devices, video files or folders "
                                   "that receive new images; score frames with a saved model; check stream health "
                                   "(frozen, blank, disconnect/reconnect, resolution/format, outlier with "
                                   "hysteresis, rolling drift); write events, post alerts, serve metrics. "
                                   "Ctrl-C or SIGTERM stops cleanly with a summary (exit 0).",
                       epilog=textwrap.dedent("""\
                           examples:
                             hybrid-drift watch model/ rtsp://10.0.0.7/stream1 --fps 2 --events events.jsonl
                             hybrid-drift watch model/ http://cam.local/video.mjpg --metrics-port 9108
                             hybrid-drift watch --config cameras.toml --events events.jsonl --webhook https://hooks/x
                           cameras.toml (one [[camera]] table per camera; keys: %s):
                             [[camera]]
                             name = "gate"
                             source = "rtsp://10.0.0.7/stream1"
                             model = "models/gate"
                             fps = 2
                             frozen_seconds = 5""") % ", ".join(CAMERA_KEYS))
    s.add_argument("args", nargs="*", metavar="MODEL SOURCE", help="a model folder, then one or more sources")
    s.add_argument("--config", help="cameras file (TOML): [[camera]] tables with name, source, model and optional "
                                    "per-camera settings")
    s.add_argument("--fps", type=float, default=None, help="score at most N frames per second per camera")
    s.add_argument("--realtime", action="store_true", help="read video files at their own frame rate")
    queue = default(watch, "queue")
    s.add_argument("--queue", type=positive_int, default=queue,
                   help="frames held per camera while scoring is behind; when full the oldest is dropped and "
                        "counted (default %d). An HLS stream arrives a segment at a time: hold at least one "
                        "segment's frames, or score fewer with --fps" % queue)
    s.add_argument("--max-frames", type=positive_int, default=None, help="stop after N scored frames per camera")
    s.add_argument("--events", help="append events to this JSON-lines file (default: alerts on stdout)")
    s.add_argument("--alerts-only", action="store_true", help="no per-frame events")
    s.add_argument("--webhook", help="POST every alert as JSON to this URL (background, retried)")
    s.add_argument("--metrics-port", type=positive_int, default=None, help="serve Prometheus metrics on this port")
    s.add_argument("--metrics-addr", default="127.0.0.1", help="address of the metrics server (default 127.0.0.1)")
    s.add_argument("--frozen-seconds", type=float, default=hs["frozen_seconds"],
                   help=f"frozen alert after S seconds (default {hs['frozen_seconds']:g})")
    settle = default(watch, "settle")
    s.add_argument("--settle-seconds", type=non_negative_float, default=settle,
                   help="skip the first S seconds of a stream after each (re)connection, while its decoder "
                        f"waits for a key frame (default {settle:g})")
    s.add_argument("--outlier-k", type=positive_int, default=hs["outlier_k"],
                   help="outlier alert when K of the last N frames ...")
    s.add_argument("--outlier-n", type=positive_int, default=hs["outlier_n"],
                   help=f"... are flagged (default {hs['outlier_k']} of {hs['outlier_n']})")
    s.add_argument("--drift-window", type=at_least(2), default=hs["drift_window"],
                   help=f"frames per drift check (default {hs['drift_window']})")
    s.add_argument("--mqtt", metavar="URL", default=None,
                   help="publish alerts and per-camera states to an MQTT broker, with Home Assistant discovery: "
                        "mqtt://[user:password@]host[:port]/prefix (mqtts:// for TLS)")
    s.add_argument("--snapshots", metavar="DIR", default=None,
                   help="write the frame that opened each alert (and an outlier's heat map) as JPEG here; the "
                        "path is in the event (default: EVENTS-snapshots/ next to --events)")
    s.add_argument("--no-drift", action="store_true", help="no rolling drift check")
    s.set_defaults(fn=run)


def run(a) -> int:
    from ..watch import HealthSettings, read_config
    from ..watch.config import CameraSpec
    from ..watch.service import run_service, summary_lines
    from ..watch.sinks import Sinks
    if a.config:
        if a.args:
            raise UsageError("give either --config FILE or MODEL SOURCE..., not both")
        specs = read_config(a.config)
    else:
        if len(a.args) < 2:
            raise UsageError("watch needs MODEL SOURCE [SOURCE ...] (or --config cameras.toml)")
        model, sources = a.args[0], a.args[1:]
        specs = [CameraSpec(f"cam{i}" if len(sources) > 1 else "cam0", src, model) for i, src in enumerate(sources)]
    try:
        settings = HealthSettings(frozen_seconds=a.frozen_seconds, outlier_k=a.outlier_k, outlier_n=a.outlier_n,
                                  drift_window=a.drift_window)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    # a JPEG of the frame behind each alert: --snapshots DIR, else next to the events file
    snapshots = a.snapshots or (str(Path(a.events).with_name(Path(a.events).stem + "-snapshots")) if a.events else None)
    sinks = Sinks(events=a.events, webhook=a.webhook, metrics_port=a.metrics_port, metrics_addr=a.metrics_addr,
                  mqtt=a.mqtt, cameras=[sp.name for sp in specs], echo=lambda line: print(line, flush=True))
    res = run_service(specs, sinks, runtime=runtime_from(a), settings=settings, fps=a.fps, realtime=a.realtime,
                      max_frames=a.max_frames, queue=a.queue, drift=not a.no_drift, frame_events=not a.alerts_only,
                      settle=a.settle_seconds, snapshots=snapshots)
    for line in summary_lines(res):
        print(line, file=sys.stderr)
    return EXIT_OK
