"""Everything one emulator instance holds, stored on the aiohttp application."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from emulator.config import EmulatorConfig
from emulator.faults import FaultBook
from emulator.ratelimit import SlidingWindowLimit
from emulator.storage_objects import ObjectStore
from emulator.storage_uploads import UploadBook
from emulator.store import ModelStore
from emulator.stream_stamps import StreamStamps
from emulator.tokens import TokenBook
from emulator.vertex_store import VertexStore

Clock = Callable[[], float]


@dataclass
class EmulatorState:
    """The mutable state of one emulator, plus its configuration and clock.

    Attributes:
        config: the settings it was created with.
        clock: returns the current time, epoch seconds (injected so tests control time).
        tokens: issued access tokens.
        models: the tuned models and their operations.
        faults: pending injected faults.
        rate_limit: the request quota (``config.rate_limit_rps``) and its counts.
        requests: request counts keyed ``"<METHOD> <route name>"``.
        user_projects: authenticated API requests per ``x-goog-user-project`` header value.
        objects: the emulated Cloud Storage's objects (bodies in files until cleanup).
        vertex: the Vertex AI tuning jobs (with their models and endpoints).
        uploads: the Cloud Storage resumable upload sessions (their bytes are in ``objects``'
            directory, as unfinished bodies).
        stream_stamps: when each chunk of the streams a ``stamp_chunks`` rule applied to
            was sent (``emulator.stream_stamps``).
    """

    config: EmulatorConfig
    clock: Clock
    tokens: TokenBook
    models: ModelStore = field(default_factory=ModelStore)
    faults: FaultBook = field(default_factory=FaultBook)
    rate_limit: SlidingWindowLimit = field(default_factory=lambda: SlidingWindowLimit(0))
    requests: Counter[str] = field(default_factory=Counter)
    user_projects: Counter[str] = field(default_factory=Counter)
    objects: ObjectStore = field(default_factory=ObjectStore)
    vertex: VertexStore = field(default_factory=VertexStore)
    uploads: UploadBook = field(default_factory=UploadBook)
    stream_stamps: StreamStamps = field(default_factory=StreamStamps)

    @classmethod
    def create(cls, config: EmulatorConfig, clock: Clock) -> EmulatorState:
        """A fresh state: no models, no tokens, the configured faults pending."""
        tokens = TokenBook(config.grants, config.token_ttl_s)
        faults = FaultBook(config.faults)
        limit = SlidingWindowLimit(config.rate_limit_rps)
        return cls(config, clock, tokens, faults=faults, rate_limit=limit)


STATE = web.AppKey("emulator_state", EmulatorState)


def state_of(request: web.Request) -> EmulatorState:
    """The state of the emulator serving ``request``."""
    return request.app[STATE]
