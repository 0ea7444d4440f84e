"""Faults the defaults were never chosen on: how the default detector fares on them, scene by scene.

    python benchmarks/heldout_faults.py build/scenes-dev/tank_a-s2 build/scenes/wall-s0 ... \\
        [--copies 20] [--json build/heldout.json]

Each argument is a benchmark dataset (``make-dataset scenes`` / ``crossroad-protocol``: a
``manifest.csv`` with train / val / test splits in time order). The default detector is fitted the way
``bench`` fits it (train plus the val split's normal frames as the reference, order from the data), then
scores the test split's clean frames (false alarms), the same clean frames as a live stream may deliver
them (:data:`BENIGN`: JPEG quality 60 and 40, an MPEG-4 round trip, FFmpeg's H.264 and MJPEG encoders;
every alarm there is a false one),
and ``--copies`` copies of clean test frames under each held-out fault:
:data:`hybrid_drift.corruptions.HELD_OUT_FAULTS` (a torn frame, a half-decoded frame, error-concealment
smear, over-exposure, snow, defocus, hot pixels), which no benchmark set is built from, the study's
camera-like transforms (:data:`~hybrid_drift.corruptions.STUDY_FAULTS`), which only the street's sets
contain, and a second held-out round written after every default was chosen
(:data:`~hybrid_drift.corruptions.UNSEEN_FAULTS`: washed-out contrast, a changed tone curve, dirt or
drops on the lens, sensor gain noise, a frosted lens, zoom blur, lost bit depth, missing blocks, a bent
or turned mount, over-sharpening, colour fringes, colour lost, a hue cast, a mirrored image, a changed
zoom, local tone mapping, another lens). Copies go through a JPEG at quality 92, as the benchmark sets'
do. A fault that leaves a scene's frames unchanged (grey scale on a grey camera) is ``n/a`` there.

Printed: the false alarms on the clean frames as stored and as each stream delivers them (with the
branches that raised them), the recall of the default fusion per fault and dataset, the worst
dataset, and the branches that caught each fault; JSON with every number. Offline; a dataset takes
about two minutes on 2 cores with a warm feature cache.
"""

from __future__ import annotations

import argparse
import json
import sys
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _jpeg(bgr, quality: int):
    """``bgr`` through a JPEG at ``quality`` and back (BGR)."""
    import cv2

    return cv2.imdecode(cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])[1], cv2.IMREAD_COLOR)


def _copies(frames, kind, rng):
    """JPEG'd corrupted copies of ``frames``; None when the fault does not change this scene's frames."""
    import cv2

    from hybrid_drift.corruptions import apply_corruption

    out = []
    for rgb in frames:
        try:
            img, _ = apply_corruption(rgb, kind, rng)
        except ValueError:  # unchanged five times: the fault does not exist on this camera
            return None
        out.append(cv2.cvtColor(_jpeg(cv2.cvtColor(img, cv2.COLOR_RGB2BGR), 92), cv2.COLOR_BGR2RGB))
    return out


#: how a live stream may deliver the very same clean test frames (none of them a fault): snapshots at
#: JPEG quality 60 and 40 (the datasets' frames are quality 92), a round trip through OpenCV's
#: MPEG-4 writer and reader (which shifts the channels by a few grey levels and may drop an odd row),
#: and FFmpeg's encoders as cameras and stream servers use them: H.264 in limited-range YUV 4:2:0 (an IP
#: camera's RTSP stream) and MJPEG at quality 3 (an MJPEG-over-HTTP camera), each read back by OpenCV
BENIGN = ("jpeg60", "jpeg40", "mpeg4", "h264", "mjpeg")
#: the camera's own video served as a stream by FFmpeg (MJPEG at quality 3, as `ffmpeg -f mpjpeg` serves it),
#: decoded by FFmpeg from the source file and never turned into RGB on the way: the frames the dataset's
#: JPEG files were made of, as a camera's MJPEG server delivers them
SERVED = "served_mjpeg"
#: FFmpeg's output settings of each encoder of :data:`BENIGN`
_FFMPEG = {"h264": (".mp4", ["-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p"]),
           "mjpeg": (".avi", ["-c:v", "mjpeg", "-q:v", "3", "-pix_fmt", "yuvj420p"])}


def _read_back(path, n: int):
    """The first ``n`` frames of the video at ``path`` as OpenCV reads them (RGB), or None when it holds fewer."""
    from hybrid_drift.io import iter_video_frames

    try:
        out = [f for _, f in iter_video_frames(path, stop=n)]
    except ValueError:  # not a video OpenCV can open
        return None
    return out if len(out) == n else None


def _ffmpeg_roundtrip(frames_bgr, how):
    """``frames_bgr`` through the FFmpeg binary's encoder ``how`` (:data:`_FFMPEG`) and OpenCV's reader (RGB);
    None without FFmpeg or that encoder."""
    import os
    import shutil
    import subprocess
    import tempfile

    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        return None
    h, w = frames_bgr[0].shape[:2]
    suffix, args = _FFMPEG[how]
    fd, tmp = tempfile.mkstemp(suffix=suffix)
    os.close(fd)
    try:
        enc = subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24",
                              "-s", f"{w}x{h}", "-r", "10", "-i", "-", *args, tmp],
                             input=b"".join(f.tobytes() for f in frames_bgr), capture_output=True)
        return _read_back(tmp, len(frames_bgr)) if enc.returncode == 0 else None
    finally:
        os.remove(tmp)


def _reencoded(frames_bgr, how):
    """``frames_bgr`` as the stream ``how`` of :data:`BENIGN` delivers them (RGB); None when this machine's
    OpenCV (or FFmpeg) cannot write that stream."""
    import os
    import tempfile

    import cv2

    if how.startswith("jpeg"):
        return [cv2.cvtColor(_jpeg(f, int(how[4:])), cv2.COLOR_BGR2RGB) for f in frames_bgr]
    if how in _FFMPEG:
        return _ffmpeg_roundtrip(frames_bgr, how)
    if how != "mpeg4":
        raise ValueError(f"unknown stream {how!r}; known: {', '.join(BENIGN)}")
    h, w = frames_bgr[0].shape[:2]
    fd, tmp = tempfile.mkstemp(suffix=".mp4")
    os.close(fd)
    try:
        writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*"mp4v"), 10, (w, h))
        if not writer.isOpened():
            return None
        for f in frames_bgr:
            writer.write(f)
        writer.release()
        return _read_back(tmp, len(frames_bgr))
    finally:
        os.remove(tmp)


def _source_video(ds):
    """The dataset's source video file, or None (a folder of stills, or a source this script does not know)."""
    from hybrid_drift.datasets.crossroad import bundled_data_dir
    from hybrid_drift.datasets.scenes import SCENES, fetch_footage

    meta = ds.root / "dataset.json"
    name = str(json.loads(meta.read_text()).get("name", "")) if meta.is_file() else ""
    if name == "crossroad":
        return bundled_data_dir() / "vtest.avi"
    scene = SCENES.get(name.split(":", 1)[-1]) if name.startswith("scene:") else None
    src = fetch_footage(scene) if scene is not None else None
    return src if src is not None and src.is_file() else None


def _served(ds, frame_numbers, size):
    """Frames ``frame_numbers`` of the dataset's source video as FFmpeg serves them as MJPEG (:data:`SERVED`),
    at the dataset's frame ``size`` (w, h), RGB; None without FFmpeg or a source video."""
    import os
    import shutil
    import subprocess
    import tempfile

    import cv2

    src, ffmpeg = _source_video(ds), shutil.which("ffmpeg")
    if src is None or ffmpeg is None:
        return None
    from hybrid_drift.io import iter_video_frames

    want, got = set(int(f) for f in frame_numbers), {}
    fd, tmp = tempfile.mkstemp(suffix=".avi")
    os.close(fd)
    try:
        if subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-i", str(src), "-an",
                           "-frames:v", str(max(want) + 1), *_FFMPEG["mjpeg"][1], tmp],
                          capture_output=True).returncode != 0:
            return None
        for i, rgb in iter_video_frames(tmp, stop=max(want) + 1):  # keeps the wanted frames only
            if i in want:
                same = (rgb.shape[1], rgb.shape[0]) == tuple(size)  # else the dataset's downsampled size
                got[i] = rgb if same else cv2.resize(rgb, tuple(size), interpolation=cv2.INTER_AREA)
    except ValueError:  # not a video OpenCV can open
        return None
    finally:
        os.remove(tmp)
    return [got[int(f)] for f in frame_numbers] if len(got) == len(want) else None


def run_dataset(path: str, copies: int = 20, kinds=None, make_detector=None) -> dict:
    """Fit the default detector (or ``make_detector()``) on one dataset's reference and score its clean test
    frames and the copies."""
    import cv2
    import numpy as np

    from hybrid_drift import HybridDetector
    from hybrid_drift.corruptions import HELD_OUT_FAULTS, STUDY_FAULTS, UNSEEN_FAULTS
    from hybrid_drift.datasets import read_manifest

    kinds = tuple(kinds or (HELD_OUT_FAULTS + STUDY_FAULTS + UNSEEN_FAULTS))
    ds = read_manifest(path)
    m = ds.manifest
    ref = m[(m["split"] == "train") | ((m["split"] == "val") & (m["label"] == 0))]
    clean = m[(m["split"] == "test") & (m["label"] == 0)]
    det = (make_detector or HybridDetector)().fit(ref["abspath"].tolist())
    fa = det.score(clean["abspath"].tolist())
    alarms = fa["is_outlier"].fillna(False)
    rng = np.random.default_rng(zlib.crc32(ds.root.name.encode()))
    bgr = [cv2.imread(str(p)) for p in clean["abspath"]]  # read once: the streams take all, the faults some
    frames = [cv2.cvtColor(bgr[i], cv2.COLOR_BGR2RGB)
              for i in rng.choice(len(clean), min(copies, len(clean)), replace=False)]
    branches = [c[: -len("_flag")] for c in fa.columns if c.endswith("_flag")]

    def alarms_of(imgs) -> dict:  # a stream of clean frames: its false alarms, and the branches that raised them
        t = det.score(imgs)
        return {"false_alarms": int(t["is_outlier"].fillna(False).sum()), "n": len(t),
                "by_branch": {b: int(t[f"{b}_flag"].fillna(False).sum()) for b in branches}}

    benign = {}
    for how in BENIGN:
        imgs = _reencoded(bgr, how)
        benign[how] = None if imgs is None else alarms_of(imgs)
    served = _served(ds, clean["frame"], (bgr[0].shape[1], bgr[0].shape[0])) if "frame" in clean else None
    benign[SERVED] = None if served is None else alarms_of(served)
    del bgr
    per_kind = {}
    for kind in kinds:
        imgs = _copies(frames, kind, rng)
        if imgs is None:
            per_kind[kind] = None
            continue
        t = det.score(imgs)
        per_kind[kind] = {"recall": float(t["is_outlier"].fillna(False).mean()),
                          "by_branch": {b: float(t[f"{b}_flag"].fillna(False).mean()) for b in branches}}
    return {"dataset": ds.root.name, "n_clean": int(len(fa)),
            "false_alarms": int(alarms.sum()), "false_alarms_per_1000": 1000.0 * float(alarms.mean()),
            "copies": len(frames), "per_kind": per_kind, "benign": benign,
            "thresholds": {n: float(c.threshold) for n, c in zip(det.branch_names, det.calibrations)}}


def _pct(v: float) -> str:
    return f"{100 * v:.0f}%"


def table(results: list[dict]) -> str:
    """Recall per fault (rows) and dataset (columns), the worst dataset, and the branches that caught it."""
    names = [r["dataset"] for r in results]
    kinds = list(dict.fromkeys(k for r in results for k in r["per_kind"]))
    w = max(12, *(len(n) for n in names))
    k_w = max(16, *(len(k) + 1 for k in kinds))
    head = f"{'fault':<{k_w}}" + "".join(f"{n:>{w + 1}}" for n in names) + f"{'worst':>8}  caught by (mean share)"
    fa = "".join(f"{str(r['false_alarms']) + '/' + str(r['n_clean']):>{w + 1}}" for r in results)
    lines = [head, f"{'false alarms':<{k_w}}{fa}"]
    for how in (*BENIGN, SERVED):  # the same clean frames as a stream may deliver them
        got = [(r.get("benign") or {}).get(how) for r in results]
        if any(got):
            cells = "".join(f"{str(g['false_alarms']) + '/' + str(g['n']) if g else 'n/a':>{w + 1}}" for g in got)
            by: dict[str, int] = {}
            for g in got:
                for b, c in (g or {}).get("by_branch", {}).items():
                    by[b] = by.get(b, 0) + c
            top = ", ".join(f"{b} {c}" for b, c in sorted(by.items(), key=lambda x: -x[1])[:3] if c > 0)
            lines.append(f"{'  as ' + how:<{k_w}}{cells}{'':>8}  {top}")
    for k in kinds:
        vals = [r["per_kind"].get(k) for r in results]
        got = [v["recall"] for v in vals if v is not None]
        cells = "".join(f"{_pct(v['recall']) if v else 'n/a':>{w + 1}}" for v in vals)
        by: dict[str, float] = {}
        for v in vals:
            for b, s in (v or {}).get("by_branch", {}).items():
                by[b] = by.get(b, 0.0) + s / max(1, len(got))
        top = ", ".join(f"{b} {100 * s:.0f}%" for b, s in sorted(by.items(), key=lambda x: -x[1])[:3] if s > 0)
        worst = _pct(min(got)) if got else "n/a"
        lines.append(f"{k:<{k_w}}{cells}{worst:>8}  {top}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("datasets", nargs="+")
    ap.add_argument("--copies", type=int, default=20, help="copies of clean test frames per fault (default 20)")
    ap.add_argument("--kinds", default=None, help="comma-separated faults (default: held-out, study and unseen faults)")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    from datetime import date

    from hybrid_drift.bench.run import machine_description

    results = []
    for d in a.datasets:
        results.append(run_dataset(d, a.copies, a.kinds.split(",") if a.kinds else None))
        print(f"{results[-1]['dataset']}: done", file=sys.stderr, flush=True)
    print(table(results))
    if a.json:
        Path(a.json).write_text(json.dumps({"date": date.today().isoformat(), "machine": machine_description(),
                                            "datasets": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
