"""A layer as it occurs in one model (`LayerInfo`): what `describe` and the traced describers share, in
a module of its own so that they import it without importing each other."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

# InceptionResNetV2's `CustomScaleLayer`, inputs[0] + inputs[1] * scale: a multiply and an add per element
# (`describe` counts it so; rows described before it did get it when their features are built).
CUSTOM_SCALE_FLOPS_PER_ELEMENT = 2

Shape = tuple[int, ...]

# Layer types that run a loop of small steps: `describe_traced` traces them op by op, and
# `features.workload` calls a configuration holding one "recurrent".
RECURRENT_TYPES = frozenset({"LSTM", "GRU", "SimpleRNN", "RNN", "Bidirectional", "LSTMCell", "GRUCell",
                             "SimpleRNNCell"})

# Keys that name or bookkeep a layer without changing what it computes.
_IGNORED_CONFIG_KEYS = {"name", "trainable"}


@dataclass(frozen=True)
class LayerInfo:
    """A layer as it occurs in one model: its shapes exclude the batch dimension."""

    index: int
    name: str
    type: str
    config: dict
    input_shapes: list[Shape]
    output_shape: Shape
    dtype: str
    params: int
    inbound: tuple[str, ...] = ()  # flattened names of the layers whose outputs it reads (the graph's edges)

    @property
    def config_json(self) -> str:
        cfg = {k: v for k, v in self.config.items() if k not in _IGNORED_CONFIG_KEYS}
        return json.dumps(cfg, sort_keys=True, default=str)

    def signature(self, batch_size: int, hardware_id: str) -> str:
        """Same type + config (name aside) + input shapes + batch + hardware -> same cost."""
        key = json.dumps(
            [self.type, self.config_json, [list(s) for s in self.input_shapes], batch_size, hardware_id]
        )
        return hashlib.sha1(key.encode()).hexdigest()[:16]
