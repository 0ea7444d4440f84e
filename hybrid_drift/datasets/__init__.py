"""Labelled outlier datasets: the manifest format and the bundled crossroad set."""

from .crossroad import CrossroadConfig, bundled_data_dir, make_crossroad
from .manifest import REQUIRED_COLUMNS, SPLITS, Dataset, read_manifest

__all__ = ["Dataset", "read_manifest", "REQUIRED_COLUMNS", "SPLITS", "make_crossroad", "CrossroadConfig",
           "bundled_data_dir"]
