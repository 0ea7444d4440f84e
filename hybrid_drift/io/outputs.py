"""Outputs that are whole or visibly not: temporary file in the same folder, fsync, rename."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write_bytes", "PartialOutput", "OutputBusyError", "TABLE_FORMATS", "write_table",
           "stream_csv", "TableCounts"]


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically: readers see the old file or the new one, never a mix."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


class OutputBusyError(RuntimeError):
    """Another run is writing the same output."""


class PartialOutput:
    """A file written under ``<name>.partial`` and renamed to ``<name>`` only when it is complete.

    While it is written, the ``.partial`` file is locked (``fcntl.flock``): a second writer
    of the same output is refused at once instead of interleaving rows. If the run
    stops early (Ctrl-C, a crash), ``<name>.partial`` stays: visibly incomplete, never
    mistaken for a whole table. A stale ``.partial`` (no process holds its lock) is
    overwritten by the next run.

    Use as a context manager; ``fh`` is the open text file. Call :meth:`commit` at the
    end: leaving the block without it keeps the ``.partial`` file.
    """

    def __init__(self, path: str | os.PathLike, *, newline: str = ""):
        self.path = Path(path)
        self.partial = self.path.with_name(self.path.name + ".partial")
        self.newline = newline
        self.fh = None
        self.committed = False

    def __enter__(self) -> PartialOutput:
        import fcntl
        if self.path.is_dir():
            raise IsADirectoryError(f"{self.path}: is a directory (give a file name for the table)")
        fh = open(self.partial, "a+", newline=self.newline)  # a+: do not truncate before holding the lock
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            raise OutputBusyError(f"{self.path}: another run is writing it (lock held on {self.partial.name})")
        fh.seek(0)
        fh.truncate()
        self.fh = fh
        return self

    def commit(self) -> Path:
        """Flush, fsync and rename the ``.partial`` file to its name (still under the lock)."""
        self.fh.flush()
        os.fsync(self.fh.fileno())
        os.replace(self.partial, self.path)
        self.committed = True
        return self.path

    def __exit__(self, *exc):
        self.fh.close()  # releases the lock
        return False


#: what a score table can be written as, by extension
TABLE_FORMATS = (".csv", ".parquet")


class TableCounts:
    """Rows, outliers and unreadable inputs of a score table, counted as it is written."""

    def __init__(self):
        self.rows = self.outliers = self.errors = 0

    def add(self, part) -> None:
        self.rows += len(part)
        self.outliers += int(part["is_outlier"].fillna(False).sum())
        self.errors += int(part["error"].notna().sum())


def stream_csv(parts, out: str | os.PathLike) -> TableCounts:
    """Write score tables chunk by chunk to the CSV ``out``: constant memory whatever the number of
    images; whole or visibly partial (``out.partial`` until the last chunk, renamed then).

    On Ctrl-C the partial file is flushed and kept, and the ``KeyboardInterrupt`` carries
    ``rows`` (written so far) and ``partial`` (its path) for the message.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    counts = TableCounts()
    with PartialOutput(out) as po:
        try:
            for part in parts:
                part.to_csv(po.fh, index=False, header=(counts.rows == 0), lineterminator="\n")
                counts.add(part)
        except KeyboardInterrupt as exc:
            po.fh.flush()
            exc.rows, exc.partial = counts.rows, po.partial
            raise
        po.commit()
    return counts


def write_table(table, out: str | os.PathLike) -> Path:
    """Write a whole score table to ``out`` (``.parquet``, else CSV), whole or not at all."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with PartialOutput(out) as po:
        if out.suffix == ".parquet":
            table.to_parquet(po.partial, index=False)
        else:
            table.to_csv(po.fh, index=False, lineterminator="\n")
        po.commit()
    return out
