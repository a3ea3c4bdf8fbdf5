"""Append-only JSON-lines records: each measurement is flushed to disk as soon as it exists,
so killing a sweep loses nothing already measured and a rerun resumes."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Iterator


def _clean(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class JsonlStore:
    def __init__(self, path: Path, key: str):
        self.path = Path(path)
        self.key = key
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._index: dict[str, dict] = {rec[key]: rec for rec in self._read()}

    def _read(self) -> Iterator[dict]:
        if not self.path.exists():
            return
        with self.path.open() as fh:
            for line in fh:
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by a kill: drop it, it gets remeasured

    def __contains__(self, key: str) -> bool:
        return key in self._index

    def __getitem__(self, key: str) -> dict:
        return self._index[key]

    def __len__(self) -> int:
        return len(self._index)

    def values(self) -> list[dict]:
        return list(self._index.values())

    def append(self, record: dict) -> None:
        record = {k: _clean(v) for k, v in record.items()}
        with self.path.open("a") as fh:
            fh.write(json.dumps(record, default=str) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self._index[record[self.key]] = record
