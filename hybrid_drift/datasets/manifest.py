"""Labelled outlier sets: ``<dataset>/manifest.csv`` (path, split, label, kind, ...) + images."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["REQUIRED_COLUMNS", "SPLITS", "Dataset", "read_manifest"]

REQUIRED_COLUMNS = ("path", "split", "label", "kind")
SPLITS = ("train", "val", "test")


@dataclass
class Dataset:
    """A dataset in the manifest format.

    Attributes
    ----------
    root : Path
    manifest : pandas.DataFrame
        Columns ``path`` (relative to root), ``split``, ``label`` (0/1), ``kind`` and
        any extras; ``abspath`` is added.
    """

    root: Path
    manifest: pd.DataFrame

    @property
    def name(self) -> str:
        return self.root.name

    def split(self, name: str) -> pd.DataFrame:
        """Manifest rows of one split, in file order."""
        return self.manifest[self.manifest["split"] == name].reset_index(drop=True)

    def paths(self, name: str) -> list[str]:
        """Absolute image paths of one split."""
        return self.split(name)["abspath"].tolist()

    def items(self, mask) -> list:
        """:class:`~hybrid_drift.io.InputItem` s of the rows selected by ``mask``, with their ``time``
        when the manifest has a time column (see :func:`read_manifest`)."""
        from ..io.sources import InputItem, display_id
        rows = self.manifest[mask]
        times = rows["time_s"] if "time_s" in rows else [None] * len(rows)
        return [InputItem(display_id(p), p, None if t is None or pd.isna(t) else float(t))
                for p, t in zip(rows["abspath"], times)]

    def labels(self, name: str) -> np.ndarray:
        """Labels (0 normal, 1 outlier) of one split."""
        return self.split(name)["label"].to_numpy(dtype=int)


def read_manifest(root: str | os.PathLike, *, limit: int | None = None, seed: int = 0) -> Dataset:
    """Read and validate ``<root>/manifest.csv``.

    Parameters
    ----------
    root : path
        Dataset folder.
    limit : int, optional
        Keep at most ``limit`` images per split (for quick runs): a seeded random
        sample that keeps the split's share of outliers, in the original order.

    Raises
    ------
    FileNotFoundError, ValueError
        With the file and what is wrong (missing columns, bad split names or labels,
        outliers in train).
    """
    root = Path(root)
    path = root / "manifest.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no manifest.csv (expected columns: {', '.join(REQUIRED_COLUMNS)})")
    df = pd.read_csv(path, dtype={"path": str, "split": str, "kind": str}, keep_default_na=False)
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; found {list(df.columns)}; "
                         f"required: {list(REQUIRED_COLUMNS)}")
    bad_split = sorted(set(df["split"]) - set(SPLITS))
    if bad_split:
        raise ValueError(f"{path}: unknown split name(s) {bad_split}; use {list(SPLITS)}")
    labels = pd.to_numeric(df["label"], errors="coerce")
    if labels.isna().any() or not labels.isin([0, 1]).all():
        raise ValueError(f"{path}: 'label' must be 0 (normal) or 1 (outlier) on every row")
    df["label"] = labels.astype(int)
    if (df.loc[df["split"] == "train", "label"] == 1).any():
        raise ValueError(f"{path}: the train split must hold normal images only (label 0)")
    for s in ("train",):
        if not (df["split"] == s).any():
            raise ValueError(f"{path}: no rows in the '{s}' split")
    if limit is not None:
        rng = np.random.default_rng(seed)
        keep = []
        for s, g in df.groupby("split", sort=False):
            if len(g) <= limit:
                keep.extend(g.index)
                continue
            n_out = int(round(limit * g["label"].mean()))
            if g["label"].sum() > 0:
                n_out = max(1, n_out)
            outl = g.index[g["label"] == 1].to_numpy()
            norm = g.index[g["label"] == 0].to_numpy()
            keep.extend(rng.choice(outl, min(n_out, len(outl)), replace=False))
            keep.extend(rng.choice(norm, min(limit - min(n_out, len(outl)), len(norm)), replace=False))
        df = df.loc[sorted(keep)]
    df = df.reset_index(drop=True)
    df["abspath"] = [str(root / p) for p in df["path"]]
    time_col = next((c for c in TIME_COLUMNS if c in df.columns), None)
    if time_col is not None:
        df["time_s"] = _seconds(df[time_col], path, time_col)
    return Dataset(root, df)


#: a manifest column with when each image was taken (seconds, or date-times) orders ``fit``'s reference
TIME_COLUMNS = ("time", "timestamp")


def _seconds(col: pd.Series, path, name) -> pd.Series:
    """A time column as float seconds (numbers as they are; date-time text parsed); empty cells are NaN."""
    text = col.astype(str).str.strip()
    empty = text.eq("") | col.isna()
    num = pd.to_numeric(text.where(~empty), errors="coerce")
    if not (num.isna() & ~empty).any():
        return num.astype(float)
    parsed = pd.to_datetime(text.where(~empty), errors="coerce", utc=True, format="mixed")
    bad = parsed.isna() & ~empty
    if bad.any():
        raise ValueError(f"{path}: column '{name}' must hold numbers or date-times; row {int(bad.idxmax()) + 2} "
                         f"holds {str(col[bad.idxmax()])[:40]!r}")
    return (parsed - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
