"""A scoring job on disk: the input listing cut into parts, Parquet parts written atomically,
and a manifest of the parts that are done — so a job can stop anywhere and be resumed.

Layout of a job folder::

    _job.json          what the job is: model fingerprint, listing fingerprint, part size
    _inputs.parquet    the input listing: one row per input, in order, with its part
    parts/part-00000.parquet ...   scores of each part (same columns as the local ``score``)
    _manifest.jsonl    one line per completed part (rows, bytes, host, pid, seconds)

The bookkeeping files start with ``_``, which Parquet readers skip, so the folder reads
as one dataset of scores: ``pd.read_parquet(folder)`` gives the score rows (in part
order within each part; :func:`read_results` gives them in input order and checks that
every part is there). Folders written by version 0.1 (names without ``_``) are renamed on open.

A part file appears only complete (written to a temporary name, flushed, then renamed),
and its name is fixed by the part number, so a part that is scored twice (a retried
task, a resumed run) replaces itself instead of adding rows: every input ends up in
exactly one part, once. Nothing here needs Ray; the engines call it.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..io.sources import InputItem

__all__ = ["ScoreJob", "JobMismatchError", "items_to_frame", "frame_to_items", "model_fingerprint",
           "read_results"]

JOB_VERSION = 1


class JobMismatchError(ValueError):
    """The output folder holds a job for other inputs, another model or another part size."""


def items_to_frame(items: Sequence[InputItem]) -> pd.DataFrame:
    """The listing as a table: ``id``, ``path`` and ``frame`` (video frame index; -1 for image
    files, -2 for a video that could not be opened)."""
    ids, paths, frames = [], [], []
    for it in items:
        if isinstance(it.src, tuple):
            path, frame = it.src
            frame = -2 if frame is None else int(frame)  # None: the video could not be opened
        elif isinstance(it.src, (str, os.PathLike)):
            path, frame = os.fspath(it.src), -1
        else:
            raise TypeError(f"{it.id}: only files, folders and videos can be scored as a job "
                            f"(got {type(it.src).__name__}); in-memory inputs go through HybridDetector.score")
        ids.append(it.id)
        paths.append(str(path))
        frames.append(frame)
    return pd.DataFrame({"id": ids, "path": paths, "frame": np.asarray(frames, np.int64)})


def frame_to_items(ids, paths, frames) -> list[InputItem]:
    """Inverse of :func:`items_to_frame`."""
    out = []
    for i, p, f in zip(ids, paths, frames):
        f = int(f)
        out.append(InputItem(str(i), str(p) if f == -1 else (str(p), None if f < 0 else f)))
    return out


def model_fingerprint(model_dir: str | os.PathLike) -> str:
    """SHA-1 of a saved model's files (config and arrays): a job is tied to one model."""
    h = hashlib.sha1()
    root = Path(model_dir)
    for name in sorted(p.name for p in root.iterdir() if p.is_file()):
        h.update(name.encode())
        h.update((root / name).read_bytes())
    return h.hexdigest()


def _fsync_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


@dataclass
class ScoreJob:
    """A job folder (see module docstring). Create with :meth:`open`.

    Attributes
    ----------
    out : Path
        The job folder.
    listing : DataFrame
        ``id``, ``path``, ``frame``, ``part`` of every input, in order.
    part_size : int
        Inputs per part (the last part may be shorter).
    """

    out: Path
    listing: pd.DataFrame
    part_size: int

    @property
    def n_parts(self) -> int:
        return int(self.listing["part"].max()) + 1 if len(self.listing) else 0

    def part_file(self, part: int) -> Path:
        return self.out / "parts" / f"part-{part:05d}.parquet"

    def part_listing(self, part: int) -> pd.DataFrame:
        lo = part * self.part_size
        return self.listing.iloc[lo:lo + self.part_size]

    # ------------------------------------------------------------------ create / reopen
    @classmethod
    def open(cls, out: str | os.PathLike, items: Sequence[InputItem], *, model: str, part_size: int = 1000,
             overwrite: bool = False) -> ScoreJob:
        """Create the job folder, or reopen it to resume the same job.

        Parameters
        ----------
        out : path
            Job folder (created if needed).
        items : sequence of InputItem
            The inputs, in order (from :func:`hybrid_drift.io.expand_inputs`).
        model : str
            Fingerprint of the model (:func:`model_fingerprint`).
        part_size : int
            Inputs per part. A part is the unit of work, of retry and of resume.
        overwrite : bool
            Start afresh when ``out`` holds a different job (its parts are deleted).

        Raises
        ------
        JobMismatchError
            ``out`` holds a job for other inputs, model or part size (and not ``overwrite``).
        """
        if part_size < 1:
            raise ValueError(f"part_size must be >= 1, got {part_size}")
        out = Path(out)
        listing = items_to_frame(items)
        listing["part"] = np.arange(len(listing), dtype=np.int64) // part_size
        digest = hashlib.sha1(pd.util.hash_pandas_object(listing[["id", "path", "frame"]], index=False)
                              .to_numpy().tobytes()).hexdigest()
        spec = {"version": JOB_VERSION, "n_inputs": len(listing), "part_size": int(part_size),
                "listing_sha1": digest, "model_sha1": model}
        _migrate_names(out)
        job_file = out / JOB_FILE
        if job_file.is_file():
            old = json.loads(job_file.read_text())
            same = {k: old.get(k) for k in spec} == spec
            if not same and not overwrite:
                diff = [k for k in spec if old.get(k) != spec[k]]
                raise JobMismatchError(
                    f"{out} holds another job (different {', '.join(diff)}): resume needs the same model, "
                    "inputs and --part-size; use a new --out, or --overwrite to start afresh")
            if not same:
                cls._clear(out)
        elif out.exists() and any(out.iterdir()) and not overwrite:
            raise JobMismatchError(f"{out} is not empty and is not a job folder; choose an empty or new --out")
        out.mkdir(parents=True, exist_ok=True)
        (out / "parts").mkdir(exist_ok=True)
        if not job_file.is_file():
            listing.to_parquet(out / INPUTS_FILE, index=False)
            _fsync_write(job_file, json.dumps(dict(spec, created=time.strftime("%Y-%m-%dT%H:%M:%S")),
                                              indent=2).encode())
        return cls(out, listing, int(part_size))

    @classmethod
    def load(cls, out: str | os.PathLike) -> ScoreJob:
        """Reopen an existing job folder as it is on disk (to read it, not to run it)."""
        out = Path(out)
        _migrate_names(out)
        if not (out / JOB_FILE).is_file():
            raise FileNotFoundError(f"{out}: not a scoring job folder (no {JOB_FILE})")
        spec = json.loads((out / JOB_FILE).read_text())
        return cls(out, pd.read_parquet(out / INPUTS_FILE), int(spec["part_size"]))

    @staticmethod
    def _clear(out: Path) -> None:
        for p in (out / "parts").glob("*"):
            p.unlink()
        for name in (MANIFEST_FILE, INPUTS_FILE, JOB_FILE):
            (out / name).unlink(missing_ok=True)

    # ------------------------------------------------------------------ progress
    def manifest(self) -> dict[int, dict]:
        """Completed parts (part -> its manifest entry). A torn last line (a crash while
        appending) is ignored; its part is then found on disk by :meth:`completed`."""
        done: dict[int, dict] = {}
        path = self.out / MANIFEST_FILE
        if path.is_file():
            for line in path.read_text().splitlines():
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue
                done[int(entry["part"])] = entry
        return done

    def completed(self) -> set[int]:
        """Parts whose file is on disk with the right number of rows.

        A part written just before a crash but missing from the manifest is checked
        (its row count) and recorded; a manifest entry whose file is gone is dropped.
        """
        import pyarrow.parquet as pq
        entries = self.manifest()
        done = set()
        for f in sorted((self.out / "parts").glob("part-*.parquet")):
            part = int(f.stem.split("-")[1])
            if part >= self.n_parts:
                continue
            if part in entries:
                done.add(part)
                continue
            try:
                rows = pq.ParquetFile(f).metadata.num_rows
            except Exception:  # unreadable: score it again
                continue
            if rows == len(self.part_listing(part)):
                self.record(part, {"rows": rows, "recovered": True})
                done.add(part)
        return done

    def todo(self) -> list[int]:
        """Parts still to score, in order."""
        done = self.completed()
        return [k for k in range(self.n_parts) if k not in done]

    def write_part(self, part: int, table: pd.DataFrame | bytes) -> int:
        """Write one part atomically (a DataFrame, or Parquet bytes made by a worker). Returns its size."""
        data = table if isinstance(table, (bytes, bytearray)) else table_to_parquet(table)
        _fsync_write(self.part_file(part), bytes(data))
        return len(data)

    def record(self, part: int, info: dict) -> None:
        """Append a completed part to the manifest (one JSON line, flushed to disk)."""
        entry = {"part": int(part), "file": self.part_file(part).name, "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                 "driver": socket.gethostname(), **info}
        path = self.out / MANIFEST_FILE
        torn = False
        if path.is_file() and path.stat().st_size > 0:
            with open(path, "rb") as fh:  # only the last byte: the manifest grows with the job
                fh.seek(-1, os.SEEK_END)
                torn = fh.read(1) != b"\n"
        with open(path, "a") as fh:
            # after a crash mid-append the last line is torn: start a fresh line, never extend it
            fh.write(("\n" if torn else "") + json.dumps(entry, default=str) + "\n")
            fh.flush()
            os.fsync(fh.fileno())


JOB_FILE, INPUTS_FILE, MANIFEST_FILE = "_job.json", "_inputs.parquet", "_manifest.jsonl"


def _migrate_names(out: Path) -> None:
    """Rename a job folder's bookkeeping files from version 0.1's names (no leading ``_``)."""
    for new in (JOB_FILE, INPUTS_FILE, MANIFEST_FILE):
        old = out / new[1:]
        if old.is_file() and not (out / new).exists():
            os.replace(old, out / new)


def table_to_parquet(table: pd.DataFrame) -> bytes:
    """A score table as Parquet bytes (nullable booleans and strings kept)."""
    import io
    buf = io.BytesIO()
    table.to_parquet(buf, index=False)
    return buf.getvalue()


def read_results(out: str | os.PathLike, *, require_complete: bool = True) -> pd.DataFrame:
    """The scores of a job folder as one table, in input order.

    Raises
    ------
    ValueError
        When parts are missing (``require_complete``) or a part does not match its listing.
    """
    job = ScoreJob.load(out)
    frames, missing = [], []
    for k in range(job.n_parts):
        f = job.part_file(k)
        if not f.is_file():
            missing.append(k)
            continue
        df = pd.read_parquet(f)
        if df["path"].tolist() != job.part_listing(k)["id"].tolist():
            raise ValueError(f"{f}: rows do not match part {k} of the listing")
        frames.append(df)
    if missing and require_complete:
        raise ValueError(f"{out}: {len(missing)} of {job.n_parts} parts not scored yet (first: {missing[0]}); "
                         "run the same command again to finish")
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
