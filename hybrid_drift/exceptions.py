"""Exceptions raised by hybrid_drift.

Every error that concerns one input names that input, so a user with a folder of
10,000 files can find the one that failed.
"""

from sklearn.exceptions import NotFittedError

__all__ = ["ImageLoadError", "ModelFormatError", "BackboneUnavailableError", "NotFittedError"]


class ImageLoadError(ValueError):
    """An input could not be turned into an RGB image.

    Attributes
    ----------
    source : str
        The path (or ``<bytes #i>`` / ``<array #i>``) that failed.
    reason : str
        A short, human readable reason, e.g. ``"zero bytes"``.
    """

    def __init__(self, source: str, reason: str):
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: {reason}")


class ModelFormatError(ValueError):
    """A saved model directory is missing, corrupted or from an incompatible version."""


class BackboneUnavailableError(RuntimeError):
    """The requested CNN backbone or its weights cannot be had on this machine."""
