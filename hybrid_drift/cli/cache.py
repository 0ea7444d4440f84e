"""``cache``: show or empty the CNN feature cache."""

from __future__ import annotations

import json
from pathlib import Path

from .common import EXIT_OK, examples

__all__ = ["add"]


def add(sub, parents) -> None:
    s = sub.add_parser("cache", parents=[parents["common"]], help="show or empty the CNN feature cache",
                       **examples("hybrid-drift cache info", "hybrid-drift cache info --json",
                                  "hybrid-drift cache clear"),
                       description="The feature cache (content-keyed CNN features; $HYBRID_DRIFT_CACHE, "
                                   "default ~/.cache/hybrid_drift, bounded by $HYBRID_DRIFT_CACHE_MAX, default 2G).")
    s.add_argument("action", choices=["info", "clear"])
    s.add_argument("--cache-dir", default=None, help="cache folder (default: $HYBRID_DRIFT_CACHE or ~/.cache/hybrid_drift)")
    s.add_argument("--json", action="store_true", help="info as JSON")
    s.set_defaults(fn=run)


def run(a) -> int:
    from ..features.cache import cache_info, clear_cache
    root = a.cache_dir
    if a.action == "clear":
        freed = clear_cache(root)
        print(f"feature cache cleared: {freed / 1e6:.1f} MB freed")
        return EXIT_OK
    info = cache_info(root)
    if a.json:
        print(json.dumps(info, default=str))
        return EXIT_OK
    if info["root"] is None:
        print("feature cache: off (HYBRID_DRIFT_CACHE=off)")
        return EXIT_OK
    print(f"feature cache: {info['root']}: {info['entries']} entries, {info['bytes'] / 1e6:.1f} MB "
          f"(limit {info['max_bytes'] / 1e6:.0f} MB, HYBRID_DRIFT_CACHE_MAX)")
    for c in info["configs"]:
        cfg = c["config"]
        what = ", ".join(f"{k}={v}" for k, v in cfg.items() if k in ("backbone", "pool", "layers", "size"))
        print(f"  {c['key']}: {c['entries']} entries, {c['bytes'] / 1e6:.1f} MB ({what})")
    g = info["exported_graphs"]
    print(f"exported CNN graphs (ONNX, rebuilt when missing): {g['files']} files, {g['bytes'] / 1e6:.1f} MB in "
          f"{Path(info['root']) / 'onnx'}")
    return EXIT_OK
