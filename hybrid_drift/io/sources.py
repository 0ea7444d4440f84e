"""Turn what a user gives (folders, files, videos, arrays, bytes) into a flat list of inputs.

Each input gets a stable string id (its path, ``video.avi#frame=12``, ``<array #3>``) so
that every input appears in the output exactly once, with scores or with an error.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

__all__ = ["IMAGE_EXTENSIONS", "VIDEO_EXTENSIONS", "InputItem", "list_images", "expand_inputs",
           "iter_video_frames"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm", ".pgm")
VIDEO_EXTENSIONS = (".avi", ".mp4", ".mov", ".mkv", ".m4v", ".mpg", ".mpeg", ".webm")


@dataclass(frozen=True)
class InputItem:
    """One image to load: an id for the output table and what to decode."""

    id: str
    src: Any  # path str, bytes, ndarray, or a (video_path, frame_index) tuple


def list_images(folder: str | os.PathLike, *, recursive: bool = True,
                extensions: Iterable[str] = IMAGE_EXTENSIONS) -> list[str]:
    """Image files under ``folder``, sorted by path (which is time order for most cameras).

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
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"{folder}: not a directory")
    exts = tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in extensions)
    pattern = "**/*" if recursive else "*"
    return sorted(str(p) for p in root.glob(pattern) if p.is_file() and p.suffix.lower() in exts)


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
                  video_step: int = 1) -> list[InputItem]:
    """Flatten user inputs into :class:`InputItem` s, in order.

    ``inputs`` may be one or a list of: an :class:`InputItem` (kept), a folder (listed, sorted), an image path, a
    video path (every ``video_step``-th frame, id ``path#frame=N``), encoded ``bytes``,
    a numpy array ``HxW[xC]``, or a 4-D array ``NxHxWxC`` (a batch). Paths that do not
    exist are kept: they come back as error records, never silently dropped.
    """
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
                items.extend(InputItem(f, f) for f in list_images(p, recursive=recursive, extensions=extensions))
            elif p.lower().endswith(VIDEO_EXTENSIONS) and os.path.isfile(p):
                items.extend(_video_items(p, video_step))
            else:
                items.append(InputItem(p, p))
        else:
            items.append(InputItem(repr(x)[:80], x))
    return items


def _video_items(path: str, step: int) -> list[InputItem]:
    cap = cv2.VideoCapture(path)
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
    cap.release()
    if n <= 0:  # unknown length or unreadable: one error record names the file
        return [InputItem(path, (path, None))]
    return [InputItem(f"{path}#frame={i}", (path, i)) for i in range(0, n, step)]
