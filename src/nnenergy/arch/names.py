"""The name scheme of the architecture space: a name holds the generator version and the seed, so the
name alone rebuilds the model (`nnenergy.arch.build.spec_from_name`).

- `gen1_s000123` (`_u10` when the uniform share is not 25%): a generated architecture;
- `var1_ResNet_s000017`: a variant of a keras.applications family;
- `ker1_s000005`: a single kernel (`nnenergy.arch.kernels`);
- `seq1_s000005`: a single kernel of sequence work (`nnenergy.arch.seqkernels`: attention, LayerNorm,
  GELU MLP, embedding, LSTM, GRU). A family of its own rather than `ker2_`: the number after the prefix
  is the generator's version everywhere, and seeds of `ker1_` must keep naming the kernels measured.
"""

from __future__ import annotations

import re

from nnenergy.arch.spec import GENERATOR_VERSION, check_version

GEN_NAME = re.compile(r"^gen(\d+)_s(\d+)(?:_u(\d+))?$")
VAR_NAME = re.compile(r"^var(\d+)_([A-Za-z0-9]+)_s(\d+)$")
KER_NAME = re.compile(r"^ker(\d+)_s(\d+)$")
SEQ_NAME = re.compile(r"^seq(\d+)_s(\d+)$")


def generated_name(seed: int, uniform_share: float = 0.25) -> str:
    tail = "" if uniform_share == 0.25 else f"_u{int(round(uniform_share * 100))}"
    return f"gen{GENERATOR_VERSION}_s{seed:06d}{tail}"


def variant_name(family: str, seed: int) -> str:
    return f"var{GENERATOR_VERSION}_{family}_s{seed:06d}"


def kernel_name(seed: int) -> str:
    return f"ker{GENERATOR_VERSION}_s{seed:06d}"


def seq_kernel_name(seed: int) -> str:
    return f"seq{GENERATOR_VERSION}_s{seed:06d}"


def is_generated_name(name: str) -> bool:
    """True for names of this scheme (`gen1_s000123`, `var1_ResNet_s000017`, kernels `ker1_s000005` and
    `seq1_s000005`), of any version."""
    return bool(GEN_NAME.match(name) or VAR_NAME.match(name) or KER_NAME.match(name) or SEQ_NAME.match(name))


def cycled_kind(seed_or_name: int | str, pattern: re.Pattern, kinds: tuple[str, ...]) -> str | None:
    """The kind of a seed, or of a name `pattern` matches (its group 2 is the seed); None for other
    names. Kinds cycle with the seed, so a run of seeds covers them evenly and a kind's seeds are known
    without building anything (adaptive resampling picks seeds by kind)."""
    if isinstance(seed_or_name, str):
        m = pattern.match(seed_or_name)
        if not m:
            return None
        seed_or_name = int(m.group(2))
    return kinds[seed_or_name % len(kinds)]


def seeded_spec_from_name(name: str, pattern: re.Pattern, what: str, sample):
    """`sample(seed)` for a name `pattern` matches (group 1 the generator version, group 2 the seed), once
    its version is checked to be this generator's; a one-line ValueError naming `what` for another name.
    The kernel families' parser (`ker1_s000005`, `seq1_s000005`)."""
    m = pattern.match(name)
    if not m:
        form = pattern.pattern.strip("^$").replace(r"(\d+)", "<v>", 1).replace(r"(\d+)", "<seed>", 1)
        example = form.replace("<v>", str(GENERATOR_VERSION)).replace("<seed>", "000005")
        raise ValueError(f"{name!r} is not a {what} name ({form}, e.g. {example})")
    check_version(int(m[1]), f"{what} {name!r}")
    return sample(int(m[2]))
