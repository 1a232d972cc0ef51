"""Files that are mounted secrets, read again when they change, without a restart.

Kubernetes updates a mounted Secret by swapping a symlink, so the file's identity
(device, inode), size or modification time changes. `ReloadingFile.current()` looks at
most once per `check_interval_s`, on use (no background task), and parses the file again
only when one of those changed.

A file that was good and then changed into one that does not load (a typo, a bad
rotation) or disappeared fails closed: `current()` raises `SecurityFileUnusable` until
the next version loads, so a tenant removed by the broken edit is not kept admitted
and a stale key ring does not go on sealing. `ok` tells health and metrics (the API
reports NOT_SERVING and `tuning_security_file_ok{file=...}` drops to 0). A file that
cannot be loaded at start stops the process instead (the callers' `watch`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

from core.errors import SecurityFileUnusable

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_CHECK_INTERVAL_S = 1.0

FileVersion = tuple[int, int, int, int]
"""(device, inode, size, mtime in ns): what changes when a file is replaced or written."""


def file_version(path: Path) -> FileVersion | None:
    """The file's version, or None if it cannot be looked at now."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns


class ReloadingFile(Generic[T]):
    """The parsed content of a file that may change while the process runs."""

    def __init__(
        self,
        path: Path,
        load: Callable[[Path], T],
        *,
        check_interval_s: float = DEFAULT_CHECK_INTERVAL_S,
        monotonic: Callable[[], float] = time.monotonic,
        name: str = "",
    ) -> None:
        """Load `path` now with `load` (which raises OSError or ValueError on a bad file).

        `name` ("tenants", "encryption keys") says which file in errors shown to callers,
        which never carry its path or content."""
        self._path = path
        self._name = name or path.name
        self._broken: str | None = None
        self._load = load
        self._check_interval_s = check_interval_s
        self._monotonic = monotonic
        self._version = file_version(path)
        self._value = load(path)
        self._checked_s = monotonic()

    @property
    def path(self) -> Path:
        return self._path

    @property
    def name(self) -> str:
        return self._name

    @property
    def ok(self) -> bool:
        """False while the file's latest version does not load (no look at the file)."""
        return self._broken is None

    def check(self) -> bool:
        """Look at the file if the interval has passed; whether it is usable now."""
        self._look_if_due()
        return self.ok

    def current(self) -> T:
        """The file's value; SecurityFileUnusable while its latest version does not load.

        The file is looked at if the interval has passed."""
        self._look_if_due()
        return self._usable()

    def _look_if_due(self) -> None:
        now_s = self._monotonic()
        if now_s - self._checked_s >= self._check_interval_s:
            self._checked_s = now_s
            self._reload_if_changed()

    def _usable(self) -> T:
        if self._broken is not None:
            raise SecurityFileUnusable(
                f"the {self._name} file of this replica changed into one that cannot be "
                f"loaded ({self._broken}); what needs it is refused until operators fix it"
            )
        return self._value

    def reread(self) -> T:
        """Look at the file now, whatever the interval, and answer the latest value.

        For a caller that missed something (an unknown name) and can afford a stat."""
        self._checked_s = self._monotonic()
        self._reload_if_changed()
        return self._usable()

    def _reload_if_changed(self) -> None:
        version = file_version(self._path)
        if version == self._version:
            return
        self._version = version
        if version is None:
            self._fail("it is missing or cannot be looked at", "")
            return
        try:
            self._value = self._load(self._path)
        except (OSError, ValueError) as exc:
            self._fail(
                f"it does not load: {type(exc).__name__}", f"changed but cannot be loaded: {exc}"
            )
            return
        if self._broken is not None:
            log.warning("%s is usable again: service resumes", self._path)
        self._broken = None
        log.info("%s changed: reloaded", self._path)

    def _fail(self, why: str, detail: str) -> None:
        """Refuse the value from now on; `why` may be shown to callers, `detail` only logged."""
        self._broken = why
        log.error("%s %s; failing closed until it is fixed", self._path, detail or why)
