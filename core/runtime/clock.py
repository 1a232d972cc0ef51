"""Time as a dependency: every class that needs the time takes a `Clock`."""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], float]
"""Returns seconds since the epoch, like `time.time`."""

system_clock: Clock = time.time
