"""Stream-health checks of one camera: each an alert kind that opens and closes.

``frozen``      near-identical consecutive frames (no pixel of their 64x48 grey thumbnails
                differs by ``frozen_diff`` grey levels or more) for at least ``frozen_seconds``
                of stream time and ``frozen_frames`` frames: every frame is normal, the stream
                is not. On the crossroad clip the largest difference between consecutive clean
                frames is never below 10 levels; a repeated frame gives 0 (a re-encoding codec a
                few). A scene that is truly still and noiseless looks frozen too: raise
                ``frozen_seconds`` there;
``blank``       black, white or uniform frames (thumbnail mean below 8 or above 247, or its
                standard deviation below ``blank_std``) for ``blank_frames`` frames in a row;
``resolution`` / ``format``  the frame size or codec / file format differs from the first
                frame's (the frame size: from the reference period's sizes when the model has
                them, any of them, so a reference of two sizes does not page on the second).
                A camera that changes resolution restarts its session (RTSP) or its connection,
                and the new size is seen at the reconnection. A size change *inside* one
                connection is not visible: OpenCV's FFmpeg reader scales every frame to the size
                it opened with (measured on MJPEG), so the detector then sees a rescaled picture;
``outlier``     the detector's flag with hysteresis: opens when ``outlier_k`` of the last
                ``outlier_n`` scored frames are flagged, closes when none of them is;
``drift``       the monitor's calibrated checks on each window of ``drift_window`` scored
                frames against the model's reference period (when the model carries it);
``disconnect`` / ``reconnect``  from the reader (see :mod:`.readers`).

An alert is reported when it opens (``"ongoing": true``) and when it closes
(``"end_frame"``), with its evidence.

**One alert per fault.** A health alert (``frozen``, ``blank``, ``resolution``, ``format``)
explains its frames: while one is open, the detector's flags on those frames do not open an
``outlier`` alert (they are counted in the open alert's ``outlier_frames`` field instead) and
the frames do not enter the drift window, so a black segment pages once (``blank``), not twice
(``blank`` and ``outlier``), and a frozen stream does not later raise ``drift`` on its frozen frames.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

import cv2
import numpy as np

__all__ = ["HealthSettings", "CameraHealth", "ALERT_KINDS"]

ALERT_KINDS = ("frozen", "blank", "disconnect", "reconnect", "resolution", "format", "outlier", "drift")
#: health alerts that explain a frame (an outlier flag on such a frame is folded into them)
EXPLAINING = ("blank", "frozen", "resolution", "format")


@dataclass(frozen=True)
class HealthSettings:
    """Thresholds of the health checks (defaults chosen on the crossroad clip; see README)."""

    frozen_diff: float = 3.0
    frozen_seconds: float = 1.0
    frozen_frames: int = 3
    blank_std: float = 3.0
    blank_frames: int = 3
    outlier_k: int = 3
    outlier_n: int = 5
    drift_window: int = 50

    def __post_init__(self):
        if not 1 <= self.outlier_k <= self.outlier_n:
            raise ValueError(f"need 1 <= outlier_k <= outlier_n, got {self.outlier_k}, {self.outlier_n}")
        for name in ("frozen_frames", "blank_frames", "drift_window"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")


@dataclass
class _Open:
    kind: str
    start_frame: int
    start_time: float
    evidence: dict = field(default_factory=dict)


def thumbnail(rgb: np.ndarray) -> np.ndarray:
    """64x48 grey thumbnail as float32."""
    return cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), (64, 48), interpolation=cv2.INTER_AREA).astype(np.float32)


class CameraHealth:
    """The running state of one camera's checks; :meth:`frame` and :meth:`status` return alert events."""

    def __init__(self, camera: str, settings: HealthSettings = HealthSettings(), monitor=None,
                 reference_resolution: str | Iterable[str] | None = None):
        self.camera, self.s, self.monitor = camera, settings, monitor
        #: the frame sizes (``"WxH"``) the reference had; empty = compare with the first frame's
        self.reference_resolutions = frozenset([reference_resolution] if isinstance(reference_resolution, str)
                                               else reference_resolution or ())
        self.open: dict[str, _Open] = {}
        self._prev: np.ndarray | None = None
        self._frozen_since: tuple[int, float] | None = None
        self._blank_run = 0
        self._first: tuple[str, str] | None = None
        self._flags: deque = deque(maxlen=settings.outlier_n)
        self._window: list = []
        self.alerts_total: dict[str, int] = {}

    # ------------------------------------------------------------------ alert bookkeeping
    def _start(self, kind, index, t, **evidence) -> list[dict]:
        if kind in self.open:
            return []
        self.open[kind] = _Open(kind, index, t, evidence)
        self.alerts_total[kind] = self.alerts_total.get(kind, 0) + 1
        return [{"kind": kind, "start_frame": index, "start_stream_time": round(t, 3), "ongoing": True, **evidence}]

    def _end(self, kind, index, t, **evidence) -> list[dict]:
        o = self.open.pop(kind, None)
        if o is None:
            return []
        # an alert never ends before it started (a camera closed at stop that never delivered a frame)
        index, t = max(index, o.start_frame), max(t, o.start_time)
        return [{"kind": kind, "start_frame": o.start_frame, "end_frame": index,
                 "start_stream_time": round(o.start_time, 3), "end_stream_time": round(t, 3),
                 "ongoing": False, **o.evidence, **evidence}]

    def _one_shot(self, kind, index, t, **evidence) -> list[dict]:
        self.alerts_total[kind] = self.alerts_total.get(kind, 0) + 1
        return [{"kind": kind, "start_frame": index, "end_frame": index, "start_stream_time": round(t, 3),
                 "end_stream_time": round(t, 3), "ongoing": False, **evidence}]

    # ------------------------------------------------------------------ inputs
    def status(self, kind: str, index: int, t: float, detail: str) -> list[dict]:
        """A connection change from the reader."""
        if kind == "disconnect":
            return self._start("disconnect", index, t, detail=detail)
        return self._end("disconnect", index, t, detail=detail) + self._one_shot("reconnect", index, t, detail=detail)

    def frame(self, index: int, t: float, rgb: np.ndarray | None, fmt: str, scored: dict | None,
              profile_row=None) -> list[dict]:
        """One frame (pixels, format, and the detector's row when it was scored); returns alert events."""
        out: list[dict] = []
        if rgb is None:
            return out
        th = thumbnail(rgb)
        mean, std = float(th.mean()), float(th.std())
        blank = mean < 8 or mean > 247 or std < self.s.blank_std
        # frozen: near-identical to the previous frame (a blank frame is the blank check's, not frozen)
        if not blank and self._prev is not None and float(np.abs(th - self._prev).max()) < self.s.frozen_diff:
            if self._frozen_since is None:
                self._frozen_since = (index - 1, t)
            start, t0 = self._frozen_since
            if index - start + 1 >= self.s.frozen_frames and t - t0 >= self.s.frozen_seconds:
                out += self._start("frozen", start, t0)
        else:
            if self._frozen_since is not None and "frozen" in self.open:
                out += self._end("frozen", index - 1, t, frames=index - self._frozen_since[0])
            self._frozen_since = None
        self._prev = th
        # blank: black, white or uniform
        if blank:
            if self._blank_run == 0:
                self._blank_since = (index, t)
            self._blank_run += 1
            if self._blank_run >= self.s.blank_frames:
                out += self._start("blank", *self._blank_since, mean=round(mean, 1), std=round(std, 2))
        else:
            self._blank_run = 0
            out += self._end("blank", index - 1, t)
        # resolution / format: against the first frame (and the reference period)
        res = f"{rgb.shape[1]}x{rgb.shape[0]}"
        want = self.reference_resolutions or {res if self._first is None else self._first[0]}
        if res not in want:
            out += self._start("resolution", index, t, resolution=res, expected=" or ".join(sorted(want)))
        else:
            out += self._end("resolution", index, t)
        if self._first is None:
            self._first = (res, fmt)
        else:
            if fmt and self._first[1] and fmt != self._first[1]:
                out += self._start("format", index, t, format=fmt, expected=self._first[1])
            elif fmt:
                out += self._end("format", index, t)
        explained = [k for k in EXPLAINING if k in self.open]
        # outlier with hysteresis; a flag on a frame a health alert explains is folded into that alert
        if scored is not None and scored.get("is_outlier") is not None and explained:
            if scored["is_outlier"]:
                ev = self.open[explained[0]].evidence
                ev["outlier_frames"] = ev.get("outlier_frames", 0) + 1
            self._flags.clear()
        elif scored is not None and scored.get("is_outlier") is not None:
            self._flags.append(bool(scored["is_outlier"]))
            n_flag = sum(self._flags)
            if n_flag >= self.s.outlier_k:
                out += self._start("outlier", index, t, flagged=f"{n_flag} of the last {len(self._flags)}",
                                   fused=round(float(scored.get("fused", float("nan"))), 4),
                                   x_threshold=round(float(scored.get("fused_x", float("nan"))), 3))
            elif n_flag == 0:
                out += self._end("outlier", index, t)
        # drift: tumbling windows of scored frames against the model's reference period
        if self.monitor is not None and profile_row is not None and not explained:
            self._window.append((index, profile_row))
            if len(self._window) >= self.s.drift_window:
                out += self._drift(t)
        return out

    def _drift(self, t: float) -> list[dict]:
        from ..monitor.profile import BatchProfile
        import pandas as pd
        idx = [i for i, _ in self._window]
        rows = [r for _, r in self._window]
        prof = BatchProfile(pd.DataFrame([r["table"] for r in rows]),
                            np.stack([r["hist"] for r in rows]), None, {},
                            np.stack([r["thumb"] for r in rows]))
        self._window = []
        res = self.monitor.check(prof)
        fired = res[res["alert"]]
        if len(fired):
            ev = [{"check": c, "statistic": round(float(v), 4), "threshold": round(float(th), 4)}
                  for c, v, th in zip(fired["check"], fired["statistic"], fired["threshold"])]
            return self._start("drift", idx[0], t, window=[idx[0], idx[-1]], checks=ev)
        return self._end("drift", idx[-1], t, window=[idx[0], idx[-1]])

    def close_all(self, index: int, t: float) -> list[dict]:
        """Close every open alert (the watch stops)."""
        return [e for kind in list(self.open) for e in self._end(kind, index, t, closed_by="stop")]
