"""The watch loop: readers in their threads, scoring and health checks here, events out.

:func:`watch` is an iterator of events (dicts), so a service can plug it in; the CLI
(``hybrid-drift watch``) writes them to a JSON-lines file, a webhook and Prometheus.

Event format (one JSON object per line in ``--events``)::

    {"type": "frame", "camera": "gate", "frame": 412, "time": "2026-11-25T17:02:03.120+00:00",
     "stream_time": 41.2, "latency": 0.031, "scores": {"colour": 1.2, "cnn": 0.83}, "fused": -0.7,
     "is_outlier": false, "x_threshold": {"colour": 0.26, "cnn": 0.71, "fused": 0.71}, "error": null}

``x_threshold`` is each score divided by its threshold (1.0 = on the threshold, > 1 = flagged);
``scores`` and ``fused`` are the raw values.
    {"type": "alert", "camera": "gate", "frame": 521, "time": "...", "kind": "frozen",
     "start_frame": 521, "ongoing": true, "start_stream_time": 52.1, "at_frame": 531, "stream_time": 53.1}
    {"type": "alert", ..., "kind": "frozen", "start_frame": 521, "end_frame": 560, "ongoing": false, ...}

``frame`` is the source's frame index (an alert's first frame, or its last when it closes);
``at_frame`` / ``stream_time`` the frame whose arrival raised the alert; ``time`` the
wall-clock time (UTC) that frame was read; ``latency`` the seconds from reading it to the event.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import numpy as np

from .health import CameraHealth, HealthSettings
from .config import CameraSpec
from .readers import Frame, Reader, Status

__all__ = ["watch", "WatchStats", "live_runtime"]

log = logging.getLogger(__name__)

#: frames whose latency the summary's percentiles cover (the most recent ones)
LATENCY_WINDOW = 100_000


def _iso(t: float) -> str:
    return _dt.datetime.fromtimestamp(t, _dt.timezone.utc).isoformat(timespec="milliseconds")


@dataclass
class WatchStats:
    """Counts of a watch (per camera), for the summary and the metrics.

    ``latencies`` holds the seconds from reading a frame to its event for the last
    :data:`LATENCY_WINDOW` scored frames (a watch runs for months: nothing here grows without bound).
    """

    read: dict = field(default_factory=dict)
    scored: dict = field(default_factory=dict)
    dropped: dict = field(default_factory=dict)
    outliers: dict = field(default_factory=dict)
    alerts: dict = field(default_factory=dict)
    latencies: deque = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))


class _Camera:
    def __init__(self, spec: CameraSpec, detector, settings: HealthSettings, *, realtime: bool, queue: int,
                 drift: bool, settle: float, stall: float = 10.0):
        self.spec, self.det = spec, detector
        settings = replace(settings, **spec.health) if spec.health else settings  # the camera's own limits
        settle = settle if spec.settle is None else spec.settle
        self.reader = Reader(spec.name, spec.source, fps=spec.fps, realtime=realtime, queue=queue, settle=settle,
                             stall=stall)
        monitor, ref_res = None, None
        ref = getattr(detector, "reference_profile_", None)
        # live frames are profiled as the model's reference was (0 for models saved before the tolerance)
        self.grey_tolerance = ref.grey_tolerance if ref is not None else 0
        if ref is not None and ref.n_images:
            # every size the reference had (a reference of two sizes: neither pages), not its first frame's
            ref_res = detector.reference_size_set() or None
            if drift and ref.n_images >= 2 * settings.drift_window:
                from ..monitor import DriftMonitor
                # format and mode of a stream are the health checks' business; the rest is the monitor's
                monitor = DriftMonitor(chunk=settings.drift_window, metadata=("resolution",)).fit(ref)
            elif drift:
                log.warning("%s: the model's reference profile has %d images, fewer than 2 x drift_window=%d: "
                            "no drift check", spec.name, ref.n_images, settings.drift_window)
        elif drift:
            log.warning("%s: the model carries no reference profile (fitted by version 0.1, or on features only): "
                        "no drift check; refit it to have one", spec.name)
        self.health = CameraHealth(spec.name, settings, monitor, ref_res)
        self.snapshots = None
        self.last_index = -1
        self.last_t = 0.0


def live_runtime(runtime=None):
    """``runtime`` (default :class:`~hybrid_drift.runtime.Runtime`) as a watch runs it: live frames are
    seen once, so caching their features would only churn the disk (the exported graph stays cached:
    exporting it at every start took 2 s more to the first score and 83 MB more memory); no progress bars."""
    from ..runtime import Runtime
    return (runtime or Runtime()).replace(cache_features=False, progress=False)


def watch(sources, model, *, fps: float | None = None, realtime: bool = False, max_frames: int | None = None,
          queue: int = 8, batch: int = 8, settings: HealthSettings = HealthSettings(), drift: bool = True,
          frame_events: bool = True, stats: WatchStats | None = None, stop=None, settle: float = 1.0,
          runtime=None, stall: float = 10.0, snapshots=None, backend: str | None = None) -> Iterator[dict]:
    """Watch one or more live sources with a saved detector; yields events (dicts) as they happen.

    Parameters
    ----------
    sources : str, CameraSpec, or a list of them
        URLs (rtsp://, http(s):// MJPEG or HLS), video devices (``0``, ``/dev/video0``),
        video files, or folders that receive new image files. Strings get names
        ``cam0``, ``cam1``...
    model : path or HybridDetector
        The detector for sources without their own model (``CameraSpec.model``).
    fps : float, optional
        Score at most this many frames per second per camera (default: every frame).
    realtime : bool
        Read video files at their own frame rate (default: as fast as scoring allows).
    max_frames : int, optional
        Stop after this many scored frames per camera (scripts, tests).
    queue, batch
        Frames held per camera when scoring is behind (the oldest is dropped, and
        counted); frames scored per detector call.
    settings : HealthSettings
        Thresholds of the stream-health checks.
    drift : bool
        Run the rolling drift check (needs a model fitted with this version).
    frame_events : bool
        Yield a ``frame`` event per scored frame (alerts are always yielded).
    stats : WatchStats, optional
        Filled with counts as the watch runs.
    stop : threading.Event, optional
        Set it to end the watch (the iterator closes open alerts and returns).
    settle : float
        Seconds of a stream or device skipped after each (re)connection, while the decoder
        waits for a key frame (default 1; raise it for cameras with long key-frame intervals).
    runtime : Runtime, optional
        How models loaded from a folder run (:class:`~hybrid_drift.runtime.Runtime`); the feature
        cache is always off in a watch (live frames are seen once: caching them would only churn
        the disk). ``backend`` is a shortcut for ``runtime=Runtime(backend=...)``.
    stall : float
        A folder source's entry that has not settled after this many seconds (empty, a broken
        link, unreadable) is reported as an error frame and the folder goes on (FIFOs at once).
    snapshots : path, optional
        Folder for a JPEG of the frame that opened each alert (``snapshot`` in the event) and, for
        ``outlier`` alerts, the frame with the detector's heat map (``heatmap``).
    """
    from ..detector import HybridDetector
    from ..monitor.profile import frame_profile
    specs = [s if isinstance(s, CameraSpec) else CameraSpec(f"cam{i}", str(s), "")
             for i, s in enumerate(sources if isinstance(sources, (list, tuple)) else [sources])]
    models: dict[str, HybridDetector] = {}

    if backend is not None:
        from ..runtime import Runtime
        runtime = (runtime or Runtime()).replace(backend=backend)

    def load(path):
        if isinstance(path, HybridDetector):  # a detector given whole keeps its runtime, without the cache
            return path.bind(live_runtime(runtime or path.runtime_))
        if path not in models:
            models[path] = HybridDetector.load(path, runtime=live_runtime(runtime))
        return models[path]

    cams = []
    for s in specs:
        if fps is not None and s.fps is None:
            s.fps = fps
        det = load(s.model or model)
        cams.append(_Camera(s, det, settings, realtime=realtime, queue=queue, drift=drift,
                            settle=settle, stall=stall))
    stats = stats if stats is not None else WatchStats()
    if snapshots is not None:
        os.makedirs(snapshots, exist_ok=True)
    for c in cams:
        c.snapshots = snapshots
        c.reader.start()
    try:
        while not (stop is not None and stop.is_set()):
            active = [c for c in cams if not (c.reader.finished and not c.reader._q)]
            if not active:
                break
            for c in active:
                items = c.reader.get(timeout=0.05 if len(active) > 1 else 0.5)
                if max_frames is not None:  # never score more than asked, whatever the batch held
                    room = max_frames - stats.scored.get(c.spec.name, 0)
                    keep, out = 0, []
                    for it in items:
                        if isinstance(it, Frame):
                            if keep >= room:
                                continue
                            keep += 1
                        out.append(it)
                    items = out
                yield from _handle(c, items, stats, batch, frame_events, frame_profile, drift)
                stats.read[c.spec.name] = c.reader.counters.read
                stats.dropped[c.spec.name] = c.reader.counters.dropped
                if max_frames is not None and stats.scored.get(c.spec.name, 0) >= max_frames:
                    c.reader.stop()
                    c.reader.finished = True
                    c.reader._q.clear()
    finally:  # also when the caller stops iterating: the reader threads end with the watch
        for c in cams:
            c.reader.stop()
    now = time.time()  # a watch that ends (stop, max_frames, sources done) closes its open alerts
    for c in cams:
        for a in c.health.close_all(c.last_index, c.last_t):
            yield _alert(c, a, now, now)


def _alert(cam: _Camera, a: dict, read_at: float, now: float) -> dict:
    return {"type": "alert", "camera": cam.spec.name, "frame": a.get("end_frame", a["start_frame"]),
            "time": _iso(read_at), "latency": round(now - read_at, 4), **a}


def _snapshot(cam: _Camera, kind: str, f: Frame) -> dict:
    """Write the frame that opened an alert (and, for an outlier, its heat map) as JPEG; their paths."""
    import cv2
    stem = os.path.join(cam.snapshots, f"{cam.spec.name}-{kind}-{f.index:08d}")
    out = {}
    try:
        if cv2.imwrite(stem + ".jpg", cv2.cvtColor(f.rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90]):
            out["snapshot"] = stem + ".jpg"
        if kind == "outlier":
            from ..explain import overlay
            e = cam.det.explain([f.rgb])[0]
            if e.heatmap is not None:
                img = overlay(f.rgb, e.heatmap, width=min(640, f.rgb.shape[1]), caption=f"{e.branch} · frame {f.index}")
                if cv2.imwrite(stem + "-heatmap.jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR)):
                    out["heatmap"] = stem + "-heatmap.jpg"
    except (OSError, cv2.error, ValueError) as exc:  # a full disk must not stop the alert itself
        log.warning("%s: cannot write the snapshot of a %s alert (%s)", cam.spec.name, kind, exc)
    return out


def _handle(cam: _Camera, items, stats: WatchStats, batch: int, frame_events: bool, frame_profile, drift: bool):
    name = cam.spec.name
    frames = []
    for it in items + [None]:
        if isinstance(it, Frame):
            frames.append(it)
            if len(frames) < batch:
                continue
        if frames:  # score what has gathered, in order, before any status change that follows
            yield from _score(cam, frames, stats, frame_events, frame_profile, drift)
            frames = []
        if isinstance(it, Status):
            now = time.time()
            for a in cam.health.status(it.kind, max(it.last_index, 0), it.stream_time, it.detail):
                stats.alerts[(name, a["kind"])] = stats.alerts.get((name, a["kind"]), 0) + (1 if a.get("ongoing") or
                                                                                            a["kind"] == "reconnect" else 0)
                yield _alert(cam, a, it.at, now)


def _score(cam: _Camera, frames: list[Frame], stats: WatchStats, frame_events: bool, frame_profile, drift: bool):
    name = cam.spec.name
    # a folder's file is scored from its bytes, exactly as `score` scores it; a stream's frame from its pixels
    inputs = [np.zeros((1, 1, 3), np.uint8) if f.rgb is None else f.data if f.data is not None else f.rgb
              for f in frames]
    table = cam.det.score(inputs)
    branches = [b.name for b in cam.det.branches_]
    for f, (_, r) in zip(frames, table.iterrows()):
        now = time.time()
        err = f.error or (None if f.rgb is not None else "no pixels")
        if err is None and isinstance(r["error"], str):
            err = r["error"]
        row = None if err else {"is_outlier": bool(r["is_outlier"]), "fused": float(r["fused"]),
                                "fused_x": float(r["fused_x"])}
        stats.scored[name] = stats.scored.get(name, 0) + 1
        if row and row["is_outlier"]:
            stats.outliers[name] = stats.outliers.get(name, 0) + 1
        stats.latencies.append(now - f.read_at)
        if frame_events:
            yield {"type": "frame", "camera": name, "frame": f.index, "time": _iso(f.read_at),
                   "stream_time": round(f.stream_time, 3), "latency": round(now - f.read_at, 4),
                   "scores": {b: None if err else float(r[b]) for b in branches},
                   "fused": None if err else float(r["fused"]), "is_outlier": None if err else bool(r["is_outlier"]),
                   "x_threshold": {b: None if err else float(r[f"{b}_x"]) for b in [*branches, "fused"]},
                   "error": err, **({"file": f.name} if f.name else {})}
        prof = frame_profile(f.rgb, fmt="VIDEO", grey_tolerance=cam.grey_tolerance) \
            if (drift and cam.health.monitor is not None and not err) else None
        for a in cam.health.frame(f.index, f.stream_time, None if err else f.rgb, f.fmt, row, prof):
            if a.get("ongoing"):
                stats.alerts[(name, a["kind"])] = stats.alerts.get((name, a["kind"]), 0) + 1
                if cam.snapshots is not None and f.rgb is not None:
                    a = {**a, **_snapshot(cam, a["kind"], f)}
            yield {**_alert(cam, a, f.read_at, time.time()), "at_frame": f.index,
                   "stream_time": round(f.stream_time, 3)}
        cam.last_index, cam.last_t = f.index, f.stream_time
