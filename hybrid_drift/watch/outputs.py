"""Where a watch's events go: a JSON-lines file, a webhook, Prometheus metrics.

None of them may slow scoring down: the events file is appended and flushed per event;
the webhook posts from its own thread out of a bounded queue (retries with back-off,
a timeout per request; when the queue is full the oldest alert is dropped and counted);
metrics are served by ``prometheus_client`` from its own thread.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request

__all__ = ["EventFile", "Webhook", "Metrics"]

log = logging.getLogger(__name__)


def _json(o):
    import numpy as np
    if isinstance(o, np.generic):
        return o.item()
    return str(o)


class EventFile:
    """One JSON object per line, flushed as it is written (a reader can ``tail -f`` it)."""

    def __init__(self, path):
        self.fh = open(path, "a", encoding="utf-8")

    def write(self, event: dict) -> None:
        self.fh.write(json.dumps(event, default=_json, allow_nan=False) + "\n")
        self.fh.flush()

    def close(self) -> None:
        self.fh.close()


class Webhook:
    """POSTs each alert as JSON to ``url`` from a background thread; never blocks the caller."""

    def __init__(self, url: str, *, timeout: float = 5.0, retries: int = 3, queue_size: int = 1000):
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"--webhook must be an http(s) URL, got {url!r}")
        self.url, self.timeout, self.retries = url, timeout, retries
        self.q: queue.Queue = queue.Queue(maxsize=queue_size)
        self.sent = self.failed = self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="hd-webhook", daemon=True)
        self._thread.start()

    def post(self, event: dict) -> None:
        try:
            self.q.put_nowait(event)
        except queue.Full:
            try:
                self.q.get_nowait()
                self.dropped += 1
            except queue.Empty:
                pass
            self.q.put_nowait(event)

    def _run(self) -> None:
        while True:
            event = self.q.get()
            if event is None:
                return
            body = json.dumps(event, default=_json).encode()
            for attempt in range(self.retries + 1):
                try:
                    req = urllib.request.Request(self.url, body, {"Content-Type": "application/json"}, method="POST")
                    with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                        resp.read()
                    self.sent += 1
                    break
                except (urllib.error.URLError, OSError, ValueError) as exc:
                    if attempt == self.retries:
                        self.failed += 1
                        log.warning("webhook %s: giving up on an alert after %d tries (%s)", self.url,
                                    attempt + 1, exc)
                    else:
                        time.sleep(min(0.5 * 2 ** attempt, 5.0))

    def close(self, wait: float = 5.0) -> None:
        self.q.put(None)
        self._thread.join(timeout=wait)


class Metrics:
    """Prometheus metrics of a watch, served on ``addr:port`` (``prometheus_client``)."""

    def __init__(self, port: int, addr: str = "127.0.0.1"):
        from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
        self.registry = reg = CollectorRegistry()
        cam = ["camera"]
        self.frames_read = Counter("hybrid_drift_frames_read", "Frames read from the source", cam, registry=reg)
        self.frames_scored = Counter("hybrid_drift_frames_scored", "Frames scored by the detector", cam, registry=reg)
        self.frames_dropped = Counter("hybrid_drift_frames_dropped",
                                      "Frames dropped because scoring was behind", cam, registry=reg)
        self.outliers = Counter("hybrid_drift_outliers", "Frames flagged as outliers", cam, registry=reg)
        self.alerts = Counter("hybrid_drift_alerts", "Alerts opened, by kind", cam + ["kind"], registry=reg)
        self.last_score = Gauge("hybrid_drift_last_score", "Last score per branch (and fused)", cam + ["branch"],
                                registry=reg)
        self.stream_up = Gauge("hybrid_drift_stream_up", "1 when the source is connected", cam, registry=reg)
        self.since_last = Gauge("hybrid_drift_seconds_since_last_frame", "Seconds since the last frame was read",
                                cam, registry=reg)
        self._last: dict[str, float] = {}
        self._counts: dict[str, tuple[int, int]] = {}
        self.server, self.thread = start_http_server(int(port), addr=addr, registry=reg)

    def sync_counts(self, camera: str, read: int, dropped: int) -> None:
        """Bring the read / dropped counters up to the reader's totals."""
        last = self._counts.get(camera, (0, 0))
        if read > last[0]:
            self.frames_read.labels(camera).inc(read - last[0])
        if dropped > last[1]:
            self.frames_dropped.labels(camera).inc(dropped - last[1])
        self._counts[camera] = (max(read, last[0]), max(dropped, last[1]))

    def seen(self, camera: str, at: float) -> None:
        if camera not in self._last:
            self.since_last.labels(camera).set_function(lambda c=camera: time.time() - self._last[c])
        self._last[camera] = at

    def close(self) -> None:
        self.server.shutdown()
