"""Live frame sources: RTSP / HTTP(S) MJPEG / HLS streams, video devices, video files, folders.

A source is read in its own thread (:class:`Reader`): it never waits for scoring. Frames go
into a small queue that drops the *oldest* frame when full (and counts it), so the scorer
always gets the newest picture. A stream that fails is reopened with exponential back-off
(0.5 s, 1 s, 2 s ... up to ``max_backoff``) for as long as the watch runs; the reader
reports ``disconnect`` and ``reconnect`` as status events.
"""

from __future__ import annotations

import os
import re
import stat
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

__all__ = ["Frame", "Status", "Reader", "source_kind"]


@dataclass
class Frame:
    """One frame read from a source (``rgb`` is None for an unreadable file of a folder source)."""

    camera: str
    index: int            # position in the source (frames read so far, 0-based)
    stream_time: float    # seconds into the stream (a file's own clock; wall time since start for live)
    read_at: float        # time.time() when it was read
    rgb: np.ndarray | None
    fmt: str = ""         # codec (streams) or file format (folders)
    name: str = ""        # file name (folders)
    error: str | None = None
    #: a folder file's encoded bytes: the detector decodes them itself, as ``score`` decodes the file (a JPEG's
    #: smaller working sizes come from its DCT, not from area-averaging ``rgb``), so both give the same scores
    data: bytes | None = None


@dataclass
class Status:
    """A change of the connection: ``kind`` is ``"disconnect"`` or ``"reconnect"``."""

    camera: str
    kind: str
    at: float
    stream_time: float
    detail: str = ""
    last_index: int = -1


def source_kind(src: str) -> str:
    """``"stream"`` (a URL), ``"device"`` (an integer or /dev/video*), ``"file"`` or ``"folder"``."""
    s = str(src)
    if re.match(r"^[a-z][a-z0-9+.-]*://", s, re.I):
        return "stream"
    if s.isdigit() or s.startswith("/dev/video"):
        return "device"
    if os.path.isdir(s):
        return "folder"
    return "file"


def _fourcc(cap) -> str:
    code = int(cap.get(cv2.CAP_PROP_FOURCC))
    return "".join(chr((code >> (8 * i)) & 0xFF) for i in range(4)).strip("\x00 ") if code else ""


@dataclass
class _Counters:
    read: int = 0
    dropped: int = 0
    last_frame_at: float = 0.0
    up: bool = False


#: seconds OpenCV may spend opening a stream before it gives up
OPEN_TIMEOUT_S = 10


def quiet_decoder_logs() -> None:
    """Silence FFmpeg's and OpenCV's own stderr lines (``[tcp @ 0x...] Connection refused``, ``VIDEOIO``
    warnings on every retry): a watch reports a lost stream once, as a ``disconnect`` alert with its
    reason, through its events and the library's logger. ``HYBRID_DRIFT_DECODER_LOGS=1`` keeps them
    (debugging a stream); an ``OPENCV_FFMPEG_LOGLEVEL`` set by the user is kept."""
    if os.environ.get("HYBRID_DRIFT_DECODER_LOGS") == "1":
        return
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET, read when a capture opens
    try:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    except AttributeError:  # pragma: no cover - an OpenCV build without the logging module
        pass


class Reader:
    """Reads one source in a thread into a bounded, drop-oldest queue.

    Parameters
    ----------
    camera : str
        Name used in events.
    source : str
        URL, device, video file or folder.
    fps : float, optional
        Keep at most this many frames per second of stream time (None: every frame).
    realtime : bool
        A video file is read at its own frame rate (default: as fast as it is consumed).
    queue : int
        Frames held for the scorer; when full the oldest is dropped and counted.
    max_backoff : float
        Longest wait between reconnection attempts (seconds).
    poll : float
        A folder source's polling interval (seconds).
    stall : float
        A folder entry that has not settled after this many seconds (an empty file, a broken
        link, one that cannot be read) is taken anyway and reported as an error frame; entries
        that are not regular files (a FIFO, a device) are taken at once. Later files never wait
        behind it.
    settle : float
        Frames of a stream or device read in the first ``settle`` seconds after each
        (re)connection are not passed on: a decoder that joins a stream between two key
        frames returns broken pictures until the next key frame (MPEG-4 from VLC: the
        first 5 frames, grey smears that the detector rightly flags).
    """

    def __init__(self, camera: str, source: str, *, fps: float | None = None, realtime: bool = False,
                 queue: int = 8, max_backoff: float = 30.0, poll: float = 0.5, settle: float = 1.0,
                 stall: float = 10.0, max_pixels: int | None = None):
        if fps is not None and not fps > 0:
            raise ValueError(f"fps must be > 0, got {fps!r}")
        if queue < 1:
            raise ValueError(f"queue must be >= 1, got {queue!r}")
        if not settle >= 0:
            raise ValueError(f"settle must be >= 0 seconds, got {settle!r}")
        self.camera, self.source = camera, str(source)
        self.kind = source_kind(self.source)
        if self.kind == "file" and not os.path.isfile(self.source):
            raise FileNotFoundError(f"{self.source}: no such file (a stream needs a URL such as rtsp://...)")
        self.fps, self.realtime, self.max_backoff, self.poll, self.settle = fps, realtime, max_backoff, poll, settle
        self.stall = stall
        from ..io.decode import DEFAULT_MAX_PIXELS
        self.max_pixels = DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels
        self._opening = False
        self._q: deque = deque()
        self._qmax = queue
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self.finished = False          # a file or folder source that ended (or --max-frames)
        self.counters = _Counters()
        # a video file not read in real time is paced by scoring (never dropped); live sources never wait
        # a folder is not a live stream either: every file is read, in order (a backlog is not dropped)
        self._paced = self.kind == "folder" or (self.kind == "file" and not realtime)
        self._thread = threading.Thread(target=self._run, name=f"hd-watch-{camera}", daemon=True)
        self._t0 = time.time()

    # ------------------------------------------------------------------ consumer side
    def start(self) -> Reader:
        if self.kind in ("stream", "device"):
            quiet_decoder_logs()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        # a reader inside OpenCV's open (up to its 10 s time-out) cannot be interrupted; leaving it running
        # while the interpreter exits aborts the process ("terminate called without an active exception")
        self._thread.join(timeout=OPEN_TIMEOUT_S + 2 if self._opening else 5)

    def get(self, timeout: float) -> list:
        """Everything queued (frames and status events, oldest first); waits up to ``timeout`` for one."""
        with self._cond:
            if not self._q and not self.finished:
                self._cond.wait(timeout)
            items = list(self._q)
            self._q.clear()
            self._cond.notify_all()  # a paced reader waits for room
        return items

    # ------------------------------------------------------------------ producer side
    def _put(self, item, droppable: bool = True) -> None:
        with self._cond:
            if droppable and self._paced:  # a file read as fast as scoring allows: wait, never drop
                while sum(isinstance(x, Frame) for x in self._q) >= self._qmax and not self._stop.is_set():
                    self._cond.wait(0.1)
                droppable = False
            if droppable:
                frames = sum(isinstance(x, Frame) for x in self._q)
                if frames >= self._qmax:  # drop the oldest frame, never a status event
                    for i, x in enumerate(self._q):
                        if isinstance(x, Frame):
                            del self._q[i]
                            self.counters.dropped += 1
                            break
            self._q.append(item)
            self._cond.notify_all()

    def _finish(self) -> None:
        with self._cond:
            self.finished = True
            self._cond.notify_all()

    def _run(self) -> None:
        try:
            if self.kind == "folder":
                self._run_folder()
            else:
                self._run_capture()
        finally:
            self._finish()

    def _keep(self, stream_time: float, last_kept: list) -> bool:
        if self.fps is None:
            return True
        if last_kept[0] is None or stream_time - last_kept[0] >= 1.0 / self.fps - 1e-9:
            last_kept[0] = stream_time
            return True
        return False

    def _open(self):
        src: Any = int(self.source) if self.kind == "device" and self.source.isdigit() else self.source
        self._opening = True
        try:
            if self.kind == "stream":  # a stream that hangs must not hang the reader: open and read time out
                cap = cv2.VideoCapture(src, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, OPEN_TIMEOUT_S * 1000,
                                                            cv2.CAP_PROP_READ_TIMEOUT_MSEC, 5_000])
            else:
                cap = cv2.VideoCapture(src)
        finally:
            self._opening = False
        if not cap.isOpened():
            cap.release()
            return None
        return cap

    def _run_capture(self) -> None:
        live = self.kind in ("stream", "device")
        backoff, index, last_kept = 0.5, 0, [None]
        down_since = None
        while not self._stop.is_set():
            cap = self._open()
            if cap is None:
                if not live:
                    self._put(Status(self.camera, "disconnect", time.time(), 0.0, "cannot open the video file"),
                              droppable=False)
                    return
                if down_since is None:  # the first failure of this outage is reported once
                    down_since = time.time()
                    self._put(Status(self.camera, "disconnect", time.time(), time.time() - self._t0,
                                     "cannot open the stream", index - 1), droppable=False)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff)
                continue
            # the stream counts as back (reconnect reported, back-off reset) only once it delivers a frame
            # after the settle time: a server that accepts and drops at once is one outage, retried with
            # a growing back-off, not a disconnect/reconnect pair per attempt
            delivered = False
            self.counters.up = True
            fmt = _fourcc(cap)
            fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
            t_open = time.time()
            first_index = index
            while not self._stop.is_set():
                ok, bgr = cap.read()
                if not ok:
                    break
                now = time.time()
                if live:
                    stream_time = now - self._t0
                else:
                    stream_time = (index - first_index) / fps if fps > 0 else index / 25.0
                    if self.realtime:  # the file's own clock
                        ahead = t_open + stream_time - now
                        if ahead > 0:
                            self._stop.wait(ahead)
                self.counters.read += 1
                self.counters.last_frame_at = now
                if live and now - t_open < self.settle:  # the decoder may not have a key frame yet
                    index += 1
                    continue
                if live and not delivered:
                    delivered, backoff = True, 0.5
                    if down_since is not None:
                        self._put(Status(self.camera, "reconnect", now, now - self._t0,
                                         f"back after {now - down_since:.1f} s", index - 1), droppable=False)
                        down_since = None
                if self._keep(stream_time, last_kept):
                    h, w = bgr.shape[:2]
                    if self.max_pixels is not None and h * w > self.max_pixels:  # a frame bomb: not scored
                        self._put(Frame(self.camera, index, stream_time, now, None, fmt, "",
                                        f"frame of {w}x{h} pixels is over the limit of {self.max_pixels:,}"))
                    else:
                        self._put(Frame(self.camera, index, stream_time, now, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB),
                                        fmt))
                index += 1
            cap.release()
            self.counters.up = False
            if not live or self._stop.is_set():
                return  # a file ended, or we were asked to stop
            if down_since is None:  # the first drop of an outage is reported once
                down_since = time.time()
                self._put(Status(self.camera, "disconnect", down_since, down_since - self._t0, "the stream stopped",
                                 index - 1), droppable=False)
            if not delivered:
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff)

    def _run_folder(self) -> None:
        from ..io.decode import decode_image, read_file
        from ..io.sources import IMAGE_EXTENSIONS, display_id
        last = ""  # files are taken in name order (a camera's names sort in time); only newer names are new
        sizes: dict[str, int] = {}  # a file is taken once its size stopped changing between two polls
        first_seen: dict[str, float] = {}  # ...or once it has waited `stall` seconds (empty, a FIFO, a broken link)
        index, last_kept = 0, [None]
        self.counters.up = True
        while not self._stop.is_set():
            try:
                names = sorted(n for n in os.listdir(self.source) if n.lower().endswith(IMAGE_EXTENSIONS))
            except OSError as exc:
                self.counters.up = False
                self._put(Status(self.camera, "disconnect", time.time(), time.time() - self._t0,
                                 f"cannot list the folder: {exc.strerror or exc}", index - 1), droppable=False)
                self._stop.wait(self.poll)
                continue
            blocked = False
            sizes = {n: v for n, v in sizes.items() if n > last}
            first_seen = {n: v for n, v in first_seen.items() if n > last}
            for n in (n for n in names if n > last):
                path = os.path.join(self.source, n)
                regular = True
                try:
                    st = os.stat(path)
                    size, regular = st.st_size, stat.S_ISREG(st.st_mode)
                except OSError:
                    size = -1  # a broken link, or gone already
                seen = first_seen.setdefault(n, time.time())
                settled = regular and size > 0 and sizes.get(n) == size
                # an entry that is not a regular file (a FIFO, a device) is taken at once; one that stays empty,
                # broken or unreadable for `stall` seconds is taken then: its error is reported, later files go on
                stalled = (not regular and size >= 0) or time.time() - seen >= self.stall
                sizes[n] = size
                if blocked or not (settled or stalled):  # still being written: a later poll takes it, in order
                    blocked = True
                    continue
                sizes.pop(n, None)
                first_seen.pop(n, None)
                last = n
                now = time.time()
                # read once (regular files only, size-capped): the health checks see its pixels, the detector
                # its bytes; when it cannot be read, decoding the path reports why
                data = read_file(path)[0] if regular and size > 0 else None
                img = decode_image(path if data is None else data, name=path, reduce="auto", min_side=(288, 128))
                self.counters.read += 1
                self.counters.last_frame_at = now
                st = now - self._t0
                if self._keep(st, last_kept):
                    rgb = None if not img.ok else (img.rgb if img.factor == 1 else img.at_side(288))
                    self._put(Frame(self.camera, index, st, now, rgb, str(img.meta.get("format", "")),
                                    display_id(n), img.error, data if img.ok else None))
                index += 1
            self._stop.wait(self.poll)
