"""Image input: every bad file gives a clear error record and the rest are still read."""

import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from hybrid_drift.io import decode_image, expand_inputs, iter_video_frames, list_images, load_images


def _jpeg(arr, **kw):
    b = io.BytesIO()
    Image.fromarray(arr).save(b, "JPEG", quality=95, **kw)
    return b.getvalue()


def _png(img):
    b = io.BytesIO()
    img.save(b, "PNG")
    return b.getvalue()


def _huge_png_header(w, h):
    """A valid PNG whose header claims w x h pixels (a decompression-bomb shape)."""
    buf = bytearray(_png(Image.new("RGB", (8, 8))))
    buf[16:24] = struct.pack(">II", w, h)
    buf[29:33] = struct.pack(">I", zlib.crc32(bytes(buf[12:29])))
    return bytes(buf)


@pytest.fixture
def half_white():
    a = np.zeros((20, 40, 3), np.uint8)
    a[:, :20] = 255  # left half white
    return a


def test_truncated_jpeg_is_an_error(photo):
    buf = _jpeg(photo)
    r = decode_image(buf[: len(buf) // 3], name="cut.jpg")
    assert r.rgb is None and "truncated" in r.error.lower()
    assert r.source == "cut.jpg"


def test_zero_bytes_and_text_named_jpg(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "notes.jpg").write_text("this is not an image")
    assert decode_image(tmp_path / "empty.jpg").error == "zero bytes"
    assert "not an image" in decode_image(tmp_path / "notes.jpg").error
    assert decode_image(tmp_path / "missing.jpg").error == "file not found"


def test_16bit_png_is_scaled_to_8bit():
    arr = np.array([[0, 32768, 65535]], np.uint16)
    r = decode_image(_png(Image.fromarray(arr)))
    assert r.ok and r.rgb.dtype == np.uint8 and r.rgb.shape == (1, 3, 3)
    assert r.rgb[0, :, 0].tolist() == [0, 128, 255]
    assert r.meta["mode"].startswith("I;16")


def test_cmyk_jpeg_decodes_to_rgb(half_white):
    r = decode_image(_cmyk_bytes(half_white))
    assert r.ok and r.meta["mode"] == "CMYK"
    assert r.rgb[10, 5].min() > 230 and r.rgb[10, 35].max() < 25


def _cmyk_bytes(rgb):
    b = io.BytesIO()
    Image.fromarray(rgb).convert("CMYK").save(b, "JPEG", quality=95)
    return b.getvalue()


def test_palette_rgba_and_grayscale_pngs(half_white):
    pal = Image.fromarray(half_white).convert("P")
    rgba = Image.fromarray(np.dstack([half_white, np.full((20, 40), 255, np.uint8)]), "RGBA")
    gray = Image.fromarray(half_white[..., 0], "L")
    for img in (pal, rgba, gray):
        r = decode_image(_png(img))
        assert r.ok, r.error
        assert r.rgb.shape == (20, 40, 3)
        assert r.rgb[5, 5].tolist() == [255, 255, 255] and r.rgb[5, 30].tolist() == [0, 0, 0]


def test_exif_orientation_is_applied(half_white):
    img = Image.fromarray(half_white)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    exif[0x010F] = "TestCam"  # Make
    r = decode_image(_jpeg(half_white, exif=exif.tobytes()))
    assert r.ok and r.rgb.shape == (40, 20, 3)  # stored 40 wide, shown 40 tall
    assert r.rgb[2, 10].min() > 200 and r.rgb[-3, 10].max() < 50  # white half now on top
    assert r.meta["orientation"] == 6 and r.meta["exif_Make"] == "TestCam"
    assert (r.meta["width"], r.meta["height"]) == (40, 20)


def test_pixel_limit_guards_against_bombs():
    r = decode_image(_huge_png_header(100_000, 100_000))
    assert r.rgb is None and "too many pixels" in r.error
    small = _huge_png_header(3000, 3000)
    r = decode_image(small, max_pixels=1_000_000)
    assert r.rgb is None and "max_pixels" in r.error


def test_metadata_fields(data_dir):
    r = decode_image(data_dir / "fruits.jpg")
    assert r.ok
    assert {"width", "height", "mode", "format", "file_size"} <= set(r.meta)
    assert r.meta["format"] == "JPEG" and r.meta["file_size"] == (data_dir / "fruits.jpg").stat().st_size
    assert r.sha1 and len(r.sha1) == 40


def test_reduced_decode(data_dir):
    full = decode_image(data_dir / "fruits.jpg")
    half = decode_image(data_dir / "fruits.jpg", reduce=2)
    h, w = full.rgb.shape[:2]
    assert half.rgb.shape[:2] == ((h + 1) // 2, (w + 1) // 2)
    auto = decode_image(np.zeros((1200, 1600, 3), np.uint8), reduce="auto", min_side=256)
    assert auto.rgb.shape[:2] == (300, 400)  # largest factor keeping the short side >= 256
    with pytest.raises(ValueError, match="reduce"):
        decode_image(np.zeros((4, 4, 3), np.uint8), reduce=3)


def test_each_announced_size_is_decoded_from_the_file(tmp_path, data_dir):
    """A feature's pixels do not depend on which other features share the decode."""
    frame = next(iter_video_frames(data_dir / "vtest.avi", stop=1))[1]  # 576x768
    path = tmp_path / "f.jpg"
    cv2.imwrite(str(path), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    both = decode_image(path, reduce="auto", min_side=(288, 128))
    alone = decode_image(path, reduce="auto", min_side=128)
    assert both.factor == 2 and both.rgb.shape == (288, 384, 3) and set(both.views) == {4}
    assert alone.factor == 4 and alone.rgb.shape == (144, 192, 3) and not alone.views
    # the 1/4 view is a DCT-domain decode of the file, bit for bit, not a resize of the 1/2 image
    dct4 = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_REDUCED_COLOR_4), cv2.COLOR_BGR2RGB)
    assert np.array_equal(both.at_side(128), dct4) and np.array_equal(alone.at_side(128), dct4)
    assert not np.array_equal(cv2.resize(both.rgb, (192, 144), interpolation=cv2.INTER_AREA), dct4)
    assert both.at_side(288) is both.rgb and both.at_side(1000) is both.rgb  # never larger than decoded
    # a size nobody announced is area-averaged from the decoded pixels
    assert both.at_side(64).shape == (72, 96, 3)
    with pytest.raises(ValueError, match="min_side"):
        decode_image(path, reduce="auto", min_side=())
    both.release()
    assert both.rgb is None and not both.views and both.meta["width"] == 768


def test_arrays_of_other_dtypes():
    assert decode_image(np.ones((4, 4), np.float32)).rgb.max() == 255
    assert decode_image(np.full((4, 4, 1), 65535, np.uint16)).rgb.max() == 255
    assert "shape" in decode_image(np.zeros((4, 4, 5), np.uint8)).error
    assert "NaN" in decode_image(np.full((4, 4, 3), np.nan)).error


def test_folder_listing_recursive_filtered_sorted(tmp_path, photo):
    (tmp_path / "b").mkdir()
    for rel in ("b/2.jpg", "a.PNG", "c.jpeg", "skip.txt"):
        p = tmp_path / rel
        if rel.endswith("txt"):
            p.write_text("x")
        else:
            cv2.imwrite(str(p), photo)
    names = [p.replace(str(tmp_path) + "/", "") for p in list_images(tmp_path)]
    assert names == ["a.PNG", "b/2.jpg", "c.jpeg"]
    assert len(list_images(tmp_path, recursive=False)) == 2
    assert list_images(tmp_path, extensions=[".png"]) == [str(tmp_path / "a.PNG")]
    with pytest.raises(FileNotFoundError):
        list_images(tmp_path / "nope")


def test_video_frames_with_step(data_dir):
    got = [i for i, _ in iter_video_frames(data_dir / "vtest.avi", step=100, stop=450)]
    assert got == [0, 100, 200, 300, 400]
    items = expand_inputs(str(data_dir / "vtest.avi"), video_step=200)
    assert [it.id.rsplit("=", 1)[1] for it in items] == ["0", "200", "400", "600"]
    loaded = list(load_images(items))
    assert all(img.ok and img.rgb.shape == (576, 768, 3) for img, _ in loaded)
    ref = dict(iter_video_frames(data_dir / "vtest.avi", step=200))
    assert np.array_equal(loaded[2][0].rgb, ref[400])


def test_loader_keeps_order_and_reports_every_input(tmp_path, photo):
    good = tmp_path / "good.jpg"
    cv2.imwrite(str(good), photo)
    (tmp_path / "bad.jpg").write_bytes(b"")
    inputs = [str(good), str(tmp_path / "bad.jpg"), np.zeros((8, 8, 3), np.uint8), b"junk", str(good)]
    out = list(load_images(expand_inputs(inputs), workers=3, prefetch=2, map_fn=lambda im: im.rgb.shape))
    assert [img.source for img, _ in out] == [str(good), str(tmp_path / "bad.jpg"), "<array #0>",
                                             "<bytes #0>", str(good)]
    assert [img.ok for img, _ in out] == [True, False, True, False, True]
    assert out[0][1] == photo.shape


def test_map_fn_failure_becomes_that_images_error(photo):
    def boom(img):
        if img.source == "<array #1>":
            raise RuntimeError("kaput")
        return 1
    out = list(load_images(expand_inputs([photo, photo, photo]), map_fn=boom))
    assert [img.ok for img, _ in out] == [True, False, True]
    assert "kaput" in out[1][0].error


def test_tiff_with_tags_decodes_through_pillow(half_white, tmp_path):
    from PIL import TiffImagePlugin
    info = TiffImagePlugin.ImageFileDirectory_v2()
    info[0x0110] = "FieldCam 3"  # Model
    info[0x0131] = "capture-tool 1.2"  # Software
    p = tmp_path / "cam.tif"
    Image.fromarray(half_white).save(p, "TIFF", tiffinfo=info)
    r = decode_image(p)
    assert r.ok and r.rgb.shape == (20, 40, 3)
    assert r.rgb[5, 5].tolist() == [255, 255, 255] and r.rgb[5, 30].tolist() == [0, 0, 0]
    assert r.meta["format"] == "TIFF"
    assert r.meta["exif_Model"] == "FieldCam 3" and r.meta["exif_Software"] == "capture-tool 1.2"


def test_expanded_items_pass_through_unchanged(photo):
    items = expand_inputs([photo, b"x"])
    assert expand_inputs(items) == items


@pytest.mark.parametrize("kind", ["jpeg", "gray_jpeg", "png_rgba"])
@pytest.mark.parametrize("reduce", [1, 2, 4, 8])
def test_pixels_equal_opencv_bgr_decode_converted_to_rgb(tmp_path, data_dir, kind, reduce):
    """OpenCV writes RGB itself (IMREAD_COLOR_RGB): same values as a BGR decode + cvtColor."""
    rgb = cv2.cvtColor(cv2.imread(str(data_dir / "fruits.jpg")), cv2.COLOR_BGR2RGB)
    if kind == "jpeg":
        data = _jpeg(rgb)
    elif kind == "gray_jpeg":
        data = _jpeg(rgb[..., 1])
    else:
        data = _png(Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 200, np.uint8)]), "RGBA"))
    flag = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
            8: cv2.IMREAD_REDUCED_COLOR_8}[reduce]
    buf = np.frombuffer(data, np.uint8)
    if kind == "png_rgba":  # not a JPEG: full decode, then area-reduced
        want = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        if reduce > 1:
            h, w = want.shape[:2]
            want = cv2.resize(want, (-(-w // reduce), -(-h // reduce)), interpolation=cv2.INTER_AREA)
    else:
        want = cv2.cvtColor(cv2.imdecode(buf, flag), cv2.COLOR_BGR2RGB)
    got = decode_image(data, reduce=reduce)
    assert got.ok and got.rgb.flags.c_contiguous
    assert np.array_equal(got.rgb, want)


def _jpeg_variants(rgb):
    """JPEGs the header reader must read as Pillow does, or leave to Pillow."""
    exif = Image.new("RGB", (1, 1)).getexif()
    exif[0x0112], exif[0x010F], exif[0x0132] = 6, "TestCam", "2026:11:23 10:00:00"
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">' \
          b'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="3"/></rdf:RDF></x:xmpmeta>'
    mpo = io.BytesIO()
    Image.fromarray(rgb).save(mpo, "MPO", save_all=True, append_images=[Image.fromarray(rgb[::-1])])
    return {"plain": _jpeg(rgb), "progressive": _jpeg(rgb, progressive=True), "gray": _jpeg(rgb[..., 0]),
            "exif": _jpeg(rgb, exif=exif.tobytes()), "comment": _jpeg(rgb, comment=b"cam 7"),
            "cmyk": _cmyk_bytes(rgb), "xmp": _jpeg(rgb, xmp=xmp), "mpo": mpo.getvalue()}


def test_jpeg_metadata_and_pixels_are_pillows_whichever_reads_the_header(data_dir, half_white, tmp_path):
    """JPEG headers are read without Pillow when plain; metadata and pixels are the same as through Pillow."""
    from hybrid_drift.io.decode import read_metadata
    files = {p.name: p.read_bytes() for p in sorted(data_dir.glob("*.jpg"))}
    files.update(_jpeg_variants(np.ascontiguousarray(np.tile(half_white, (3, 2, 1)))))
    for name, data in files.items():
        with Image.open(io.BytesIO(data)) as im:
            want = read_metadata(im, len(data))
            mode = im.mode
        got = decode_image(data, reduce=2)
        assert got.ok, (name, got.error)
        assert got.meta == want, name
        if mode != "CMYK" and want["format"] == "JPEG":  # CMYK and MPO decode through Pillow
            ref = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_REDUCED_COLOR_2)
            assert np.array_equal(got.rgb, cv2.cvtColor(ref, cv2.COLOR_BGR2RGB)), name


def test_jpeg_header_reader_leaves_unusual_files_to_pillow(half_white):
    from hybrid_drift.io.decode import _jpeg_header
    v = _jpeg_variants(half_white)
    assert _jpeg_header(v["plain"])[:3] == (40, 20, "RGB")
    assert _jpeg_header(v["progressive"])[:3] == (40, 20, "RGB")
    assert _jpeg_header(v["gray"])[:3] == (40, 20, "L")
    assert _jpeg_header(v["exif"])[3].startswith(b"Exif\x00\x00")
    for unusual in ("cmyk", "xmp", "mpo"):  # 4 components; XMP orientation; multi-picture
        assert _jpeg_header(v[unusual]) is None, unusual
    plain = v["plain"]
    for broken in (plain[:30], plain[:2] + b"\xff\xff" + plain[2:], plain[:4] + b"\x00\x01" + plain[6:], b"\xff\xd8\xff"):
        assert _jpeg_header(broken) is None
    assert "truncat" in decode_image(plain[:30]).error.lower() or "corrupt" in decode_image(plain[:30]).error.lower()


def test_pixel_limit_applies_to_jpeg_headers_read_without_pillow(photo):
    from hybrid_drift.io.decode import _jpeg_header
    buf = bytearray(_jpeg(photo))
    sof = buf.index(b"\xff\xc0")
    buf[sof + 5:sof + 9] = struct.pack(">HH", 30000, 30000)  # height, width claimed in the frame header
    assert _jpeg_header(bytes(buf))[:2] == (30000, 30000)
    r = decode_image(bytes(buf), max_pixels=50_000_000)
    assert r.rgb is None and "too many pixels: 30000x30000" in r.error


def test_plain_jpeg_header_with_undecodable_data_falls_back_to_pillow(half_white):
    """Header read without Pillow, OpenCV cannot decode the scan: Pillow gets it, and its error is the record."""
    from hybrid_drift.io.decode import _jpeg_header
    data = _jpeg(half_white)
    sos = data.index(b"\xff\xda")
    bad = data[:sos] + b"\xff\xda\x00\x02" + b"\x00" * 5 + b"\xff\xd9"  # an empty scan header, junk data
    assert _jpeg_header(bad) is not None
    r = decode_image(bad, name="junk-scan.jpg")
    assert r.rgb is None and r.source == "junk-scan.jpg"
    assert r.error.startswith("corrupt or truncated image:")


def test_a_video_cut_short_is_read_to_its_real_end_with_one_note(tmp_path):
    """A header that claims more frames than the file holds (a recording cut short): the frames that are
    there, one note naming the file, and no error rows for frames that never existed."""
    import cv2

    from hybrid_drift import HybridDetector
    from hybrid_drift.io import expand_inputs
    full = tmp_path / "full.avi"
    out = cv2.VideoWriter(str(full), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    rng = np.random.default_rng(0)
    frames = [np.full((48, 64, 3), 100, np.uint8) + rng.integers(0, 20, (48, 64, 3), dtype=np.uint8) for _ in range(30)]
    for f in frames:
        out.write(f)
    out.release()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    assert cv2.VideoCapture(str(cut)).get(cv2.CAP_PROP_FRAME_COUNT) == 30  # the header still says 30
    notes: list = []
    items = expand_inputs([str(cut)], notes=notes)
    assert 5 < len(items) < 30 and len(notes) == 1 and "header says 30 frames" in notes[0]
    notes.clear()
    assert len(expand_inputs([str(full)], notes=notes)) == 30 and not notes  # a whole file: no note
    table = HybridDetector(cnn=False).fit(frames).score(items)
    assert table["error"].isna().all()


@pytest.mark.parametrize("quality", [20, 40, 60, 75, 92, 99])
def test_the_jpeg_quality_a_file_was_saved_at_is_read_from_its_header(quality, half_white):
    from hybrid_drift.io.decode import _jpeg_header, jpeg_quality
    ok, buf = cv2.imencode(".jpg", half_white, [cv2.IMWRITE_JPEG_QUALITY, quality])
    data = buf.tobytes()
    assert decode_image(data).meta["jpeg_quality"] == quality               # the fast header reader
    assert _jpeg_header(data)[4] == quality
    pil = io.BytesIO()
    Image.fromarray(half_white).save(pil, "JPEG", quality=quality, progressive=True)   # read by Pillow
    assert decode_image(pil.getvalue()).meta["jpeg_quality"] == quality
    with Image.open(io.BytesIO(data)) as im:
        assert jpeg_quality(im) == quality
    png = io.BytesIO()
    Image.fromarray(half_white).save(png, "PNG")
    assert decode_image(png.getvalue()).meta["jpeg_quality"] is None
