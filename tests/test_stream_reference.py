"""benchmarks/stream_reference.py: a reference of files against one recorded from the stream, through a codec."""

import importlib.util
from pathlib import Path

import cv2

from conftest import TEST_IMAGE_SIZE

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("stream_reference", ROOT / "benchmarks" / "stream_reference.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def test_four_pairs_of_reference_and_test_each_scored_on_every_frame(frames, tmp_path):
    from hybrid_drift import CNNBranch, HybridDetector

    folder = tmp_path / "frames-cam"
    folder.mkdir()
    for i, f in enumerate(frames[:30]):  # not zero-padded: the frames go in natural order, as fit takes them
        cv2.imwrite(str(folder / f"f{i}.jpg"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    small = lambda: HybridDetector(cnn=CNNBranch(image_size=TEST_IMAGE_SIZE, n_components=10, cache_dir=False))  # noqa: E731
    got = bench.run(str(folder), "-c:v mpeg4 -q:v 8", make_detector=small)
    assert (got["n"], got["recorded"]) == (30, 30)
    assert got["order"][:3] == ["f0.jpg", "f1.jpg", "f2.jpg"] and got["order"][10] == "f10.jpg"
    assert set(got["pairs"]) == {f"{r} -> {t}" for r in ("files_ref", "recorded_ref") for t in ("files_test", "recorded_test")}
    for v in got["pairs"].values():
        assert v["n"] == 11 and 0 <= v["flagged"] <= 11
