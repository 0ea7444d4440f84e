"""Turn what a user gives (folders, files, videos, arrays, bytes) into a flat list of inputs.

Each input gets a stable string id (its path, ``video.avi#frame=12``, ``<array #3>``) so
that every input appears in the output exactly once, with scores or with an error. What
to decode is kept typed beside the id (a path, ``(video, frame)``, an array...), so
nothing is ever parsed back out of an id.

File names are shown as text that any table, CSV or Parquet file can hold: a name that
is not valid UTF-8 or holds control characters (a ``\\r``...) is written with
``\\xNN`` escapes (backslashes doubled); :func:`path_of` turns such an id back into
the path.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

__all__ = ["IMAGE_EXTENSIONS", "VIDEO_EXTENSIONS", "UNSUPPORTED_IMAGE_EXTENSIONS", "InputItem", "Unreadable",
           "FolderScan", "scan_folder", "list_images", "expand_inputs", "iter_video_frames", "display_id",
           "path_of"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm", ".pgm")
VIDEO_EXTENSIONS = (".avi", ".mp4", ".mov", ".mkv", ".m4v", ".mpg", ".mpeg", ".webm")
#: image formats cameras write that this library cannot decode: listed, so they appear as error rows
UNSUPPORTED_IMAGE_EXTENSIONS = (".heic", ".heif", ".avif", ".jxl", ".dng", ".cr2", ".nef", ".arw", ".raw")


@dataclass(frozen=True)
class Unreadable:
    """What an input is when it is known not to be decodable before any decode (the reason)."""

    reason: str


@dataclass(frozen=True)
class InputItem:
    """One image to load: an id for the output table and what to decode."""

    id: str
    src: Any  # path str, bytes, ndarray, a (video_path, frame_index) tuple, or Unreadable
    #: when it was taken (seconds), where the input says (a manifest's time column); see ``io.order``
    time: float | None = None


def display_id(path: str) -> str:
    r"""``path`` as printable UTF-8 text: undecodable bytes and control characters as ``\xNN``.

    Names that need no escaping are returned unchanged; in an escaped name every
    backslash is doubled, so :func:`path_of` can undo it.

    >>> display_id("cam/a.jpg"), display_id("cam/caf\udce9.jpg"), display_id("a\rb.jpg")
    ('cam/a.jpg', 'cam/caf\\xe9.jpg', 'a\\x0db.jpg')
    """
    if path.isprintable():
        try:
            path.encode("utf-8")
            return path
        except UnicodeEncodeError:
            pass
    text = os.fsencode(path).decode("utf-8", "surrogateescape")
    out = []
    for c in text:
        o = ord(c)
        if c == "\\":
            out.append("\\\\")
        elif 0xDC80 <= o <= 0xDCFF:  # an undecodable byte
            out.append(f"\\x{o - 0xDC00:02x}")
        elif not c.isprintable():
            out.append(f"\\x{o:02x}" if o < 256 else f"\\u{o:04x}")
        else:
            out.append(c)
    return "".join(out)


def path_of(id_: str) -> str:
    """The path behind an id from :func:`display_id` (the id itself when it names an existing file)."""
    if os.path.lexists(id_) or "\\" not in id_:
        return id_
    raw, i = bytearray(), 0
    while i < len(id_):
        if id_.startswith("\\\\", i):
            raw += b"\\"
            i += 2
        elif id_.startswith("\\x", i):
            raw.append(int(id_[i + 2:i + 4], 16))
            i += 4
        elif id_.startswith("\\u", i):
            raw += chr(int(id_[i + 2:i + 6], 16)).encode()
            i += 6
        else:
            raw += id_[i].encode()
            i += 1
    return os.fsdecode(bytes(raw))


@dataclass
class FolderScan:
    """What a folder holds: image files to score, problems that become error rows, what was skipped.

    Attributes
    ----------
    files : list of str
        Image files (by extension, including formats that cannot be decoded, which
        then give error rows), sorted by path.
    problems : list of (str, str)
        Folders that could not be listed, with the reason (error rows too).
    skipped : dict of str -> int
        Files left out because their extension is not an image's, counted by extension.
    """

    files: list[str]
    problems: list[tuple[str, str]]
    skipped: dict[str, int]

    def summary(self) -> str:
        """One line on what was skipped, or ``""``."""
        if not self.skipped:
            return ""
        parts = ", ".join(f"{ext or '(no extension)'} x{n}" for ext, n in sorted(self.skipped.items()))
        return f"skipped {sum(self.skipped.values())} files that are not images ({parts})"


def scan_folder(folder: str | os.PathLike, *, recursive: bool = True,
                extensions: Iterable[str] = IMAGE_EXTENSIONS) -> FolderScan:
    """List a folder for scoring, following symbolic links to folders (each real folder once).

    Broken links, FIFOs and other special files with an image extension are listed
    (their error row says what they are); folders that cannot be listed are
    ``problems``; other files are ``skipped`` and counted.

    Raises
    ------
    FileNotFoundError
        When ``folder`` does not exist or is not a directory.
    """
    root = os.fspath(folder)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"{folder}: not a directory")
    exts = tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in extensions)
    keep = exts + tuple(e for e in UNSUPPORTED_IMAGE_EXTENSIONS if e not in exts)
    files, problems, skipped, seen = [], [], {}, set()

    def onerror(exc: OSError):
        problems.append((exc.filename or root, f"cannot list folder: {exc.strerror or exc}"))

    for dirpath, dirnames, filenames in os.walk(root, onerror=onerror, followlinks=True):
        try:
            st = os.stat(dirpath)
            key = (st.st_dev, st.st_ino)
        except OSError:
            key = None
        if key in seen:  # a link back to a folder already listed (a loop or a second path)
            dirnames[:] = []
            continue
        seen.add(key)
        dirnames.sort()
        if not recursive:
            dirnames[:] = []
        for f in filenames:
            ext = os.path.splitext(f)[1].lower()
            if ext in keep:
                files.append(os.path.join(dirpath, f))
            else:
                skipped[ext] = skipped.get(ext, 0) + 1
    return FolderScan(sorted(files), problems, skipped)


def list_images(folder: str | os.PathLike, *, recursive: bool = True,
                extensions: Iterable[str] = IMAGE_EXTENSIONS) -> list[str]:
    """Image files under ``folder``, sorted by path (which is time order for most cameras); see :func:`scan_folder`.

    Parameters
    ----------
    folder : path
        Directory to list.
    recursive : bool
        Descend into sub-folders.
    extensions : iterable of str
        Case-insensitive file endings to keep.

    Raises
    ------
    FileNotFoundError
        When ``folder`` does not exist or is not a directory.
    """
    return scan_folder(folder, recursive=recursive, extensions=extensions).files


def iter_video_frames(path: str | os.PathLike, *, step: int = 1, start: int = 0,
                      stop: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(frame_index, rgb)`` for every ``step``-th frame of a video (OpenCV decode).

    Raises
    ------
    ValueError
        When the file cannot be opened as a video.
    """
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    cap = cv2.VideoCapture(os.fspath(path))
    if not cap.isOpened():
        raise ValueError(f"{path}: cannot open as a video")
    try:
        idx = 0
        while stop is None or idx < stop:
            if idx < start or (idx - start) % step:
                if not cap.grab():
                    break
            else:
                ok, bgr = cap.read()
                if not ok:
                    break
                yield idx, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            idx += 1
    finally:
        cap.release()


def expand_inputs(inputs: Any, *, recursive: bool = True,
                  extensions: Iterable[str] = IMAGE_EXTENSIONS,
                  video_step: int = 1, notes: list[str] | None = None) -> list[InputItem]:
    """Flatten user inputs into :class:`InputItem` s, in order.

    ``inputs`` may be one or a list of: an :class:`InputItem` (kept), a folder (listed, sorted), an image path, a
    video path (every ``video_step``-th frame, id ``path#frame=N``), encoded ``bytes``,
    a numpy array ``HxW[xC]``, or a 4-D array ``NxHxWxC`` (a batch). Paths that do not
    exist, and folders that cannot be listed, are kept: they come back as error
    records, never silently dropped. Non-image files in folders are skipped; pass a
    list as ``notes`` to receive one line per folder saying what was skipped.
    """
    if isinstance(video_step, bool) or not isinstance(video_step, (int, np.integer)) or video_step < 1:
        raise ValueError(f"video_step must be an int >= 1, got {video_step!r}")
    if isinstance(inputs, (str, os.PathLike, bytes, bytearray, np.ndarray)):
        inputs = [inputs]
    items: list[InputItem] = []
    n_arr = n_bytes = 0
    for x in inputs:
        if isinstance(x, InputItem):  # already expanded
            items.append(x)
        elif isinstance(x, np.ndarray) and x.ndim == 4:
            for a in x:
                items.append(InputItem(f"<array #{n_arr}>", a))
                n_arr += 1
        elif isinstance(x, np.ndarray):
            items.append(InputItem(f"<array #{n_arr}>", x))
            n_arr += 1
        elif isinstance(x, (bytes, bytearray)):
            items.append(InputItem(f"<bytes #{n_bytes}>", bytes(x)))
            n_bytes += 1
        elif isinstance(x, (str, os.PathLike)):
            p = os.fspath(x)
            if os.path.isdir(p):
                scan = scan_folder(p, recursive=recursive, extensions=extensions)
                items.extend(InputItem(display_id(f), f) for f in scan.files)
                items.extend(InputItem(display_id(d), Unreadable(why)) for d, why in scan.problems)
                if notes is not None and scan.summary():
                    notes.append(f"{display_id(p)}: {scan.summary()}")
            elif p.lower().endswith(VIDEO_EXTENSIONS) and os.path.isfile(p):
                items.extend(_video_items(p, video_step, notes))
            else:
                items.append(InputItem(display_id(p), p))
        else:
            items.append(InputItem(repr(x)[:80], Unreadable(f"unsupported input type {type(x).__name__}")))
    return items


def _frames_that_decode(cap, claimed: int) -> int:
    """How many frames a video really holds when its header claims ``claimed``: one seek to the last
    claimed frame when the header is right (the usual case), else a binary search for the last frame
    that can be read (a file cut short: OpenCV's ``tree.avi`` claims 444 frames and holds 68)."""
    def there(i: int) -> bool:
        cap.set(cv2.CAP_PROP_POS_FRAMES, i)
        return bool(cap.grab())
    if claimed <= 0 or there(claimed - 1):
        return claimed
    lo, hi = 0, claimed - 1  # frame lo can be read (or none can), frame hi cannot
    if not there(0):
        return 0
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if there(mid) else (lo, mid)
    return lo + 1


def _video_items(path: str, step: int, notes: list | None = None) -> list[InputItem]:
    cap = cv2.VideoCapture(path)
    claimed = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
    n = _frames_that_decode(cap, claimed) if cap.isOpened() else 0
    cap.release()
    name = display_id(path)
    if n < claimed and notes is not None:
        notes.append(f"{name}: its header says {claimed} frames but {n} can be read; using those {n}")
    if n <= 0:  # unknown length or unreadable: one error record names the file
        return [InputItem(name, (path, None))]
    return [InputItem(f"{name}#frame={i}", (path, i)) for i in range(0, n, step)]
