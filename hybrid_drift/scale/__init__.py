"""Scale out: score and fit on a cluster (Ray), in resumable parts.

:mod:`~hybrid_drift.scale.parts` (job folders, atomic parts, manifest, resume) needs no
extra package; :mod:`~hybrid_drift.scale.ray_engine` needs ``pip install 'hybrid-drift[ray]'``.
"""

from .parts import JobMismatchError, ScoreJob, read_results

__all__ = ["JobMismatchError", "ScoreJob", "read_results"]
