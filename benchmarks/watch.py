"""`watch` on a real RTSP stream: keeping up, latency, false alerts on clean footage, delay to alert, memory.

    python benchmarks/watch.py [--seconds 60] [--long 1800]

The bundled street video (768x576, 10 fps) is served as RTSP at its own frame rate by VLC
on 127.0.0.1 (looping for long runs). Two saved models, fitted on frames 0-399: colour only,
and the default hybrid (colour + CNN on the default runtime). For each: frames read and
scored per second, frames dropped, latency from reading a frame to its event (p50, p99),
health alerts on the clean stream (per hour), RSS at start and end.

Then a stream with injected faults (3 s frozen, 3 s black, and the server killed for
5 s and restarted): the delay from each fault's start to its alert, in seconds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hybrid_drift import HybridDetector  # noqa: E402
from hybrid_drift.datasets.crossroad import bundled_data_dir  # noqa: E402
from hybrid_drift.io import iter_video_frames  # noqa: E402
from hybrid_drift.watch import watch  # noqa: E402

HEALTH = ("frozen", "blank", "disconnect", "reconnect", "resolution", "format")


def port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def serve_rtsp(video: Path, loop: bool, at: int | None = None):
    url = f"rtsp://127.0.0.1:{at or port()}/cam"
    cmd = [shutil.which("cvlc"), "-q", "--no-audio", str(video), "--sout",
           f"#transcode{{vcodec=mp4v,vb=4000}}:rtp{{sdp={url}}}"] + (["--loop"] if loop else [])
    if os.geteuid() == 0:
        cmd = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *cmd]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(2)
    return url, proc


def write(frames, path: Path) -> Path:
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (768, 576))
    for f in frames:
        out.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    out.release()
    os.chmod(path, 0o644)
    return path


def serve_mjpeg(video: Path):
    """FFmpeg serving the video as MJPEG over HTTP, looping without a break (one client)."""
    url = f"http://127.0.0.1:{port()}/cam.mjpg"
    proc = subprocess.Popen([shutil.which("ffmpeg"), "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1",
                             "-i", str(video), "-an", "-c:v", "mjpeg", "-q:v", "3", "-f", "mpjpeg", "-listen", "1",
                             url], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)
    return url, proc


def run(url, model, seconds, fps=None):
    stop, events = threading.Event(), []
    from hybrid_drift.watch import WatchStats
    stats = WatchStats()
    r0, t0 = rss_mb(), time.time()

    def consume():  # keep alerts only: a list of every frame event would itself grow the process
        for e in watch([url], model, fps=fps, stats=stats, stop=stop):
            if e["type"] == "alert":
                events.append(e)

    t = threading.Thread(target=consume)
    t.start()
    samples = []
    while time.time() - t0 < seconds:
        time.sleep(min(10.0, seconds / 6))
        samples.append((round(time.time() - t0), round(rss_mb())))
    stop.set()
    t.join(timeout=60)
    wall = time.time() - t0
    lat = np.array(stats.latencies) * 1e3
    alerts = [e for e in events if e["type"] == "alert" and (e.get("ongoing") or e["kind"] == "reconnect")]
    return {"read": sum(stats.read.values()) / wall, "scored": sum(stats.scored.values()) / wall,
            "dropped": sum(stats.dropped.values()), "p50": float(np.percentile(lat, 50)) if len(lat) else np.nan,
            "p99": float(np.percentile(lat, 99)) if len(lat) else np.nan, "wall": wall, "rss0": r0,
            "rss1": rss_mb(), "samples": samples,
            "health": [e["kind"] for e in alerts if e["kind"] in HEALTH],
            "other": [e["kind"] for e in alerts if e["kind"] not in HEALTH], "events": events}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--long", type=float, default=0, help="also a run of this many seconds (memory)")
    a = ap.parse_args()
    assert shutil.which("cvlc"), "needs VLC (apt-get install vlc-bin vlc-plugin-base)"
    frames = [f for _, f in iter_video_frames(bundled_data_dir() / "vtest.avi")]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.chmod(tmp, 0o755)
        models = {}
        for name, kw in (("colour only", {"cnn": False}), ("colour + CNN (default)", {})):
            models[name] = tmp / name.split()[0]
            HybridDetector(**kw).fit(frames[:400]).save(models[name])
        clean = write(frames, tmp / "clean.avi")
        # the same model fitted on 400 frames captured from the stream itself (its codec included)
        url, srv = serve_rtsp(clean, loop=True)
        try:
            cap = cv2.VideoCapture(url, cv2.CAP_FFMPEG)
            grabbed = []
            while len(grabbed) < 400:
                ok, bgr = cap.read()
                if not ok:
                    break
                grabbed.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            cap.release()
        finally:
            srv.kill()
            srv.wait()
        models["colour + CNN, fitted on 400 frames of the stream"] = tmp / "from-stream"
        HybridDetector().fit(grabbed).save(models["colour + CNN, fitted on 400 frames of the stream"])
        print(f"\nRTSP (VLC, MPEG-4) of vtest.avi at 10 fps, {a.seconds:.0f} s per run; 2 cores\n")
        print("| model | frames read/s | scored/s | dropped | latency p50 / p99 (ms) | health alerts (clean) | "
              "other alerts | RSS start -> end (MB) |\n|---|---:|---:|---:|---:|---|---|---:|")
        for name, model in models.items():
            url, srv = serve_rtsp(clean, loop=False)  # 79.5 s of video: longer runs would see VLC's loop restart
            try:
                r = run(url, model, a.seconds)
            finally:
                srv.kill()
                srv.wait()
            per_hour = len(r["health"]) * 3600 / r["wall"]
            print(f"| {name} | {r['read']:.1f} | {r['scored']:.1f} | {r['dropped']} | {r['p50']:.0f} / {r['p99']:.0f} | "
                  f"{len(r['health'])} ({per_hour:.0f}/hour) {', '.join(r['health'])} | {', '.join(r['other']) or '-'} | "
                  f"{r['rss0']:.0f} -> {r['rss1']:.0f} |", flush=True)
        if a.long:  # VLC ends the RTSP session at the end of the file when it loops: FFmpeg MJPEG loops seamlessly
            url, srv = serve_mjpeg(clean)
            try:
                r = run(url, models["colour + CNN (default)"], a.long)
            finally:
                srv.kill()
                srv.wait()
            print(f"\nlong run, colour + CNN, MJPEG over HTTP (FFmpeg, looping), {r['wall'] / 60:.0f} min: "
                  f"{r['scored']:.1f} frames scored/s, "
                  f"{r['dropped']} dropped, latency p50 {r['p50']:.0f} ms p99 {r['p99']:.0f} ms, health alerts "
                  f"{len(r['health'])} ({', '.join(r['health']) or 'none'}), RSS {r['rss0']:.0f} -> {r['rss1']:.0f} MB; "
                  f"RSS over time (s, MB): {r['samples']}")
        # injected faults: 3 s frozen at 20 s and 3 s black at 40 s of the served video; the server
        # killed 52 s after it started and back 5 s later on the same port
        seq = frames[:200] + [frames[200]] * 30 + frames[230:400] + [np.zeros_like(frames[0])] * 30 + frames[430:600]
        faults = write(seq, tmp / "faults.avi")
        p = port()
        srv = serve_rtsp(faults, loop=False, at=p)[1]
        stop, events = threading.Event(), []
        def consume():
            for e in watch([f"rtsp://127.0.0.1:{p}/cam"], models["colour only"], stop=stop):
                e["_seen"] = time.time()
                events.append(e)

        th = threading.Thread(target=consume)
        th.start()
        time.sleep(52)
        srv.kill()
        srv.wait()
        t_kill = time.time()
        time.sleep(5)
        srv = serve_rtsp(faults, loop=True, at=p)[1]
        t_back = time.time() - 2  # serve_rtsp waits 2 s after starting the server
        time.sleep(30)
        stop.set()
        th.join(timeout=60)
        srv.kill()
        srv.wait()
        print("\ninjected faults (colour-only model): delay from the fault to its alert\n")
        print("| fault | delay | how measured |\n|---|---:|---|")
        for kind in ("frozen", "blank"):
            opened = [e for e in events if e["type"] == "alert" and e["kind"] == kind and e.get("ongoing")]
            if opened:
                e = opened[0]
                print(f"| {kind} (3 s in the served video) | {e['stream_time'] - e['start_stream_time']:.1f} s | "
                      f"stream time of the frame that raised it minus that of the fault's first frame |")
            else:
                print(f"| {kind} | not alerted | |")
        for kind, t_fault in (("disconnect", t_kill), ("reconnect", t_back)):
            got = [e for e in events if e["type"] == "alert" and e["kind"] == kind]
            if got:
                print(f"| {kind} (server {'killed' if kind == 'disconnect' else 'back'}) | "
                      f"{got[0]['_seen'] - t_fault:.1f} s | wall clock, from the server's "
                      f"{'kill' if kind == 'disconnect' else 'restart'} to the event |")
            else:
                print(f"| {kind} | not alerted | |")


if __name__ == "__main__":
    main()
