"""The cameras of a watch: a typed spec per camera, read from the command line or a TOML file.

A cameras file holds one ``[[camera]]`` table per camera::

    [[camera]]
    name = "gate"                       # 1-64 letters, digits, '.', '_', '-' (labels metrics and summaries)
    source = "rtsp://10.0.0.7/stream1"  # a URL, a video device, a video file or a folder
    model = "models/gate"               # the model folder written by `hybrid-drift fit`
    fps = 2                             # optional: score at most this many frames per second
    settle = 3                          # optional: seconds skipped after each (re)connection
    frozen_seconds = 5                  # optional: this camera's health limits (see HealthSettings)
    outlier_k = 3
    outlier_n = 5
    drift_window = 50

Unknown keys are an error naming them (a typo such as ``fsp = 2`` is never silently ignored),
as is a value of the wrong type or range; every error names the file and the camera.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .health import HealthSettings

__all__ = ["CameraSpec", "CAMERA_KEYS", "HEALTH_KEYS", "read_config"]


@dataclass
class CameraSpec:
    """One camera of a watch: a name, a source, its model (a folder, or a loaded detector), and its own
    settings where they differ from the watch's (``fps``, ``settle``, ``health``: HealthSettings fields)."""

    name: str
    source: str
    model: Any
    fps: float | None = None
    settle: float | None = None
    health: dict = field(default_factory=dict)


#: the health limits a camera may set for itself (the fields of HealthSettings)
HEALTH_KEYS = tuple(f.name for f in fields(HealthSettings))
#: the keys a [[camera]] table may hold
CAMERA_KEYS = ("name", "source", "model", "fps", "settle") + HEALTH_KEYS
_NAME_OK = re.compile(r"[A-Za-z0-9._-]{1,64}")


def _number(v, *, integer: bool = False) -> bool:
    return not isinstance(v, bool) and isinstance(v, int if integer else (int, float))


def _camera(path, i: int, c, names: set) -> CameraSpec:
    if not isinstance(c, dict) or not all(isinstance(c.get(k), str) and c.get(k) for k in ("name", "source", "model")):
        raise ValueError(f"{path}: camera {i + 1} needs name, source and model (strings)")
    name = c["name"]
    if not _NAME_OK.fullmatch(name):
        raise ValueError(f"{path}: camera name {name!r} must be 1-64 letters, digits, '.', '_' or '-' "
                         "(it labels metrics and summary lines)")
    unknown = sorted(set(c) - set(CAMERA_KEYS))
    if unknown:
        raise ValueError(f"{path}: camera {name!r}: unknown key(s) {', '.join(unknown)}; known: {', '.join(CAMERA_KEYS)}")
    if name in names:
        raise ValueError(f"{path}: camera name {name!r} is used twice")
    names.add(name)
    fps, settle = c.get("fps"), c.get("settle")
    if fps is not None and (not _number(fps) or fps <= 0):
        raise ValueError(f"{path}: camera {name!r}: fps must be a number > 0, got {fps!r}")
    if settle is not None and (not _number(settle) or settle < 0):
        raise ValueError(f"{path}: camera {name!r}: settle must be a number of seconds >= 0, got {settle!r}")
    health = {k: c[k] for k in HEALTH_KEYS if k in c}
    default = HealthSettings()
    for k, v in health.items():
        if not _number(v, integer=isinstance(getattr(default, k), int)) or v < 0:
            kind = "an int" if isinstance(getattr(default, k), int) else "a number"
            raise ValueError(f"{path}: camera {name!r}: {k} must be {kind} >= 0, got {v!r}")
    try:
        HealthSettings(**health)
    except ValueError as exc:
        raise ValueError(f"{path}: camera {name!r}: {exc}") from exc
    return CameraSpec(name, c["source"], c["model"], fps, settle, health)


def read_config(path: str | os.PathLike) -> list[CameraSpec]:
    """The cameras of a TOML cameras file (see the module docstring); ValueError naming the file and camera."""
    import tomllib
    try:
        cfg = tomllib.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: cannot read the cameras file ({exc})") from exc
    unknown = sorted(set(cfg) - {"camera"})
    if unknown:
        raise ValueError(f"{path}: unknown table(s) or key(s) {', '.join(unknown)}; a cameras file holds [[camera]] tables")
    cams = cfg.get("camera")
    if not isinstance(cams, list) or not cams:
        raise ValueError(f"{path}: needs one or more [[camera]] tables with name, source and model")
    names: set = set()
    return [_camera(path, i, c, names) for i, c in enumerate(cams)]
