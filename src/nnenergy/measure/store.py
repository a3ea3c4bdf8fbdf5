"""Append-only JSON-lines records: each measurement is flushed to disk as soon as it exists,
so killing a sweep loses nothing already measured and a rerun resumes."""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Iterator

log = logging.getLogger(__name__)


def _clean(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class JsonlStore:
    """Records keyed by `key`; the last record of a key wins (a retried measurement replaces a failure)."""

    def __init__(self, path: Path, key: str):
        self.path = Path(path)
        self.key = key
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair()
        self._index: dict[str, dict] = {rec[key]: rec for rec in self._read()}
        self._fh = None

    def _repair(self) -> None:
        """Cut a last line that a kill left without its newline: appending to it would glue the
        next record onto the broken one and lose both."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        with self.path.open("rb+") as fh:
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) == b"\n":
                return
            fh.seek(0)
            data = fh.read()
            keep = data.rfind(b"\n") + 1
            fh.truncate(keep)
        log.warning("%s: dropped a cut last line (%d bytes) left by an interrupted write", self.path, len(data) - keep)

    def _read(self) -> Iterator[dict]:
        if not self.path.exists():
            return
        with self.path.open() as fh:
            for n, line in enumerate(fh, 1):
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    log.warning("%s:%d is not JSON; skipped (it gets re-measured)", self.path, n)

    def __contains__(self, key: str) -> bool:
        return key in self._index

    def __getitem__(self, key: str) -> dict:
        return self._index[key]

    def __len__(self) -> int:
        return len(self._index)

    def values(self) -> list[dict]:
        return list(self._index.values())

    def append(self, record: dict, flush: bool = True) -> None:
        """Write one record; `flush=False` batches the fsync until `sync()` (many layer rows)."""
        record = {k: _clean(v) for k, v in record.items()}
        line = json.dumps(record, default=str) + "\n"
        if self._fh is None:
            self._fh = self.path.open("a")
        self._fh.write(line)
        self._index[record[self.key]] = record
        if flush:
            self.sync()

    def sync(self) -> None:
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
