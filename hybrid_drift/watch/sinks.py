"""Where a watch's events go: a JSON-lines file, a webhook, Prometheus metrics, MQTT (:mod:`.mqtt`).

None of them may slow scoring down: the events file is appended and flushed per event;
the webhook posts from its own thread out of a bounded queue (retries with back-off,
a deadline per request, not per read; when the queue is full the oldest alert is dropped and counted);
metrics are served by ``prometheus_client`` from its own thread.
"""

from __future__ import annotations

import http.client
import logging
import queue
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from .wire import host_port, redact_url, strict_json

__all__ = ["EventFile", "Webhook", "Metrics", "Sinks", "strict_json", "redact_url"]

log = logging.getLogger(__name__)


class EventFile:
    """One JSON object per line, flushed as it is written (a reader can ``tail -f`` it)."""

    def __init__(self, path):
        self.fh = open(path, "a", encoding="utf-8")

    def write(self, event: dict) -> None:
        self.fh.write(strict_json(event) + "\n")
        self.fh.flush()

    def close(self) -> None:
        self.fh.close()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are not followed: urllib would follow a 301/302/303 to any host as a body-less GET and
    the alert would count as delivered. A redirect is a failed delivery (the URL needs fixing)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class _Tracked:
    """urllib handlers that remember the sockets they open, so a timer can cut one off: urllib's own
    ``timeout`` applies to each socket read, and a receiver that trickles a byte per second holds it for ever.
    (The socket is recorded at connect: urllib drops the connection's reference before the body is read.)"""

    def __init__(self):
        self.socks: list = []
        self.lock = threading.Lock()
        outer = self

        def tracking(cls):
            class C(cls):
                def connect(self):
                    super().connect()
                    with outer.lock:
                        outer.socks.append(self.sock)
            return C

        class H(urllib.request.HTTPHandler):
            def http_open(self, req):
                return self.do_open(tracking(http.client.HTTPConnection), req)

        class S(urllib.request.HTTPSHandler):
            def https_open(self, req):
                return self.do_open(tracking(http.client.HTTPSConnection), req, context=self._context)

        self.handlers = (H(), S())

    def cut(self) -> None:
        """Shut every socket opened since the last :meth:`forget` (unblocks a read in another thread)."""
        with self.lock:
            socks, self.socks = self.socks, []
        for sock in socks:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def forget(self) -> None:
        with self.lock:
            self.socks = []


class Webhook:
    """POSTs each alert as JSON to ``url`` from a background thread; never blocks the caller.

    ``timeout`` is a deadline for the whole request (connect, send, the complete reply): a receiver
    that trickles its reply is cut off then. Every failure of one request (refused, past the
    deadline, a malformed reply, a redirect, an HTTP error) is retried with back-off and, after ``retries``, counted in ``failed``; the thread
    never dies on a reply, so one bad receiver cannot stop later deliveries. ``sent``,
    ``failed`` and ``dropped`` (queue full) are in the watch's summary.
    """

    def __init__(self, url: str, *, timeout: float = 5.0, retries: int = 3, queue_size: int = 1000):
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"--webhook must be an http(s) URL, got {url!r}")
        self.url, self.timeout, self.retries = url, timeout, retries
        self._headers = {"Content-Type": "application/json"}
        u = urllib.parse.urlsplit(url)
        if u.username is not None:  # https://user:token@host/...: sent as HTTP basic auth, never in a log line
            import base64
            cred = f"{urllib.parse.unquote(u.username)}:{urllib.parse.unquote(u.password or '')}"
            self._headers["Authorization"] = "Basic " + base64.b64encode(cred.encode()).decode()
            url = urllib.parse.urlunsplit((u.scheme, host_port(u), u.path, u.query, u.fragment))
        self._target = url
        self._conns = _Tracked()
        self._opener = urllib.request.build_opener(_NoRedirect(), *self._conns.handlers)
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
            body = strict_json(event).encode()
            for attempt in range(self.retries + 1):
                deadline = threading.Timer(self.timeout, self._conns.cut)
                deadline.daemon = True
                try:
                    req = urllib.request.Request(self._target, body, self._headers, method="POST")
                    deadline.start()
                    with self._opener.open(req, timeout=self.timeout) as resp:
                        resp.read()
                    if deadline.finished.is_set():  # cut off: a reply that ends early is not a delivery
                        raise TimeoutError
                    self.sent += 1
                    break
                except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
                    if deadline.finished.is_set():
                        why = f"no complete reply within {self.timeout:g} s"
                    else:
                        why = f"HTTP {exc.code}" if isinstance(exc, urllib.error.HTTPError) else type(exc).__name__
                    if attempt == self.retries:
                        self.failed += 1
                        log.warning("webhook %s: giving up on an alert after %d tries (%s)", redact_url(self.url),
                                    attempt + 1, why)
                    else:
                        time.sleep(min(0.5 * 2 ** attempt, 5.0))
                except Exception as exc:  # pragma: no cover - anything else must not end deliveries either
                    self.failed += 1
                    log.warning("webhook %s: %s", redact_url(self.url), type(exc).__name__)
                    break
                finally:
                    deadline.cancel()
                    self._conns.forget()

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

    def track_webhook(self, hook: Webhook) -> None:
        """Export the webhook's delivered / failed / dropped alert counts (read when scraped)."""
        from prometheus_client import Gauge
        g = Gauge("hybrid_drift_webhook_alerts", "Alerts the webhook delivered, failed to deliver after its retries, "
                  "or dropped (queue full)", ["outcome"], registry=self.registry)
        for outcome in ("sent", "failed", "dropped"):
            g.labels(outcome).set_function(lambda o=outcome: getattr(hook, o))

    def record(self, ev: dict, stats) -> None:
        """Count one watch event (a frame or an alert) and bring the read/dropped counters up to ``stats``."""
        cam = ev["camera"]
        if ev["type"] == "frame":
            self.frames_scored.labels(cam).inc()
            if ev.get("is_outlier"):
                self.outliers.labels(cam).inc()
            for b, v in (ev.get("scores") or {}).items():
                if v is not None:
                    self.last_score.labels(cam, b).set(v)
            if ev.get("fused") is not None:
                self.last_score.labels(cam, "fused").set(ev["fused"])
            self.stream_up.labels(cam).set(1)
            self.seen(cam, time.time())
        else:
            if ev.get("ongoing") or ev.get("kind") == "reconnect":
                self.alerts.labels(cam, ev["kind"]).inc()
            if ev["kind"] == "disconnect":
                self.stream_up.labels(cam).set(0 if ev.get("ongoing") else 1)
        self.sync_counts(cam, stats.read.get(cam, 0), stats.dropped.get(cam, 0))

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


class Sinks:
    """Every output of a watch together: each event goes to the events file (or, without one, each
    alert to ``echo`` as a line of JSON), each alert to the webhook and MQTT, each event to the metrics.

    Built from plain settings (each None = off); :meth:`close` flushes and stops them all, and
    :meth:`summary_lines` says what the webhook delivered.
    """

    def __init__(self, *, events=None, webhook: str | None = None, metrics_port: int | None = None,
                 metrics_addr: str = "127.0.0.1", mqtt: str | None = None, cameras=(), echo=None):
        self.events = EventFile(events) if events else None
        self.webhook = Webhook(webhook) if webhook else None
        self.metrics = Metrics(metrics_port, metrics_addr) if metrics_port else None
        if self.metrics and self.webhook:
            self.metrics.track_webhook(self.webhook)
        self.mqtt = None
        if mqtt:
            from .mqtt import MqttSink
            self.mqtt = MqttSink(mqtt, list(cameras))
        self.echo = echo if echo is not None and not events else None

    def emit(self, ev: dict, stats) -> None:
        if self.events:
            self.events.write(ev)
        if ev["type"] == "alert":
            if self.webhook:
                self.webhook.post(ev)
            if self.mqtt:
                self.mqtt.publish(ev)
            if self.echo:
                self.echo(strict_json(ev))
            log.info("%s: %s alert %s", ev["camera"], ev["kind"], "opened" if ev.get("ongoing") else "closed")
        if self.metrics:
            self.metrics.record(ev, stats)

    def close(self) -> None:
        for sink in (self.events, self.webhook, self.mqtt, self.metrics):
            if sink is not None:
                sink.close()

    def summary_lines(self) -> list[str]:
        h = self.webhook
        return [] if h is None else [f"webhook: {h.sent} alerts delivered, {h.failed} failed, {h.dropped} dropped "
                                     f"(queue full), {h.q.qsize()} not sent at exit"]
