"""``python -m hybrid_drift.cli`` = ``hybrid-drift``."""

import sys

from . import main

sys.exit(main())
