"""The patch branch (issue 21): faults over a small part of the frame, scored on the CNN's mid-level
map with one position-free PCA, in the same network pass as the CNN branch."""

import cv2
import numpy as np
import pytest

from hybrid_drift import HybridDetector
from hybrid_drift.branches import CNNBranch, PatchBranch
from hybrid_drift.features.cache import FeatureCache
from hybrid_drift.features.cnn import Embedder
from hybrid_drift.pipeline import extract
from hybrid_drift.runtime import Runtime
from hybrid_drift.scorers import PatchPCAScorer, scorer_from_state
from test_local import H, _scene


@pytest.fixture(scope="module")
def scene():
    frames = _scene(np.random.default_rng(0), 150)   # a person walking on a path, clouds
    return frames[:120], frames[120:]


@pytest.fixture(scope="module")
def fitted(scene):
    ref, _ = scene
    # frames in time order (this generated scene's per-frame noise hides that from the order check)
    det = HybridDetector.of_branches([PatchBranch(cache_dir=False)], folds="time").fit(ref)
    return det.branches_[0]


def test_a_two_percent_band_of_dead_rows_alerts_and_a_person_somewhere_new_does_not(scene, fitted):
    _, later = scene
    dead = later[0].copy()
    dead[100:103, 60:] = 0                                    # 3 rows of 144 (2%) over the quiet part
    person = later[1].copy()
    cv2.ellipse(person, (30, 70), (6, 14), 0, 0, 360, (30, 30, 30), -1)          # on the path, somewhere new
    elsewhere = later[2].copy()
    cv2.ellipse(elsewhere, (150, 40), (6, 14), 0, 0, 360, (30, 30, 30), -1)      # where nobody walked
    pred = fitted.predict([dead, person, elsewhere, *later[3:]]).tolist()
    assert pred[0] == 1 and pred[1:] == [0] * (len(later) - 1)
    # where: the hottest row of positions is the band's
    _, maps = fitted.explain_features([fitted.prepare(_decoded(dead))], [_decoded(dead)])
    rows = maps[0].shape[0]
    assert np.argmax(np.sort(maps[0], axis=1)[:, -maps[0].shape[1] // 2:].mean(axis=1)) == 101 * rows // H


def _decoded(rgb):
    from hybrid_drift.io.decode import DecodedImage
    return DecodedImage("<array>", rgb=rgb)


def test_the_patch_branch_reads_the_cnn_branchs_pass_and_equals_its_own(scene, monkeypatch):
    ref, _ = scene
    rt = Runtime(progress=False, cache=False)
    calls = {"embed": 0, "embed_maps": 0}
    for name in calls:
        real = getattr(Embedder, name)

        def counted(self, batch, _real=real, _name=name):
            calls[_name] += 1
            return _real(self, batch)
        monkeypatch.setattr(Embedder, name, counted)
    cnn, patch = CNNBranch(augment=0).bind(rt), PatchBranch().bind(rt)
    both = extract([cnn, patch], ref[:20], chunk=64)
    assert calls == {"embed": 0, "embed_maps": 1}              # one pass for both branches
    alone = extract([PatchBranch().bind(rt)], ref[:20]).features["patch"]
    cnn_alone = extract([CNNBranch(augment=0).bind(rt)], ref[:20]).features["cnn"]
    assert both.features["patch"].dtype == np.float16 and both.features["patch"].shape == (20, 18 * 24 * 112)
    np.testing.assert_array_equal(both.features["patch"], alone)
    np.testing.assert_allclose(both.features["cnn"], cnn_alone, rtol=1e-5, atol=1e-5)
    assert getattr(cnn, "_map_takers", ()) == ()               # the link lasts one extraction


def test_maps_are_cached_as_float16_and_a_cached_map_skips_the_network(scene, tmp_path, monkeypatch):
    ref, _ = scene
    rt = Runtime(progress=False, cache=tmp_path)
    first = extract([CNNBranch(augment=0).bind(rt), PatchBranch().bind(rt)], ref[:5]).features["patch"]
    assert len(list(tmp_path.rglob("*.f16"))) == 5 and len(list(tmp_path.rglob("*.f32"))) == 5
    monkeypatch.setattr(Embedder, "embed_maps", lambda *a, **k: pytest.fail("the network ran"))
    monkeypatch.setattr(Embedder, "embed", lambda *a, **k: pytest.fail("the network ran"))
    again = extract([CNNBranch(augment=0).bind(rt), PatchBranch().bind(rt)], ref[:5])
    np.testing.assert_array_equal(again.features["patch"], first)
    np.testing.assert_array_equal(extract([PatchBranch().bind(rt)], ref[:5]).features["patch"], first)
    c = FeatureCache(tmp_path / "x", {"a": 1}, half=True)
    c.put("ab" * 20, np.array([1.5, -2.25], np.float32))
    got = c.get("ab" * 20, 2)
    assert got.dtype == np.float16 and got.tolist() == [1.5, -2.25]


def test_position_free_a_pattern_seen_anywhere_is_normal_everywhere_and_a_band_is_not():
    rng = np.random.default_rng(0)
    h, w, c = 6, 8, 16
    normal, person = rng.normal(size=(3, c)), rng.normal(size=c) * 4

    def maps(n, where=None):
        m = (rng.normal(size=(n, h * w, 3)) @ normal + rng.normal(0, 0.05, (n, h * w, c)))
        for i in range(n):
            if where is not None:
                m[i, where(i)] += person
        return m.reshape(n, -1)
    ref = maps(200, where=lambda i: (i % 3) * w + i % w)      # the "person" only in the top 3 rows
    s = PatchPCAScorer(grid=(h, w), n_components=0.99).fit(ref)
    base = s.score_samples(ref).max()
    moved = maps(5, where=lambda i: 5 * w + 2)                 # in the bottom row: never seen there
    band = maps(5)
    band.reshape(5, h * w, c)[:, 4 * w:5 * w] += rng.normal(size=c) * 3   # a new pattern across a row
    assert s.score_samples(moved).max() < 1.5 * base < s.score_samples(band).min()
    E = s.position_errors(band)
    assert E.shape == (5, h, w) and (E.argmax(axis=2) >= 0).all() and (E.max(axis=2).argmax(axis=1) == 4).all()
    # saved state rebuilds the same scorer; an inconsistent one is refused
    state, arrays = s.get_state()
    np.testing.assert_array_equal(scorer_from_state(state, arrays).score_samples(band), s.score_samples(band))
    with pytest.raises(ValueError, match="components_"):
        scorer_from_state(state, {**arrays, "components_": arrays["components_"][:, :5]})
    with pytest.raises(ValueError, match="multiple of 48"):
        PatchPCAScorer(grid=(h, w)).fit(ref[:, :-1])


def test_a_detector_with_the_patch_branch_saves_and_loads(scene, tmp_path):
    ref, later = scene
    det = HybridDetector(colour=False, light=False, shift=False, bands=False, flat=False, tear=False, cnn=CNNBranch(augment=0, cache_dir=False),
                         folds="time").fit(ref[:60])               # the patch branch follows the CNN branch
    dead = later[0].copy()
    dead[100:103, 60:] = 0
    table = det.score([later[1], dead])
    det.save(tmp_path / "m")
    again = HybridDetector.load(tmp_path / "m").score([later[1], dead])
    np.testing.assert_allclose(again["patch"], table["patch"], rtol=1e-6)
    assert table["patch_x"].iloc[1] > 1 > table["patch_x"].iloc[0]


def test_the_default_detector_has_a_patch_branch_on_the_cnn_branchs_network_and_only_then():
    def built(**kw):
        return {type(b).__name__: b for b in HybridDetector(**kw).prepare_branches()}
    b = built(cnn=CNNBranch(image_size=(96, 128), backend="torch"))
    assert list(b) == ["ColourBranch", "CNNBranch", "LightBranch", "ShiftBranch", "PatchBranch", "BandBranch", "FlatBranch",
                       "TearBranch"]
    assert b["PatchBranch"].image_size == (96, 128) and b["PatchBranch"].shares_network_with(b["CNNBranch"])
    assert "PatchBranch" not in built(cnn=False)                                   # no network, none
    assert "PatchBranch" not in built(patch=False)
    assert "PatchBranch" not in built(cnn=CNNBranch(layers=("head",)))             # the map is not computed
    assert "PatchBranch()" in repr(HybridDetector()) and "PatchBranch" not in repr(HybridDetector(cnn=False))
    # what fit --false-alarms-per-day divides by: the branches the fit will build
    assert [len(HybridDetector(**kw).planned_branches()) for kw in (
        {}, {"cnn": False}, {"cnn": CNNBranch(layers=("head",))}, {"patch": False, "extra_branches": (PatchBranch(),)})] \
        == [8, 6, 7, 8]


def test_fit_has_the_patch_branch_unless_told_otherwise(scene, tmp_path):
    import json

    from hybrid_drift.cli import main
    ref = tmp_path / "ref"
    ref.mkdir()
    for i, f in enumerate(scene[0][:30]):
        cv2.imwrite(str(ref / f"{i:03d}.png"), f)

    def branches(*flags):
        out = tmp_path / ("m" + "".join(flags))
        assert main(["fit", str(ref), "--out", str(out), "--no-colour", "--no-light", "--no-shift", "--no-progress",
                     "--image-size", "96", "128", "--n-components", "10", "--no-flat", "--no-tear", *flags]) == 0
        return [b["class"] for b in json.loads((out / "config.json").read_text())["branches"]]
    assert branches() == ["CNNBranch", "PatchBranch", "BandBranch"]
    assert branches("--no-patch") == ["CNNBranch", "BandBranch"]
    assert branches("--no-patch", "--no-bands") == ["CNNBranch"]
