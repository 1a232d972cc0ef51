"""When each chunk of a stamped stream left the emulator: the ``stamp_chunks`` fault knob.

A caller timing a stream through something in between (the platform's
StreamGenerateContent) cannot tell from arrival times alone whether a chunk was late
because the upstream was slow or because the middle held it. So a stream whose fault rule
says ``stamp_chunks`` records, for each chunk, the moment just before its bytes are handed
to the connection, and ``GET /_emulator/streams`` answers them. Nothing is added to the
stream itself: Google's SDKs read exactly the bytes an unstamped stream sends.

The moments are ``time.monotonic()`` seconds, on purpose not the emulator's injected clock:
on Linux that is ``CLOCK_MONOTONIC``, one clock for every process of the machine, so a
caller on the same host compares them with its own ``time.monotonic()``. Only the last
``STREAMS_KEPT`` streams are kept, each with as many stamps as it has chunks (a few tens at
most: the made-up model's answer is short, ``emulator.generate``).
"""

from __future__ import annotations

import time
from collections import deque

from emulator.errors import JsonObject

STREAMS_KEPT = 256
"""Stamped streams remembered, the oldest forgotten first."""


class StreamStamps:
    """The send moments of the last ``STREAMS_KEPT`` stamped streams, oldest first."""

    def __init__(self, kept: int = STREAMS_KEPT) -> None:
        self._streams: deque[list[float]] = deque(maxlen=kept)

    def begin(self) -> list[float]:
        """A new stream's list of stamps, to which :meth:`stamp` appends."""
        sent_s: list[float] = []
        self._streams.append(sent_s)
        return sent_s

    @staticmethod
    def stamp(sent_s: list[float]) -> None:
        """Record that a chunk of the stream is being sent now."""
        sent_s.append(time.monotonic())

    def clear(self) -> None:
        self._streams.clear()

    def listing(self) -> JsonObject:
        return {"streams": [{"sent_monotonic_s": list(s)} for s in self._streams]}
