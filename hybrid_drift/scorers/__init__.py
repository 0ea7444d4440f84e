"""Scorers: fit on normal features, one score per image (higher = stranger). No torch here."""

from .base import SCORERS, BaseScorer, scorer_from_state
from .cells import CellScorer, RangeScorer
from .distances import DISTANCES
from .histogram import HistogramScorer
from .minmax import MinMaxScorer
from .patch import PatchPCAScorer
from .pca import PCAReconstructionScorer
from .shift import ShiftScorer, TearScorer

__all__ = ["BaseScorer", "SCORERS", "scorer_from_state", "DISTANCES", "HistogramScorer",
           "MinMaxScorer", "PCAReconstructionScorer", "CellScorer", "RangeScorer",
           "ShiftScorer", "TearScorer", "PatchPCAScorer"]
