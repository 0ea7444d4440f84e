"""Command line: ``hybrid-drift make-dataset | bench | fit | score | report | accept | monitor | record | watch | cache``.

One module per command (:mod:`.data`, :mod:`.fit`, :mod:`.score`, :mod:`.monitor`, :mod:`.record`, :mod:`.watch`,
:mod:`.cache`), each with ``add(sub, parents)`` (its arguments: choices and defaults read from
the library) and the function that runs it: parse, call the library, print. :mod:`.common` holds
what they share.

Exit codes: 0 ok; 1 a constraint that was asked for failed (``--max-outliers``, a monitor
constraint); 2 usage or input error (bad folder, bad manifest, unreadable model...); 130
interrupted (Ctrl-C; a ``score --engine ray`` job resumes when the same command is run again).
"""

from __future__ import annotations

import argparse
import logging
import sys
import textwrap

from . import accept, cache, data, fit, monitor, record, score, watch
from .common import EXIT_CONSTRAINT, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, UsageError

__all__ = ["main", "EXIT_OK", "EXIT_CONSTRAINT", "EXIT_USAGE", "EXIT_INTERRUPTED"]


def _parser() -> argparse.ArgumentParser:
    from .._version import __version__
    from .common import parents
    p = argparse.ArgumentParser(
        prog="hybrid-drift", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Find drifted and outlier images in fixed-camera image streams.",
        epilog=textwrap.dedent("""\
            examples:
              hybrid-drift make-dataset crossroad build/crossroad --seed 0
              hybrid-drift bench build/crossroad --json build/bench.json --report build/report
              hybrid-drift fit build/crossroad --out model/
              hybrid-drift fit frames/normal --out model/
              hybrid-drift score model/ frames/today --out scores.csv --max-outliers 0
              hybrid-drift score model/ /data/cam*/2026-11 --engine ray --address auto --out scores/
              hybrid-drift monitor frames/last_week frames/today --chunk 50 --report build/monitor
              hybrid-drift report model/ build/crossroad --split test --out build/report.html
              hybrid-drift record rtsp://10.0.0.7/stream1 footage/reference --every 60 --frames 1440
              hybrid-drift watch model/ rtsp://10.0.0.7/stream1 --fps 2 --events events.jsonl

            exit codes: 0 ok, 1 a requested constraint failed (--max-outliers), 2 usage or input error,
            130 interrupted (Ctrl-C)"""))
    p.add_argument("--version", action="version", version=f"hybrid-drift {__version__}")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    shared = parents()
    for module in (data, fit, score, accept, monitor, record, watch, cache):
        module.add(sub, shared)
    return p


def main(argv=None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 constraint failed, 2 usage/input error)."""
    parser = _parser()
    try:
        a = parser.parse_args(argv)
    except SystemExit as exc:  # usage errors (2) and --help / --version (0), returned to a caller of main()
        return int(exc.code or 0)
    a.argv = list(argv) if argv is not None else sys.argv[1:]
    level = logging.DEBUG if a.verbose else logging.ERROR if a.quiet else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if a.quiet or not sys.stderr.isatty():
        a.progress = False  # no bars when asked, nor in logs and CI
    try:
        return a.fn(a)
    except KeyboardInterrupt:
        print(f"hybrid-drift {a.cmd}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # every input or environment error: exit 2, one line (1 is for constraints)
        print(f"hybrid-drift {a.cmd}: error: {_describe(exc)}", file=sys.stderr)
        if a.verbose:
            import traceback
            traceback.print_exc()
        return EXIT_USAGE


def _describe(exc: BaseException) -> str:
    """One line naming the file and the reason where there is one."""
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror or exc}"
    if isinstance(exc, RecursionError):
        return "input nested too deeply (RecursionError)"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    known = (ValueError, OSError, LookupError, TypeError, UsageError)
    return text if isinstance(exc, known) and text else f"{type(exc).__name__}: {text or 'unexpected error'}"
