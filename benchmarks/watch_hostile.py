"""`hybrid-drift watch` as a service under hostile conditions (issue 23), on 127.0.0.1 only.

    python benchmarks/watch_hostile.py [--seconds 120]

One `hybrid-drift watch` process (the real command, colour-only model fitted on frames 0-399)
watches the bundled street video served as MJPEG over HTTP by FFmpeg, looping, with faults
injected into what is served: a frozen segment and a black segment per loop, and the server
killed for 5 s once. Meanwhile:

* the webhook receiver answers in turn: a garbage status line, a trickle (one byte per 0.5 s),
  a redirect to another port, and a proper 200;
* the MQTT broker (mosquitto) is stopped for 5 s and started again;
* the camera changes resolution: the server is killed, comes back at 320x240 for 15 s, is killed
  again and comes back at the model's 384x288;
* at the end the watch gets SIGTERM.

Reported: faults served (counted from when each server ran) vs alerts opened per fault kind
(alerts lost, duplicated per fault),
whether every line of the events file is strict JSON, whether every opened alert was closed,
the exit code, webhook delivered/failed from the summary, MQTT messages received, and the RSS
of the watch process at the start and the end.
"""

from __future__ import annotations

import argparse
import http.server
import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


class Receiver(http.server.BaseHTTPRequestHandler):
    """Garbage, trickle, redirect, OK, in turn."""

    n = 0
    ok = 0

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Receiver.n += 1
        mode = Receiver.n % 4
        if mode == 1:
            self.wfile.write(b"GARBAGE\r\n\r\n")
        elif mode == 2:
            self.send_response(200)
            self.end_headers()
            for b in b"ok":
                self.wfile.write(bytes([b]))
                self.wfile.flush()
                time.sleep(0.5)
        elif mode == 3:
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.1:{_port()}/x")
            self.end_headers()
        else:
            Receiver.ok += 1
            self.send_response(200)
            self.end_headers()

    def log_message(self, *a):
        pass


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=120)
    a = ap.parse_args()
    import cv2

    from hybrid_drift import HybridDetector
    from hybrid_drift.datasets.crossroad import bundled_data_dir
    from hybrid_drift.io import iter_video_frames
    ffmpeg, mosquitto = shutil.which("ffmpeg"), shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    frames = [cv2.resize(f, (384, 288)) for _, f in iter_video_frames(bundled_data_dir() / "vtest.avi")]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = tmp / "model"
        HybridDetector(cnn=False).fit(frames[:400]).save(model)
        # one loop: 30 s clean, 3 s frozen, 10 s clean, 3 s black, 10 s clean (10 fps)
        loop = frames[400:700] + [frames[700]] * 30 + frames[701:801 - 5] + [np.zeros_like(frames[0])] * 30 + \
            frames[400:500]
        video, small = tmp / "loop.avi", tmp / "small.avi"
        for path, size in ((video, (384, 288)), (small, (320, 240))):
            out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, size)
            for f in loop:
                out.write(cv2.cvtColor(cv2.resize(f, size), cv2.COLOR_RGB2BGR))
            out.release()
        loop_s = len(loop) / 10
        # where the faults sit in one loop (seconds): frozen 30-33, black 42.5-45.5
        fault_at = {"frozen": (30.0, 33.0), "blank": (42.5, 45.5)}
        cam_port, hook_srv = _port(), http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
        threading.Thread(target=hook_srv.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{cam_port}/cam.mjpg"

        served = []  # (start, end) of each run of the full-size server: the faults it served are counted

        def serve(path=video):
            if path == video:
                served.append([time.time(), None])
            return subprocess.Popen([ffmpeg, "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1",
                                     "-i", str(path), "-an", "-c:v", "mjpeg", "-q:v", "3", "-f", "mpjpeg",
                                     "-listen", "1", url], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        mq_port = _port()
        conf = tmp / "mq.conf"
        conf.write_text(f"listener {mq_port} 127.0.0.1\nallow_anonymous true\npersistence false\n")

        def broker():
            return subprocess.Popen([mosquitto, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        import paho.mqtt.client as mqtt
        got = []
        sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-sub")
        sub.on_connect = lambda c, *x: c.subscribe("cams/#", qos=1)
        sub.on_message = lambda c, u, m: got.append(m.topic)
        server, mq = serve(), broker()
        time.sleep(1.0)
        sub.connect_async("127.0.0.1", mq_port)
        sub.loop_start()
        events = tmp / "events.jsonl"
        proc = subprocess.Popen([sys.executable, "-m", "hybrid_drift.cli", "watch", str(model), url, "--no-drift",
                                 "--events", str(events), "--webhook", f"http://127.0.0.1:{hook_srv.server_address[1]}/a",
                                 "--mqtt", f"mqtt://127.0.0.1:{mq_port}/cams"],
                                stderr=subprocess.PIPE, text=True)
        t0 = time.time()
        time.sleep(5)
        rss0 = _rss_mb(proc.pid)
        killed = restarted = resized = broker_down = False

        def kill(srv):
            srv.kill()
            srv.wait()
            if served[-1][1] is None:
                served[-1][1] = time.time()
        while time.time() - t0 < a.seconds:
            el = time.time() - t0
            if not killed and el > a.seconds * 0.4:
                kill(server)
                killed, kill_at = True, time.time()
            if killed and not restarted and time.time() - kill_at > 5:  # back at another resolution
                server, restarted = serve(small), True
            if restarted and not resized and time.time() - kill_at > 20:  # and back at the model's
                kill(server)
                server, resized = serve(), True
            if not broker_down and el > a.seconds * 0.6:
                mq.terminate()
                mq.wait()
                time.sleep(5)
                mq, broker_down = broker(), True
            time.sleep(0.5)
        rss1 = _rss_mb(proc.pid)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        kill(server)
        sub.loop_stop()
        mq.terminate()
        hook_srv.shutdown()
        lines = events.read_text().splitlines()

        def strict(x):
            try:
                json.loads(x, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
                return True
            except ValueError:
                return False
        valid = sum(strict(x) for x in lines)
        evs = [json.loads(x) for x in lines if strict(x)]
        alerts = [e for e in evs if e["type"] == "alert"]
        opened = {}
        for e in alerts:
            if e.get("ongoing"):
                opened[e["kind"]] = opened.get(e["kind"], 0) + 1
        closed = sum(1 for e in alerts if not e.get("ongoing") and e["kind"] != "reconnect")
        # faults served whole while the watch ran (the first second after a (re)connection is skipped)
        expected = {k: 0 for k in fault_at}
        for start, end in served:
            end = min(end, t0 + a.seconds)
            for k, (s0, s1) in fault_at.items():
                n = 0
                while start + n * loop_s + s1 + 1.0 <= end:
                    n += 1
                expected[k] += n
        expected.update(resolution=1, disconnect=2)
        print(f"ran {a.seconds:.0f} s: {len(served)} runs of the full-size server, one of 15 s at 320x240 between them")
        print(f"exit code after SIGTERM: {proc.returncode}")
        print(f"events: {len(lines)} lines, {valid} strict JSON; opened {sum(opened.values())}, closed {closed}")
        for k in sorted(set(expected) | set(opened)):
            e, o = expected.get(k, 0), opened.get(k, 0)
            print(f"  {k:11s} faults served {e:3d}  alerts opened {o:3d}  lost {max(e - o, 0)}  "
                  f"duplicated {max(o - e, 0)}")
        print(f"webhook receiver: {Receiver.n} requests, {Receiver.ok} plain 200s; summary: "
              + next((x.strip() for x in err.splitlines() if "webhook:" in x), "no webhook line"))
        print(f"MQTT messages received: {len(got)} ({sum('/alert' in t for t in got)} alerts)")
        print(f"RSS of the watch: {rss0:.0f} MB after 5 s -> {rss1:.0f} MB at the end")
        print("summary:\n" + "\n".join(x for x in err.splitlines() if x.startswith(("watched", "  "))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
