"""A long `watch` of a live stream, with and without glibc's arena cap, side by side: does its memory grow?

    python benchmarks/watch_memory.py [--minutes 120] [--every 60] [--json out.json]

What a service runs: the CLI ``hybrid-drift watch MODEL URL --fps 2 --alerts-only`` on the bundled street
video served as MJPEG over HTTP by FFmpeg, looping without a break (one server per watch). The default model is
fitted once, through the CLI, on the video's first 300 frames saved as JPEG files. Two watches run at the same
time in separate processes, alike but for their environment: one as a plain service starts,
one with ``MALLOC_ARENA_MAX=2`` (README's systemd unit). Each process's resident memory (``VmRSS``) is read
every ``--every`` seconds. Printed: RSS at the first sample, after ``--warmup`` minutes, and at the end, the
peak, the slope after the warm-up (MB an hour, least squares), and frames scored and alerts from each watch's
summary. Needs ``ffmpeg`` (installed by ``make test``). CPU: the two watches and servers take about one core.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hybrid_drift.datasets.crossroad import bundled_data_dir  # noqa: E402
# helpers of the other benchmarks (this folder is on the path): the stream server, RSS of a process, the frames
from memory import video_jpegs  # noqa: E402
from watch import serve_mjpeg  # noqa: E402
from watch_hostile import _rss_mb as rss_mb  # noqa: E402

CLI = [sys.executable, "-m", "hybrid_drift.cli"]
ARMS = {"plain": {}, "MALLOC_ARENA_MAX=2": {"MALLOC_ARENA_MAX": "2"}}


def fit_model(folder: Path) -> Path:
    """The default model, fitted through the CLI on the video's first 300 frames as JPEG files."""
    ref = folder / "reference"
    ref.mkdir()
    video_jpegs(ref, 300)
    model = folder / "model"
    subprocess.run([*CLI, "fit", str(ref), "--out", str(model), "--no-progress", "-q"], check=True)
    return model


def slope_mb_per_hour(samples: list[tuple[float, float]], after_s: float) -> float:
    pts = np.array([(t, r) for t, r in samples if t >= after_s and np.isfinite(r)])
    if len(pts) < 3:
        return float("nan")
    return float(np.polyfit(pts[:, 0] / 3600, pts[:, 1], 1)[0])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=120)
    ap.add_argument("--every", type=float, default=60, help="seconds between RSS samples")
    ap.add_argument("--warmup", type=float, default=10, help="minutes left out of the slope")
    ap.add_argument("--json", help="also write the samples and the table here")
    a = ap.parse_args()
    if not shutil.which("ffmpeg"):
        sys.exit("needs ffmpeg (apt-get install ffmpeg; make test installs it)")
    video = bundled_data_dir() / "vtest.avi"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = fit_model(tmp)
        procs, servers, logs = {}, [], {}
        try:
            for arm, env_extra in ARMS.items():
                url, srv = serve_mjpeg(video)
                servers.append(srv)
                env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"} | env_extra
                logs[arm] = tmp / f"{len(procs)}.log"
                with open(logs[arm], "w") as log:
                    procs[arm] = subprocess.Popen(
                        [*CLI, "watch", str(model), url, "--fps", "2", "--alerts-only", "--no-progress",
                         "--events", str(tmp / f"{len(procs)}.jsonl")], env=env, stdout=log, stderr=subprocess.STDOUT)
            t0, samples = time.time(), {arm: [] for arm in ARMS}
            while time.time() - t0 < a.minutes * 60:
                time.sleep(a.every)
                for arm, p in procs.items():
                    samples[arm].append((round(time.time() - t0, 1), round(rss_mb(p.pid), 1)))
                if any(p.poll() is not None for p in procs.values()):
                    print("a watch ended early: see its log below", file=sys.stderr)
                    break
        finally:
            for p in procs.values():
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            for p in procs.values():
                try:
                    p.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    p.kill()
            for s in servers:
                s.kill()
                s.wait()
        rows = {}
        for arm in ARMS:
            rss = samples[arm]
            after = [r for t, r in rss if t >= a.warmup * 60]
            summary = [ln.strip() for ln in logs[arm].read_text(errors="replace").splitlines() if "scored" in ln]
            rows[arm] = {"first": rss[0][1] if rss else None, "after_warmup": after[0] if after else None,
                         "end": rss[-1][1] if rss else None, "peak": max((r for _, r in rss), default=None),
                         "slope_mb_per_hour": slope_mb_per_hour(rss, a.warmup * 60),
                         "exit_code": procs[arm].returncode, "summary": summary, "samples": rss}
    minutes = max((s[-1][0] for s in samples.values() if s), default=0) / 60
    print(f"\nwatch of vtest.avi as MJPEG over HTTP (FFmpeg, looping), --fps 2, default model; {minutes:.0f} min, "
          f"both watches at once, RSS every {a.every:.0f} s\n")
    print(f"| environment | RSS first (MB) | after {a.warmup:.0f} min | end | peak | slope after {a.warmup:.0f} min "
          "(MB/h) | exit | watch summary |\n|---|---:|---:|---:|---:|---:|---:|---|")
    for arm, r in rows.items():
        print(f"| {arm} | {r['first']} | {r['after_warmup']} | {r['end']} | {r['peak']} | "
              f"{r['slope_mb_per_hour']:+.1f} | {r['exit_code']} | {' '.join(r['summary']) or '-'} |")
    if a.json:
        Path(a.json).write_text(json.dumps({"minutes": minutes, "every_s": a.every, "warmup_min": a.warmup,
                                            "arms": rows}, indent=1))
    return 0 if all(r["exit_code"] == 0 for r in rows.values()) else 2


if __name__ == "__main__":
    sys.exit(main())
