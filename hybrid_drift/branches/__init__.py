"""Detector branches: a feature extractor paired with a scorer, with the scorer's verbs on images.

* :mod:`.base` — the contract every branch implements (:class:`Branch`) and the registry used
  to rebuild saved branches without pickle;
* :mod:`.params` — each class's parameter-constraints table, checked in one place;
* :mod:`.colour` — :class:`ColourBranch` (HSB histograms) and :class:`MinMaxBranch` (baseline);
* :mod:`.cnn` — :class:`CNNBranch` (pretrained embedding → PCA reconstruction error);
* :mod:`.local` — :class:`LightBranch` (global light against the reference's range: one of the
  default detector's three branches) and the opt-in :class:`LocalBranch` (strangest cell).
"""

from .base import BRANCHES, Branch
from .cnn import CNNBranch
from .colour import ColourBranch, MinMaxBranch
from .local import LightBranch, LocalBranch

__all__ = ["Branch", "ColourBranch", "CNNBranch", "MinMaxBranch", "LocalBranch", "LightBranch", "BRANCHES"]
