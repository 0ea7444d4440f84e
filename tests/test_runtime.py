"""CNN inference runtimes (issue 15): the same features on every runtime, the export cache, clear errors."""

import json

import numpy as np
import pytest

from conftest import TEST_IMAGE_SIZE
from hybrid_drift import BackboneUnavailableError, CNNBranch, HybridDetector, Runtime
from hybrid_drift.features import runners as runtime
from hybrid_drift.features.cnn import Embedder

LAYERS = dict(pool="max", layers=("block10", "head"), image_size=TEST_IMAGE_SIZE)
#: float32 rounding of the convolutions: features of magnitude up to ~40 agree to this (measured: 5e-5)
ATOL = 5e-4


@pytest.fixture(scope="module")
def batch(frames):
    emb = Embedder(**LAYERS)
    return np.stack([emb.preprocess(f) for f in frames[::25]])  # 8 real frames


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_every_runtime_gives_pytorchs_features(batch, tmp_path, backend):
    ref = Embedder(**LAYERS, backend="torch").embed(batch)
    got = Embedder(**LAYERS, backend=backend, cache_root=tmp_path).embed(batch)
    assert got.shape == ref.shape and np.abs(got - ref).max() < ATOL
    assert np.abs(ref).max() > 1  # not trivially small features


def test_auto_is_onnxruntime_and_scores_match_torch(frames, tmp_path):
    assert Embedder(**LAYERS).resolved_backend == "onnxruntime"
    kw = dict(image_size=TEST_IMAGE_SIZE, cache_dir=False, augment=0)
    a = HybridDetector(colour=False, cnn=CNNBranch(backend="torch", **kw)).fit(frames[:40])
    b = HybridDetector(colour=False, cnn=CNNBranch(**kw)).fit(frames[:40])
    sa, sb = a.score(frames[40:60]), b.score(frames[40:60])
    np.testing.assert_allclose(sb["cnn"], sa["cnn"], rtol=1e-4)
    assert sa["is_outlier"].tolist() == sb["is_outlier"].tolist()


def test_export_is_cached_reused_and_rebuilt_when_damaged(batch, tmp_path, monkeypatch):
    exports = []
    real = runtime._export
    monkeypatch.setattr(runtime, "_export", lambda emb, path, maps=False: exports.append(path) or real(emb, path, maps))
    first = Embedder(**LAYERS, backend="onnxruntime", cache_root=tmp_path)
    f1 = first.embed(batch)
    files = sorted((tmp_path / "onnx").glob("*.onnx"))
    assert len(exports) == 1 and len(files) == 1
    Embedder(**LAYERS, backend="onnxruntime", cache_root=tmp_path).embed(batch)
    assert len(exports) == 1  # reused
    files[0].write_bytes(files[0].read_bytes()[:1000])  # a truncated cache file
    f3 = Embedder(**LAYERS, backend="onnxruntime", cache_root=tmp_path).embed(batch)
    assert len(exports) == 2 and np.array_equal(f1, f3)  # rebuilt, never trusted
    other = Embedder(pool="avg", layers=("head",), image_size=TEST_IMAGE_SIZE, backend="onnxruntime",
                     cache_root=tmp_path)
    other.embed(batch[:2])
    assert len(exports) == 3 and len(list((tmp_path / "onnx").glob("*.onnx"))) == 2  # another graph, another key
    meta = json.loads(sorted((tmp_path / "onnx").glob("*.json"))[0].read_text())
    assert {"weights", "torch", "layers", "pool", "size", "sha256"} <= set(meta)


def test_a_named_runtime_that_is_missing_says_how_to_install(monkeypatch):
    monkeypatch.setattr(runtime, "backend_available", lambda name: name == "torch")
    with pytest.raises(BackboneUnavailableError, match="pip install onnxruntime"):
        runtime.resolve_backend("onnxruntime", "cpu")
    with pytest.raises(BackboneUnavailableError, match=r"hybrid-drift\[openvino\]"):
        runtime.resolve_backend("openvino", "cpu")
    assert runtime.resolve_backend("auto", "cpu") == "torch"  # auto falls back to PyTorch
    with pytest.raises(ValueError, match="backend"):
        Embedder(backend="tensorrt")
    with pytest.raises(ValueError, match="openvino"):
        runtime.resolve_backend("onnxruntime", "cpu", precision="bf16")


def test_the_model_records_its_runtime_and_says_when_scoring_uses_another(frames, tmp_path, caplog):
    det = HybridDetector(colour=False, cnn=CNNBranch(image_size=TEST_IMAGE_SIZE, cache_dir=False, augment=0,
                                                     backend="torch")).fit(frames[:30])
    det.save(tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["branches"][0]["runtime"] == {"backend": "torch"} and "backend" not in cfg["branches"][0]["config"]
    loaded = HybridDetector.load(tmp_path / "m")  # scores with the default runtime: onnxruntime
    np.testing.assert_allclose(loaded.score(frames[30:34])["cnn"], det.score(frames[30:34])["cnn"], rtol=1e-4)
    assert "calibrated with the torch runtime, scoring with onnxruntime" in caplog.text


def test_the_runtime_is_chosen_at_load_and_on_every_command(frames, tmp_path, monkeypatch, capsys):
    import pandas as pd

    from hybrid_drift.cli import main
    from hybrid_drift.scale.ray_engine import _branch_specs
    det = HybridDetector(colour=False, cnn=CNNBranch(image_size=TEST_IMAGE_SIZE, cache_dir=False,
                                                     augment=0)).fit(frames[:30])
    det.save(tmp_path / "m")
    torch_det = HybridDetector.load(tmp_path / "m", backend="torch")
    assert torch_det.branches_[0].embedder.resolved_backend == "torch"
    np.testing.assert_allclose(torch_det.score(frames[30:34])["cnn"], det.score(frames[30:34])["cnn"], rtol=1e-4)
    with pytest.raises(ValueError, match="backend"):
        HybridDetector.load(tmp_path / "m", backend="tensorrt")
    # an unfitted detector carries the runtime into fit, and to the Ray actors that extract its features
    fresh = HybridDetector(colour=False, runtime=Runtime(backend="torch"))
    assert fresh.prepare_branches()[0].embedder.resolved_backend == "torch"
    assert _branch_specs(fresh.branches_)[0]["runtime"].backend == "torch"
    with pytest.warns(DeprecationWarning):  # the old verb still works, as a thin alias of bind
        old = HybridDetector(colour=False).set_backend("torch")
    assert old.prepare_branches()[0].embedder.resolved_backend == "torch" and old.cnn is None
    # the command line: every command that runs the CNN takes --backend
    img = tmp_path / "in"
    img.mkdir()
    import cv2
    for i, f in enumerate(frames[30:34]):
        cv2.imwrite(str(img / f"{i}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    outs = {}
    for be in ("torch", "onnxruntime"):
        assert main(["score", str(tmp_path / "m"), str(img), "--backend", be, "--out", str(tmp_path / f"{be}.csv"),
                     "--no-progress"]) == 0
        outs[be] = pd.read_csv(tmp_path / f"{be}.csv")
    np.testing.assert_allclose(outs["torch"]["cnn"], outs["onnxruntime"]["cnn"], rtol=1e-4)
    assert main(["score", str(tmp_path / "m"), str(img), "--backend", "tensorrt"]) == 2
    # a named runtime that is not installed: exit 2 with the install command, before anything is scored
    monkeypatch.setattr(runtime, "backend_available", lambda name: name != "openvino")
    capsys.readouterr()
    assert main(["score", str(tmp_path / "m"), str(img), "--backend", "openvino", "--out",
                 str(tmp_path / "ov.csv")]) == 2
    assert "hybrid-drift[openvino]" in capsys.readouterr().err and not (tmp_path / "ov.csv").exists()
    for cmd in (["bench", "d"], ["fit", "d", "--out", "o"], ["report", "m", "d", "--out", "r"],
                ["monitor", "a", "b"], ["watch", "m", "s"]):
        assert main([*cmd, "--help"]) == 0 and "--backend" in capsys.readouterr().out


def test_a_runtime_given_once_reaches_the_cnn_runner_on_every_path(frames, tmp_path, monkeypatch):
    """One Runtime (here: 1 inference thread, no cache) reaches the ONNX Runtime session on every path:
    library fit/load/score, CLI fit/score/watch, the watch iterator, and the Ray actors' code."""
    import cv2

    from hybrid_drift.cli import main
    from hybrid_drift.scale.ray_engine import _branch_specs, _PartFeatures, _PartScorer
    from hybrid_drift.watch import watch
    seen = []

    class Spy(runtime.OnnxRunner):
        def __init__(self, path, threads, device="cpu"):
            seen.append((threads, str(path)))
            super().__init__(path, threads, device)
    monkeypatch.setattr(runtime, "OnnxRunner", Spy)
    rt = Runtime(backend="onnxruntime", threads=1, cache=False)
    small = CNNBranch(image_size=TEST_IMAGE_SIZE, augment=0, n_components=8)

    def runs(fn):
        seen.clear()
        fn()
        assert seen and all(t == 1 for t, _ in seen), seen
        return seen

    det = HybridDetector(colour=False, cnn=small, runtime=rt)
    runs(lambda: det.fit(frames[:20]))
    det.save(tmp_path / "m")
    runs(lambda: HybridDetector.load(tmp_path / "m", runtime=rt).score(frames[20:22]))
    # a runtime given once replaces the branch's own settings (the constructor's cache, backend)
    assert det.branches_[0].runtime is rt and det.branches_[0].embedder.cache_root is None
    img = tmp_path / "in"
    img.mkdir()
    for i, f in enumerate(frames[20:24]):
        cv2.imwrite(str(img / f"{i:03d}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    flags = ["--backend", "onnxruntime", "--threads", "1", "--no-cache", "--no-progress"]
    runs(lambda: main(["score", str(tmp_path / "m"), str(img), "--out", str(tmp_path / "s.csv"), *flags]))
    runs(lambda: main(["fit", str(img), "--out", str(tmp_path / "m2"), "--no-colour", "--image-size", "96", "128",
                       "--n-components", "2", *flags]))
    runs(lambda: main(["watch", str(tmp_path / "m"), str(img), "--max-frames", "2", "--no-drift",
                       "--alerts-only", *flags]))
    runs(lambda: list(watch([str(img)], tmp_path / "m", runtime=rt, max_frames=2, drift=False)))
    # the Ray actors' code, run here: the scorer loads with the runtime, the feature actor binds the driver's
    actor = _PartScorer(str(tmp_path / "m"), threads=1, runtime=rt)
    assert actor.det.branches_[0].runtime.threads == 1 and actor.det.branches_[0].runtime.cache is False
    feats = _PartFeatures(_branch_specs(det.branches_), threads=1, reduce="auto", max_pixels=None)
    assert feats.branches[0].runtime.threads == 1 and feats.branches[0].embedder.threads == 1


def test_runtime_settings_are_checked_in_one_place_and_cuda_without_a_gpu_fails_in_one_line(monkeypatch):
    for bad in (dict(backend="tensorrt"), dict(device="tpu"), dict(threads=0), dict(workers=-1),
                dict(cache=3), dict(progress="yes"), dict(max_pixels=0)):
        with pytest.raises(ValueError):
            Runtime(**bad)
    monkeypatch.setattr(runtime, "cuda_available", lambda: False)
    monkeypatch.setattr(runtime, "_ort_cuda", lambda: False)
    with pytest.raises(BackboneUnavailableError, match="device='cuda' but no GPU"):
        HybridDetector(colour=False, runtime=Runtime(device="cuda")).prepare_branches()


def test_a_watch_keeps_the_exported_graph_but_caches_no_frame_features(frames, tmp_path, monkeypatch):
    """A watch restarted as a service used to export the network again at every start (the whole cache
    was off for live frames): 2 s more to the first score and PyTorch's exporter in memory."""
    from hybrid_drift.watch.runner import live_runtime
    exports = []
    real = runtime._export
    monkeypatch.setattr(runtime, "_export", lambda emb, path, maps=False: exports.append(path) or real(emb, path, maps))
    cache = tmp_path / "cache"
    cnn = dict(image_size=TEST_IMAGE_SIZE, n_components=10, augment=0)
    model = tmp_path / "m"
    HybridDetector(colour=False, cnn=CNNBranch(**cnn), runtime=Runtime(cache=cache)).fit(frames[:20]).save(model)
    fitted = len(exports)
    before = sorted(p for p in cache.rglob("*") if p.is_file() and "onnx" not in p.parts)
    live = live_runtime(Runtime(cache=cache))
    assert live.cache_root == cache and live.feature_cache_root is None
    for _ in range(2):  # two starts of a watch
        HybridDetector.load(model, runtime=live).score(frames[20:24])
    assert len(exports) == fitted  # the graph exported by the fit was reused
    assert sorted(p for p in cache.rglob("*") if p.is_file() and "onnx" not in p.parts) == before  # no frame cached
    assert live_runtime(Runtime(cache=False)).cache_root is None  # --no-cache still means no cache at all
    with pytest.raises(ValueError, match="cache_features"):
        Runtime(cache_features=1)


def test_the_feature_cache_tells_a_full_decode_from_a_reduced_one(tmp_path):
    """The cache is keyed by the file's hash: a model fitted with ``reduce=1`` (``fit --full-decode``) read
    the features a default model had cached for the same files, computed from other pixels."""
    import cv2

    from conftest import DATA
    from hybrid_drift.io import iter_video_frames
    full = [f for _, f in iter_video_frames(DATA / "vtest.avi", step=40, stop=800)][:14]  # 768x576
    files = []
    for i, f in enumerate(full):
        files.append(str(tmp_path / f"{i:02d}.jpg"))
        cv2.imwrite(files[-1], cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    pixels = [cv2.cvtColor(cv2.imread(p), cv2.COLOR_BGR2RGB) for p in files]
    only_cnn = {n: False for n in ("colour", "light", "shift", "patch", "bands", "flat", "tear")}

    def detector(reduce):
        return HybridDetector(cnn=CNNBranch(image_size=TEST_IMAGE_SIZE, n_components=5, augment=0), reduce=reduce,
                              runtime=Runtime(cache=tmp_path / "cache"), **only_cnn).fit(files[:10])
    auto = detector("auto")
    auto.score(files[10:])  # every file's features are now cached, from its DCT-reduced decode
    fulld = detector(1)
    np.testing.assert_allclose(fulld.score(files[10:])["cnn"], fulld.score(pixels[10:])["cnn"], rtol=1e-5)
    assert not np.allclose(auto.score(files[10:])["cnn"], auto.score(pixels[10:])["cnn"], rtol=1e-5)


def test_the_onnx_arena_is_given_back_and_features_do_not_change(batch, tmp_path, monkeypatch):
    """ONNX Runtime keeps its largest batch's memory for a session's life; ``release`` runs one shrinking
    run on every session the embedder opened (features, and features with maps), and nothing changes."""
    emb = Embedder(**LAYERS, backend="onnxruntime", cache_root=tmp_path)
    before, (_, maps_before) = emb.embed(batch), emb.embed_maps(batch)
    runs = []
    for runner in emb._runners.values():
        real = runner.session.run
        monkeypatch.setattr(runner.session, "run", lambda names, feed, opts=None, _r=real: runs.append(
            (feed["images"].shape, opts)) or _r(names, feed, opts), raising=False)
    emb.release()
    assert len(runs) == 2 and all(shape[0] == 1 and opts is not None for shape, opts in runs)
    np.testing.assert_array_equal(emb.embed(batch), before)
    np.testing.assert_array_equal(emb.embed_maps(batch)[1][0], maps_before[0])
    runs.clear()
    monkeypatch.setattr(runtime, "RELEASE_ARENA", False)  # the benchmark's "kept" side
    emb.release()
    assert runs == []


def test_fit_gives_the_cnn_runtimes_memory_back_and_release_memory_is_public(frames, monkeypatch):
    released = []
    monkeypatch.setattr(runtime.OnnxRunner, "release", lambda self: released.append(self))
    det = HybridDetector(colour=False, cnn=CNNBranch(image_size=TEST_IMAGE_SIZE, cache_dir=False, augment=0),
                         runtime=Runtime(backend="onnxruntime", cache=False)).fit(frames[:40])
    assert len(released) >= 1  # fit ends by giving back what its batches took
    released.clear()
    det.calibrate(frames[60:80])
    assert len(released) >= 1  # and so does calibrate
    before = det.score(frames[40:60])
    released.clear()
    det.release_memory()
    assert len(released) >= 1
    np.testing.assert_array_equal(det.score(frames[40:60])["cnn"], before["cnn"])
    HybridDetector(cnn=False).release_memory()  # an unfitted detector, or one without a CNN: nothing to do


def test_a_runtime_that_refuses_to_give_memory_back_does_not_fail_the_fit(batch, tmp_path, monkeypatch, caplog):
    emb = Embedder(**LAYERS, backend="onnxruntime", cache_root=tmp_path)
    emb.embed(batch)
    runner = emb._runners[False]

    def refuse(names, feed, opts=None):
        raise RuntimeError("no arena to shrink on this provider")
    monkeypatch.setattr(runner.session, "run", refuse, raising=False)
    with caplog.at_level("INFO", logger="hybrid_drift.features.runners"):
        emb.release()
    assert "kept its memory arena" in caplog.text and "no arena to shrink" in caplog.text
