"""Decode one image (path, bytes or array) to RGB uint8, with its metadata.

OpenCV decodes the common formats fast (and can decode JPEG straight to 1/2, 1/4 or
1/8 size in the DCT domain). The header is read first (format, size, mode, EXIF) so
that the pixel-count guard runs *before* any pixels are decoded: by a strict reader
of the segments for plain JPEGs (see :func:`_jpeg_header`), by Pillow for everything
else. Pillow also decodes what OpenCV handles badly (CMYK, 16-bit, palette, TIFF, ...).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import stat
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from ..exceptions import ImageLoadError

__all__ = ["DecodedImage", "decode_image", "auto_factor", "DEFAULT_MAX_PIXELS", "DEFAULT_MIN_SIDE", "read_metadata",
           "jpeg_quality"]

#: Default guard against decompression bombs: 100 megapixels.
DEFAULT_MAX_PIXELS = 100_000_000
#: Shorter side that ``reduce="auto"`` keeps when nothing else is asked for.
DEFAULT_MIN_SIDE = 256

# Formats and modes OpenCV decodes correctly to 8-bit BGR; the rest go to Pillow.
_CV2_FORMATS = {"JPEG", "PNG", "BMP", "WEBP"}
_CV2_MODES = {"RGB", "L", "RGBA", "LA", "P"}
_REDUCED_FLAGS = {
    1: cv2.IMREAD_COLOR,
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}
# OpenCV >= 4.10 can have the decoder write RGB itself (libjpeg-turbo's own output
# order: no extra pass over the pixels, same values as BGR + cvtColor).
_IMREAD_RGB = getattr(cv2, "IMREAD_COLOR_RGB", None)
_EXIF_KEEP = {
    "Make", "Model", "Software", "DateTime", "Orientation", "XResolution", "YResolution",
    "ResolutionUnit", "ExposureTime", "FNumber", "ISOSpeedRatings", "FocalLength",
    "ImageDescription", "Artist", "Compression", "PhotometricInterpretation",
    "BitsPerSample", "SamplesPerPixel",
}


@dataclass
class DecodedImage:
    """An RGB image and what is known about the file it came from.

    Attributes
    ----------
    source : str
        Path or a placeholder name for in-memory inputs.
    rgb : numpy.ndarray or None
        ``(H, W, 3)`` uint8 RGB pixels with EXIF orientation applied, ``None`` on error.
    meta : dict
        ``width``, ``height`` (as stored in the file), ``mode``, ``format``,
        ``file_size`` (bytes), ``orientation`` and ``exif_*`` tags when present.
    error : str or None
        Why the input could not be used; ``None`` when ``rgb`` is valid.
    sha1 : str or None
        Hex digest of the file bytes (or array bytes), used as a cache key.
    """

    source: str
    rgb: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    sha1: str | None = None
    #: per-image intermediate results shared between feature extractors (e.g. HSV)
    cache: dict[str, Any] = field(default_factory=dict, repr=False)
    #: the reduction ``rgb`` was decoded at (1 = full size)
    factor: int = 1
    #: the same image at other reductions (factor -> pixels), see :meth:`at_side`
    views: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    def release(self) -> None:
        """Drop the pixels and intermediate results (keeps source, meta and error)."""
        self.rgb = None
        self.views.clear()
        self.cache.clear()

    @property
    def ok(self) -> bool:
        return self.error is None

    def at_side(self, min_side: int) -> np.ndarray:
        """The pixels at the largest power-of-2 reduction that keeps the shorter side >= ``min_side``.

        The reduction is counted from the size stored in the file, and the pixels
        are those a decode at that reduction gives: when the loader was told every
        ``min_side`` its features need, it decoded each size from the file (JPEG:
        in the DCT domain), so a feature sees the same pixels whether it runs alone
        or beside one that needs a larger image. A size nobody announced is made
        by area-averaging the decoded pixels (cached).

        Examples
        --------
        >>> import numpy as np
        >>> img = decode_image(np.zeros((576, 768, 3), np.uint8), reduce="auto", min_side=(288, 128))
        >>> img.rgb.shape, img.at_side(128).shape
        ((288, 384, 3), (144, 192, 3))
        """
        if self.rgb is None:
            raise ValueError(f"{self.source}: no pixels ({self.error or 'not decoded'})")
        w = int(self.meta.get("width") or self.rgb.shape[1] * self.factor)
        h = int(self.meta.get("height") or self.rgb.shape[0] * self.factor)
        factor = max(auto_factor(w, h, min_side), self.factor)
        if factor == self.factor:
            return self.rgb
        if factor not in self.views:
            self.views[factor] = _reduce(self.rgb, factor // self.factor)
        return self.views[factor]


def _exif_tags(load_exif) -> dict[str, Any]:
    """The kept EXIF tags (``exif_<name>``) of what ``load_exif()`` returns (a Pillow Exif)."""
    out: dict[str, Any] = {}
    try:
        exif = load_exif()
    except Exception:  # malformed EXIF must never make an image unusable
        return out
    for tag_id, value in exif.items():
        name = ExifTags.TAGS.get(tag_id)
        if name in _EXIF_KEEP:
            if isinstance(value, bytes):
                value = value.decode("ascii", "replace").strip("\x00 ")
            elif not isinstance(value, (int, float, str)):
                value = str(value)
            out[f"exif_{name}"] = value
    return out


#: the JPEG standard's example luminance quantisation table (ITU-T T.81 Annex K.1), which libjpeg scales
#: by the quality setting (50 = as printed)
_ANNEX_K_LUMINANCE = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99], np.float64)


def jpeg_quality(img: Image.Image) -> float | None:
    """The libjpeg quality (1-100) a JPEG was saved at, estimated from its luminance quantisation table.

    libjpeg (Pillow, OpenCV, most cameras' firmware) scales the standard table by ``5000 / q`` percent
    below quality 50 and by ``200 - 2 q`` percent above; the estimate inverts that for the table's
    total, so it reads exactly for libjpeg's tables from about quality 20 up (below, entries clip at
    255) and approximately for an encoder with its own tables. None for other formats or a file without
    tables. Reads the header only.
    """
    tables = getattr(img, "quantization", None)
    if img.format not in ("JPEG", "MPO") or not tables or 0 not in tables:
        return None
    return _quality_of_table(tables[0])


def _quality_of_table(table) -> float | None:
    """:func:`jpeg_quality` of a 64-entry luminance table (any coefficient order: only its total counts)."""
    if len(table) != 64:
        return None
    scale = 100.0 * float(np.sum(table)) / _ANNEX_K_LUMINANCE.sum()  # percent of the standard table
    q = 5000.0 / scale if scale > 100 else (200.0 - scale) / 2.0
    return float(np.clip(round(q), 1, 100))


def read_metadata(img: Image.Image, file_size: int | None) -> dict[str, Any]:
    """Metadata of an opened (header-only) Pillow image, without decoding any pixels.

    EXIF comes from the header when the format keeps it there (JPEG, WebP, a PNG
    ``eXIf`` chunk before the image data) or from TIFF tags. Pillow's PNG
    ``getexif()`` decodes the whole image to look for an ``eXIf`` chunk after the
    data: that would decode before the pixel guard, and a failed decode there left a
    half-decoded image behind, so it is never called for PNG.
    """
    fmt = img.format or "UNKNOWN"
    raw = img.info.get("exif")
    if isinstance(raw, (bytes, bytearray)):
        load_exif = lambda: _load_exif(bytes(raw))  # noqa: E731
    elif fmt in ("TIFF", "MPO", "JPEG"):
        load_exif = img.getexif  # tags in the header: no pixel decode
    else:
        load_exif = Image.Exif
    return _metadata(img.width, img.height, img.mode, fmt, file_size, load_exif, jpeg_quality(img))


def _metadata(width, height, mode, fmt, file_size, load_exif, quality=None) -> dict[str, Any]:
    meta: dict[str, Any] = {"width": int(width), "height": int(height), "mode": mode, "format": fmt,
                            "file_size": file_size, "jpeg_quality": quality}
    meta.update(_exif_tags(load_exif))
    meta["orientation"] = int(meta.get("exif_Orientation", 1) or 1)
    return meta


def _load_exif(data: bytes) -> Image.Exif:
    exif = Image.Exif()
    exif.load(data)
    return exif


# Start-of-frame markers of 8-bit Huffman JPEGs (baseline, extended, progressive) and the
# other markers in the SOF range (DHT, JPG, DAC), which are not frames.
_SOF_PLAIN = {0xC0, 0xC1, 0xC2}
_NOT_SOF = {0xC4, 0xC8, 0xCC}
_XMP = b"http://ns.adobe.com/xap/1.0/\x00"


def _jpeg_header(buf: bytes) -> tuple[int, int, str, bytes | None, float | None] | None:
    """``(width, height, mode, exif, quality)`` of a plain JPEG, read from the segments before its image
    data (quality: :func:`jpeg_quality` of its luminance table).

    Reading the header is all the loader needs before the pixel guard and the
    reduced decode, and Pillow's JPEG parser (which also decodes the quantisation
    tables, byte by byte) costs about as much as the colour histograms. This reader
    is strict: a JPEG with anything Pillow would treat specially -- not 8-bit Huffman
    with 1 or 3 components, XMP (may carry the orientation), split EXIF,
    multi-picture (MPO), fill bytes, a missing size -- or a malformed segment gives
    ``None`` and Pillow reads the header instead. The metadata are the same
    either way (tested against Pillow on every JPEG in the test data).
    """
    n = len(buf)
    if not buf.startswith(b"\xff\xd8\xff"):
        return None
    pos, size, exif, luma = 2, None, None, None
    while pos + 4 <= n and buf[pos] == 0xFF:
        marker = buf[pos + 1]
        if marker == 0xDA:  # start of scan: the header is complete
            return (*size, exif, _quality_of_table(luma) if luma is not None else None) if size else None
        if marker in (0x00, 0x01, 0xFF) or 0xD0 <= marker <= 0xD9:
            return None  # fill bytes or a standalone marker before the scan: unusual
        end = pos + 2 + int.from_bytes(buf[pos + 2:pos + 4], "big")
        if end < pos + 4 or end > n:
            return None
        body = pos + 4
        if 0xC0 <= marker <= 0xCF and marker not in _NOT_SOF:
            if marker not in _SOF_PLAIN or size is not None or end - body < 6 or buf[body] != 8:
                return None
            h = int.from_bytes(buf[body + 1:body + 3], "big")
            w = int.from_bytes(buf[body + 3:body + 5], "big")
            layers = buf[body + 5]
            if layers not in (1, 3) or not w or not h:
                return None
            size = (w, h, "L" if layers == 1 else "RGB")
        elif marker == 0xE1 and buf.startswith(b"Exif\x00\x00", body):
            if exif is not None:
                return None
            exif = buf[body:end]
        elif marker == 0xDB:  # quantisation tables: (precision << 4 | id) then 64 entries of 1 or 2 bytes each
            t = body
            while t < end:
                wide, ident = buf[t] >> 4, buf[t] & 0x0F
                step = 128 if wide else 64
                if wide > 1 or t + 1 + step > end:
                    return None
                if ident == 0:
                    raw = np.frombuffer(buf, np.uint8, step, t + 1)
                    luma = raw.view(">u2") if wide else raw
                t += 1 + step
        elif (marker == 0xE1 and buf.startswith(_XMP, body)) or (marker == 0xE2 and buf.startswith(b"MPF\x00", body)):
            return None
        pos = end
    return None


def _pil_to_rgb(img: Image.Image) -> np.ndarray:
    """Full Pillow decode of any mode to RGB uint8, orientation applied."""
    img = ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr8 = np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(arr8[..., None], 3, axis=2))
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        arr8 = np.zeros(arr.shape, np.uint8) if hi <= lo else ((arr - lo) / (hi - lo) * 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(arr8[..., None], 3, axis=2))
    if img.mode in ("P", "PA"):
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA"):
        # composite on black, as OpenCV's IMREAD_COLOR would drop alpha
        img = img.convert("RGBA")
        bg = Image.new("RGBA", img.size, (0, 0, 0, 255))
        img = Image.alpha_composite(bg, img)
    return np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))


def _array_to_rgb(arr: np.ndarray, source: str) -> np.ndarray:
    if not isinstance(arr, np.ndarray):
        raise ImageLoadError(source, f"unsupported input type {type(arr).__name__}")
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4) or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageLoadError(source, f"array of shape {arr.shape} is not an image (expected HxW, HxWx1, HxWx3 or HxWx4)")
    if arr.dtype == np.uint16:
        arr = (arr.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    elif arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise ImageLoadError(source, "float array contains NaN or inf")
        scale = 255.0 if arr.max() <= 1.0 else 1.0
        arr = np.clip(arr * scale + 0.5, 0, 255).astype(np.uint8)
    elif arr.dtype != np.uint8:
        raise ImageLoadError(source, f"unsupported array dtype {arr.dtype}")
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif arr.shape[2] == 4:
        arr = arr[..., :3]
    return np.ascontiguousarray(arr)


def _reduce(rgb: np.ndarray, reduce: int) -> np.ndarray:
    if reduce <= 1:
        return rgb
    h, w = rgb.shape[:2]
    size = (max(1, -(-w // reduce)), max(1, -(-h // reduce)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def _looks_truncated(fmt: str, buf: bytes) -> str | None:
    if fmt == "JPEG" and buf.rfind(b"\xff\xd9") == -1:
        return "truncated JPEG (no end-of-image marker)"
    if fmt == "PNG" and buf.rfind(b"IEND") == -1:
        return "truncated PNG (no IEND chunk)"
    return None


def decode_image(
    src: str | os.PathLike | bytes | np.ndarray,
    *,
    name: str | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    reduce: int | str = 1,
    min_side: int | Sequence[int] = DEFAULT_MIN_SIDE,
    with_hash: bool = True,
) -> DecodedImage:
    """Decode one input to RGB uint8; never raises for bad *content*.

    Parameters
    ----------
    src : path, bytes or numpy.ndarray
        A file path, the encoded bytes of an image file, or an ``HxW[xC]`` array
        (arrays are taken as RGB; uint16 and float arrays are scaled to uint8).
    name : str, optional
        Name used in error records for in-memory inputs.
    max_pixels : int or None
        Refuse images whose header claims more pixels than this
        (decompression-bomb guard). ``None`` disables the guard.
    reduce : {1, 2, 4, 8, "auto"}
        Decode at 1/reduce of the size. JPEGs are reduced in the DCT domain by
        OpenCV, which is much faster than a full decode. ``"auto"`` picks the
        largest power of 2 that keeps the shorter side >= ``min_side`` (read from the
        header before decoding), so every image of one camera gets the same factor.
    min_side : int or sequence of int
        Smallest shorter side that ``reduce="auto"`` keeps. With several (one per
        feature that will read the image), ``rgb`` is decoded for the largest and
        each smaller size is decoded too (JPEG: in the DCT domain, from the same
        bytes) into ``views``, for :meth:`DecodedImage.at_side`.
    with_hash : bool
        Compute the SHA-1 of the input bytes (feature-cache key).

    Returns
    -------
    DecodedImage
        With ``error`` set (and ``rgb`` None) when the input cannot be used.

    Examples
    --------
    >>> import numpy as np
    >>> decode_image(np.zeros((4, 5, 3), np.uint8)).rgb.shape
    (4, 5, 3)
    >>> decode_image(b"", name="empty.jpg").error
    'zero bytes'
    """
    if reduce not in (1, 2, 4, 8, "auto"):
        raise ValueError(f"reduce must be 1, 2, 4, 8 or 'auto', got {reduce!r}")
    _factors(1, 1, "auto", min_side)  # validates min_side before any input is read
    if isinstance(src, np.ndarray):
        source = name or "<array>"
        try:
            full = _array_to_rgb(src, source)
        except ImageLoadError as exc:
            return DecodedImage(source, error=exc.reason)
        meta = {"width": int(src.shape[1]), "height": int(src.shape[0]), "mode": "array",
                "format": "ARRAY", "file_size": int(src.nbytes), "orientation": 1}
        digest = hashlib.sha1(np.ascontiguousarray(src).tobytes()).hexdigest() if with_hash else None
        factors = _factors(full.shape[1], full.shape[0], reduce, min_side)
        return _with_views(DecodedImage(source, meta=meta, sha1=digest), {f: _reduce(full, f) for f in factors})

    if isinstance(src, (bytes, bytearray, memoryview)):
        source = name or "<bytes>"
        buf = bytes(src)
    elif isinstance(src, (str, os.PathLike)):
        source = name or os.fspath(src)
        buf, why = read_file(src)
        if why:
            return DecodedImage(source, error=why)
    else:
        return DecodedImage(name or repr(src)[:60], error=f"unsupported input type {type(src).__name__}")
    return _decode_buffer(buf, source, max_pixels, reduce, min_side, with_hash)


#: larger files are refused before they are read (no image a camera writes comes near it)
MAX_FILE_BYTES = 1 << 30


def read_file(path: str | os.PathLike) -> tuple[bytes | None, str | None]:
    """``(bytes, None)``, or ``(None, reason)`` for a path that is not a readable regular file.

    Only regular files are opened: a FIFO would block forever and ``/dev/zero`` would be
    read until memory runs out. Files over ``MAX_FILE_BYTES`` are refused unread.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None, "file not found (broken symbolic link)" if os.path.islink(path) else "file not found"
    except OSError as exc:
        return None, f"cannot read file: {exc.strerror or exc}"
    if stat.S_ISDIR(st.st_mode):
        return None, "is a directory, not an image file"
    if not stat.S_ISREG(st.st_mode):
        kind = "FIFO" if stat.S_ISFIFO(st.st_mode) else "device" if (stat.S_ISCHR(st.st_mode) or
                                                                    stat.S_ISBLK(st.st_mode)) else "socket"
        return None, f"not a regular file ({kind})"
    if st.st_size > MAX_FILE_BYTES:
        return None, f"file too large: {st.st_size:,} bytes > {MAX_FILE_BYTES:,}"
    try:
        with open(path, "rb") as fh:
            return fh.read(), None
    except OSError as exc:
        return None, f"cannot read file: {exc.strerror or exc}"


def auto_factor(w: int, h: int, min_side: int) -> int:
    """Largest power of 2 that keeps the shorter side of a ``w x h`` image >= ``min_side`` (at least 1).

    >>> auto_factor(768, 576, 128), auto_factor(768, 576, 288), auto_factor(100, 80, 256)
    (4, 2, 1)
    """
    f = 1
    while min(w, h) // (f * 2) >= min_side:
        f *= 2
    return f


def _factors(w: int, h: int, reduce, min_side) -> list[int]:
    """Reductions to decode, the one for ``rgb`` (smallest) first."""
    if reduce != "auto":
        return [int(reduce)]
    sides = [min_side] if isinstance(min_side, (int, np.integer)) else list(min_side)
    if not sides or min(sides) < 1:
        raise ValueError(f"min_side must be a positive int or a non-empty sequence of them, got {min_side!r}")
    return sorted({auto_factor(w, h, int(s)) for s in sides})


def _with_views(out: DecodedImage, pixels: dict[int, np.ndarray]) -> DecodedImage:
    factors = sorted(pixels)
    out.factor, out.rgb = factors[0], pixels[factors[0]]
    out.views = {f: pixels[f] for f in factors[1:]}
    return out


def _imdecode_rgb(data: np.ndarray, reduce: int) -> np.ndarray | None:
    """OpenCV decode to 3-channel RGB at 1/``reduce`` size (JPEG: in the DCT domain); None if it fails."""
    flag = _REDUCED_FLAGS[reduce]
    if _IMREAD_RGB is not None:
        rgb = cv2.imdecode(data, (flag & ~cv2.IMREAD_COLOR) | _IMREAD_RGB)
    else:  # pragma: no cover - OpenCV < 4.10
        bgr = cv2.imdecode(data, flag)
        rgb = None if bgr is None or bgr.ndim != 3 else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    return rgb if rgb is not None and rgb.ndim == 3 else None


def _decode_pixels(buf: bytes, fmt: str, mode: str, img: Image.Image | None,
                   factors: list[int]) -> dict[int, np.ndarray]:
    """RGB pixels of an encoded image at each reduction factor.

    JPEG: one OpenCV decode per factor, reduced in the DCT domain (up to 1/8, area
    averaging beyond). Other OpenCV formats: one full decode, area-reduced. What
    OpenCV cannot decode (or decodes wrongly: CMYK, 16-bit, TIFF...) goes to Pillow
    (``img``, the header-opened image, or opened here when the header was read
    without Pillow).
    """
    if fmt in _CV2_FORMATS and mode in _CV2_MODES:
        data = np.frombuffer(buf, np.uint8)
        if fmt == "JPEG":
            out = {}
            for f in factors:
                dct = min(f, 8)
                rgb = _imdecode_rgb(data, dct)
                if rgb is None:
                    break
                out[f] = _reduce(rgb, f // dct)
            else:
                return out
        else:
            full = _imdecode_rgb(data, 1)
            if full is not None:
                return {f: _reduce(full, f) for f in factors}
        img = None  # OpenCV failed: a fresh Pillow decode decides (and raises on damage)
    with _pil_open(buf) if img is None else contextlib.nullcontext(img) as pil:
        pil.load()
        full = _pil_to_rgb(pil)
    return {f: _reduce(full, f) for f in factors}


def _pil_open(buf: bytes) -> Image.Image:
    """Pillow image of ``buf``, header only (no pixels until ``.load()``).

    Our own ``max_pixels`` guard replaces Pillow's decompression-bomb warning (its
    hard limit still applies).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(io.BytesIO(buf))


def _decode_buffer(buf: bytes, source: str, max_pixels: int | None, reduce, min_side: int,
                   with_hash: bool) -> DecodedImage:
    digest = hashlib.sha1(buf).hexdigest() if with_hash else None
    if digest and reduce != "auto":
        # the sha1 keys feature caches: a file decoded at a fixed reduction gives other pixels at a feature's
        # working size (area-averaged) than "auto" (decoded there, a JPEG in the DCT domain), so the key says so
        digest = hashlib.sha1(f"{digest}|reduce={reduce}".encode()).hexdigest()
    out = DecodedImage(source, sha1=digest)
    if len(buf) == 0:
        out.error = "zero bytes"
        return out
    try:
        jpeg = _jpeg_header(buf)
        if jpeg is not None:
            w, h, mode, exif, quality = jpeg
            out.meta = _metadata(w, h, mode, "JPEG", len(buf), (lambda: _load_exif(exif)) if exif else Image.Exif,
                                 quality)
            img = None
        else:
            img = _pil_open(buf)
            out.meta = read_metadata(img, len(buf))
            w, h = img.size
        with img or contextlib.nullcontext():
            if max_pixels is not None and w * h > max_pixels:
                out.error = (f"too many pixels: {w}x{h} = {w * h:,} > max_pixels={max_pixels:,} "
                             "(raise max_pixels if this image is expected)")
                return out
            trunc = _looks_truncated(out.meta["format"], buf)
            if trunc:
                out.error = trunc
                return out
            pixels = _decode_pixels(buf, out.meta["format"], out.meta["mode"], img, _factors(w, h, reduce, min_side))
    except UnidentifiedImageError:
        out.error = "not an image (unrecognised file format)"
        return out
    except Image.DecompressionBombError as exc:
        out.error = f"too many pixels (refused by Pillow's decompression-bomb limit): {exc}"
        return out
    except (OSError, ValueError, SyntaxError) as exc:
        msg = str(exc) or type(exc).__name__
        out.error = f"corrupt or truncated image: {msg}" if "truncat" not in msg else msg
        return out
    except Exception as exc:  # any decoder bug must become a record, not a crash
        out.error = f"cannot decode: {type(exc).__name__}: {exc}"
        return out
    bad = next((p.shape for p in pixels.values() if p.ndim != 3 or p.shape[2] != 3 or p.size == 0), None)
    if bad is not None:
        out.error = f"unsupported pixel layout {bad}"
        return out
    return _with_views(out, {f: np.ascontiguousarray(p) for f, p in pixels.items()})
