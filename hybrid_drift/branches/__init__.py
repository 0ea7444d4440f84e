"""Detector branches: a feature extractor paired with a scorer, with the scorer's verbs on images.

* :mod:`.base` — the contract every branch implements (:class:`Branch`) and the registry used
  to rebuild saved branches without pickle;
* :mod:`.params` — each class's parameter-constraints table, checked in one place;
* :mod:`.colour` — :class:`ColourBranch` (HSB histograms) and :class:`MinMaxBranch` (baseline);
* :mod:`.cnn` — :class:`CNNBranch` (pretrained embedding → PCA reconstruction error);
* :mod:`.shift` — :class:`ShiftBranch` (has the camera moved: phase correlation against the
  reference's median picture) and :class:`TearBranch` (is part of the picture displaced sideways: a
  torn frame); both default branches;
* :mod:`.patch` — :class:`PatchBranch` (where in the picture: position-free PCA of the CNN's
  mid-level map, sharing the CNN branch's pass);
* :mod:`.bands` — :class:`BandBranch` (a row-aligned fault across the frame: dead rows, a
  half-decoded frame, an overlay bar) and :class:`FlatBranch` (a row flat from edge to edge: dead or stuck rows);
  both default branches;
* :mod:`.local` — :class:`LightBranch` (global light against the reference's range: one of the
  default detector's branches) and the opt-in :class:`LocalBranch` (strangest cell).
"""

from .base import BRANCHES, Branch
from .bands import BandBranch, FlatBranch
from .cnn import CNNBranch
from .colour import ColourBranch, MinMaxBranch
from .local import LightBranch, LocalBranch
from .patch import PatchBranch
from .shift import ShiftBranch, TearBranch

#: the default detector's branches, in column order; each class's ``default_name`` is also the
#: :class:`~hybrid_drift.HybridDetector` argument that gives, replaces (an instance) or drops it (False);
#: left at None, each slot gets ``cls.default_beside(the branches before it)`` (the patch branch follows
#: the CNN branch's network, and is not built without one)
DEFAULT_BRANCHES = (ColourBranch, CNNBranch, LightBranch, ShiftBranch, PatchBranch, BandBranch, FlatBranch,
                    TearBranch)

__all__ = ["Branch", "ColourBranch", "CNNBranch", "MinMaxBranch", "LocalBranch", "LightBranch", "ShiftBranch", "PatchBranch",
           "BandBranch", "FlatBranch", "TearBranch",
           "BRANCHES", "DEFAULT_BRANCHES"]
