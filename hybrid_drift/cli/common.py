"""What every command shares: exit codes, the usage error, argument types, the parent parsers
(output, runtime, scale-out), and the one rule for inputs given on the command line."""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
from pathlib import Path

__all__ = ["examples", "EXIT_OK", "EXIT_CONSTRAINT", "EXIT_USAGE", "EXIT_INTERRUPTED", "UsageError", "default", "parents",
           "runtime_from", "load_inputs", "check_nonempty", "is_dataset", "write_json", "positive_int",
           "non_negative_int", "non_negative_float", "at_least", "n_components", "ray_engine", "ray_kw"]

EXIT_OK, EXIT_CONSTRAINT, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """A wrong command line or input (exit 2, one line)."""


def examples(*lines: str, more: str = "") -> dict:
    """``add_parser`` keywords for an ``examples:`` block under a command's help (kept as written)."""
    text = "examples:\n" + "\n".join(f"  {ln}" for ln in lines) + (f"\n{more}" if more else "")
    return {"epilog": text, "formatter_class": argparse.RawDescriptionHelpFormatter}


def default(obj, name: str):
    """The library's default of ``obj``'s parameter ``name`` (the command line repeats no literal)."""
    return inspect.signature(obj).parameters[name].default


def at_least(lo, kind=int, hi=None):
    """An argparse type: a ``kind`` (int or float) >= ``lo`` (and <= ``hi`` when given), else a usage error."""
    what = "an int" if kind is int else "a number"
    want = f">= {lo}" if hi is None else f"in {lo}..{hi}"

    def parse(v: str):
        try:
            x = kind(v)
        except ValueError:
            x = None
        if x is None or not x >= lo or (hi is not None and not x <= hi):  # also refuses a float NaN
            raise argparse.ArgumentTypeError(f"expected {what} {want}, got {v!r}")
        return x
    return parse


positive_int, non_negative_int = at_least(1), at_least(0)
non_negative_float = at_least(0, float)


def n_components(v: str):
    if v == "auto":
        return v
    try:
        return int(v)
    except ValueError:
        try:
            f = float(v)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected 'auto', an int or a fraction in (0, 1), got {v!r}") from None
        return f


def parents() -> dict[str, argparse.ArgumentParser]:
    """The option groups several commands share: ``common`` (output), ``runtime`` (how the model
    runs here), ``engine`` (scale-out on Ray)."""
    from ..runtime import BACKENDS, DEVICES
    engine = argparse.ArgumentParser(add_help=False)
    g = engine.add_argument_group("scale-out (pip install 'hybrid-drift[ray]')")
    g.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="run on this machine (default) or on a Ray cluster")
    g.add_argument("--address", default=None,
                   help="Ray cluster: 'auto' (joined from a node), 'ray://HOST:10001'; default: a local instance")
    g.add_argument("--actors", type=positive_int, default=None,
                   help="Ray actors (default: cluster CPUs / --cpus-per-actor)")
    g.add_argument("--cpus-per-actor", type=float, default=1, help="CPUs per Ray actor (default 1)")
    g.add_argument("--gpus-per-actor", type=float, default=0, help="GPUs per Ray actor (default 0; e.g. 1 or 0.5)")

    runtime = argparse.ArgumentParser(add_help=False)
    g = runtime.add_argument_group("how the model runs here (never saved with it)")
    g.add_argument("--backend", choices=BACKENDS, default="auto",
                   help="CNN inference runtime (default auto: ONNX Runtime, else PyTorch; openvino: "
                        "pip install 'hybrid-drift[openvino]')")
    g.add_argument("--device", choices=DEVICES, default="auto",
                   help="where the CNN runs (default auto: a GPU when a runtime here sees one; cuda: fail when none)")
    g.add_argument("--threads", type=positive_int, default=None,
                   help="CNN inference threads (default: the runtime's choice)")
    g.add_argument("--cache-dir", default=None,
                   help="feature cache folder (default: $HYBRID_DRIFT_CACHE or ~/.cache/hybrid_drift)")
    g.add_argument("--no-cache", action="store_true", help="do not cache CNN features (nor keep exported graphs)")

    common = argparse.ArgumentParser(add_help=False)
    g = common.add_argument_group("output")
    g.add_argument("-q", "--quiet", action="store_true", help="only errors on stderr, no progress bars")
    g.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    g.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    g.add_argument("--workers", type=positive_int, default=None, help="decode threads (default: one per core)")
    return {"common": common, "runtime": runtime, "engine": engine}


def runtime_from(a):
    """The :class:`~hybrid_drift.runtime.Runtime` the command line asks for (checked by the library)."""
    from ..runtime import Runtime
    try:
        return Runtime(backend=a.backend, device=a.device, threads=a.threads, workers=a.workers,
                       cache=False if a.no_cache else a.cache_dir, progress=bool(a.progress))
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


def is_dataset(inputs) -> bool:
    return len(inputs) == 1 and (Path(inputs[0]) / "manifest.csv").is_file()


def load_inputs(inputs, split):
    """Image inputs, or the paths of one split when the single input is a dataset folder.

    The pseudo-split ``reference`` is what ``fit`` uses: the train images and the val
    split's normals, in time order (as ``bench`` fits).
    """
    if is_dataset(inputs):
        from ..datasets import read_manifest
        ds = read_manifest(inputs[0])
        if split is None:
            raise UsageError(f"{inputs[0]} is a dataset: choose a split with --split train|val|test")
        if split == "reference":
            m = ds.manifest
            is_ref = (m["split"] == "train") | ((m["split"] == "val") & (m["label"] == 0))
            return ds.items(is_ref), m.loc[is_ref, "label"].to_numpy(dtype=int)
        if split == "train":
            return ds.items(ds.manifest["split"] == "train"), ds.labels(split)
        return ds.paths(split), ds.labels(split)
    if split is not None:
        raise UsageError("--split only applies to a dataset folder (one with manifest.csv)")
    return list(inputs), None


def check_nonempty(inputs, what, video_step: int = 1):
    """The inputs as items. One rule for the command line: an input that does not exist, or that
    holds no image, is a usage error (exit 2) before anything runs; inside a folder, files that
    cannot be read become error rows."""
    from ..io import expand_inputs
    if video_step < 1:
        raise UsageError(f"--video-step must be >= 1, got {video_step}")
    missing = [str(x) for x in inputs if isinstance(x, (str, Path)) and not os.path.lexists(x)]
    if missing:
        raise UsageError(f"no such file or folder: {', '.join(missing[:5])}" + (" ..." if len(missing) > 5 else ""))
    notes: list[str] = []
    items = expand_inputs(inputs, video_step=video_step, notes=notes)
    for n in notes:
        print(f"note: {n}", file=sys.stderr)
    if not items:
        raise UsageError(f"no images found in {', '.join(map(str, inputs))} ({what})")
    return items


def write_json(path, res) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    from ..watch.wire import jsonable
    Path(path).write_text(json.dumps(jsonable(res), indent=2))
    print(f"results: {path}")


def ray_engine():
    try:
        from ..scale import ray_engine as eng
        eng.require_ray()
    except ImportError as exc:
        raise UsageError(str(exc)) from exc
    return eng


def ray_kw(a) -> dict:
    return {"address": a.address, "actors": a.actors, "cpus_per_actor": a.cpus_per_actor,
            "gpus_per_actor": a.gpus_per_actor, "progress": a.progress}
