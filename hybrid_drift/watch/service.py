"""The watch as a service: load each model once, run every camera, stop on a signal, summarise.

:func:`run_service` is what ``hybrid-drift watch`` runs (the command line only parses and
prints): it fails before any stream is opened when a model cannot be loaded, sends every event
to the :class:`~.sinks.Sinks`, treats SIGINT and SIGTERM (what systemd, Docker and Kubernetes
send) alike -- stop, close the open alerts, deliver the queued webhooks -- and returns the
counts for the summary.
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass, field, replace

from .health import HealthSettings
from .config import CameraSpec
from .runner import WatchStats, live_runtime, watch
from .sinks import Sinks

__all__ = ["ServiceResult", "run_service", "summary_lines"]


@dataclass
class ServiceResult:
    """What a service run did: its counts, how long it ran, and whether a signal (or ``stop``) ended it."""

    cameras: list
    stats: WatchStats
    seconds: float
    stopped: bool
    sink_lines: list = field(default_factory=list)


def run_service(specs: list[CameraSpec], sinks: Sinks, *, runtime=None, settings: HealthSettings = HealthSettings(),
                stop: threading.Event | None = None, **watch_kw) -> ServiceResult:
    """Watch ``specs`` until their sources end, ``stop`` is set, or SIGINT/SIGTERM arrives.

    Each camera's model folder is loaded once, with ``runtime``, before any stream is opened
    (a model that cannot be loaded is an error here, naming it); cameras that share a folder
    share the detector. ``watch_kw`` goes to :func:`~.runner.watch` (fps, realtime,
    max_frames, drift, frame_events, settle, snapshots...). The sinks are closed at the end.
    """
    from ..detector import HybridDetector
    models: dict[str, HybridDetector] = {}
    for sp in specs:
        if isinstance(sp.model, str) and sp.model not in models:
            models[sp.model] = HybridDetector.load(sp.model, runtime=live_runtime(runtime))
    loaded = [replace(sp, model=models.get(sp.model, sp.model)) if isinstance(sp.model, str) else sp for sp in specs]
    stop = stop or threading.Event()
    handled = (signal.SIGINT, signal.SIGTERM)
    main_thread = threading.current_thread() is threading.main_thread()  # signals reach the main thread only
    old = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in handled} if main_thread else {}
    stats = WatchStats()
    t0 = time.time()
    try:
        for ev in watch(loaded, None, settings=settings, stats=stats, stop=stop, runtime=runtime, **watch_kw):
            sinks.emit(ev, stats)
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        sinks.close()
    return ServiceResult([sp.name for sp in specs], stats, time.time() - t0, stop.is_set(), sinks.summary_lines())


def summary_lines(res: ServiceResult) -> list[str]:
    """The summary a watch prints when it ends: per camera, frames and alerts; latency; the sinks."""
    s = res.stats
    lat = sorted(s.latencies)

    def pct(q):
        return lat[min(len(lat) - 1, int(q * len(lat)))] if lat else float("nan")
    out = [f"watched {len(res.cameras)} camera(s) for {res.seconds:.0f} s" + (" (stopped)" if res.stopped else "")]
    for n in res.cameras:
        kinds = ", ".join(f"{k} {v}" for (c, k), v in sorted(s.alerts.items()) if c == n) or "none"
        out.append(f"  {n}: {s.read.get(n, 0)} frames read, {s.scored.get(n, 0)} scored, {s.dropped.get(n, 0)} "
                   f"dropped, {s.outliers.get(n, 0)} outliers; alerts: {kinds}")
    out.append(f"  latency frame -> event: p50 {pct(0.5) * 1e3:.0f} ms, p99 {pct(0.99) * 1e3:.0f} ms")
    return out + [f"  {line}" for line in res.sink_lines]
