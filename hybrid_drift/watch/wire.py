"""What a watch sends out must be safe on the wire: strict JSON (no bare NaN) and URLs without secrets."""

from __future__ import annotations

import json
import math
import urllib.parse

__all__ = ["strict_json", "jsonable", "redact_url"]


def jsonable(o):
    """JSON-able ``o`` (numpy scalars as Python numbers, keys as strings, anything else as its ``str``) with
    every float that JSON cannot hold (NaN, +-inf) as None."""
    import numpy as np
    if isinstance(o, dict):
        return {str(k): jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [jsonable(v) for v in o]
    if isinstance(o, np.generic):
        o = o.item()
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if o is None or isinstance(o, (str, int, bool)):
        return o
    return str(o)


def strict_json(event: dict) -> str:
    """``event`` as strict JSON (RFC 8259): NaN and infinities become ``null``, never a bare ``NaN``.

    Every document a watch emits (events file, stdout, webhook body) goes through here: a
    receiver's JSON parser must never choke on one, and a writer must never refuse one.

    >>> strict_json({"threshold": float("nan"), "fused": float("inf"), "ok": 1.5})
    '{"threshold": null, "fused": null, "ok": 1.5}'
    """
    return json.dumps(jsonable(event), allow_nan=False)


def host_port(u: urllib.parse.SplitResult) -> str:
    """Host and port of a split URL, without user name or password."""
    return (u.hostname or "") + (f":{u.port}" if u.port else "")


def redact_url(url: str) -> str:
    """``url`` for a log line: no user name, password, query or fragment (tokens live there).

    >>> redact_url("https://user:secret@hooks.example:8443/alerts?token=abc")
    'https://hooks.example:8443/alerts?…'
    """
    try:
        u = urllib.parse.urlsplit(url)
        return urllib.parse.urlunsplit((u.scheme, host_port(u), u.path, "", "")) + ("?…" if u.query else "")
    except ValueError:
        return "<url>"
