"""Threaded, order-preserving loading: decode (and per-image feature work) in a pool.

OpenCV and NumPy release the GIL, so a small thread pool decodes the next images
while the caller runs the CNN on the current batch. Results come back in input
order; a bad input yields a :class:`DecodedImage` with ``error`` set and loading goes on.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import cv2
from tqdm.auto import tqdm

from .decode import DEFAULT_MAX_PIXELS, DEFAULT_MIN_SIDE, DecodedImage, decode_image
from .sources import InputItem, Unreadable

__all__ = ["load_images", "default_workers", "LoadSettings"]


@dataclass(frozen=True)
class LoadSettings:
    """How inputs are read, as one object that every path (local, Ray, monitor) passes on whole.

    ``workers`` (decode threads), ``reduce`` (reduced-size decode, which changes the
    pixels features see: saved with a model) and ``max_pixels`` (the decompression-bomb
    guard: a runtime safety setting, never read from a model file).
    """

    workers: int | None = None
    reduce: int | str = "auto"
    max_pixels: int | None = DEFAULT_MAX_PIXELS

    def kw(self) -> dict:
        return {"workers": self.workers, "reduce": self.reduce, "max_pixels": self.max_pixels}


def default_workers() -> int:
    """Decode threads: one per available core, at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


class _VideoReader:
    """Sequential frame access to one video, reopened only when asked to go back."""

    def __init__(self, path: str):
        self.path = path
        self.cap = None
        self.pos = 0

    def read(self, index: int):
        if self.cap is None or index < self.pos:
            if self.cap is not None:
                self.cap.release()
            self.cap = cv2.VideoCapture(self.path)
            self.pos = 0
            if not self.cap.isOpened():
                return None
        while self.pos < index:
            if not self.cap.grab():
                return None
            self.pos += 1
        ok, bgr = self.cap.read()
        self.pos += 1
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB) if ok else None

    def close(self):
        if self.cap is not None:
            self.cap.release()


def _video_frame(readers: dict[str, _VideoReader], item: InputItem, max_pixels, reduce, min_side) -> DecodedImage:
    path, index = item.src
    if index is None:
        return DecodedImage(item.id, error="cannot open as a video (or it has no frames)")
    reader = readers.setdefault(path, _VideoReader(path))
    rgb = reader.read(index)
    if rgb is None:
        return DecodedImage(item.id, error=f"cannot read frame {index} of the video")
    out = decode_image(rgb, name=item.id, max_pixels=max_pixels, reduce=reduce, min_side=min_side)
    out.meta.update(format="VIDEO", mode="RGB", file_size=None)
    return out


def load_images(
    items: Sequence[InputItem],
    *,
    workers: int | None = None,
    reduce: int | str = 1,
    min_side: int | Sequence[int] = DEFAULT_MIN_SIDE,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    map_fn: Callable[[DecodedImage], Any] | None = None,
    prefetch: int = 64,
    group: int = 8,
    progress: bool = False,
    desc: str = "loading",
    with_hash: bool = True,
) -> Iterator[tuple[DecodedImage, Any]]:
    """Decode ``items`` in a thread pool and yield ``(image, map_fn(image))`` in order.

    Parameters
    ----------
    items : sequence of InputItem
        From :func:`hybrid_drift.io.expand_inputs`.
    workers : int, optional
        Decode threads (default: one per core).
    reduce : {1, 2, 4, 8, "auto"}
        Reduced-size decode factor (see :func:`decode_image`).
    min_side : int or sequence of int
        Shorter side(s) that ``reduce="auto"`` keeps: one per size the features
        need (see :meth:`DecodedImage.at_side`).
    max_pixels : int or None
        Decompression-bomb guard.
    map_fn : callable, optional
        Run in the worker thread on each successfully decoded image (e.g. colour
        histograms, CNN resize); its result is yielded beside the image. An
        exception in ``map_fn`` turns into that image's error record.
    prefetch : int
        How many images may be decoded ahead of the consumer (bounds memory).
    group : int
        Images per task handed to a worker thread (fewer hand-offs).
    progress : bool
        Show a tqdm progress bar.
    with_hash : bool
        Compute each input's SHA-1 (needed only by content-keyed caches).
    """
    workers = workers or default_workers()
    readers: dict[str, _VideoReader] = {}

    def work(item_or_img):
        if isinstance(item_or_img, DecodedImage):
            img = item_or_img
        elif isinstance(item_or_img.src, Unreadable):
            img = DecodedImage(item_or_img.id, error=item_or_img.src.reason)
        else:
            img = decode_image(item_or_img.src, name=item_or_img.id, max_pixels=max_pixels, reduce=reduce,
                               min_side=min_side, with_hash=with_hash)
        extra = None
        if img.ok and map_fn is not None:
            try:
                extra = map_fn(img)
            except Exception as exc:  # a feature failure is that image's error, not the batch's
                img.error = f"feature extraction failed: {type(exc).__name__}: {exc}"
                img.release()
        return img, extra

    def work_many(group):
        return [work(x) for x in group]

    # Images go to the pool in small groups: one hand-off per group instead of per
    # image (a thread wake-up costs about as much as a 1/4-size histogram).
    group_size = max(1, min(int(group), max(1, prefetch) // (2 * workers) or 1))
    pending: deque[Future] = deque()
    bar = tqdm(total=len(items), desc=desc, disable=not progress, unit="img", leave=False)
    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hd-decode") as pool:
            it = iter(items)
            exhausted = False
            while True:
                while not exhausted and len(pending) * group_size < max(1, prefetch):
                    chunk = []
                    for item in it:
                        # video frames are read here, in order; the rest is decoded in the pool
                        chunk.append(_video_frame(readers, item, max_pixels, reduce, min_side)
                                     if isinstance(item.src, tuple) else item)
                        if len(chunk) == group_size:
                            break
                    else:
                        exhausted = True
                    if chunk:
                        pending.append(pool.submit(work_many, chunk))
                if not pending:
                    break
                results = pending.popleft().result()
                bar.update(len(results))
                yield from results
    finally:
        bar.close()
        for r in readers.values():
            r.close()
