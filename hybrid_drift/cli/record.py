"""``record``: take a reference from the stream you will watch (the work is :func:`hybrid_drift.watch.record.record`'s)."""

from __future__ import annotations

import argparse
import signal
import sys
import textwrap

from .common import EXIT_INTERRUPTED, EXIT_OK, UsageError, at_least, default, non_negative_float, positive_int

__all__ = ["add"]


def add(sub, parents) -> None:
    from ..watch.record import RECORD_FORMATS, record
    s = sub.add_parser("record", parents=[parents["common"]],
                       help="write a stream's frames to a folder, to fit on what the camera really delivers",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Read a source as watch does (RTSP / HTTP MJPEG / HLS, a device, a video file, "
                                   "a folder) and write one frame every --every seconds as a lossless PNG "
                                   "(frame_000000.png ..., in time order; frames.csv lists each with its time). "
                                   "Fit on that folder: a model fitted on files taken another way than the stream "
                                   "it watches (another JPEG quality, another codec) flags clean frames. Ends after "
                                   "--frames files or --duration seconds, when a file ends, or on Ctrl-C "
                                   "(the files written are kept whole).",
                       epilog=textwrap.dedent("""\
                           examples:
                             hybrid-drift record rtsp://10.0.0.7/stream1 footage/reference --every 60 --frames 1440
                             hybrid-drift record http://cam.local/video.mjpg footage/reference --every 5 --duration 3600
                             hybrid-drift fit footage/reference --out model/"""))
    s.add_argument("source", help="a stream URL, a device (0, /dev/video0), a video file or a folder")
    s.add_argument("out", help="folder to write to (recording into it again continues its numbering)")
    s.add_argument("--every", type=non_negative_float, default=default(record, "every"),
                   help="seconds of stream time between kept frames (default %(default)g; 0: every frame)")
    s.add_argument("--frames", type=positive_int, default=None, help="stop after N files")
    s.add_argument("--duration", type=at_least(1e-3, float), default=None, help="stop after S seconds")
    s.add_argument("--format", dest="fmt", choices=RECORD_FORMATS, default=default(record, "fmt"),
                   help="png (lossless, default) or jpg")
    s.add_argument("--quality", type=at_least(1, hi=100), default=default(record, "quality"),
                   help="JPEG quality with --format jpg (default %(default)d)")
    s.add_argument("--settle-seconds", type=non_negative_float, default=default(record, "settle"),
                   help="skip the first S seconds of a stream after each (re)connection (default %(default)g)")
    s.set_defaults(fn=run)


def run(a) -> int:
    import threading

    from ..watch.record import record
    bar = None
    if a.progress:
        from tqdm import tqdm
        bar = tqdm(total=a.frames, desc="record", unit="frame")
    stop = threading.Event()
    # Ctrl-C or SIGTERM ends the recording like --frames does: the files written are whole and listed
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    try:
        res = record(a.source, a.out, every=a.every, frames=a.frames, duration=a.duration, fmt=a.fmt,
                     quality=a.quality, settle=a.settle_seconds, stop=stop,
                     on_frame=(lambda _: bar.update(1)) if bar is not None else None)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if bar is not None:
            bar.close()
    for line in res.lines():
        print(line, file=sys.stderr)
    if res.saved == 0:
        raise UsageError(f"{a.source}: no frame was read (nothing written to {a.out})")
    print(res.out)
    return EXIT_INTERRUPTED if res.ended == "stopped" else EXIT_OK
