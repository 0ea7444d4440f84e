"""Scorers, distances, calibration and fusion on hand-computable inputs."""

import math

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon

from hybrid_drift import LogisticFusion, MinMaxBranch, NotFittedError, OrFusion, choose_threshold
from hybrid_drift.calibration import Calibration
from hybrid_drift.scorers import HistogramScorer, MinMaxScorer, PCAReconstructionScorer, scorer_from_state
from hybrid_drift.scorers.distances import chi2, hellinger, intersection, js, kl

P, Q = np.array([0.5, 0.5]), np.array([0.25, 0.75])


def test_distances_against_hand_computed_values():
    assert kl(P, Q, eps=0) == pytest.approx(0.5 * math.log(2) + 0.5 * math.log(2 / 3))
    assert hellinger(P, Q, eps=0) == pytest.approx(math.sqrt(1 - (math.sqrt(0.125) + math.sqrt(0.375))))
    assert intersection(P, Q, eps=0) == pytest.approx(0.25)
    assert chi2(P, Q, eps=0) == pytest.approx(0.5 * (0.25**2 / 0.75 + 0.25**2 / 1.25))
    m = (P + Q) / 2
    js_hand = math.sqrt(0.5 * sum(p * math.log(p / mm) for p, mm in zip(P, m)) +
                        0.5 * sum(q * math.log(q / mm) for q, mm in zip(Q, m)))
    assert js(P, Q, eps=0) == pytest.approx(js_hand)
    assert js(P, Q, eps=0) == pytest.approx(jensenshannon(P, Q))


def test_distances_vectorised_zero_for_identical_and_safe_on_empty_bins():
    p = np.array([[1.0, 0.0, 0.0], [0.2, 0.3, 0.5]])
    q = np.array([0.2, 0.3, 0.5])
    for fn in (kl, js, hellinger, intersection, chi2):
        d = fn(p, q)
        assert d.shape == (2,) and np.all(np.isfinite(d))
        assert d[1] == pytest.approx(0, abs=1e-9) and d[0] > 0.1
    assert kl(P, Q) != pytest.approx(kl(Q, P))  # KL is directional: image || reference


def test_pca_error_zero_in_subspace_large_off_subspace():
    rng = np.random.default_rng(0)
    basis = rng.normal(size=(3, 20))
    X = rng.normal(size=(300, 3)) @ basis
    s = PCAReconstructionScorer(n_components=3).fit(X)
    assert s.score_samples(X).max() < 1e-6
    off = rng.normal(size=(10, 20))
    assert s.score_samples(off).min() > 0.5


def test_pca_n_components_checked():
    X = np.random.default_rng(0).normal(size=(40, 10))
    with pytest.raises(ValueError, match=r"min\(n_images, n_features\) = min\(40, 10\) = 10"):
        PCAReconstructionScorer(n_components=150).fit(X)
    assert PCAReconstructionScorer(n_components=0.9).fit(X).n_components_ <= 10
    with pytest.raises(ValueError, match="variance fraction"):
        PCAReconstructionScorer(n_components=1.5).fit(X)


def test_pca_scale_floor_tames_near_constant_features():
    """A feature that barely moves in training must not dominate held-out errors."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 30))
    X[:, 0] = 1e-4 * rng.normal(size=200)  # near-constant in training
    new = rng.normal(size=(50, 30))
    new[:, 0] = 0.5  # small absolute change in that feature
    plain = PCAReconstructionScorer(10, scale_floor=None).fit(X).score_samples(new)
    floored = PCAReconstructionScorer(10).fit(X).score_samples(new)
    assert np.median(plain) > 100 * np.median(floored)
    assert np.median(floored) < 10


def test_pca_group_bounds_give_blocks_equal_weight():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(300, 110))
    s = PCAReconstructionScorer(5, group_bounds=[0, 100, 110]).fit(X)
    # each block standardised, then scaled by sqrt(block size): equal total variance
    Z = (X - s.mean_) / s.scale_
    assert Z[:, :100].var(axis=0).sum() == pytest.approx(Z[:, 100:].var(axis=0).sum(), rel=0.05)
    with pytest.raises(ValueError, match="group_bounds"):
        PCAReconstructionScorer(5, group_bounds=[0, 50]).fit(X)


def test_histogram_scorer_standardises_per_group():
    rng = np.random.default_rng(0)
    calm = rng.dirichlet(np.arange(1, 9) * 200.0, size=100)  # group that barely varies
    noisy = rng.dirichlet(np.ones(8) * 5, size=100)    # group that varies a lot
    X = np.hstack([calm, noisy])
    s = HistogramScorer("hellinger", group_bounds=[0, 8, 16], combine="max").fit(X)
    g = s.group_scores(X)
    assert np.allclose(g.mean(axis=0), 0, atol=1e-9) and np.allclose(g.std(axis=0, ddof=1), 1)
    shifted = X[:1].copy()
    shifted[0, :8] = np.roll(shifted[0, :8], 1)  # a change in the calm group stands out
    assert s.score_samples(shifted)[0] > 5


def test_channel_mean_ignores_one_cell_but_not_a_change_of_every_cell():
    """A person in one of 16 cells moves one histogram; a colour cast moves all of them."""
    rng = np.random.default_rng(4)
    n_cells, bins = 16, 8
    base = rng.dirichlet(np.ones(bins) * 30, size=n_cells)          # each cell's usual histogram
    X = np.stack([np.concatenate([rng.dirichlet(h * 400 + 1) for h in base]) for _ in range(80)])
    bounds = list(range(0, n_cells * bins + 1, bins))
    one_cell, every_cell = X[:1].copy(), X[:1].copy()
    one_cell[0, :bins] = np.roll(one_cell[0, :bins], 3)                # something new in one cell
    for c in range(n_cells):                                            # a cast: every cell shifts
        every_cell[0, c * bins:(c + 1) * bins] = np.roll(every_cell[0, c * bins:(c + 1) * bins], 3)
    robust = HistogramScorer(group_bounds=bounds).fit(X)               # combine="channel_mean"
    legacy = HistogramScorer(group_bounds=bounds, combine="max").fit(X)
    normal_max = robust.score_samples(X).max()
    assert robust.score_samples(one_cell)[0] < 2 * normal_max < robust.score_samples(every_cell)[0]
    # version 0.1's rule lets one cell dominate: the new object scores as high as the cast
    assert legacy.score_samples(one_cell)[0] > 0.5 * legacy.score_samples(every_cell)[0]
    with pytest.raises(ValueError, match="group_channels"):
        HistogramScorer(group_bounds=bounds, group_channels=[0, 1]).fit(X)


@pytest.mark.parametrize("distance", ["kl", "js", "hellinger", "intersection", "chi2"])
def test_histogram_scorer_every_distance_ranks_a_shift_higher(distance):
    rng = np.random.default_rng(3)
    X = rng.dirichlet(np.ones(16) * 100, size=60)
    s = HistogramScorer(distance).fit(X)
    odd = np.zeros((1, 16))
    odd[0, 0] = 1
    assert s.score_samples(odd)[0] > s.score_samples(X).max()


def test_histogram_scorer_rejects_unknown_options():
    X = np.full((5, 4), 0.25)
    with pytest.raises(ValueError, match="unknown distance"):
        HistogramScorer("cosine").fit(X)
    with pytest.raises(ValueError, match="combine"):
        HistogramScorer(combine="median").fit(X)


def test_minmax_rule_and_fixed_threshold(frames):
    s = MinMaxScorer().fit(np.array([[0.0, 10.0], [1.0, 20.0]]))
    assert not hasattr(s, "threshold_")  # scorers score; calibrations decide
    assert s.score_samples(np.array([[0.5, 15.0], [2.0, 15.0], [0.5, 5.0]])).tolist() == [0.0, 1.0, 0.5]
    b = MinMaxBranch().fit(frames[:20])
    assert b.threshold_ == 0.0 and b.calibration_.method == "fixed"
    b.calibrate(frames[20:30])  # calibration keeps the rule
    assert b.threshold_ == 0.0


def test_not_fitted_errors():
    with pytest.raises(NotFittedError):
        PCAReconstructionScorer().score_samples(np.zeros((2, 3)))
    s = PCAReconstructionScorer(1).fit(np.random.default_rng(0).normal(size=(10, 3)))
    with pytest.raises(ValueError, match="features"):
        s.score_samples(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="NaN"):
        s.score_samples(np.full((2, 3), np.nan))


def test_scorer_state_roundtrip():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 6))
    s = PCAReconstructionScorer(3, group_bounds=[0, 2, 6]).fit(X)
    state, arrays = s.get_state()
    t = scorer_from_state(state, arrays)
    assert np.array_equal(s.score_samples(X), t.score_samples(X)) and t.n_components_ == 3


def test_choose_threshold_methods():
    s = np.arange(100, dtype=float)
    assert choose_threshold(s, method="quantile", fpr=0.1) == pytest.approx(89.1)
    assert choose_threshold(s, method="mean_std", k=2) == pytest.approx(s.mean() + 2 * s.std(ddof=1))
    y = np.r_[np.zeros(90), np.ones(10)].astype(int)
    t = choose_threshold(s, y, method="f1")
    assert 89 < t < 90  # separates perfectly with `score > t`
    assert choose_threshold(np.r_[s, np.nan], method="quantile", fpr=0.5) == pytest.approx(49.5)
    assert choose_threshold(s, y, method="quantile", fpr=0.01) < 90  # normals only
    with pytest.raises(ValueError, match="both"):
        choose_threshold(s, method="f1")
    with pytest.raises(ValueError, match="unknown calibration"):
        choose_threshold(s, method="magic")


def test_or_fusion_any_branch_any_number_of_branches():
    cals = [Calibration("conformal", t, 1.0) for t in (1.0, 2.0, 3.0)]
    f = OrFusion().fit(np.zeros((5, 3)))
    S = np.array([[0.0, 0.0, 0.0], [1.5, 0.0, 0.0], [0.0, 0.0, 3.5]])
    assert (f.score(S, cals) > f.threshold_).tolist() == [False, True, True]
    with pytest.raises(ValueError, match="expected scores of 1 branches"):
        f.score(S, cals[:1])


def test_logistic_fusion_needs_labels_and_learns():
    rng = np.random.default_rng(0)
    S = np.r_[rng.normal(0, 1, (100, 2)), rng.normal([4, 0], 1, (20, 2))]
    y = np.r_[np.zeros(100), np.ones(20)].astype(int)
    with pytest.raises(ValueError, match="labelled"):
        LogisticFusion().fit(S)
    with pytest.raises(ValueError, match="both"):
        LogisticFusion().fit(S[:100], y[:100])
    f = LogisticFusion().fit(S, y)
    p = f.score(np.array([[0.0, 0.0], [6.0, 0.0]]))
    assert p[0] < 0.2 and p[1] > 0.9
    assert abs(f.coef_[0]) > 3 * abs(f.coef_[1])  # it learned which branch matters



def test_colour_histograms_of_an_image_smaller_than_the_grid():
    from hybrid_drift.features import ColourFeatures
    f = ColourFeatures(bins=8, grid=(4, 4))
    v = f.transform(np.full((2, 2, 3), 200, np.uint8))
    assert v.shape == (f.n_features,) and np.isfinite(v).all()
    b = f.group_bounds()
    assert all(v[b[g]:b[g + 1]].sum() == pytest.approx(1.0) for g in range(len(b) - 1))


def _reference_histograms(hsv, bins, grid, hs_bins=None):
    """Per cell and channel with np.histogram: the definition the vectorised code must match."""
    h, w = hsv.shape[:2]
    rows, cols = np.linspace(0, h, grid[0] + 1).astype(int), np.linspace(0, w, grid[1] + 1).astype(int)
    out = []
    for r in range(grid[0]):
        for c in range(grid[1]):
            cell = hsv[rows[r]:rows[r + 1], cols[c]:cols[c + 1]]
            cell = hsv if cell.size == 0 else cell
            for ch, hi in enumerate((180, 256, 256)):
                out.append(np.histogram(cell[..., ch], bins=bins, range=(0, hi))[0])
            if hs_bins:
                out.append(np.histogram2d(cell[..., 0].ravel(), cell[..., 1].ravel(), bins=hs_bins,
                                          range=((0, 180), (0, 256)))[0].ravel())
    return np.concatenate([o / o.sum() for o in out])


@pytest.mark.parametrize("shape,bins,grid,joint", [((48, 64), 32, (4, 4), False), ((37, 53), 7, (3, 5), False),
                                                   ((30, 40), 16, (2, 2), True), ((3, 2), 8, (4, 4), True),
                                                   ((20, 24), 256, (16, 16), False)])  # > 65535 bins: float index
def test_colour_histograms_match_per_cell_numpy_reference(shape, bins, grid, joint):
    import cv2

    from hybrid_drift.features import ColourFeatures
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, shape + (3,), dtype=np.uint8)
    rgb[: shape[0] // 2] //= 4  # uneven content per cell
    f = ColourFeatures(bins=bins, grid=grid, joint_hs=joint, hs_bins=(12, 8))
    ref = _reference_histograms(cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV), bins, grid, (12, 8) if joint else None)
    np.testing.assert_allclose(f.transform(rgb), ref, atol=1e-6)
    np.testing.assert_allclose(f.transform(rgb), ref, atol=1e-6)  # the cached layout gives the same


@pytest.mark.parametrize("bins", [2, 7, 32, 181, 256])
def test_every_8bit_value_lands_in_its_bin_as_the_table_says(bins):
    """The vectorised binning (cv2.transform) is exact for every 8-bit value, hue >= 180 clamped."""
    from hybrid_drift.features import ColourFeatures
    v = np.arange(256)
    hsv = np.repeat(v.astype(np.uint8)[None, :, None], 3, axis=2)  # every value in every channel
    f = ColourFeatures(bins=bins)
    got = f.transform(hsv=hsv).reshape(3, bins)
    for ch, hi in enumerate((180, 256, 256)):
        want = np.bincount(np.minimum(v * bins // hi, bins - 1), minlength=bins) / 256
        np.testing.assert_array_equal(got[ch], want.astype(np.float32))
    table = ColourFeatures(bins=bins)
    table._bin_m = None  # the lookup-table path
    rgb = np.random.default_rng(bins).integers(0, 256, (61, 83, 3), dtype=np.uint8)
    np.testing.assert_array_equal(f.transform(rgb), table.transform(rgb))


def test_incremental_pca_path_matches_full_pca():
    rng = np.random.default_rng(5)
    X = (rng.normal(size=(3000, 5)) @ rng.normal(size=(5, 40)) + 0.01 * rng.normal(size=(3000, 40)))
    new = np.r_[X[:5] + 0.001, rng.normal(size=(5, 40))]
    full = PCAReconstructionScorer(5).fit(X)
    inc = PCAReconstructionScorer(5, incremental_above=1000, batch_rows=400).fit(X.astype(np.float32))
    np.testing.assert_allclose(inc.score_samples(new), full.score_samples(new), rtol=0.02, atol=1e-3)
    frac = PCAReconstructionScorer(0.99, incremental_above=1000, batch_rows=400).fit(X)
    assert frac.n_components_ == 5  # resolved on a subsample, then fitted incrementally
    a = full.score_samples(new.astype(np.float32))
    np.testing.assert_allclose(a, full.score_samples(new), rtol=1e-4)


def test_pca_score_of_a_row_does_not_depend_on_the_rows_scored_with_it():
    """Bit-identical scores alone, in any batch, at any position (local vs distributed parts)."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(160, 300)).astype(np.float32)
    sc = PCAReconstructionScorer(20).fit(X[:100])
    Y = X[100:]
    full = sc.score_samples(Y)
    assert np.array_equal(np.concatenate([sc.score_samples(Y[i:i + 1]) for i in range(len(Y))]), full)
    for size in (2, 7, 11, 13, 41):
        for start in (0, 3, 15):
            assert np.array_equal(sc.score_samples(Y[start:start + size]), full[start:start + size])
