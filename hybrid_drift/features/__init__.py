"""Feature extractors: per-image HSB histograms and CNN embeddings (plus a content cache)."""

from .cache import FeatureCache, cache_info, clear_cache, default_cache_dir
from .cnn import BackboneSpec, Embedder, available_backbones, register_backbone
from .colour import STAT_NAMES, ColourFeatures

__all__ = ["ColourFeatures", "STAT_NAMES", "Embedder", "BackboneSpec", "register_backbone",
           "available_backbones", "FeatureCache", "default_cache_dir", "cache_info", "clear_cache"]
