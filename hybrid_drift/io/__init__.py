"""Image input: decoding, metadata, per-file error records, folders and videos."""

from .decode import DEFAULT_MAX_PIXELS, DEFAULT_MIN_SIDE, DecodedImage, decode_image
from .loader import LoadSettings, default_workers, load_images
from .sources import (IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, InputItem, expand_inputs,
                      iter_video_frames, list_images)

__all__ = ["DEFAULT_MAX_PIXELS", "DEFAULT_MIN_SIDE", "DecodedImage", "decode_image", "load_images", "default_workers", "LoadSettings",
           "IMAGE_EXTENSIONS", "VIDEO_EXTENSIONS", "InputItem", "expand_inputs",
           "iter_video_frames", "list_images"]
