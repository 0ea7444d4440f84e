"""Several time-ordered splits of the crossroad video, on several seeds: the honest benchmark.

One split is one story of a deployment: a reference period (train, then val),
then later footage (test). A detector whose false alarms depend on where the split
happens to fall has not been measured by one split, so ``bench`` evaluates a
*protocol*: every split below on seeds 0 and 1 (rolling origin: train always
before val, val before test; train lengths 300-400 frames at different positions),
and reports each split, the mean and the **worst** split.

The defaults of this release were chosen on the *development* splits
(``DEV_SPLITS``, seeds 2 and 3, made with ``dev=True``); the *report* splits
(``REPORT_SPLITS``, seeds 0 and 1) were run only to be reported. All of them come
from the same 80-second clip, so their frames overlap: what differs is where the
reference period ends, what the test period holds (the people crossing the lawn
around frames 520-600, the light change near frame 500) and the random outliers.

**Order variants** (issue 20): a reference folder is in time order only when its
names say so. Each split and seed is also written with its images renamed the way
other tools name them, manifest rows sorted by the new name within each split (as a
folder listing would give them), nothing else changed:

* ``uuid``: random UUID names (a labelling tool, an object store): name order is
  random order;
* ``nopad``: ``frame_<n>.jpg`` without zero padding (``frame_10`` sorts before
  ``frame_9`` as text; the library's natural order puts it back).

Layout written by :func:`make_protocol`::

    OUT/protocol.json        the splits, seeds, orders and dataset folders
    OUT/frames/fNNNN.jpg     the normal frames, written once, shared
    OUT/<split>-s<seed>/     one dataset per split and seed (manifest.csv + its outliers), time order
    OUT/<split>-s<seed>-<order>/  the same dataset with renamed files (hard links)
"""

from __future__ import annotations

import json
import os
import random
import shutil
import uuid
from dataclasses import replace
from pathlib import Path

import pandas as pd

from .crossroad import CrossroadConfig, make_crossroad

__all__ = ["REPORT_SPLITS", "DEV_SPLITS", "REPORT_SEEDS", "DEV_SEEDS", "ORDER_VARIANTS", "make_protocol",
           "read_protocol", "is_protocol", "write_order_variant"]

#: name -> (first frame, train frames, val normal frames, test normal frames) of vtest.avi (795 frames)
REPORT_SPLITS = {
    "R1": (0, 400, 160, 235),   # the Tokyo study's split (the single-split benchmark)
    "R2": (0, 300, 120, 375),   # short reference, long test
    "R3": (0, 330, 150, 220),   # test ends before the clip does
    "R4": (100, 300, 120, 275),  # reference starts later
    "R5": (200, 320, 120, 155),  # reference covers the light change and the lawn crossing
    "R6": (0, 360, 140, 150),   # test = the lawn crossing
}
#: the splits the defaults were chosen on (never reported as results)
DEV_SPLITS = {
    "D1": (0, 358, 159, 278),   # the split of issue 13
    "D2": (50, 300, 100, 200),
    "D3": (0, 450, 120, 225),
}
#: how the files of each split are named besides time order (see the module docstring)
ORDER_VARIANTS = ("uuid", "nopad")
REPORT_SEEDS = (0, 1)
DEV_SEEDS = (2, 3)
_FILE = "protocol.json"


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:  # another file system, or links not allowed: a copy
        shutil.copy2(src, dst)


def write_order_variant(dataset: str | os.PathLike, out: str | os.PathLike, order: str, *, seed: int = 0) -> Path:
    """Write ``dataset`` again under ``out`` with every image renamed as ``order`` names files.

    ``"uuid"``: a random UUID per image (seeded); ``"nopad"``: ``<split>/frame_<n>.jpg`` with ``n``
    the row's position in time without zero padding. Rows of each split are sorted by the new
    name (text order, as a folder listing gives them); files are hard links (copies where links
    cannot be made). Returns ``out``.
    """
    if order not in ORDER_VARIANTS:
        raise ValueError(f"order must be one of {ORDER_VARIANTS}, got {order!r}")
    src, out = Path(dataset), Path(out)
    m = pd.read_csv(src / "manifest.csv", dtype=str, keep_default_na=False)
    rng = random.Random(f"{order}-{seed}")
    new = []
    for i, row in m.iterrows():
        ext = os.path.splitext(row["path"])[1].lower() or ".jpg"
        stem = str(uuid.UUID(int=rng.getrandbits(128))) if order == "uuid" else f"frame_{i}"
        new.append(f"images/{row['split']}/{stem}{ext}")
    m = m.assign(path=new, _src=[str(src / p) for p in m["path"]])
    for p, s in zip(m["path"], m["_src"]):
        _link(Path(s), out / p)
    parts = [m[m["split"] == sp].sort_values("path", kind="stable") for sp in dict.fromkeys(m["split"])]
    pd.concat(parts).drop(columns="_src").to_csv(out / "manifest.csv", index=False)
    return out


def make_protocol(out: str | os.PathLike, *, dev: bool = False, seeds=None, splits=None,
                  source: str | os.PathLike | None = None, progress: bool = False,
                  base: CrossroadConfig | None = None, orders=ORDER_VARIANTS) -> dict:
    """Write every split x seed as a crossroad dataset under ``out`` (normal frames shared).

    Parameters
    ----------
    out : path
        Output folder.
    dev : bool
        The development splits and seeds instead of the report ones.
    seeds, splits : optional
        Override the seeds (iterable of int) or the splits (name -> (start, train,
        val, test)).
    base : CrossroadConfig, optional
        Everything but the split positions (outlier counts, frame size...).
    orders : iterable of str
        Order variants written beside each time-ordered dataset (:data:`ORDER_VARIANTS`;
        empty = time order only).

    Returns
    -------
    dict
        The protocol description (also written to ``out/protocol.json``).
    """
    out = Path(out)
    splits = dict(splits or (DEV_SPLITS if dev else REPORT_SPLITS))
    seeds = tuple(seeds if seeds is not None else (DEV_SEEDS if dev else REPORT_SEEDS))
    datasets = []
    for name, (start, n_train, n_val, n_test) in splits.items():
        for seed in seeds:
            folder = f"{name}-s{seed}"
            cfg = replace(base or CrossroadConfig(), start=start, n_train=n_train, n_val=n_val,
                          n_test_normal=n_test)
            make_crossroad(out / folder, seed=seed, source=source, config=cfg, progress=progress,
                           normals_dir=out / "frames")
            frames = {"train": [start, start + n_train], "val": [start + n_train, start + n_train + n_val],
                      "test": [start + n_train + n_val, start + n_train + n_val + n_test]}
            datasets.append({"name": folder, "split": name, "seed": seed, "order": "time", "base": folder,
                             "frames": frames})
            for order in orders:
                write_order_variant(out / folder, out / f"{folder}-{order}", order, seed=seed)
                datasets.append({"name": f"{folder}-{order}", "split": name, "seed": seed, "order": order,
                                 "base": folder, "frames": frames})
    desc = {"name": "crossroad-protocol", "kind": "dev" if dev else "report", "datasets": datasets}
    (out / _FILE).write_text(json.dumps(desc, indent=2))
    return desc


def is_protocol(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a protocol folder (has ``protocol.json``)."""
    return (Path(path) / _FILE).is_file()


def read_protocol(path: str | os.PathLike) -> dict:
    """The protocol description, with each dataset's absolute ``path``; checks the folders exist."""
    root = Path(path)
    try:
        desc = json.loads((root / _FILE).read_text())
        datasets = desc["datasets"]
        if not isinstance(datasets, list) or not datasets:
            raise ValueError("no datasets")
        for d in datasets:
            d["path"] = str(root / d["name"])
            if not (Path(d["path"]) / "manifest.csv").is_file():
                raise ValueError(f"{d['path']}/manifest.csv is missing")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{root / _FILE}: not a usable protocol ({type(exc).__name__}: {exc})") from exc
    return desc
