"""One measuring process per host: a second one would measure the first (2 cores: seen 2x).

An advisory `flock` on a file in the system's temp folder, released by the kernel when the
holder exits (even when killed). Training and prediction never take it.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def lock_file() -> Path:
    """The host's lock file: `NNENERGY_MEASURE_LOCK`, else one in the system's temp folder. Read at each use, so
    a process may point its own measurements elsewhere after import (the test suite's workers do)."""
    return Path(os.environ.get("NNENERGY_MEASURE_LOCK", Path(tempfile.gettempdir()) / "nnenergy-measure.lock"))


class MeasurementLockError(RuntimeError):
    """Another process on this host is measuring."""


class MeasurementLock:
    """`with MeasurementLock(wait_s=0):` fails fast (or waits up to `wait_s`) while another holds it."""

    def __init__(self, wait_s: float = 0.0, path: Path | None = None):
        self.wait_s, self.path, self._fh = wait_s, Path(path) if path else lock_file(), None

    def __enter__(self) -> "MeasurementLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = self.path.open("a+")
        deadline = time.monotonic() + self.wait_s
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    fh.seek(0)
                    holder = fh.read().strip() or "unknown"
                    fh.close()
                    raise MeasurementLockError(
                        f"another process is measuring on this host ({holder}); measurements never overlap — "
                        f"wait for it, or stop it") from None
                time.sleep(1.0)
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps({"pid": os.getpid(), "cmd": " ".join(sys.argv)[:200],
                             "since": time.strftime("%Y-%m-%dT%H:%M:%S")}))
        fh.flush()
        self._fh = fh
        return self

    def __exit__(self, *exc) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None
