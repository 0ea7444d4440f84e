"""Batch-level drift monitoring: profiles, statistics, calibrated alerts over time."""

from .drift import HSB_FEATURES, DriftMonitor, semantic_distances
from .profile import (FEATURE_TRANSFORMS, BatchProfile, Brightness, Compose, Hue, Resize, Saturation,
                      profile_images, register_feature)
from .stats import NUMERIC_STATS, chi2_categorical, ks, mmd_permutation, numeric_stat, psi

__all__ = ["DriftMonitor", "HSB_FEATURES", "semantic_distances", "BatchProfile", "profile_images",
           "register_feature", "FEATURE_TRANSFORMS", "Resize", "Hue", "Saturation", "Brightness", "Compose",
           "NUMERIC_STATS", "numeric_stat", "ks", "psi", "chi2_categorical", "mmd_permutation"]
