"""Watch live cameras: read streams, score frames, check stream health, raise alerts.

``hybrid-drift watch MODEL SOURCE [SOURCE ...]`` or :func:`watch` (an iterator of events); the reference
from the same stream: ``hybrid-drift record SOURCE FOLDER`` or :func:`record`.
"""

from .health import ALERT_KINDS, CameraHealth, HealthSettings
from .runner import WatchStats, watch
from .config import CameraSpec, read_config
from .readers import Reader, source_kind
from .record import RecordSummary, record

__all__ = ["watch", "WatchStats", "HealthSettings", "CameraHealth", "ALERT_KINDS", "CameraSpec", "Reader",
           "read_config", "source_kind", "record", "RecordSummary"]
