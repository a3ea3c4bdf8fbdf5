"""Labels spread over time (`protocol.visits`): each configuration's visits, stored one at a time.

With `visits > 1` a configuration measured in a block is built and measured again in later blocks,
each at least `visit_gap_min` after its previous visit; only after its last visit does it become a
row (the geometric mean of its visits, `protocol.combine_visits`). Every visit is appended to
`progress/visits.jsonl` as soon as it is read, so a sweep killed between visits resumes where it
stopped: the visits made are kept and the others are made when due. Measure-twice checks
(`measure.remeasure`) visit the same way under the purpose `again`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime

from nnenergy.measure.protocol import Result
from nnenergy.measure.store import JsonlStore

LABEL, AGAIN = "label", "again"  # a dataset row; a measure-twice re-measure of one
VISITS_FILE = "visits.json"  # a dataset's unfinished visits (`Progress.finish`)


def _key(purpose: str, config_id: str, visit: int) -> str:
    """A visit's key in `progress/visits.jsonl`."""
    return f"{purpose}|{config_id}|{visit}"


@dataclass
class Pending:
    """A configuration between two of its visits."""

    purpose: str
    config_id: str
    arch: str  # what `zoo.build` takes, with `size`
    size: int | None
    batch: int
    made: int  # visits made so far
    last_at: datetime
    extra: dict  # for `again`: the first label it is compared with

    @property
    def key(self) -> tuple[str, str]:
        return self.purpose, self.config_id


class VisitBook:
    """The visits of a sweep's configurations not yet complete (`progress/visits.jsonl`)."""

    def __init__(self, store: JsonlStore, visits: int, gap_min: float):
        self.store, self.visits, self.gap_s = store, visits, gap_min * 60

    def add(self, purpose: str, config_id: str, arch: str, size: int | None, batch: int, result: Result,
            at: datetime, extra: dict | None = None) -> list[Result]:
        """Store one visit (flushed at once); returns all of this configuration's visits so far, in order."""
        made = self._records(purpose, config_id)
        self.store.append({"key": _key(purpose, config_id, len(made) + 1), "purpose": purpose,
                           "config_id": config_id, "visit": len(made) + 1, "at": at.isoformat(), "arch": arch,
                           "size": size, "batch": batch, "extra": extra or {}, "result": dataclasses.asdict(result)})
        return [*(Result(**r["result"]) for r in made), result]

    def _records(self, purpose: str, config_id: str) -> list[dict]:
        out = []
        while _key(purpose, config_id, len(out) + 1) in self.store:
            out.append(self.store[_key(purpose, config_id, len(out) + 1)])
        return out

    def first_at(self, purpose: str, config_id: str) -> datetime | None:
        """When a configuration's first visit was made (None: none was)."""
        key = _key(purpose, config_id, 1)
        return datetime.fromisoformat(self.store[key]["at"]) if key in self.store else None

    def results(self, purpose: str, config_id: str) -> list[Result]:
        """The visits stored for one configuration, in order."""
        return [Result(**r["result"]) for r in self._records(purpose, config_id)]

    def _made(self) -> dict[tuple[str, str], Pending]:
        out: dict[tuple[str, str], Pending] = {}
        for rec in self.store.values():
            key = rec["purpose"], rec["config_id"]
            at = datetime.fromisoformat(rec["at"])
            if key not in out:
                out[key] = Pending(rec["purpose"], rec["config_id"], rec["arch"], rec["size"], rec["batch"], 0, at,
                                   rec.get("extra") or {})
            out[key].made += 1
            out[key].last_at = max(out[key].last_at, at)
        return out

    def pending(self, exclude: set[tuple[str, str]] = frozenset()) -> list[Pending]:
        """Configurations not finished, oldest visit first: short of visits, or with all of them but no
        row or pair yet (a kill or a failure came between); `exclude`: (purpose, config id) pairs finished
        (a row, a pair) or given up."""
        left = [p for p in self._made().values() if p.key not in exclude]
        return sorted(left, key=lambda p: p.last_at)

    def due(self, now: datetime, exclude: set[tuple[str, str]] = frozenset()) -> list[Pending]:
        """Pending configurations whose last visit is at least the gap ago, or that have all their visits."""
        return [p for p in self.pending(exclude)
                if p.made >= self.visits or (now - p.last_at).total_seconds() >= self.gap_s]

    def seconds_to_next(self, now: datetime, exclude: set[tuple[str, str]] = frozenset()) -> float | None:
        """How long until the next pending visit is due (0 if one is); None when nothing is pending."""
        waits = [0.0 if p.made >= self.visits else self.gap_s - (now - p.last_at).total_seconds()
                 for p in self.pending(exclude)]
        return max(0.0, min(waits)) if waits else None
