"""An architecture's spec and the generator's version.

A spec holds everything sampled (macro kind, input shape, every block's parameters), so building it
draws nothing, and the generator's version is in every spec and name: a model of another version would
build differently, so it is refused instead of rebuilt wrong.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

GENERATOR_VERSION = 1
MIN_MACS, MAX_MACS = 1e5, 3e9  # ~0.3 ms (call overhead) to ~300 ms per pass at batch 1 on 2 cores
MIN_LAYERS, MAX_LAYERS = 8, 250
MACS_PER_S = 40e9  # effective MAC/s of 2 cores (ResNet50 128 px b2: 2.7 GMAC in 53 ms on the EPYC)
ATTEMPTS = 200  # draws before a sampler gives up on a seed


@dataclass
class ArchSpec:
    generator_version: int
    seed: int
    kind: str  # a macro kind of MACRO_KINDS, or "variant"
    family: str  # "generated", or the keras.applications family of a variant
    input_shape: list[int]
    blocks: list[dict]
    name: str
    uniform_share: float = 0.25

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ArchSpec:
        return cls(**json.loads(text))


def check_version(version: int, what: str) -> None:
    if version != GENERATOR_VERSION:
        raise ValueError(f"{what} comes from generator version {version}; this is version {GENERATOR_VERSION}, "
                         "which would build a different model (use the nnenergy release that made it)")
