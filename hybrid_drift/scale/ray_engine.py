"""Run the detector on Ray: score or extract features of many images with an actor pool.

Scoring (:func:`score_ray`): the input listing is cut into parts (:class:`ScoreJob`);
Ray Data sends one part per call to a pool of actors, each holding the fitted
detector loaded once; an actor scores its part with the same code as the local path
(:meth:`HybridDetector.score`) and returns it as Parquet bytes; the driver writes
each part atomically and records it in the manifest. Ray restarts a dead actor and
retries its part (Ray Data's actor pools restart actors and retry their tasks by
default); a part arriving twice is written once. Re-running the same job skips
the parts on disk.

Features for fitting (:func:`extract_ray`): the same parts, each actor running the
branches' feature extraction; the driver assembles the features in input order
and fits with :meth:`HybridDetector.fit_features`, so the fitted model is the one
the local path would fit on the same images. Driver memory is bounded by sampling
the training inputs first (``max_images``), not by holding every feature.

Inputs are read by the workers: on a cluster they must be at the same path on every
node (a shared or mounted filesystem). Results travel back through Ray (a few
numbers per image), so the output folder only needs to be on the driver.
"""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io.decode import DEFAULT_MAX_PIXELS
from ..io.sources import InputItem, expand_inputs
from .parts import ScoreJob, frame_to_items, items_to_frame, model_fingerprint, table_to_parquet

__all__ = ["require_ray", "connect", "score_ray", "extract_ray", "fit_ray", "RayJobResult"]

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'hybrid-drift[ray]'"


def require_ray():
    """Import Ray, or raise ImportError saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise ImportError(f"--engine ray needs Ray (with Ray Data), which is not installed: {INSTALL_HINT}") from exc
    return ray


def connect(address: str | None = None, *, num_cpus: int | None = None, object_store_memory: int | None = None):
    """Start or join a Ray cluster (no-op when this process is already connected).

    Parameters
    ----------
    address : str, optional
        ``None``: start a local Ray instance on this machine. ``"auto"``: join the
        cluster running here (``ray start --head``). ``"ray://host:10001"``: a remote
        cluster through Ray Client.
    num_cpus, object_store_memory
        Only for a local instance.
    """
    ray = require_ray()
    if ray.is_initialized():
        return ray
    kw = {"include_dashboard": False, "configure_logging": True, "logging_level": logging.WARNING}
    if address is None:
        kw.update(num_cpus=num_cpus, object_store_memory=object_store_memory)
    ray.init(address=address, **kw)
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # per-dataset INFO lines; our bar counts parts
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # one bar, ours, over parts
    return ray


def _part_rows(parts) -> list[dict]:
    """One Ray Data row per part: ``(part number, its slice of the listing)`` pairs."""
    return [{"part": int(k), "ids": lst["id"].tolist(), "paths": lst["path"].tolist(),
             "frames": lst["frame"].tolist()} for k, lst in parts]


def _set_threads(threads: int) -> None:
    try:
        import torch
        torch.set_num_threads(max(1, threads))
    except ImportError:  # pragma: no cover - torch is a dependency
        pass


def _parts_of(batch: dict):
    """``(part number, its InputItems)`` for each part in a Ray Data batch of part rows."""
    for k, ids, paths, frames in zip(batch["part"], batch["ids"], batch["paths"], batch["frames"]):
        yield int(k), frame_to_items(ids, paths, frames)


def _each_part_once(ds, total: int, desc: str, progress: bool):
    """Rows of ``ds`` as they arrive, the first delivery of each part only (a retried part
    may arrive twice); raises when a part never arrives."""
    from tqdm.auto import tqdm
    seen: set[int] = set()
    with tqdm(total=total, desc=desc, unit="part", disable=not progress) as bar:
        for row in ds.iter_rows():
            k = int(row["part"])
            if k in seen:
                log.info("part %d delivered twice; used once", k)
                continue
            seen.add(k)
            yield k, row
            bar.update(1)
    if len(seen) != total:
        raise RuntimeError(f"Ray returned {len(seen)} of {total} parts; run again to resume")


class _PartScorer:
    """Ray Data actor: holds a fitted detector; scores one part per call."""

    def __init__(self, model_dir: str, threads: int, runtime=None):
        from ..detector import HybridDetector
        from ..runtime import Runtime
        _set_threads(threads)
        # each image is scored once: a feature cache would only fill the workers' disks; the exported graph
        # stays cached on each node, so an actor that starts there does not export the network again
        runtime = (runtime or Runtime()).replace(workers=threads, cache_features=False, progress=False)
        self.det = HybridDetector.load(model_dir, runtime=runtime)

    def __call__(self, batch: dict) -> dict:
        out = {"part": [], "table": [], "rows": [], "host": [], "pid": [], "seconds": []}
        for k, items in _parts_of(batch):
            t0 = time.perf_counter()
            table = self.det.score(items)
            out["part"].append(k)
            out["table"].append(table_to_parquet(table))
            out["rows"].append(len(table))
            out["host"].append(socket.gethostname())
            out["pid"].append(os.getpid())
            out["seconds"].append(time.perf_counter() - t0)
        return out


class _PartFeatures:
    """Ray Data actor: unfitted branches; extracts one part's features per call."""

    def __init__(self, branch_specs: list[dict], threads: int, reduce, max_pixels, ignore=()):
        from ..branches import BRANCHES
        _set_threads(threads)
        self.branches = []
        for spec in branch_specs:
            cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in spec["config"].items()}
            b = BRANCHES[spec["class"]](**cfg)
            b.name = spec["name"]
            if spec.get("runtime") is not None:  # the actors run the driver's branch as it runs there
                b.bind(spec["runtime"].replace(progress=False))
            self.branches.append(b)
        self.threads, self.reduce, self.max_pixels, self.ignore = threads, reduce, max_pixels, ignore

    def __call__(self, batch: dict) -> dict:
        from ..pipeline import extract
        out = {"part": [], "payload": [], "pid": []}
        for k, items in _parts_of(batch):
            ext = extract(self.branches, items, workers=self.threads, reduce=self.reduce, max_pixels=self.max_pixels,
                          ignore=self.ignore)
            buf = io.BytesIO()
            np.savez(buf, **{f"f_{name}": v for name, v in ext.features.items()})
            meta = json.dumps({"ids": ext.ids, "errors": ext.errors, "meta": ext.meta}, default=str)
            out["part"].append(k)
            out["payload"].append(meta.encode() + b"\0" + buf.getvalue())
            out["pid"].append(os.getpid())
        return out


def _map_parts(ray, rows: list[dict], actor_cls, ctor_kwargs: dict, *, actors: int | None, cpus_per_actor: float,
               gpus_per_actor: float = 0):
    if cpus_per_actor <= 0 or gpus_per_actor < 0:
        raise ValueError(f"cpus_per_actor must be > 0 and gpus_per_actor >= 0, got {cpus_per_actor}, {gpus_per_actor}")
    if actors is None:
        res = ray.cluster_resources()
        actors = int(res.get("CPU", 0) // cpus_per_actor)
        if actors < 1:
            raise ValueError(f"the Ray cluster has {res.get('CPU', 0):g} CPUs: no actor fits cpus_per_actor="
                             f"{cpus_per_actor:g} (give --actors to wait for an autoscaler)")
        if gpus_per_actor:
            actors = min(actors, int(res.get("GPU", 0) // gpus_per_actor))
            if actors < 1:
                raise ValueError(f"the Ray cluster has {res.get('GPU', 0):g} GPUs: no actor fits gpus_per_actor="
                                 f"{gpus_per_actor:g} (give --actors to wait for an autoscaler)")
    n_actors = max(1, min(int(actors), len(rows)))
    ds = ray.data.from_items(rows, override_num_blocks=len(rows))  # one part per block
    return ds.map_batches(actor_cls, fn_constructor_kwargs=ctor_kwargs, batch_size=1, concurrency=n_actors,
                          num_cpus=cpus_per_actor, num_gpus=gpus_per_actor or None,
                          batch_format="default"), n_actors


@dataclass
class RayJobResult:
    """What :func:`score_ray` did."""

    out: Path
    n_inputs: int
    n_parts: int
    skipped_parts: int
    scored_parts: int
    seconds: float
    n_outliers: int
    n_errors: int
    actors: int


def score_ray(model_dir: str | os.PathLike, inputs, out: str | os.PathLike, *, address: str | None = None,
              part_size: int = 1000, actors: int | None = None, cpus_per_actor: float = 1,
              gpus_per_actor: float = 0, video_step: int = 1, overwrite: bool = False, progress: bool = False,
              on_part: Callable[[dict], None] | None = None, num_cpus: int | None = None,
              runtime=None, backend: str | None = None) -> RayJobResult:
    """Score ``inputs`` with the saved model on Ray; resumable (see module docstring).

    Parameters
    ----------
    model_dir : path
        A model folder written by ``HybridDetector.save`` / ``hybrid-drift fit``.
    inputs : paths
        Image files, folders, videos (anything :func:`expand_inputs` takes that is on disk).
    out : path
        Job folder: ``parts/``, ``_manifest.jsonl``, ``_job.json``, ``_inputs.parquet``.
    address : str, optional
        Ray cluster (``None`` = a local instance, ``"auto"``, ``"ray://..."``).
    part_size : int
        Inputs per part: the unit of work, retry and resume (default 1000).
    actors : int, optional
        Scoring actors (default: cluster CPUs / ``cpus_per_actor``).
    cpus_per_actor : float
        CPUs reserved per actor; also its decode and torch threads.
    gpus_per_actor : float
        GPUs per actor (e.g. 1, or 0.5 to share one GPU between two actors); the CNN
        runs on the actor's GPU (PyTorch picks CUDA when Ray assigns one).
    overwrite : bool
        Start afresh if ``out`` holds a different job.
    on_part : callable, optional
        Called on the driver with each completed part's manifest entry.
    num_cpus : int, optional
        CPUs of a local instance (``address=None``).
    runtime : Runtime, optional
        How the actors run the model (:class:`~hybrid_drift.runtime.Runtime`; their decode
        workers are ``cpus_per_actor`` and their feature cache is off); ``backend`` is a
        shortcut for ``runtime=Runtime(backend=...)``.

    Returns
    -------
    RayJobResult
    """
    if backend is not None:
        from ..runtime import Runtime
        runtime = (runtime or Runtime()).replace(backend=backend)
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"{model_dir}: not a model folder (no config.json)")
    items = expand_inputs(inputs, video_step=video_step)
    if not items:
        raise ValueError(f"no images found in {inputs}")
    job = ScoreJob.open(out, items, model=model_fingerprint(model_dir), part_size=part_size, overwrite=overwrite)
    todo = job.todo()
    t0 = time.perf_counter()
    n_actors = 0
    if todo:
        ray = connect(address, num_cpus=num_cpus)
        ds, n_actors = _map_parts(ray, _part_rows((k, job.part_listing(k)) for k in todo), _PartScorer,
                                  {"model_dir": str(model_dir.resolve()), "threads": max(1, int(cpus_per_actor)),
                                   "runtime": runtime},
                                  actors=actors, cpus_per_actor=cpus_per_actor, gpus_per_actor=gpus_per_actor)
        for k, row in _each_part_once(ds, len(todo), "parts", progress):
            size = job.write_part(k, row["table"])
            entry = {"part": k, "rows": int(row["rows"]), "bytes": size, "host": row["host"],
                     "pid": int(row["pid"]), "seconds": round(float(row["seconds"]), 3)}
            job.record(k, {key: v for key, v in entry.items() if key != "part"})
            if on_part is not None:
                on_part(entry)
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    n_out = n_err = 0
    for k in range(job.n_parts):
        t = pq.read_table(job.part_file(k), columns=["is_outlier", "error"])
        n_out += int(pc.sum(t["is_outlier"]).as_py() or 0)
        n_err += len(t) - t["error"].null_count
    return RayJobResult(job.out, len(job.listing), job.n_parts, job.n_parts - len(todo), len(todo),
                        time.perf_counter() - t0, n_out, n_err, n_actors)


def _branch_specs(branches) -> list[dict]:
    specs = []
    for b in branches:
        specs.append({"class": type(b).__name__, "name": b.name, "config": b.get_config(), "runtime": b.runtime})
    return specs


def extract_ray(branches, inputs, *, address: str | None = None, part_size: int = 256, actors: int | None = None,
                cpus_per_actor: float = 1, gpus_per_actor: float = 0, reduce="auto",
                max_pixels: int | None = DEFAULT_MAX_PIXELS, progress: bool = False, num_cpus: int | None = None,
                ignore=()):
    """Branch features of ``inputs`` computed on Ray, assembled in input order.

    ``max_pixels`` as in :func:`hybrid_drift.pipeline.extract` (``None`` disables the guard).
    Returns the same :class:`~hybrid_drift.pipeline.Extracted` as
    :func:`hybrid_drift.pipeline.extract` would on one machine.
    """
    from ..pipeline import Extracted, stack_features
    items = inputs if inputs and isinstance(inputs[0], InputItem) else expand_inputs(inputs)
    if not items:
        raise ValueError("no images to extract features from")
    listing = items_to_frame(items)
    rows = _part_rows(enumerate(listing.iloc[lo:lo + part_size] for lo in range(0, len(listing), part_size)))
    ray = connect(address, num_cpus=num_cpus)
    ds, _ = _map_parts(ray, rows, _PartFeatures,
                       {"branch_specs": _branch_specs(branches), "threads": max(1, int(cpus_per_actor)),
                        "reduce": reduce, "max_pixels": max_pixels, "ignore": ignore},
                       actors=actors, cpus_per_actor=cpus_per_actor, gpus_per_actor=gpus_per_actor)
    got: dict[int, tuple] = {}
    for k, row in _each_part_once(ds, len(rows), "features", progress):
        head, _, arrays = bytes(row["payload"]).partition(b"\0")
        with np.load(io.BytesIO(arrays)) as z:
            got[k] = (json.loads(head), {name[2:]: z[name] for name in z.files})
    ids, errors, metas, parts = [], [], [], {b.name: [] for b in branches}
    for k in range(len(rows)):
        meta, feats = got[k]
        ids += meta["ids"]
        errors += meta["errors"]
        metas += meta["meta"]
        for b in branches:
            if feats[b.name].size:
                parts[b.name].append(feats[b.name])
    features = stack_features(parts)
    return Extracted(ids, errors, metas, features)


def fit_ray(detector, train, val=None, labels=None, *, max_images: int | None = 10_000, seed: int = 0,
            order: str = "auto", **ray_kw):
    """Fit and calibrate ``detector`` with features computed on Ray. Returns the detector.

    At most ``max_images`` training inputs are used (a uniform random sample, kept in
    input order): the driver holds their features, about 160 KB per image with the default
    branches (colour 6 KB, CNN 5.5 KB, shift thumbnail 48 KB, patch map 95 KB as float16):
    10,000 images, 1.6 GB.
    ``None`` uses every input. ``order`` as in :meth:`HybridDetector.fit`. Thresholds come from
    cross-fitting on the driver (with the same order check); the
    CNN branch's moved-foreground copies of up to ``augment`` reference frames are made
    and embedded on the driver too (it reads those files). ``val`` adds held-out images.
    """
    from ..io.order import order_inputs
    items, input_order = order_inputs(expand_inputs(train), order)
    if max_images is not None and len(items) > max_images:
        keep = np.sort(np.random.default_rng(seed).choice(len(items), max_images, replace=False))
        log.warning("fitting on a random sample of %d of %d training images (max_images)", max_images, len(items))
        items = [items[i] for i in keep]
    detector.prepare_branches()
    load = detector.load_settings  # the detector's reduce and max_pixels, as the local path uses them
    from ..io.zones import check_zones
    kw = {**ray_kw, "reduce": load.reduce, "max_pixels": load.max_pixels, "ignore": check_zones(detector.ignore)}
    detector.fit_features(extract_ray(detector.branches_, items, **kw), items=items)
    detector.input_order_ = input_order
    if val is not None:
        detector.calibrate_features(extract_ray(detector.branches_, expand_inputs(val), **kw), labels)
    return detector
