"""Watching live cameras (issue 17) against real servers on loopback: FFmpeg serving MJPEG over HTTP,
VLC serving RTSP, a real Prometheus scraping the metrics, a webhook receiver. Servers listen on
127.0.0.1 only and are stopped by the tests."""

import http.server
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import write_video as _video
from hybrid_drift import HybridDetector
from hybrid_drift.cli import main
from hybrid_drift.watch import HealthSettings, watch
from hybrid_drift.watch.health import CameraHealth

FFMPEG, PROMETHEUS, CVLC = shutil.which("ffmpeg"), shutil.which("prometheus"), shutil.which("cvlc")
REQUIRED = "make test installs ffmpeg, prometheus and VLC (Debian packages) when run as root"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _watch_until(sources, model, *, seconds: float, until=None, **kw) -> list[dict]:
    """Every event of a watch that ends when ``until(event)`` is true or after ``seconds`` of wall time.

    A live source is retried for ever when it goes away, so a test must never wait for a count
    of frames that a stream might not deliver: every watch of a stream in these tests is bounded."""
    stop = threading.Event()
    timer = threading.Timer(seconds, stop.set)
    timer.daemon = True
    timer.start()
    events = []
    try:
        for e in watch(sources, model, stop=stop, **kw):
            events.append(e)
            if until is not None and until(e):
                stop.set()
    finally:
        timer.cancel()
    return events


def _ended():
    """A predicate: the served file has ended (the server closed the stream after serving frames). A
    disconnect before the first frame is the server not listening yet (FFmpeg serves one client, so the
    test cannot probe it first): the watch retries it, and the test must not stop there."""
    seen = []

    def ended(e) -> bool:
        if e["type"] == "frame":
            seen.append(1)
        return bool(seen) and e["type"] == "alert" and e["kind"] == "disconnect"
    return ended




@pytest.fixture(scope="module")
def model(frames, tmp_path_factory):
    out = tmp_path_factory.mktemp("watch-model") / "m"
    HybridDetector(cnn=False).fit(frames[:100]).save(out)  # colour only: fast enough for any stream
    return out


@pytest.fixture(scope="module")
def segments(frames, tmp_path_factory):
    """40 normal frames, 30 frozen, 30 black, 40 normal: 14 s at 10 fps (192x144)."""
    normal = frames[100:180]
    seq = normal[:40] + [normal[40]] * 30 + [np.zeros_like(normal[0])] * 30 + normal[40:80]
    return _video(tmp_path_factory.mktemp("watch-video") / "segments.avi", seq)


class _MJPEGServer:
    """FFmpeg serving a video as MJPEG over HTTP at the video's own frame rate (one client)."""

    def __init__(self, video: Path, port: int):
        assert FFMPEG, REQUIRED
        self.url = f"http://127.0.0.1:{port}/cam.mjpg"
        self.proc = subprocess.Popen([FFMPEG, "-hide_banner", "-loglevel", "error", "-re", "-i", str(video), "-an",
                                      "-c:v", "mjpeg", "-q:v", "3", "-f", "mpjpeg", "-listen", "1", self.url],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(0.5)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


def test_a_served_stream_is_scored_and_frozen_and_black_segments_each_raise_one_alert(model, segments):
    srv = _MJPEGServer(segments, _port())
    try:  # MJPEG has no key frames to wait for: every frame from the first (settle=0)
        events = _watch_until([srv.url], model, seconds=60, until=_ended(), drift=False, settle=0.0)
    finally:
        srv.stop()
    frames = [e for e in events if e["type"] == "frame"]
    assert len(frames) >= 120 and all(e["error"] is None for e in frames), len(frames)
    alerts = [e for e in events if e["type"] == "alert"]
    opened = [e for e in alerts if e["ongoing"]]
    assert sorted(e["kind"] for e in opened if e["kind"] in ("frozen", "blank")) == ["blank", "frozen"], alerts
    frozen = [e for e in alerts if e["kind"] == "frozen" and not e["ongoing"]][0]
    blank = [e for e in alerts if e["kind"] == "blank" and not e["ongoing"]][0]
    # the right frames (the reader's count of frames served; a few frames of slack for the HTTP start)
    assert 38 <= frozen["start_frame"] <= 42 and 66 <= frozen["end_frame"] <= 71, frozen
    assert 68 <= blank["start_frame"] <= 73 and 97 <= blank["end_frame"] <= 101, blank
    # alerted within 2 seconds of stream time of the segment's start
    first_open = {e["kind"]: e for e in opened}
    t_frozen_start = next(e["stream_time"] for e in frames if e["frame"] == frozen["start_frame"])
    t_blank_start = next(e["stream_time"] for e in frames if e["frame"] == blank["start_frame"])
    alert_t = {k: next(f["stream_time"] for f in frames if f["frame"] >= e["frame"]) for k, e in first_open.items()}
    assert alert_t["frozen"] - t_frozen_start <= 2.0 and alert_t["blank"] - t_blank_start <= 2.0


def test_frames_of_the_first_settle_seconds_after_connecting_are_skipped(model, segments):
    """A decoder that joins a stream between key frames returns broken pictures: those of the first
    ``settle`` seconds are read (and counted) but not scored."""
    first = {}
    for settle in (0.0, 1.0):
        srv = _MJPEGServer(segments, _port())
        try:
            events = _watch_until([srv.url], model, seconds=30, max_frames=5, drift=False, settle=settle)
        finally:
            srv.stop()
        first[settle] = min(e["frame"] for e in events if e["type"] == "frame")
    assert first[0.0] == 0
    # 10 fps: about ten frames fall in the first second (more when opening the stream was slow and
    # FFmpeg's probe buffered some); the stream is 140 frames long
    assert 5 <= first[1.0] <= 60, first
    with pytest.raises(ValueError, match="settle"):
        list(watch([str(segments)], model, settle=-1))
    assert main(["watch", str(model), str(segments), "--settle-seconds", "-1"]) == 2


def test_the_queue_is_a_command_line_setting(model, segments, monkeypatch, capsys):
    """An HLS camera delivers a segment of frames at once: the user must be able to hold one."""
    import hybrid_drift.watch.service as service
    seen = {}

    def fake_watch(*a, **kw):
        seen.update(kw)
        return iter(())
    monkeypatch.setattr(service, "watch", fake_watch)
    assert main(["watch", str(model), str(segments), "--queue", "64", "--no-progress"]) == 0
    assert seen["queue"] == 64
    assert main(["watch", str(model), str(segments), "--no-progress"]) == 0
    assert seen["queue"] == 8  # the library's default
    capsys.readouterr()
    assert main(["watch", str(model), str(segments), "--queue", "0", "--no-progress"]) == 2
    assert "--queue" in capsys.readouterr().err


def test_a_server_that_dies_is_a_disconnect_and_its_return_a_reconnect(model, frames, tmp_path):
    video = _video(tmp_path / "v.avi", frames[100:140])  # 4 s
    port = _port()
    srv = _MJPEGServer(video, port)
    stop = threading.Event()
    got = []

    def run():
        for e in watch([srv.url], model, drift=False, frame_events=True, stop=stop):
            got.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        deadline = time.time() + 30
        while sum(e["type"] == "frame" for e in got) < 10 and time.time() < deadline:
            time.sleep(0.1)
        srv.stop()                                       # the camera goes away
        while not any(e.get("kind") == "disconnect" for e in got) and time.time() < deadline:
            time.sleep(0.1)
        assert any(e.get("kind") == "disconnect" and e["ongoing"] for e in got), got[-3:]
        srv = _MJPEGServer(video, port)                  # and comes back
        while not any(e.get("kind") == "reconnect" for e in got) and time.time() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        t.join(timeout=30)
        srv.stop()
    kinds = [e["kind"] for e in got if e["type"] == "alert"]
    assert "reconnect" in kinds and kinds.index("disconnect") < kinds.index("reconnect")
    closed = [e for e in got if e.get("kind") == "disconnect" and not e["ongoing"]]
    assert closed and "back after" in closed[0]["detail"]


def test_a_file_source_is_paced_by_scoring_and_a_folder_source_takes_new_files(model, segments, frames, tmp_path):
    events = list(watch([str(segments)], model, drift=False))
    assert sum(e["type"] == "frame" for e in events) == 140  # every frame of a file, none dropped
    folder = tmp_path / "incoming"
    folder.mkdir()
    stop = threading.Event()
    got = []
    t = threading.Thread(target=lambda: got.extend(watch([str(folder)], model, drift=False, stop=stop)), daemon=True)
    t.start()
    for i in range(5):
        cv2.imwrite(str(folder / f"{i:03d}.jpg"), cv2.cvtColor(frames[i], cv2.COLOR_RGB2BGR))
        time.sleep(0.2)
    (folder / "999.jpg").write_bytes(b"not a jpeg")
    deadline = time.time() + 20
    while sum(e["type"] == "frame" for e in got) < 6 and time.time() < deadline:
        time.sleep(0.1)
    stop.set()
    t.join(timeout=20)
    fr = [e for e in got if e["type"] == "frame"]
    assert [e["file"] for e in fr] == ["000.jpg", "001.jpg", "002.jpg", "003.jpg", "004.jpg", "999.jpg"]
    assert fr[-1]["error"] and all(e["error"] is None for e in fr[:5])


@pytest.fixture(scope="module")
def full_size():
    """Every 20th of the street video's first 800 frames at its own 768x576: large enough that a JPEG's
    smaller working sizes come from a reduced decode."""
    from hybrid_drift.io import iter_video_frames
    from conftest import DATA
    return [f for _, f in iter_video_frames(DATA / "vtest.avi", step=20, stop=800)]


def _jpegs(folder: Path, imgs, quality: int = 95) -> list[str]:
    """``imgs`` (RGB) as ``000.jpg``, ``001.jpg``... in a new ``folder``; their paths in order."""
    folder.mkdir()
    for i, f in enumerate(imgs):
        cv2.imwrite(str(folder / f"{i:03d}.jpg"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, quality])
    return [str(folder / f"{i:03d}.jpg") for i in range(len(imgs))]


def test_a_folder_is_scored_as_score_scores_its_files(full_size, tmp_path):
    """Full-size JPEGs: ``score`` decodes a file's smaller working sizes in the DCT domain; a watch that
    scored the reader's pixels area-averaged them instead (colour scores ~13% higher on the street)."""
    model = tmp_path / "m"
    HybridDetector(cnn=False).fit(full_size[:30]).save(model)
    folder = tmp_path / "cam"
    files = _jpegs(folder, full_size[30:38], quality=85)
    want = HybridDetector.load(model).score(files)
    events = _watch_until([str(folder)], model, seconds=60, max_frames=len(files), drift=False)
    got = [e for e in events if e["type"] == "frame"]
    assert [e["file"] for e in got] == [os.path.basename(f) for f in files]
    for b in got[0]["scores"]:  # to float32 rounding (a watch scores in batches of whatever has arrived)
        np.testing.assert_allclose([e["scores"][b] for e in got], want[b].to_numpy(), rtol=1e-6, atol=1e-9,
                                   err_msg=b)
    assert [e["is_outlier"] for e in got] == want["is_outlier"].tolist()


def test_fit_full_decode_scores_a_streams_pixels_as_the_files(full_size, tmp_path):
    """A stream's frames are pixels, area-averaged to each working size; ``fit --full-decode`` reads its
    files the same way, so a model fitted on a folder scores the stream's pixels as it scores the files."""
    ref = tmp_path / "ref"
    _jpegs(ref, full_size[:30])
    files = _jpegs(tmp_path / "cam", full_size[30:38])
    pixels = [cv2.cvtColor(cv2.imread(f), cv2.COLOR_BGR2RGB) for f in files]
    cheap = ["colour", "shift", "flat", "tear"]
    for flag, same in ((["--full-decode"], True), ([], False)):
        model = tmp_path / f"m{len(flag)}"
        assert main(["fit", str(ref), "--out", str(model), "--no-cnn", "--no-progress", "--quiet", *flag]) == 0
        det = HybridDetector.load(model)
        assert det.reduce == (1 if flag else "auto")
        a, b = det.score(files), det.score(pixels)
        close = [np.allclose(a[c], b[c], rtol=1e-6, atol=1e-9) for c in cheap]
        assert all(close) if same else not all(close), (flag, close)


def test_a_watch_keeps_no_per_frame_history_without_bound():
    from hybrid_drift.watch.runner import LATENCY_WINDOW, WatchStats
    stats = WatchStats()
    for i in range(LATENCY_WINDOW + 10):
        stats.latencies.append(float(i))
    assert len(stats.latencies) == LATENCY_WINDOW and stats.latencies[0] == 10.0  # the most recent frames


def test_outlier_alert_has_hysteresis():
    h = CameraHealth("c", HealthSettings(outlier_k=3, outlier_n=5))
    img = (np.random.default_rng(0).integers(0, 255, (48, 64, 3))).astype(np.uint8)
    flags = [1, 0, 0, 1, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    events = []
    for i, f in enumerate(flags):
        noisy = np.roll(img, 3 * i, axis=1)  # never frozen (+1 grey level a frame is near-identical: frozen)
        events += h.frame(i, i * 0.1, noisy, "MJPG", {"is_outlier": bool(f), "fused": 1.0})
    out = [e for e in events if e["kind"] == "outlier"]
    assert [e["ongoing"] for e in out] == [True, False]  # one bad frame now and then pages nobody
    assert out[0]["start_frame"] == 7 and out[1]["end_frame"] == 14  # 3 of [4..8]; none of [10..14]


def test_cli_watch_events_webhook_and_metrics_scraped_by_prometheus(model, segments, tmp_path):
    assert PROMETHEUS, REQUIRED
    posted = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            posted.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *a):
            pass

    hook = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    mport, pport = _port(), _port()
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(f"global: {{scrape_interval: 1s}}\nscrape_configs:\n  - job_name: hd\n"
                   f"    static_configs: [{{targets: ['127.0.0.1:{mport}']}}]\n")
    prom = subprocess.Popen([PROMETHEUS, f"--config.file={cfg}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{pport}"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    srv = _MJPEGServer(segments, _port())
    events = tmp_path / "events.jsonl"
    result = {}
    # 100 of the 140 frames served (the first second is skipped while a stream settles)
    t = threading.Thread(target=lambda: result.update(rc=main([
        "watch", str(model), srv.url, "--events", str(events), "--webhook", f"http://127.0.0.1:{hook.server_port}/",
        "--metrics-port", str(mport), "--max-frames", "100", "--no-drift", "--no-progress"])), daemon=True)
    t.start()
    try:
        series = []
        deadline = time.time() + 60
        while time.time() < deadline and not series:
            time.sleep(1)
            try:
                q = "http://127.0.0.1:%d/api/v1/query?query=hybrid_drift_frames_scored_total" % pport
                series = json.loads(urllib.request.urlopen(q, timeout=5).read())["data"]["result"]
            except OSError:
                pass
        t.join(timeout=60)
    finally:
        srv.stop()
        t.join(timeout=30)  # a stream gone before --max-frames: the CLI retries it, and the test fails below
        prom.terminate()
        prom.wait(timeout=20)
        hook.shutdown()
    assert not t.is_alive() and result.get("rc") == 0, result
    assert series and series[0]["metric"]["camera"] == "cam0" and float(series[0]["value"][1]) > 0
    lines = [json.loads(x) for x in events.read_text().splitlines()]
    assert {"frame", "alert"} <= {e["type"] for e in lines}
    assert all({"type", "camera", "frame", "time"} <= set(e) for e in lines)
    deadline = time.time() + 10
    while len(posted) < 2 and time.time() < deadline:
        time.sleep(0.1)
    assert {e["kind"] for e in posted} >= {"frozen", "blank"} and all(e["type"] == "alert" for e in posted)


def _as_user(cmd):
    """VLC refuses to run as root: drop to 'nobody' when we are root."""
    if os.geteuid() != 0:
        return cmd
    return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *cmd]


def test_an_rtsp_stream_served_by_vlc_is_scored(model, data_dir):
    assert CVLC, REQUIRED
    import tempfile

    from hybrid_drift.io import iter_video_frames
    port = _port()
    url = f"rtsp://127.0.0.1:{port}/cam"
    with tempfile.TemporaryDirectory() as shared:  # readable by the unprivileged VLC
        os.chmod(shared, 0o755)
        # full-size frames: a 192x144 MPEG-4 stream from VLC took FFmpeg ~10 s to probe
        video = _video(Path(shared) / "v.avi", [f for _, f in iter_video_frames(data_dir / "vtest.avi", stop=150)])
        os.chmod(video, 0o644)
        vlc = subprocess.Popen(_as_user([CVLC, "-q", "--no-audio", str(video), "--sout",
                                         f"#transcode{{vcodec=mp4v,vb=1500}}:rtp{{sdp={url}}}"]),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        stop, events = threading.Event(), []
        try:
            time.sleep(2)
            t = threading.Thread(target=lambda: events.extend(watch([url], model, max_frames=20, drift=False,
                                                                    stop=stop)), daemon=True)
            t.start()
            t.join(timeout=60)
        finally:
            stop.set()
            vlc.kill()
            vlc.wait(timeout=20)
    frames = [e for e in events if e["type"] == "frame"]
    assert len(frames) == 20 and all(e["error"] is None for e in frames), events[-3:]


def test_a_slow_scorer_drops_the_oldest_frames_and_counts_them_but_never_a_status_event():
    from hybrid_drift.watch.readers import Frame, Reader, Status
    r = Reader("c", "rtsp://127.0.0.1:9/never-opened", queue=4)  # a live source: it never waits for scoring
    r._put(Status("c", "disconnect", 0.0, 0.0), droppable=False)
    for i in range(20):
        r._put(Frame("c", i, i / 10, 0.0, None))
    items = r.get(timeout=0)
    assert isinstance(items[0], Status) and [f.index for f in items[1:]] == [16, 17, 18, 19]
    assert r.counters.dropped == 16


def test_fps_keeps_at_most_n_frames_per_second_of_stream_time_and_realtime_follows_the_files_clock(model, segments):
    # the 14 s file at 10 fps, scored at most 2 frames per second of its own clock
    events = list(watch([str(segments)], model, fps=2, drift=False))
    times = [e["stream_time"] for e in events if e["type"] == "frame"]
    assert len(times) == 28 and min(b - a for a, b in zip(times, times[1:])) >= 0.5 - 1e-6, times
    # realtime: 20 frames of a 10 fps file are read at the file's own rate, so they take at least ~2 s
    t0 = time.time()
    events = list(watch([str(segments)], model, realtime=True, max_frames=20, drift=False))
    assert time.time() - t0 >= 1.8 and sum(e["type"] == "frame" for e in events) == 20


def test_a_cameras_file_names_each_camera_and_its_model_and_bad_files_exit_2(model, segments, tmp_path, capsys):
    other = tmp_path / "other-model"
    shutil.copytree(model, other)
    cfg = tmp_path / "cameras.toml"
    cfg.write_text(f"""
[[camera]]
name = "gate"
source = "{segments}"
model = "{model}"

[[camera]]
name = "yard"
source = "{segments}"
model = "{other}"
fps = 1
""")
    events = tmp_path / "ev.jsonl"
    assert main(["watch", "--config", str(cfg), "--events", str(events), "--no-drift", "--no-progress"]) == 0
    frames = [json.loads(x) for x in events.read_text().splitlines() if '"frame"' in x]
    per_cam = {c: sum(e["type"] == "frame" and e["camera"] == c for e in frames) for c in ("gate", "yard")}
    assert per_cam == {"gate": 140, "yard": 14}, per_cam  # every frame; one per second of the file's clock
    for bad, why in ((cfg.read_text().replace('"yard"', '"gate"'), "used twice"),
                     ("[[camera]]\nname = \"x\"\n", "needs name, source and model"),
                     ("camera = [", "cannot read"),
                     (cfg.read_text().replace("fps = 1", "fps = -1"), "fps must be")):
        cfg.write_text(bad)
        capsys.readouterr()
        assert main(["watch", "--config", str(cfg), "--no-progress"]) == 2
        assert why in capsys.readouterr().err


def test_ctrl_c_stops_the_watch_cleanly_closes_its_open_alerts_and_summarises(model, segments, tmp_path):
    import signal
    import sys
    events = tmp_path / "ev.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "hybrid_drift.cli", "watch", str(model), str(segments),
                             "--realtime", "--no-drift", "--events", str(events)], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60  # the frozen segment starts 4 s into the file; its alert opens 1 s later
        def frozen_open():
            text = events.read_text() if events.exists() else ""
            return any('"kind": "frozen"' in x and '"ongoing": true' in x for x in text.splitlines())

        while time.time() < deadline and not frozen_open():
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    lines = [json.loads(x) for x in events.read_text().splitlines()]
    frozen = [e for e in lines if e["type"] == "alert" and e["kind"] == "frozen"]
    assert [e["ongoing"] for e in frozen] == [True, False] and frozen[-1]["closed_by"] == "stop", frozen
    assert "(stopped)" in err and "frames read" in err and "latency" in err
    assert max(e["frame"] for e in lines if e["type"] == "frame") < 100  # it stopped before the file ended


def test_a_live_hls_stream_is_scored(model, segments, tmp_path):
    """FFmpeg publishes the video live (at its own frame rate) as an HLS playlist of 1-second segments,
    served over HTTP on loopback, as a camera or a media server does."""
    assert FFMPEG, REQUIRED
    hls = tmp_path / "hls"
    hls.mkdir()
    enc = subprocess.Popen([FFMPEG, "-hide_banner", "-loglevel", "error", "-re", "-i", str(segments), "-an",
                            "-c:v", "libx264", "-g", "10", "-pix_fmt", "yuv420p", "-f", "hls", "-hls_time", "1",
                            "-hls_list_size", "0", str(hls / "cam.m3u8")])

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(hls), **kw)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        deadline = time.time() + 30
        while not (hls / "cam.m3u8").exists() and time.time() < deadline:
            time.sleep(0.1)
        # FFmpeg's HLS reader delivers a whole 1-second segment (10 frames) at once, and more at the start:
        # with the default queue of 8 the oldest of each burst were dropped whenever scoring lagged the
        # decoder (98-99 frames scored in some runs); a queue of three segments holds every burst
        events = _watch_until([f"http://127.0.0.1:{srv.server_port}/cam.m3u8"], model, seconds=60, until=_ended(),
                              drift=False, settle=0.0, queue=32)
    finally:
        srv.shutdown()
        enc.kill()
        enc.wait(timeout=10)
    frames = [e for e in events if e["type"] == "frame"]
    assert len(frames) >= 100 and all(e["error"] is None for e in frames), len(frames)
    kinds = {e["kind"] for e in events if e["type"] == "alert" and e["ongoing"]}
    assert {"frozen", "blank"} <= kinds, kinds


def test_resolution_and_format_changes_open_and_close_their_alerts():
    h = CameraHealth("c", HealthSettings())
    rng = np.random.default_rng(1)
    small, large = (rng.integers(0, 255, (144, 192, 3)).astype(np.uint8),
                    rng.integers(0, 255, (120, 160, 3)).astype(np.uint8))
    seq = [(small, "MJPG")] * 3 + [(large, "MJPG")] * 3 + [(small, "MJPG")] * 2 + [(small, "H264")] * 2 + \
          [(small, "MJPG")]
    events = []
    for i, (img, fmt) in enumerate(seq):
        noisy = np.roll(img, 3 * i, axis=1)  # never frozen (+1 grey level a frame is near-identical: frozen)
        events += h.frame(i, i * 0.1, noisy, fmt, None)
    got = [(e["kind"], e["ongoing"], e["start_frame"], e.get("end_frame")) for e in events]
    assert got == [("resolution", True, 3, None), ("resolution", False, 3, 6),
                   ("format", True, 8, None), ("format", False, 8, 10)], got
    assert events[0]["resolution"] == "160x120" and events[0]["expected"] == "192x144"


def test_a_reference_of_two_sizes_pages_on_neither_but_on_a_third():
    """The resolution check takes every size the reference had, not the first reference frame's: a camera
    whose reference mixed 192x144 and 160x120 frames paged on every frame of the second size."""
    h = CameraHealth("c", HealthSettings(), reference_resolution={"192x144", "160x120"})
    rng = np.random.default_rng(2)
    sizes = [(144, 192)] * 3 + [(120, 160)] * 3 + [(192, 256)] * 2 + [(144, 192)]
    events = []
    for i, (hh, ww) in enumerate(sizes):
        events += h.frame(i, i * 0.1, rng.integers(0, 255, (hh, ww, 3)).astype(np.uint8), "MJPG", None)
    got = [(e["kind"], e["ongoing"], e["start_frame"], e.get("end_frame")) for e in events]
    assert got == [("resolution", True, 6, None), ("resolution", False, 6, 8)], got
    assert events[0]["resolution"] == "256x192" and events[0]["expected"] == "160x120 or 192x144"
    # one size, given as a string, still works as before: the first frame at another size pages at once
    one = CameraHealth("c", HealthSettings(), reference_resolution="192x144")
    first = one.frame(0, 0.0, rng.integers(0, 255, (120, 160, 3)).astype(np.uint8), "MJPG", None)
    assert [(e["kind"], e["expected"]) for e in first] == [("resolution", "192x144")]


def test_watch_of_a_model_fitted_on_two_sizes_raises_no_resolution_alert(frames, tmp_path):
    ref = [f if i % 2 else cv2.resize(f, (160, 120), interpolation=cv2.INTER_AREA) for i, f in enumerate(frames[:60])]
    model = tmp_path / "two_sizes"
    HybridDetector(cnn=False).fit(ref).save(model)
    small = [cv2.resize(f, (160, 120), interpolation=cv2.INTER_AREA) for f in frames[100:130]]
    events = _watch_until([str(_video(tmp_path / "small.avi", small))], model, seconds=120, drift=False)
    assert sum(e["type"] == "frame" for e in events) == 30
    assert not [e for e in events if e["type"] == "alert" and e["kind"] == "resolution"]
    # a third size still pages
    big = [cv2.resize(f, (256, 192)) for f in frames[100:110]]
    events = _watch_until([str(_video(tmp_path / "big.avi", big))], model, seconds=120, drift=False)
    alerts = [e for e in events if e["type"] == "alert" and e["kind"] == "resolution" and e["ongoing"]]
    assert alerts and alerts[0]["expected"] == "160x120 or 192x144", alerts


def test_the_rolling_drift_check_alerts_on_dusk_and_not_on_the_clean_stream(frames, tmp_path):
    model = tmp_path / "m"
    HybridDetector(cnn=False).fit(frames[:100]).save(model)  # keeps the reference period's profile
    clean = frames[100:160]
    dusk = clean[:20] + [(f * 0.55).astype(np.uint8) for f in clean[20:]]
    settings = HealthSettings(drift_window=20)
    kinds = {}
    for name, seq in (("clean", clean), ("dusk", dusk)):
        video = _video(tmp_path / f"{name}.avi", seq)
        events = list(watch([str(video)], model, settings=settings))
        kinds[name] = [e for e in events if e["type"] == "alert" and e["kind"] == "drift" and e["ongoing"]]
    assert kinds["clean"] == []
    assert len(kinds["dusk"]) == 1 and kinds["dusk"][0]["start_frame"] == 20, kinds["dusk"]
    assert any("brightness" in c["check"] for c in kinds["dusk"][0]["checks"])
