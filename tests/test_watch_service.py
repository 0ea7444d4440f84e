"""`watch` as a service (issue 23): strict JSON out whatever the numbers, a webhook that survives bad
receivers, folder entries that cannot block a camera, SIGTERM, exact --max-frames, a cameras file that
refuses what it does not know, and exported graphs that never sit at a guessable shared path.
Servers listen on 127.0.0.1 only and are stopped by the tests."""

import http.server
import json
import logging
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from hybrid_drift import HybridDetector
from hybrid_drift.cli import main
from hybrid_drift.watch import watch
from conftest import write_video as _video
from hybrid_drift.watch.sinks import EventFile, Webhook, redact_url, strict_json


def _strict_lines(text: str) -> list[dict]:
    """Each line parsed as strict JSON: a bare NaN or Infinity fails the test."""
    def refuse(c):
        raise AssertionError(f"not strict JSON: {c}")
    return [json.loads(x, parse_constant=refuse) for x in text.splitlines() if x.strip()]


@pytest.fixture(scope="module")
def model(frames, tmp_path_factory):
    out = tmp_path_factory.mktemp("svc-model") / "m"
    HybridDetector(cnn=False).fit(frames[:100]).save(out)  # 192x144 frames, with a reference profile
    return out


def _watch_folder(folder: Path, model, n_frames: int, seconds: float, **kw) -> list[dict]:
    """Events of a watch on a folder, stopped once it has scored ``n_frames`` (or after ``seconds``)."""
    stop = threading.Event()
    got: list = []
    t = threading.Thread(target=lambda: got.extend(watch([str(folder)], model, drift=False, stop=stop, **kw)),
                         daemon=True)
    t.start()
    assert _wait(lambda: sum(e["type"] == "frame" for e in got) >= n_frames, seconds)
    stop.set()
    t.join(timeout=20)
    return got


def test_every_emitted_document_is_strict_json(tmp_path, model, frames):
    assert strict_json({"a": float("nan"), "b": [float("-inf"), np.float32(2.5)], "c": np.int64(3)}) == \
        '{"a": null, "b": [null, 2.5], "c": 3}'
    ev = EventFile(tmp_path / "e.jsonl")
    ev.write({"threshold": float("nan")})
    ev.close()
    assert _strict_lines((tmp_path / "e.jsonl").read_text()) == [{"threshold": None}]
    # a camera at another resolution than the reference: the drift check's resolution test carries no finite
    # threshold; version 0.2 crashed the events writer after 50 frames (exit 2) and printed a bare NaN
    big = [cv2.resize(f, (256, 192)) for f in frames[100:180]]
    video = _video(tmp_path / "big.avi", big)
    out = tmp_path / "ev.jsonl"
    assert main(["watch", str(model), str(video), "--events", str(out), "--drift-window", "25",
                 "--no-progress"]) == 0
    lines = _strict_lines(out.read_text())
    kinds = {e["kind"] for e in lines if e["type"] == "alert"}
    assert "resolution" in kinds and sum(e["type"] == "frame" for e in lines) == 80


class _Receiver(http.server.BaseHTTPRequestHandler):
    """Replies garbage to the first `garbage` requests, redirects on /moved, then 200 and records the body."""

    garbage = 0
    bodies: list = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path.startswith("/moved"):
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.1:9/elsewhere")
            self.end_headers()
            return
        if _Receiver.garbage > 0:
            _Receiver.garbage -= 1
            self.wfile.write(b"THIS IS NOT HTTP\r\n\r\n")  # BadStatusLine at the client
            return
        if self.path.startswith("/trickle"):  # a reply that never ends in time: one byte per 0.3 s
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n")
            for _ in range(40):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.3)
            return
        _Receiver.bodies.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *a):
        pass


def _wait(pred, seconds=20):
    deadline = time.time() + seconds
    while time.time() < deadline and not pred():
        time.sleep(0.05)
    return pred()


def test_a_malformed_reply_or_a_redirect_never_stops_later_deliveries(caplog):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    port = srv.server_address[1]
    try:
        _Receiver.garbage, _Receiver.bodies = 2, []
        hook = Webhook(f"http://user:pw@127.0.0.1:{port}/alerts?token=s3cret", retries=0, timeout=2)
        with caplog.at_level(logging.WARNING, logger="hybrid_drift.watch.sinks"):
            for i in range(4):
                hook.post({"n": i, "score": float("nan")})
            assert _wait(lambda: hook.sent + hook.failed == 4)
        assert hook.failed == 2 and hook.sent == 2 and [b["n"] for b in _Receiver.bodies] == [2, 3]
        assert _Receiver.bodies[0]["score"] is None
        assert "s3cret" not in caplog.text and "pw" not in caplog.text  # credentials never logged
        hook.close()
        moved = Webhook(f"http://127.0.0.1:{port}/moved", retries=0, timeout=2)
        moved.post({"n": 9})
        assert _wait(lambda: moved.failed == 1) and moved.sent == 0  # not followed, not counted as delivered
        moved.close()
    finally:
        srv.shutdown()
    assert redact_url("https://a:b@h:1/p?q=1#f") == "https://h:1/p?…"


def test_the_webhook_timeout_is_a_deadline_per_request_not_per_read():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        _Receiver.garbage = 0
        hook = Webhook(f"http://127.0.0.1:{srv.server_address[1]}/trickle", retries=0, timeout=1.0)
        t0 = time.time()
        hook.post({"n": 1})
        hook.post({"n": 2})
        # each read gets a byte well inside 1 s, so a per-read time-out would wait 12 s per alert and count it sent
        assert _wait(lambda: hook.failed == 2, 10), (hook.sent, hook.failed)
        assert time.time() - t0 < 6 and hook.sent == 0
        hook.close()
    finally:
        srv.shutdown()


def test_webhook_outcomes_are_in_the_metrics():
    from prometheus_client import generate_latest

    from hybrid_drift.watch.sinks import Metrics
    hook = Webhook("http://127.0.0.1:9/nothing-listens", retries=0, timeout=1)
    m = Metrics(0)
    try:
        m.track_webhook(hook)
        hook.post({"n": 1})
        assert _wait(lambda: hook.failed == 1)
        text = generate_latest(m.registry).decode()
        assert 'hybrid_drift_webhook_alerts{outcome="failed"} 1.0' in text
        assert 'hybrid_drift_webhook_alerts{outcome="sent"} 0.0' in text
    finally:
        m.close()
        hook.close()


def test_entries_that_never_settle_do_not_block_a_folder(tmp_path, model, frames):
    folder = tmp_path / "incoming"
    folder.mkdir()
    (folder / "001.jpg").write_bytes(b"")                     # empty for ever
    os.mkfifo(folder / "002.jpg")                             # a FIFO
    os.symlink(tmp_path / "nowhere.jpg", folder / "003.jpg")  # a broken link
    for i in (4, 5):
        cv2.imwrite(str(folder / f"{i:03d}.jpg"), cv2.cvtColor(frames[i], cv2.COLOR_RGB2BGR))
    fr = [e for e in _watch_folder(folder, model, 5, 30, stall=1.0) if e["type"] == "frame"]
    assert [e["file"] for e in fr] == ["001.jpg", "002.jpg", "003.jpg", "004.jpg", "005.jpg"]
    assert all(e["error"] for e in fr[:3]) and all(e["error"] is None for e in fr[3:])


def test_a_folder_backlog_is_read_whole_in_order_never_dropped(tmp_path, model, frames):
    folder = tmp_path / "backlog"
    folder.mkdir()
    for i in range(60):
        cv2.imwrite(str(folder / f"{i:03d}.jpg"), cv2.cvtColor(frames[i % 100], cv2.COLOR_RGB2BGR))
    got = _watch_folder(folder, model, 60, 60, queue=2)
    assert [e["file"] for e in got if e["type"] == "frame"] == [f"{i:03d}.jpg" for i in range(60)]


def test_max_frames_is_exact(tmp_path, model, frames):
    video = _video(tmp_path / "v.avi", frames[:40])
    events = list(watch([str(video)], model, drift=False, max_frames=7, batch=8))
    assert sum(e["type"] == "frame" for e in events) == 7


@pytest.mark.parametrize("sig", [signal.SIGTERM])
def test_sigterm_stops_like_ctrl_c_closes_alerts_and_exits_0(model, frames, tmp_path, sig):
    seq = frames[100:140] + [frames[140]] * 200  # a frozen stream from 4 s on
    video = _video(tmp_path / "frozen.avi", seq)
    events = tmp_path / "ev.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "hybrid_drift.cli", "watch", str(model), str(video),
                             "--realtime", "--no-drift", "--events", str(events)], stderr=subprocess.PIPE, text=True)
    try:
        def frozen_open():
            text = events.read_text() if events.exists() else ""
            return any('"kind": "frozen"' in x and '"ongoing": true' in x for x in text.splitlines())
        assert _wait(frozen_open, 60)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    lines = _strict_lines(events.read_text())
    frozen = [e for e in lines if e["type"] == "alert" and e["kind"] == "frozen"]
    assert [e["ongoing"] for e in frozen] == [True, False] and frozen[-1]["closed_by"] == "stop"
    assert "(stopped)" in err and "frames read" in err


def test_a_cameras_file_refuses_unknown_keys_and_odd_names(model, tmp_path, capsys):
    cfg = tmp_path / "cameras.toml"
    for body, why in (('name = "gate"\nsource = "x.avi"\nmodel = "m"\nfsp = 2\n', "unknown key(s) fsp"),
                      ('name = "gate\\nwatched 9 camera(s)"\nsource = "x.avi"\nmodel = "m"\n', "camera name")):
        cfg.write_text("[[camera]]\n" + body)
        capsys.readouterr()
        assert main(["watch", "--config", str(cfg), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert why in err and str(cfg) in err


def test_exported_graphs_never_sit_at_a_shared_guessable_path(tmp_path, monkeypatch):
    from conftest import TEST_IMAGE_SIZE
    from hybrid_drift.features.cnn import Embedder
    from hybrid_drift.features.runners import export_path
    monkeypatch.setenv("TMPDIR", str(tmp_path / "shared-tmp"))
    (tmp_path / "shared-tmp").mkdir()
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", None)
    emb = Embedder("efficientnet_lite0", image_size=TEST_IMAGE_SIZE, backend="onnxruntime")
    p = export_path(emb, None)
    mode = os.stat(p.parent).st_mode
    assert stat.S_IMODE(mode) == 0o700 and os.stat(p.parent).st_uid == os.getuid()
    assert p.parent.name != "hybrid_drift-onnx" and p.parent.name.startswith("hybrid_drift-onnx-")
    # a cache root that cannot be written: one warning naming it, and the graph still comes
    ro = tmp_path / "ro-cache"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):  # root ignores modes: make the root a file so nothing can be made under it
            ro.chmod(0o700)
            ro.rmdir()
            ro.write_text("not a folder")
        q = export_path(emb, ro)
        assert q.is_file() and q.parent == p.parent
    finally:
        if ro.is_dir():
            ro.chmod(0o700)


def test_one_alert_per_fault_a_black_segment_pages_once_and_carries_the_flags():
    from hybrid_drift.watch.health import CameraHealth, HealthSettings
    h = CameraHealth("cam", HealthSettings(drift_window=5))
    rng = np.random.default_rng(0)
    normal = [rng.integers(60, 200, (48, 64, 3), dtype=np.uint8) for _ in range(5)]
    black = np.zeros((48, 64, 3), np.uint8)
    out = []
    for i, (img, flagged) in enumerate([(f, False) for f in normal] + [(black, True)] * 8 + [(f, False) for f in normal]):
        out += h.frame(i, i / 10, img, "", {"is_outlier": flagged, "fused": 1.0})
    kinds = [(e["kind"], e["ongoing"]) for e in out]
    assert kinds == [("blank", True), ("blank", False)], kinds  # no outlier alert beside it
    assert out[-1]["outlier_frames"] >= 5  # the flags are kept, as a field of the alert that explains them
    # the same flags on frames no health alert explains do open an outlier alert
    h2 = CameraHealth("cam", HealthSettings())
    ev = [e for i in range(5) for e in h2.frame(i, i / 10, normal[i], "", {"is_outlier": i >= 1, "fused": 1.0})]
    assert [(e["kind"], e["ongoing"]) for e in ev] == [("outlier", True)]


def test_every_alert_comes_with_a_snapshot_and_an_outlier_with_its_heat_map(tmp_path, model, frames):
    negative = [255 - f for f in frames[110:116]]  # a colour fault with the scene's texture (not blank)
    seq = frames[100:110] + negative + frames[116:126]
    video = _video(tmp_path / "fault.avi", seq)
    events = tmp_path / "ev.jsonl"
    assert main(["watch", str(model), str(video), "--events", str(events), "--no-drift", "--no-progress"]) == 0
    opened = [e for e in _strict_lines(events.read_text()) if e["type"] == "alert" and e["ongoing"]]
    assert opened and all(Path(e["snapshot"]).is_file() for e in opened)
    assert Path(opened[0]["snapshot"]).parent == tmp_path / "ev-snapshots"
    out = [e for e in opened if e["kind"] == "outlier"]
    assert out and Path(out[0]["heatmap"]).is_file() and cv2.imread(out[0]["heatmap"]) is not None


MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)


class _Broker:
    """Debian's mosquitto on 127.0.0.1 (anonymous, no persistence), stopped by the test."""

    def __init__(self, tmp: Path, port: int | None = None):
        assert MOSQUITTO, "make test installs mosquitto (Debian package) when run as root"
        import socket
        if port is None:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
        self.port = port
        conf = tmp / f"mosquitto-{port}.conf"
        conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        assert _wait(self._up, 10), "mosquitto did not start"

    def _up(self):
        import socket
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(timeout=10)


def _subscriber(port: int, topic: str = "#"):
    import paho.mqtt.client as mqtt
    got = []
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-sub")
    c.on_connect = lambda cl, *a: cl.subscribe(topic, qos=1)
    c.on_message = lambda cl, u, m: got.append((m.topic, m.payload.decode(), m.retain))
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c, got


def test_mqtt_alerts_states_and_home_assistant_discovery_on_a_real_broker(tmp_path, model, frames):
    from hybrid_drift.watch.mqtt import parse_mqtt_url
    broker = _Broker(tmp_path)
    sub, got = _subscriber(broker.port)
    try:
        negative = [255 - f for f in frames[110:116]]
        video = _video(tmp_path / "fault.avi", frames[100:110] + negative + frames[116:130])
        assert main(["watch", str(model), str(video), "--no-drift", "--events", str(tmp_path / "ev.jsonl"),
                     "--mqtt", f"mqtt://127.0.0.1:{broker.port}/cams", "--no-progress"]) == 0
        assert _wait(lambda: any(t == "cams/status" and p == "offline" for t, p, _ in got), 10)
        topics = {t for t, _, _ in got}
        assert "homeassistant/binary_sensor/hybrid_drift_cam0/problem/config" in topics
        cfg = json.loads(next(p for t, p, _ in got if t.endswith("/problem/config")))
        assert cfg["state_topic"] == "cams/cam0/problem" and cfg["device_class"] == "problem"
        alerts = [json.loads(p) for t, p, _ in got if t == "cams/cam0/alert"]
        assert [(a["kind"], a["ongoing"]) for a in alerts] == [("outlier", True), ("outlier", False)]
        problem = [p for t, p, _ in got if t == "cams/cam0/problem"]
        assert "ON" in problem and problem[-1] == "OFF"
        # a late subscriber gets the retained state and the discovery message
        late, got2 = _subscriber(broker.port)
        assert _wait(lambda: any(t == "cams/cam0/problem" and r for t, _, r in got2), 10)
        late.loop_stop()
    finally:
        sub.loop_stop()
        broker.stop()
    with pytest.raises(ValueError, match="mqtt://"):
        parse_mqtt_url("http://broker/x")
    assert parse_mqtt_url("mqtts://u:p@b/x/y")["port"] == 8883


def test_mqtt_reconnects_after_the_broker_restarts(tmp_path):
    from hybrid_drift.watch.mqtt import MqttSink
    broker = _Broker(tmp_path)
    port = broker.port
    sink = MqttSink(f"mqtt://127.0.0.1:{port}/cams", ["gate"])
    try:
        sub, got = _subscriber(port)
        assert _wait(lambda: any(t == "cams/status" and p == "online" for t, p, _ in got), 10)
        sub.loop_stop()
        broker.stop()
        time.sleep(1.0)
        broker = _Broker(tmp_path, port)  # back on the same port: the sink reconnects by itself
        sub, got = _subscriber(port)
        assert _wait(lambda: any(t == "cams/gate/problem" for t, _, _ in got), 30)  # states published again
        sink.publish({"type": "alert", "camera": "gate", "kind": "blank", "ongoing": True, "start_frame": 1})
        assert _wait(lambda: ("cams/gate/problem", "ON", False) in got or
                     any(t == "cams/gate/problem" and p == "ON" for t, p, _ in got), 10)
        sub.loop_stop()
    finally:
        sink.close()
        broker.stop()


def test_a_server_that_drops_every_connection_after_three_frames_is_one_outage_with_back_off(model, frames):
    """Version 0.2 reported a disconnect/reconnect pair per connection, with no back-off (86 pairs in 26 s)."""
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(frames[0], cv2.COLOR_RGB2BGR))
    connections = []

    class ThreeFrames(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            connections.append(time.time())
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.end_headers()
            for _ in range(3):
                self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: " +
                                 str(len(jpeg)).encode() + b"\r\n\r\n" + jpeg.tobytes() + b"\r\n")
                self.wfile.flush()
                time.sleep(0.1)
            self.close_connection = True

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ThreeFrames)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    stop = threading.Event()
    timer = threading.Timer(12, stop.set)
    timer.start()
    try:
        events = list(watch([f"http://127.0.0.1:{srv.server_address[1]}/cam.mjpg"], model, drift=False, stop=stop))
    finally:
        timer.cancel()
        srv.shutdown()
    alerts = [(e["kind"], e["ongoing"]) for e in events if e["type"] == "alert"]
    assert ("reconnect", False) not in alerts, alerts        # never really back: no reconnect
    assert alerts.count(("disconnect", True)) == 1, alerts   # one outage, reported once (closed at stop)
    assert 2 <= len(connections) <= 8, len(connections)      # retried with a growing back-off


def test_a_dead_stream_leaves_no_raw_decoder_lines_on_stderr(model, tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "hybrid_drift.cli", "watch", str(model),
                             "http://127.0.0.1:9/none.mjpg", "--no-drift", "--events", str(tmp_path / "ev.jsonl")],
                            stderr=subprocess.PIPE, text=True)
    try:
        assert _wait(lambda: (tmp_path / "ev.jsonl").exists() and "disconnect" in (tmp_path / "ev.jsonl").read_text(),
                     30)
        time.sleep(2)  # a few retries
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert "[tcp @" not in err and "VIDEOIO" not in err, err  # FFmpeg's and OpenCV's own lines
    assert "disconnect 1" in err  # the summary counts the outage once


def test_each_camera_takes_its_own_settings_from_the_cameras_file(model, frames, tmp_path, capsys):
    """A [[camera]] table may set its own fps, settle and health limits; wrong types and ranges exit 2 naming
    the key, the camera and the file."""
    normal = frames[100:160]
    video = _video(tmp_path / "frozen.avi", normal[:20] + [normal[20]] * 30 + normal[20:60])  # a 3 s freeze
    cfg = tmp_path / "cameras.toml"
    cfg.write_text(f'[[camera]]\nname = "strict"\nsource = "{video}"\nmodel = "{model}"\n\n'
                   f'[[camera]]\nname = "lenient"\nsource = "{video}"\nmodel = "{model}"\nfrozen_seconds = 60\n'
                   f'outlier_k = 5\n')
    events = tmp_path / "events.jsonl"
    assert main(["watch", "--config", str(cfg), "--events", str(events), "--no-drift", "--no-progress"]) == 0
    alerts = [e for e in _strict_lines(events.read_text()) if e["type"] == "alert" and e.get("ongoing")]
    assert {(e["camera"], e["kind"]) for e in alerts if e["kind"] == "frozen"} == {("strict", "frozen")}
    for body, why in (("frozen_seconds = \"5\"", "frozen_seconds must be a number"),
                      ("outlier_k = 9\noutlier_n = 5", "outlier_k"), ("settle = -1", "settle"),
                      ("drift_window = 0", "drift_window")):
        cfg.write_text(f'[[camera]]\nname = "gate"\nsource = "{video}"\nmodel = "{model}"\n{body}\n')
        capsys.readouterr()
        assert main(["watch", "--config", str(cfg), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert why in err and "'gate'" in err and str(cfg) in err


def test_the_service_loads_each_model_once_and_fails_before_any_stream_opens(model, frames, tmp_path, monkeypatch):
    from hybrid_drift.watch import readers
    from hybrid_drift.watch.config import CameraSpec
    from hybrid_drift.watch.service import run_service
    from hybrid_drift.watch.sinks import Sinks
    video = _video(tmp_path / "v.avi", frames[100:120])
    loads, starts = [], []
    real_load = HybridDetector.load.__func__
    monkeypatch.setattr(HybridDetector, "load", classmethod(lambda cls, p, **kw: loads.append(p) or
                                                            real_load(cls, p, **kw)))
    _orig = readers.Reader.start

    def _start(self):
        starts.append(self.camera)
        return _orig(self)
    monkeypatch.setattr(readers.Reader, "start", _start)
    specs = [CameraSpec("a", str(video), str(model)), CameraSpec("b", str(video), str(model))]
    res = run_service(specs, Sinks(), max_frames=5, drift=False)
    assert loads == [str(model)] and sorted(starts) == ["a", "b"] and res.stats.scored == {"a": 5, "b": 5}
    loads.clear(), starts.clear()
    with pytest.raises(Exception, match="not a hybrid_drift model"):
        run_service([CameraSpec("a", str(video), str(model)), CameraSpec("c", str(video), str(tmp_path / "none"))],
                    Sinks(), max_frames=5)
    assert starts == []  # no stream was opened
