"""Take a reference from the stream you will watch: ``hybrid-drift record``.

A model fitted on photos taken another way than the stream it watches pages on clean frames: the
same frames at a lower JPEG quality, or through a camera's H.264, score as strange (README, *Known
limits*). :func:`record` reads a source exactly as ``watch`` does (:class:`~hybrid_drift.watch.
readers.Reader`: RTSP / HTTP MJPEG / HLS, a device, a video file, a folder), keeps one frame every
``every`` seconds of stream time and writes each as a lossless PNG (the stream's pixels as decoded,
nothing re-encoded) to a folder that ``fit`` takes as it is:

* names ``frame_000000.png``, ``frame_000001.png`` ... in the order read (name order is time order;
  a folder recorded into again continues after its highest number);
* ``frames.csv`` beside them: each file with the source, its frame index, its time in the stream and
  the UTC time it was read (one row per file, written as soon as the file is);
* each file is written under a temporary name and renamed when whole: a stop at any moment leaves
  whole files and a ``frames.csv`` that lists exactly them.

It ends after ``frames`` files, after ``duration`` seconds, when a file or folder source ends, or when
``stop`` is set (Ctrl-C in the command line). A live source that goes away is reconnected as in
``watch``; unreadable frames are counted and reported, never written.
"""

from __future__ import annotations

import csv
import datetime as _dt
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2

from ..io.outputs import atomic_write_bytes
from .readers import Frame, Reader, Status

__all__ = ["record", "RecordSummary", "RECORD_FORMATS"]

log = logging.getLogger(__name__)

#: file formats ``record`` writes: PNG (lossless, the default) or JPEG at ``quality``
RECORD_FORMATS = ("png", "jpg")
_NAME = re.compile(r"^frame_(\d+)\.(png|jpg)$")
_COLUMNS = ["file", "source", "index", "stream_time", "read_at"]


@dataclass
class RecordSummary:
    """What :func:`record` wrote.

    ``ended`` says why it stopped: ``"frames"`` (the count asked for), ``"duration"``, ``"source"``
    (a file or folder that ended) or ``"stopped"`` (``stop`` was set)."""

    out: str
    saved: int = 0
    first: str | None = None
    last: str | None = None
    unreadable: int = 0
    dropped: int = 0
    disconnects: int = 0
    ended: str = ""
    first_error: str | None = None  # the first unreadable frame and why (the rest are counted)

    def lines(self) -> list[str]:
        where = f"{self.first} .. {self.last}" if self.saved else "no file"
        out = [f"record: {self.saved} frames written to {self.out} ({where}); ended: {self.ended}"]
        if self.unreadable:
            out.append(f"record: {self.unreadable} unreadable frames not written (first: {self.first_error})")
        if self.dropped:
            out.append(f"record: {self.dropped} frames dropped by the reader while writing lagged")
        if self.disconnects:
            out.append(f"record: the source disconnected {self.disconnects} time(s) and was reconnected")
        return out


def _next_number(out: Path) -> int:
    numbers = [int(m.group(1)) for p in out.iterdir() if (m := _NAME.match(p.name))]
    return max(numbers) + 1 if numbers else 0


def record(source: str, out: str | os.PathLike, *, every: float = 1.0, frames: int | None = None,
           duration: float | None = None, fmt: str = "png", quality: int = 95, settle: float = 1.0,
           stop: threading.Event | None = None, on_frame: Callable[[str], None] | None = None) -> RecordSummary:
    """Write one frame every ``every`` seconds of ``source`` to the folder ``out`` (see the module docstring).

    Parameters
    ----------
    source : str
        As ``watch`` takes it: a URL (``rtsp://``, ``http(s)://`` MJPEG or HLS), a device (``0``,
        ``/dev/video0``), a video file or a folder.
    out : path
        Folder to write to (made when missing; recording into it again continues its numbering).
    every : float
        Seconds of stream time between kept frames (0: every frame).
    frames, duration : optional
        Stop after this many files, or after this many seconds of wall time.
    fmt, quality
        ``"png"`` (lossless, default) or ``"jpg"`` at ``quality`` (1-100).
    settle : float
        Seconds skipped after each (re)connection of a stream, as ``watch`` does.
    stop : threading.Event, optional
        Set it to end the recording (the files written so far are kept, whole).
    on_frame : callable, optional
        Called with each file name once it is written (a progress bar).

    Raises
    ------
    ValueError
        For a setting out of range or ``out`` that is a file; FileNotFoundError for a missing file source.
    """
    if not every >= 0:
        raise ValueError(f"every must be >= 0 seconds, got {every!r}")
    if frames is not None and not (isinstance(frames, int) and frames >= 1):
        raise ValueError(f"frames must be an int >= 1, got {frames!r}")
    if duration is not None and not duration > 0:
        raise ValueError(f"duration must be > 0 seconds, got {duration!r}")
    if fmt not in RECORD_FORMATS:
        raise ValueError(f"format must be one of {RECORD_FORMATS}, got {fmt!r}")
    if not (isinstance(quality, int) and 1 <= quality <= 100):
        raise ValueError(f"quality must be an int in 1..100, got {quality!r}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a folder")
    reader = Reader("record", str(source), fps=1.0 / every if every > 0 else None, settle=settle, queue=64)
    out.mkdir(parents=True, exist_ok=True)
    params = [cv2.IMWRITE_PNG_COMPRESSION, 1] if fmt == "png" else [cv2.IMWRITE_JPEG_QUALITY, quality]
    number = _next_number(out)
    res = RecordSummary(out=str(out))
    log_path = out / "frames.csv"
    new_log = not log_path.exists() or log_path.stat().st_size == 0
    t0 = time.monotonic()
    with open(log_path, "a", newline="") as fh:
        rows = csv.writer(fh)
        if new_log:
            rows.writerow(_COLUMNS)
            fh.flush()
        def stopped() -> bool:  # checked between reads and before each frame: a stop takes effect at once
            if stop is not None and stop.is_set():
                res.ended = "stopped"
            return res.ended == "stopped"

        reader.start()
        try:
            while not res.ended:
                if stopped():
                    break
                if duration is not None and time.monotonic() - t0 >= duration:
                    res.ended = "duration"
                    break
                finished = reader.finished  # read before draining: a frame queued before the end is not lost
                items = reader.get(timeout=0.2)
                for item in items:
                    if stopped():  # not after the reader's whole batch (up to its queue of 64 frames)
                        break
                    if isinstance(item, Status):
                        if item.kind == "disconnect":
                            res.disconnects += 1
                        log.warning("record: %s %s%s", str(source), item.kind, f" ({item.detail})" if item.detail else "")
                        continue
                    if not isinstance(item, Frame):
                        continue
                    if item.rgb is None:
                        res.unreadable += 1
                        res.first_error = res.first_error or f"{item.name or item.index}: {item.error}"
                        log.warning("record: frame %s not written: %s", item.name or item.index, item.error)
                        continue
                    name = f"frame_{number:06d}.{fmt}"
                    ok, buf = cv2.imencode(f".{fmt}", cv2.cvtColor(item.rgb, cv2.COLOR_RGB2BGR), params)
                    if not ok:  # pragma: no cover - OpenCV encodes any 8-bit picture
                        raise OSError(f"{out / name}: could not encode the frame")
                    atomic_write_bytes(out / name, buf.tobytes())
                    read_at = _dt.datetime.fromtimestamp(item.read_at, _dt.timezone.utc).isoformat(timespec="milliseconds")
                    rows.writerow([name, str(source), item.index, f"{item.stream_time:.3f}", read_at])
                    fh.flush()
                    number += 1
                    res.saved += 1
                    res.first = res.first or name
                    res.last = name
                    if on_frame is not None:
                        on_frame(name)
                    if frames is not None and res.saved >= frames:
                        res.ended = "frames"
                        break
                if not res.ended and finished and not items:
                    res.ended = "source"
        finally:
            reader.stop()
            res.dropped = reader.counters.dropped
    return res
