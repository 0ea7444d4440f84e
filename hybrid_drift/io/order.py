"""In what order were the reference images taken? Time from the data where it exists.

Cross-fitting (``hybrid_drift.calibration``) holds out *periods* of the reference,
so ``fit`` needs its images in time order. A folder listed by name is in time
order only when its names say so: ``frame_9.jpg`` sorts after ``frame_10.jpg``,
and a labelling tool or an object store gives images random names. This module
puts the inputs in the best order the data gives:

* ``"given"``: as passed (a list you built in time order);
* ``"name"``: natural order of the names (``frame_9`` before ``frame_10``; video
  frames by their position, which is their time);
* ``"exif"``: EXIF ``DateTimeOriginal`` (+ ``SubSecTimeOriginal``); every image
  file must carry it;
* ``"mtime"``: the files' modification times (a last resort: copying files
  often resets them);
* ``"time"``: a time column of a dataset manifest (``time`` or ``timestamp``);
* ``"auto"`` (the default): ``time`` when every input carries one, else ``exif``
  when every image file carries a distinct ``DateTimeOriginal``, else ``name``;
  inputs that are not files (arrays, bytes) keep the given order.

Whatever it used is returned as an :class:`InputOrder` (kept in the model and its
fit summary). Whether the result *looks* like time is checked later, on the
features (:mod:`hybrid_drift.reference_order`), because no name can be trusted.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
from dataclasses import asdict, dataclass

from .sources import InputItem

__all__ = ["ORDERS", "InputOrder", "natural_key", "exif_time", "order_inputs"]

#: the orders ``fit`` accepts (``order=`` / ``--order``)
ORDERS = ("auto", "given", "name", "exif", "mtime", "time")

_DIGITS = re.compile(r"(\d+)")
_EXIF_IFD = 0x8769
_DATETIME_ORIGINAL = 36867
_SUBSEC_ORIGINAL = 37521


@dataclass(frozen=True)
class InputOrder:
    """The order ``fit`` put its inputs in.

    Attributes
    ----------
    requested : str
        What was asked for (one of :data:`ORDERS`).
    used : str
        What was used: ``given``, ``name``, ``exif``, ``mtime``, ``time`` or ``video``
        (frames of one video, by position).
    detail : str
        One sentence for the fit summary.
    changed : bool
        Whether the inputs moved from the order they were given in.
    """

    requested: str
    used: str
    detail: str
    changed: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


def natural_key(text: str) -> tuple:
    """Sort key that compares digit runs as numbers: ``frame_9`` < ``frame_10``.

    >>> sorted(["f10.jpg", "f9.jpg", "f100.jpg"], key=natural_key)
    ['f9.jpg', 'f10.jpg', 'f100.jpg']
    """
    parts = _DIGITS.split(text)
    return tuple((0, int(p), len(p)) if i % 2 else (1, p.lower(), p) for i, p in enumerate(parts))


def _parse_exif_datetime(value, subsec=None) -> float | None:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not isinstance(value, str):
        return None
    try:
        t = _dt.datetime.strptime(value.strip("\x00 ")[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    frac = 0.0
    if subsec is not None:
        digits = "".join(c for c in str(subsec) if c.isdigit())
        frac = float("0." + digits) if digits else 0.0
    return t.replace(tzinfo=_dt.timezone.utc).timestamp() + frac


def exif_time(path: str) -> float | None:
    """EXIF ``DateTimeOriginal`` (+ ``SubSecTimeOriginal``) of an image file as seconds, or None.

    Reads the header only (Pillow opens lazily); any problem reading it is None:
    the decode step reports unreadable files, this only orders them.
    """
    from PIL import Image
    try:
        with Image.open(path) as img:
            ifd = img.getexif().get_ifd(_EXIF_IFD)
    except Exception:
        return None
    return _parse_exif_datetime(ifd.get(_DATETIME_ORIGINAL), ifd.get(_SUBSEC_ORIGINAL))


def _file_of(item: InputItem) -> str | None:
    src = item.src
    if isinstance(src, str):
        return src
    return None


def _video_pos(item: InputItem):
    src = item.src
    if isinstance(src, tuple) and len(src) == 2 and isinstance(src[0], str):
        return src[0], (-1 if src[1] is None else int(src[1]))
    return None


def _name_key(item: InputItem, index: int) -> tuple:
    video = _video_pos(item)
    if video is not None:
        return natural_key(video[0]) + ((2, video[1], index),)
    path = _file_of(item)
    if path is not None:
        return natural_key(path) + ((3, 0, index),)
    return ((4, index, index),)  # arrays, bytes, unreadable: stay where they were, after the files


def _sorted_by(keys: list, items: list[InputItem]) -> list[InputItem]:
    """``items`` in the order of their ``keys`` (one per item; ties keep the given order)."""
    return [items[i] for i in sorted(range(len(items)), key=keys.__getitem__)]


def order_inputs(items: list[InputItem], order: str = "auto") -> tuple[list[InputItem], InputOrder]:
    """``items`` in the order asked for (see the module docstring), and what was used.

    Raises
    ------
    ValueError
        For an unknown ``order``, or ``"exif"`` / ``"time"`` / ``"mtime"`` when an
        input does not carry that time (the message names the first one).
    """
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    items = list(items)
    n = len(items)
    if order == "given" or n < 2:
        return items, InputOrder(order, "given", f"{n} inputs in the order given")
    files = [_file_of(it) for it in items]  # None for anything but a path (Unreadable included)
    readable_files = [f for f in files if f is not None]
    not_files = sum(f is None and _video_pos(it) is None for f, it in zip(files, items))

    def done(new: list[InputItem], used: str, detail: str):
        changed = [i.id for i in new] != [i.id for i in items]
        return new, InputOrder(order, used, detail, changed)

    if order in ("time", "auto"):
        times = [it.time for it in items]
        if all(t is not None for t in times):
            return done(_sorted_by(times, items), "time", f"{n} inputs by their time column")
        if order == "time":
            bad = next(it.id for it, t in zip(items, times) if t is None)
            raise ValueError(f"order='time' needs a time for every input; {bad} has none "
                             "(a manifest's 'time' or 'timestamp' column)")
    if order in ("exif", "auto") and readable_files and (order == "exif" or not_files == 0):
        stamps = {f: exif_time(f) for f in readable_files}
        missing = [f for f, t in stamps.items() if t is None]
        if order == "exif" and missing:
            raise ValueError(f"order='exif' needs EXIF DateTimeOriginal in every image; {missing[0]} has none "
                             f"({len(missing)} of {len(readable_files)} without)")
        distinct = len(set(stamps.values())) == len(stamps)
        if not missing and (distinct or order == "exif"):
            keys = [(0, stamps[f], natural_key(f)) if f in stamps else (1, 0.0, (i,)) for i, f in enumerate(files)]
            return done(_sorted_by(keys, items), "exif", f"{n} inputs by EXIF DateTimeOriginal")
    if order == "mtime":
        keys = []
        for i, f in enumerate(files):
            try:
                keys.append((0, os.stat(f).st_mtime_ns, i) if f is not None else (1, 0, i))
            except OSError:
                keys.append((1, 0, i))  # unreadable: an error row, after the others
        return done(_sorted_by(keys, items), "mtime", f"{n} inputs by file modification time")
    # name (and auto without times): natural order of names; video frames by position
    new = _sorted_by([_name_key(it, i) for i, it in enumerate(items)], items)
    videos = {v[0] for v in map(_video_pos, items) if v is not None}
    if videos and all(_video_pos(it) is not None for it in items):
        return done(new, "video", f"{n} frames of {len(videos)} video(s) by position")
    return done(new, "name", f"{n} inputs by name (natural order: frame_9 before frame_10)")


def input_times(items: list[InputItem], source: str = "auto") -> list[float | None]:
    """Each input's time in seconds since the epoch, or None: ``"time"`` a manifest's time column,
    ``"exif"`` EXIF DateTimeOriginal, ``"mtime"`` the file's modification time, ``"auto"`` the time
    column when every input has one, else EXIF."""
    if source not in ("auto", "time", "exif", "mtime"):
        raise ValueError(f"times come from 'auto', 'time', 'exif' or 'mtime', got {source!r}")
    if source == "time" or (source == "auto" and all(it.time is not None for it in items)):
        return [it.time for it in items]
    out: list[float | None] = []
    for it in items:
        f = _file_of(it)
        if f is None:
            out.append(None)
        elif source == "mtime":
            try:
                out.append(os.stat(f).st_mtime)
            except OSError:
                out.append(None)
        else:
            out.append(exif_time(f))
    return out
