"""hybrid_drift: find drifted and outlier images in fixed-camera image streams.

Two branches score every image — a cheap colour (HSB histogram) branch and an
expensive CNN-embedding + PCA-reconstruction branch — and a fusion layer combines
them. Scores follow one convention everywhere: higher = stranger.
"""

import logging as _logging

from ._version import __version__
from .branches import (Branch, CNNBranch, ColourBranch, LightBranch, LocalBranch, MinMaxBranch, PatchBranch,
                       ShiftBranch, BandBranch, FlatBranch, TearBranch)
from .calibration import Calibration, CalibrationRule, choose_threshold
from .detector import HybridDetector
from .exceptions import BackboneUnavailableError, ImageLoadError, ModelFormatError, NotFittedError
from .explain import Explanation
from .fusion import LogisticFusion, OrFusion
from .io import decode_image, expand_inputs, list_images, load_images
from .pipeline import Extracted, extract
from .runtime import Runtime

_logging.getLogger(__name__).addHandler(_logging.NullHandler())

__all__ = ["__version__", "HybridDetector", "Runtime", "Branch", "ColourBranch", "CNNBranch", "MinMaxBranch", "LocalBranch",
           "LightBranch",
           "ShiftBranch", "PatchBranch", "BandBranch", "FlatBranch", "TearBranch",
           "OrFusion", "LogisticFusion", "choose_threshold", "Calibration", "CalibrationRule", "Explanation", "decode_image", "expand_inputs",
           "list_images", "load_images", "extract", "Extracted", "ImageLoadError", "ModelFormatError",
           "BackboneUnavailableError", "NotFittedError"]
