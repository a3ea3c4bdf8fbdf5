"""Built and compiled models kept between a configuration's visits within one sweep run.

Each visit (`measure.visits`) used to build, compile and trace its model again: about 1.4 s per
architecture on the Xeon, half of a visit's cost beside its ~1 s of windows. A model kept from its
first visit is measured again without that (a compiled `tf.function` survives `clear_session`). The
cache holds at most `max_mb` of weights; a model that does not fit is rebuilt at its next visit, as
before. A label's visits and its measure-twice re-measure are kept apart
(`purpose` is part of the key), so a re-measure still starts from a model built afresh.

What does not fit is not kept; nothing kept is pushed out for it. Every configuration comes back after
the same gap, so the model used longest ago is the one needed soonest: least-recently-used eviction
throws out exactly the next model wanted (a 37-minute Xeon run whose models in flight outgrew the
budget built 355 models for 61 visits made with a kept one). Kept models leave when no open visit
needs them (`keep_only`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass
class Compiled:
    built: object  # zoo.BuiltModel
    fn: Callable  # backend.compile_model(built.model, built.input_shape)
    nbytes: int


Key = tuple  # (purpose, arch, size)


class ModelCache:
    def __init__(self, max_mb: float):
        self.max_bytes = max_mb * 2**20
        self._items: dict[Key, Compiled] = {}
        self.hits = self.misses = 0

    def get(self, key: Key, make: Callable[[], tuple[object, Callable]]) -> Compiled:
        """The kept model under `key`, or `make()`'s (built, compiled fn), kept if it fits beside the others."""
        if key in self._items:
            self.hits += 1
            return self._items[key]
        self.misses += 1
        built, fn = make()
        item = Compiled(built, fn, 4 * int(built.model.count_params()))  # float32 weights
        self.put(key, item)
        return item

    def put(self, key: Key, item: Compiled) -> None:
        others = self.nbytes - (self._items[key].nbytes if key in self._items else 0)
        if self.max_bytes <= 0 or others + item.nbytes > self.max_bytes:
            return
        self._items[key] = item

    @property
    def nbytes(self) -> int:
        return sum(i.nbytes for i in self._items.values())

    def keep_only(self, keys: Iterable[Key]) -> None:
        """Drop every model no open visit needs."""
        wanted = set(keys)
        for key in [k for k in self._items if k not in wanted]:
            del self._items[key]

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: Key) -> bool:
        return key in self._items
