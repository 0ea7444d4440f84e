"""Detector branches: a feature extractor paired with a scorer, with the scorer's verbs on images.

* :mod:`.base` — the contract every branch implements (:class:`Branch`) and the registry used
  to rebuild saved branches without pickle;
* :mod:`.params` — each class's parameter-constraints table, checked in one place;
* :mod:`.colour` — :class:`ColourBranch` (HSB histograms) and :class:`MinMaxBranch` (baseline);
* :mod:`.cnn` — :class:`CNNBranch` (pretrained embedding → PCA reconstruction error);
* :mod:`.shift` — :class:`ShiftBranch` (has the camera moved: phase correlation against the
  reference's median picture; a default branch);
* :mod:`.local` — :class:`LightBranch` (global light against the reference's range: one of the
  default detector's branches) and the opt-in :class:`LocalBranch` (strangest cell).
"""

from .base import BRANCHES, Branch
from .cnn import CNNBranch
from .colour import ColourBranch, MinMaxBranch
from .local import LightBranch, LocalBranch
from .shift import ShiftBranch

#: the default detector's branches, in column order; each class's ``default_name`` is also the
#: :class:`~hybrid_drift.HybridDetector` argument that gives, replaces (an instance) or drops it (False)
DEFAULT_BRANCHES = (ColourBranch, CNNBranch, LightBranch, ShiftBranch)

__all__ = ["Branch", "ColourBranch", "CNNBranch", "MinMaxBranch", "LocalBranch", "LightBranch", "ShiftBranch",
           "BRANCHES", "DEFAULT_BRANCHES"]
