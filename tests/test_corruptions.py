"""Each corruption changes the image as documented; users can register their own."""

import json

import cv2
import numpy as np
import pytest

from hybrid_drift.corruptions import (CORRUPTIONS, SobelFilter, apply_corruption, corrupt_folder,
                                      load_object_library, object_factory, register_corruption)
from hybrid_drift.datasets.crossroad import STUDY_TRANSFORMS


def _sharpness(rgb):
    return cv2.Laplacian(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var()


@pytest.fixture(scope="module")
def frame(frames):
    return frames[20]


def test_all_study_transforms_are_registered_and_change_the_image(frame):
    rng = np.random.default_rng(0)
    for name in STUDY_TRANSFORMS:
        assert name in CORRUPTIONS
        out, params = apply_corruption(frame, name, rng)
        assert out.shape == frame.shape and out.dtype == np.uint8
        assert not np.array_equal(out, frame), name
        json.dumps(params)  # recorded parameters are JSON-able


def test_documented_effects(frame):
    rng = np.random.default_rng(1)
    f = frame.astype(int)
    assert np.array_equal(apply_corruption(frame, "vertical_flip", rng)[0], frame[::-1])
    assert np.array_equal(apply_corruption(frame, "invert", rng)[0], 255 - frame)
    g = apply_corruption(frame, "grayscale", rng)[0]
    assert np.array_equal(g[..., 0], g[..., 1]) and np.array_equal(g[..., 1], g[..., 2])
    cs, p = apply_corruption(frame, "channel_shuffle", rng)
    assert np.array_equal(cs, frame[..., p["order"]]) and p["order"] != [0, 1, 2]
    assert _sharpness(apply_corruption(frame, "downscale", rng)[0]) < 0.7 * _sharpness(frame)
    assert _sharpness(apply_corruption(frame, "gaussian_noise", rng)[0]) > 2 * _sharpness(frame)
    sob = apply_corruption(frame, "sobel", rng)[0]
    assert sob.mean() > f.mean() + 40  # dark edges on white
    assert apply_corruption(frame, "rain", rng)[0].astype(int).mean() < f.mean()  # rain darkens
    flare = apply_corruption(frame, "sun_flare", rng)[0].astype(int)
    h = frame.shape[0]
    assert (flare - f)[: h // 2].mean() > (flare - f)[h // 2:].mean()  # flare in the upper half
    jit, p = apply_corruption(frame, "colour_jitter", rng)
    hue = lambda x: cv2.cvtColor(x, cv2.COLOR_RGB2HSV)[..., 0].astype(int)  # noqa: E731
    assert np.abs(hue(jit) - hue(frame)).mean() > 3


def test_same_rng_seed_same_pixels(frame):
    for name in STUDY_TRANSFORMS:
        a, pa = apply_corruption(frame, name, np.random.default_rng(7))
        b, pb = apply_corruption(frame, name, np.random.default_rng(7))
        assert np.array_equal(a, b) and pa == pb, name


def test_sobel_is_an_albumentations_transform(frame):
    import albumentations as A
    out = A.Compose([SobelFilter(ksize=3, p=1.0), A.HorizontalFlip(p=1.0)])(image=frame)["image"]
    assert out.shape == frame.shape and out.dtype == np.uint8


def test_pasted_object_covers_the_requested_area(frame, data_dir):
    lib = load_object_library([data_dir / "apple.jpg", data_dir / "HappyFish.jpg"])
    assert set(lib) == {"apple", "HappyFish"}
    for area in (0.03, 0.2):
        fac = object_factory(lib, (area, area))
        out, p = apply_corruption(frame, "vertical_flip", np.random.default_rng(0))  # warm-up call
        paster, params = fac(np.random.default_rng(3))
        out = paster(frame)
        changed = (np.abs(out.astype(int) - frame).sum(axis=2) > 30).mean()
        assert 0.3 * area < changed <= 1.05 * area
        assert params["area"] == area


def test_register_custom_corruption_and_apply_to_a_folder(tmp_path, frame):
    register_corruption("half_black", "colour",
                        lambda rng: ((lambda im: np.where(np.arange(im.shape[1])[None, :, None] < im.shape[1] // 2,
                                                          0, im).astype(np.uint8)), {}), overwrite=True)
    with pytest.raises(ValueError, match="already registered"):
        register_corruption("half_black", "colour", lambda rng: (lambda im: im, {}))
    src = tmp_path / "src"
    src.mkdir()
    cv2.imwrite(str(src / "a.jpg"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    (src / "broken.jpg").write_bytes(b"")
    recs = corrupt_folder(src, tmp_path / "dst", ["half_black", "invert"], seed=0)
    written = [r for r in recs if r["error"] is None]
    assert {r["kind"] for r in written} == {"half_black", "invert"}
    assert [r["error"] for r in recs if r["error"]] == ["zero bytes"]
    img = cv2.imread(written[0]["path"])
    assert img[:, : img.shape[1] // 2 - 4].max() < 20
    with pytest.raises(ValueError, match="unknown corruption"):
        apply_corruption(frame, "nope", np.random.default_rng(0))


def test_held_out_faults_do_what_they_say(frame):
    """The faults no benchmark set is built from (benchmarks/heldout_faults.py): each changes the image as
    documented, records JSON-able parameters and gives the same pixels for the same seed."""
    from hybrid_drift.corruptions import HELD_OUT_FAULTS, STUDY_FAULTS
    assert set(STUDY_FAULTS) <= set(CORRUPTIONS) and not set(HELD_OUT_FAULTS) & set(STUDY_FAULTS)
    h, w = frame.shape[:2]
    out = {}
    for name in HELD_OUT_FAULTS:
        a, p = apply_corruption(frame, name, np.random.default_rng(5))
        b, _ = apply_corruption(frame, name, np.random.default_rng(5))
        assert a.shape == frame.shape and a.dtype == np.uint8 and np.array_equal(a, b), name
        json.dumps(p)
        out[name] = (a, p)
    tear, p = out["frame_tear"]
    y = int(p["row"] * h)
    assert np.array_equal(tear[:y], frame[:y])
    assert np.array_equal(tear[y:], np.roll(frame[y:], int(round(p["by"] * w)), axis=1))
    assert 0.1 <= abs(p["by"]) <= 0.3
    block, p = out["decode_error"]
    n = int(round(p["part"] * h))
    assert (block[h - n:] == np.array(p["value"], np.uint8)).all() and np.array_equal(block[:h - n], frame[:h - n])
    smear, p = out["smear"]
    y = int(p["row"] * h)
    assert (smear[y:] == frame[y]).all() and np.array_equal(smear[:y], frame[:y])
    over, p = out["overexposure"]
    assert over.astype(int).mean() > 1.5 * frame.astype(int).mean() and (over == 255).mean() > (frame == 255).mean()
    assert _sharpness(out["defocus"][0]) < 0.5 * _sharpness(frame)
    hot = out["hot_pixels"][0]
    assert ((hot == 0) | (hot == 255)).all(axis=2).mean() > ((frame == 0) | (frame == 255)).all(axis=2).mean() + 0.005
    assert out["snow"][0].astype(int).mean() > frame.astype(int).mean()  # snow whitens


def test_unseen_faults_do_what_they_say(frame):
    """The second held-out round (written after every default was chosen): registered, apart from the other
    lists, the same pixels for the same seed, JSON-able parameters, and each does what its line says."""
    from hybrid_drift.corruptions import CAMERA_FAULTS, HELD_OUT_FAULTS, STUDY_FAULTS, UNSEEN_FAULTS
    assert set(UNSEEN_FAULTS) <= set(CORRUPTIONS)
    assert not set(UNSEEN_FAULTS) & set(HELD_OUT_FAULTS + STUDY_FAULTS + CAMERA_FAULTS)
    out = {}
    for name in UNSEEN_FAULTS:
        a, p = apply_corruption(frame, name, np.random.default_rng(7))
        b, _ = apply_corruption(frame, name, np.random.default_rng(7))
        assert a.shape == frame.shape and a.dtype == np.uint8 and np.array_equal(a, b), name
        assert not np.array_equal(a, frame), name
        json.dumps(p)
        out[name] = (a, p)
    grey = lambda img: cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(float)  # noqa: E731
    assert grey(out["washed_out"][0]).std() < 0.7 * grey(frame).std()
    g, p = out["gamma"]
    assert (grey(g).mean() < grey(frame).mean()) == (p["gamma"] > 1)
    assert ((out["block_dropout"][0] == 0).all(axis=2).mean() > (frame == 0).all(axis=2).mean() + 0.02)
    assert len(np.unique(out["posterize"][0][..., 0])) <= 2 ** out["posterize"][1]["bits"]
    assert np.array_equal(out["mirrored"][0], frame[:, ::-1])
    h, w = frame.shape[:2]
    M = cv2.getRotationMatrix2D((w / 2, h / 2), out["tilt"][1]["rotation"], 1.0)
    assert np.array_equal(out["tilt"][0], cv2.warpAffine(frame, M, (w, h), borderMode=cv2.BORDER_REFLECT))
    zoomed, p = out["zoom_in"]
    assert 1.2 <= p["factor"] <= 1.35 and _sharpness(zoomed) < _sharpness(frame)
    assert _sharpness(out["oversharpen"][0]) > 1.5 * _sharpness(frame)
    assert _sharpness(out["zoom_blur"][0]) < 0.7 * _sharpness(frame)
    hsv = lambda img: cv2.cvtColor(img, cv2.COLOR_RGB2HSV).astype(float)  # noqa: E731
    assert hsv(out["colour_loss"][0])[..., 1].mean() < 0.8 * hsv(frame)[..., 1].mean()
    # on a grey camera there is no colour to lose or turn, and colour fringes come out grey
    mono = np.repeat(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    for name in ("colour_loss", "hue_shift"):
        with pytest.raises(ValueError, match="unchanged"):
            apply_corruption(mono, name, np.random.default_rng(0))
    fringed, _ = apply_corruption(mono, "chromatic_aberration", np.random.default_rng(0))
    assert (fringed == fringed[..., :1]).all() and not np.array_equal(fringed, mono)
