"""Ignore zones: parts of the frame the detector must not look at (a TV screen, a tree in the wind,
a timestamp overlay).

A zone is a polygon in fractions of the frame's width and height (``(0, 0)`` top left, ``(1, 1)``
bottom right), so one model serves every resolution of its camera. Inside the zones every image --
the reference at fit time and each scored frame -- is painted one constant grey before any branch
sees it, at every size the loader decoded: what happens there changes no histogram and no
embedding, and heat maps are zeroed there. Zones are part of a model (saved with it): they must be
the same when it is fitted and when it scores, so they are given to ``fit``.

>>> zones = parse_zone("0.5,0 1,0 1,0.25 0.5,0.25")
>>> zones
((0.5, 0.0), (1.0, 0.0), (1.0, 0.25), (0.5, 0.25))
>>> import numpy as np
>>> zone_mask([zones], 4, 8).astype(int)
array([[0, 0, 0, 0, 1, 1, 1, 1],
       [0, 0, 0, 0, 0, 0, 0, 0],
       [0, 0, 0, 0, 0, 0, 0, 0],
       [0, 0, 0, 0, 0, 0, 0, 0]])
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["check_zones", "parse_zone", "zone_mask", "mask_image", "FILL"]

#: the grey painted over ignored zones
FILL = 128


def check_zones(zones) -> tuple:
    """``zones`` as a tuple of polygons (tuples of ``(x, y)`` fractions); ValueError naming the problem."""
    if zones is None:
        return ()
    out = []
    for i, poly in enumerate(zones):
        try:
            pts = tuple((float(x), float(y)) for x, y in poly)
        except (TypeError, ValueError):
            raise ValueError(f"ignore zone {i + 1}: a polygon is a list of (x, y) pairs, got {poly!r}") from None
        if len(pts) < 3:
            raise ValueError(f"ignore zone {i + 1}: a polygon needs at least 3 points, got {len(pts)}")
        if not all(0.0 <= v <= 1.0 for p in pts for v in p):
            raise ValueError(f"ignore zone {i + 1}: coordinates are fractions of the frame, 0..1; got {pts}")
        out.append(pts)
    return tuple(out)


def parse_zone(text: str) -> tuple:
    """One polygon from the command line: ``"x1,y1 x2,y2 x3,y3 ..."`` in fractions of the frame."""
    try:
        pts = [tuple(float(v) for v in p.split(",")) for p in text.split()]
    except ValueError:
        raise ValueError(f"--ignore {text!r}: expected points 'x,y x,y x,y ...' in fractions of the frame") from None
    if any(len(p) != 2 for p in pts):
        raise ValueError(f"--ignore {text!r}: each point is 'x,y'")
    return check_zones([pts])[0]


def zone_mask(zones, height: int, width: int) -> np.ndarray:
    """Boolean ``(height, width)`` mask, True for the pixels whose centre lies inside any zone
    (computed once per size and zones)."""
    return _mask(tuple(tuple(map(tuple, poly)) for poly in zones), int(height), int(width)).copy()


@lru_cache(maxsize=64)
def _mask(zones: tuple, height: int, width: int) -> np.ndarray:
    from matplotlib.path import Path as _Poly
    yy, xx = np.mgrid[0:height, 0:width]
    centres = np.column_stack([(xx.ravel() + 0.5) / width, (yy.ravel() + 0.5) / height])
    m = np.zeros(height * width, bool)
    for poly in zones:
        m |= _Poly(poly).contains_points(centres)
    return m.reshape(height, width)


def _painted(arr: np.ndarray, zones) -> np.ndarray:
    out = arr.copy()  # never the caller's array (an input given as pixels)
    out[zone_mask(zones, arr.shape[0], arr.shape[1])] = FILL
    return out


def mask_image(img, zones) -> None:
    """Paint the zones :data:`FILL` grey in a decoded image, at every size it holds. Its content key
    (``sha1``, which feature caches use) changes with the zones, so a cache never mixes the features
    of the painted and the unpainted picture."""
    if not zones or img.rgb is None or getattr(img, "zones_masked", False):
        return
    import hashlib
    img.rgb = _painted(img.rgb, zones)
    img.views = {k: _painted(v, zones) for k, v in img.views.items()}
    img.cache.clear()  # derived pixels (HSV...) were made before the paint
    if img.sha1:
        img.sha1 = hashlib.sha1(f"{img.sha1}|ignore={zones!r}".encode()).hexdigest()
    img.zones_masked = True
