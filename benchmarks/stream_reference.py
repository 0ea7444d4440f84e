"""A reference of files, or one recorded from the stream: false alarms on the same clean frames through a codec.

    python benchmarks/stream_reference.py build/scenes/frames-tank_b --codec "-c:v mpeg4 -q:v 8" [--json F]

The frames folder (``make-dataset scenes`` writes ``frames-<scene>/``; any folder of one camera's frames whose
names sort naturally in time order) is encoded by FFmpeg as a 10 fps video with ``--codec`` (the "stream"), which
:func:`hybrid_drift.watch.record.record` reads back as ``watch`` would, every frame, as PNGs. The first 65% of
the frames are the reference (as files, and as recorded), the rest the clean test frames (as files, and as
recorded). The default detector is fitted on each reference and scores both test sets: every alarm is a
false one. Printed: flagged / clean frames for the four pairs, with the branches that raised them.
Needs ``ffmpeg`` on the PATH (``make test`` installs it). Offline.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def run(frames_dir: str, codec: str, reference_share: float = 0.65, make_detector=None) -> dict:
    """The four pairs for one folder (``make_detector()`` instead of the default detector, for tests)."""
    from hybrid_drift import HybridDetector
    from hybrid_drift.io import list_images
    from hybrid_drift.io.order import natural_key
    from hybrid_drift.watch.record import record

    files = [Path(p) for p in sorted(list_images(frames_dir), key=natural_key)]  # frame_9 before frame_10
    if len(files) < 20:
        raise SystemExit(f"{frames_dir}: needs at least 20 frames, found {len(files)}")
    cut = int(reference_share * len(files))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        listing = work / "frames.txt"  # FFmpeg's concat list: the frames in order, whatever their names
        listing.write_text("".join(f"file '{p.resolve()}'\nduration 0.1\n" for p in files))
        even = "scale=trunc(iw/2)*2:trunc(ih/2)*2"  # 4:2:0 codecs need even sizes
        subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "concat", "-safe", "0", "-i", str(listing),
                        "-vf", even, "-r", "10", *shlex.split(codec), str(work / "cam.avi")], check=True)
        rec = record(str(work / "cam.avi"), work / "rec", every=0, settle=0)
        recorded = sorted((work / "rec").glob("frame_*.png"))
        sets = {"files_ref": files[:cut], "files_test": files[cut:], "recorded_ref": recorded[:cut],
                "recorded_test": recorded[cut:len(files)]}
        for name, group in sets.items():
            (work / name).mkdir()
            for i, p in enumerate(group):  # numbered links: name order is time order
                (work / name / f"{i:06d}{p.suffix}").symlink_to(p.resolve())
        out = {"frames": frames_dir, "codec": codec, "n": len(files), "recorded": rec.saved, "pairs": {},
               "order": [p.name for p in files]}
        for ref in ("files_ref", "recorded_ref"):
            det = (make_detector or HybridDetector)().fit(str(work / ref))
            for test in ("files_test", "recorded_test"):
                t = det.score(str(work / test))
                by = {c[:-len("_flag")]: int(t[c].fillna(False).sum()) for c in t.columns if c.endswith("_flag")}
                out["pairs"][f"{ref} -> {test}"] = {"flagged": int(t["is_outlier"].fillna(False).sum()), "n": len(t),
                                                    "by_branch": {k: v for k, v in by.items() if v}}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("frames", nargs="+", help="folders of one camera's frames in time order")
    ap.add_argument("--codec", default="-c:v mpeg4 -q:v 8", help="FFmpeg output options of the stream")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    results = [run(f, a.codec) for f in a.frames]
    print("| frames | codec | reference | test | flagged / clean | branches |\n|---|---|---|---|---:|---|")
    for r in results:
        for pair, v in r["pairs"].items():
            ref, test = pair.split(" -> ")
            print(f"| {Path(r['frames']).name} | `{r['codec']}` | {ref} | {test} | {v['flagged']} / {v['n']} | "
                  f"{', '.join(f'{k} {n}' for k, n in v['by_branch'].items()) or '-'} |")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
