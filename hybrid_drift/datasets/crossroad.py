"""Build the public crossroad-style outlier set from OpenCV's fixed-camera street video.

Mirrors the Tokyo study's protocol on public data: frames in time order, train =
the first 400 (normal only), val = the next frames plus labelled outliers, test =
the last 235 frames plus 55 outliers. Outliers are corrupted *copies* of frames
of their own split: the study's ten transforms and its Sobel filter, each over a
random run of consecutive frames with one random strength, and one-shot foreign
objects (cut from OpenCV's sample photos) pasted with soft edges.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..corruptions import apply_corruption, get_corruption, load_object_library, object_factory, register_corruption
from ..io.sources import iter_video_frames

__all__ = ["CrossroadConfig", "make_crossroad", "bundled_data_dir", "STUDY_TRANSFORMS", "DEFAULT_OBJECTS"]

log = logging.getLogger(__name__)

STUDY_TRANSFORMS = ("vertical_flip", "downscale", "rain", "gaussian_noise", "emboss", "sobel",
                    "colour_jitter", "invert", "grayscale", "sun_flare", "channel_shuffle")
DEFAULT_OBJECTS = ("apple.jpg", "orange.jpg", "fruits.jpg", "baboon.jpg", "butterfly.jpg", "HappyFish.jpg",
                   "squirrel_cls.jpg", "messi5.jpg", "smarties.png", "chicky_512.png",
                   "Blender_Suzanne1.jpg", "starry_night.jpg")


def bundled_data_dir() -> Path:
    """Folder with ``vtest.avi`` and the object photos.

    ``$HYBRID_DRIFT_DATA`` if set, else ``data/opencv_samples`` of the source checkout.
    """
    env = os.environ.get("HYBRID_DRIFT_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "data" / "opencv_samples"


@dataclass
class CrossroadConfig:
    """Sizes and contents of the crossroad set (defaults follow the Tokyo study)."""

    n_train: int = 400
    n_test_normal: int = 235
    #: first video frame of the train split (frames before it are not used)
    start: int = 0
    #: normal frames in val; None = every frame between train and test
    n_val: int | None = None
    n_val_outliers: int = 30
    n_test_outliers: int = 55
    transforms: tuple[str, ...] = STUDY_TRANSFORMS
    objects: tuple[str, ...] = DEFAULT_OBJECTS
    #: share of outliers made by transforms (the rest are pasted objects)
    transform_share: float = 0.6
    small_object_area: tuple[float, float] = (0.02, 0.05)
    large_object_area: tuple[float, float] = (0.05, 0.2)
    jpeg_quality: int = 92
    #: use at most this many video frames (None = all); for tiny test sets
    max_frames: int | None = None
    #: shrink frames by this factor (1 = original 768x576); for tiny test sets
    downsample: int = 1
    extra: dict = field(default_factory=dict)


def _plan(n_out: int, transforms, share: float) -> list[tuple[str, int]]:
    """[(kind, count)]: transforms get runs of equal length, objects the rest (half small, half large)."""
    per = max(1, round(n_out * share / len(transforms))) if transforms else 0
    while per * len(transforms) > n_out and per > 0:
        per -= 1
    plan = [(t, per) for t in transforms if per]
    rest = n_out - per * len(transforms)
    small = rest // 2
    plan += [("object_small", small), ("object_large", rest - small)]
    return [(k, c) for k, c in plan if c > 0]


def make_crossroad(out: str | os.PathLike, *, seed: int = 0, source: str | os.PathLike | None = None,
                   config: CrossroadConfig | None = None, progress: bool = False,
                   normals_dir: str | os.PathLike | None = None, frames: list | None = None,
                   about: dict | None = None) -> pd.DataFrame:
    """Write the crossroad outlier set to ``out`` (``manifest.csv`` + ``images/``).

    Parameters
    ----------
    out : path
        Output folder (created; existing images of the same names are overwritten).
    seed : int
        Everything random (time ranges, strengths, objects, positions) derives from
        it: the same seed gives the same manifest and the same pixels.
    source : path, optional
        Folder with ``vtest.avi`` and the object photos (default: :func:`bundled_data_dir`).
    config : CrossroadConfig, optional
    normals_dir : path, optional
        Write the normal frames here (``fNNNN.jpg``, shared by several datasets built
        from the same video, e.g. the splits of a protocol) instead of under ``out``;
        the manifest then points to them by a relative path.
    frames : list of ndarray, optional
        RGB frames of another fixed camera, in time order, instead of ``vtest.avi``
        (the multi-scene benchmark; object photos still come from ``source``).
    about : dict, optional
        ``name``, ``source`` and ``licence`` of those frames for ``dataset.json``.

    Returns
    -------
    pandas.DataFrame
        The manifest.
    """
    cfg = config or CrossroadConfig()
    src = Path(source) if source else bundled_data_dir()
    video = src / "vtest.avi"
    if frames is None and not video.is_file():
        raise FileNotFoundError(
            f"{video}: not found. The crossroad set is built from OpenCV's sample video; it ships in this "
            "repository under data/opencv_samples/ (or set HYBRID_DRIFT_DATA / pass source=).")
    for t in cfg.transforms:
        get_corruption(t)
    library = load_object_library([src / o for o in cfg.objects])
    for kind, area in (("object_small", cfg.small_object_area), ("object_large", cfg.large_object_area)):
        register_corruption(kind, "object", object_factory(library, area), f"pasted object, area {area}",
                            overwrite=True)

    given = frames
    frames = []
    for rgb in (given[:cfg.max_frames] if given is not None else
                (f for _, f in iter_video_frames(video, stop=cfg.max_frames))):
        if cfg.downsample > 1:
            h, w = rgb.shape[:2]
            rgb = cv2.resize(rgb, (w // cfg.downsample, h // cfg.downsample), interpolation=cv2.INTER_AREA)
        frames.append(rgb)
    n = len(frames)
    a = int(cfg.start)
    n_val = n - a - cfg.n_train - cfg.n_test_normal if cfg.n_val is None else int(cfg.n_val)
    if a < 0 or min(cfg.n_train, cfg.n_test_normal) < 1 or n_val < 1 or a + cfg.n_train + n_val + cfg.n_test_normal > n:
        raise ValueError(f"{video} has {n} frames: too few for start={a} + n_train={cfg.n_train} + "
                         f"n_val={cfg.n_val} + n_test_normal={cfg.n_test_normal} (each split needs >= 1 frame)")
    b, c = a + cfg.n_train, a + cfg.n_train + n_val
    splits = {"train": (a, b), "val": (b, c), "test": (c, c + cfg.n_test_normal)}

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    quality = [cv2.IMWRITE_JPEG_QUALITY, int(cfg.jpeg_quality)]

    def write(rel: str, rgb: np.ndarray):
        p = out / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(p), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), quality):
            raise OSError(f"{p}: cannot write image")

    shared = None if normals_dir is None else Path(normals_dir)
    for split, (a, b) in splits.items():
        for i in range(a, b):
            rel = f"images/{split}/f{i:04d}.jpg" if shared is None else \
                os.path.relpath(shared / f"f{i:04d}.jpg", out).replace(os.sep, "/")
            rows.append({"path": rel, "split": split, "label": 0, "kind": "normal", "family": "normal",
                         "frame": i, "params": ""})
    jobs = []
    for split, n_out in (("val", cfg.n_val_outliers), ("test", cfg.n_test_outliers)):
        a, b = splits[split]
        for kind, count in _plan(n_out, cfg.transforms, cfg.transform_share):
            if get_corruption(kind).family == "object":  # one-shot: independent random frames
                for _ in range(count):
                    jobs.append((split, kind, [int(rng.integers(a, b))], None))
            else:  # a run of consecutive frames with one strength
                count = min(count, b - a)
                start = int(rng.integers(a, b - count + 1))
                jobs.append((split, kind, list(range(start, start + count)), int(rng.integers(2**31 - 1))))
    k = 0
    for split, kind, idx, run_seed in tqdm(jobs, desc="outliers", disable=not progress, leave=False):
        for i in idx:
            sub = np.random.default_rng(run_seed) if run_seed is not None else rng
            img, params = apply_corruption(frames[i], kind, sub)
            rel = f"images/{split}/f{i:04d}_{kind}_{k:03d}.jpg"
            k += 1
            rows.append({"path": rel, "split": split, "label": 1, "kind": kind,
                         "family": get_corruption(kind).family, "frame": i,
                         "params": json.dumps(params, sort_keys=True)})
            write(rel, img)
    for r in tqdm(rows, desc="frames", disable=not progress, leave=False):
        if r["label"] == 0 and not (shared is not None and (out / r["path"]).is_file()):
            write(r["path"], frames[r["frame"]])
    order = {"train": 0, "val": 1, "test": 2}
    df = pd.DataFrame(rows)
    df = df.sort_values(["split", "frame", "label", "path"], key=lambda s: s.map(order) if s.name == "split" else s)
    df.to_csv(out / "manifest.csv", index=False)
    about = about or {"name": "crossroad", "source": "OpenCV samples/data/vtest.avi (Debian opencv-doc 4.6.0)",
                      "licence": "Apache-2.0 AND BSD-3-Clause (OpenCV sample data)"}
    (out / "dataset.json").write_text(json.dumps(
        {**about, "seed": seed, "n_frames": n,
         "config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()}}, indent=2))
    return df.reset_index(drop=True)
