"""Shared fixtures: small real frames and photos, a tiny crossroad set, all cached per session.

Everything is offline: the frames come from the bundled OpenCV video and photos.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[1] / "data" / "opencv_samples"

#: CNN input used by tests (small, for speed); the library default is 288x384
TEST_IMAGE_SIZE = (96, 128)


def write_video(path: Path, frames, fps=10) -> Path:
    """``frames`` (RGB) as an MJPG video at ``fps``."""
    h, w = frames[0].shape[:2]
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    for f in frames:
        out.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    out.release()
    return path


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Never touch the user's feature cache from tests."""
    os.environ["HYBRID_DRIFT_CACHE"] = str(tmp_path_factory.mktemp("feature-cache"))
    yield


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def frames() -> list[np.ndarray]:
    """Every 4th frame of the street video at 144x192 (200 frames, time order)."""
    from hybrid_drift.io import iter_video_frames
    return [cv2.resize(f, (192, 144), interpolation=cv2.INTER_AREA)
            for _, f in iter_video_frames(DATA / "vtest.avi", step=4)]


@pytest.fixture(scope="session")
def photo() -> np.ndarray:
    from hybrid_drift.io import decode_image
    return decode_image(DATA / "fruits.jpg").rgb


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """A crossroad set small enough for tests: 60 train, 30+13 val, 30+16 test at 192x144."""
    from hybrid_drift.datasets import CrossroadConfig, make_crossroad
    out = tmp_path_factory.mktemp("tiny-crossroad")
    cfg = CrossroadConfig(n_train=60, n_test_normal=30, n_val_outliers=13, n_test_outliers=16,
                          max_frames=120, downsample=4)
    make_crossroad(out, seed=0, config=cfg)
    return out


@pytest.fixture(scope="session")
def fitted_detector(frames):
    """A default-shaped detector (colour + CNN, OR fusion) fitted on 100 frames, calibrated on 40."""
    from hybrid_drift import CNNBranch, HybridDetector
    det = HybridDetector(cnn=CNNBranch(image_size=TEST_IMAGE_SIZE, n_components=30, cache_dir=False))
    det.fit(frames[:100])
    det.calibrate(frames[100:140])
    return det
