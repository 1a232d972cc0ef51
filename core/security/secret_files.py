"""Files that are mounted secrets, read again when they change, without a restart.

Kubernetes updates a mounted Secret by swapping a symlink, so the file's identity
(device, inode), size or modification time changes. `ReloadingFile.current()` looks at
most once per `check_interval_s`, on use (no background task), and parses the file again
only when one of those changed. A new version that fails to parse (a half-written file,
a typo) is logged and the previous value stays in force: a bad edit must not lock every
caller out. The next change to the file is tried again.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

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
    ) -> None:
        """Load `path` now with `load` (which raises OSError or ValueError on a bad file)."""
        self._path = path
        self._load = load
        self._check_interval_s = check_interval_s
        self._monotonic = monotonic
        self._version = file_version(path)
        self._value = load(path)
        self._checked_s = monotonic()

    @property
    def path(self) -> Path:
        return self._path

    def current(self) -> T:
        """The latest value that parsed; the file is looked at if the interval has passed."""
        now_s = self._monotonic()
        if now_s - self._checked_s >= self._check_interval_s:
            self._checked_s = now_s
            self._reload_if_changed()
        return self._value

    def reread(self) -> T:
        """Look at the file now, whatever the interval, and answer the latest value.

        For a caller that missed something (an unknown name) and can afford a stat."""
        self._checked_s = self._monotonic()
        self._reload_if_changed()
        return self._value

    def _reload_if_changed(self) -> None:
        version = file_version(self._path)
        if version == self._version:
            return
        self._version = version
        if version is None:
            log.error("%s cannot be read; keeping its previous content", self._path)
            return
        try:
            self._value = self._load(self._path)
        except (OSError, ValueError) as exc:
            log.error(
                "%s changed but cannot be loaded (%s); keeping its previous content",
                self._path,
                exc,
            )
            return
        log.info("%s changed: reloaded", self._path)
