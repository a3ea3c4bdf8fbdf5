"""A seeded space of Keras architectures: generated CNNs, MLPs and attention models, and variants of
`keras.applications` families, sampled from distributions fitted to the applications' own layers."""

from nnenergy.arch.generator import (
    GENERATOR_VERSION,
    MACRO_KINDS,
    VARIANT_FAMILIES,
    ArchSpec,
    build_named,
    build_spec,
    estimate_macs,
    generated_name,
    is_generated_name,
    macro_kind,
    sample_configs,
    sample_spec,
    sample_variant_spec,
    spec_from_name,
    variant_name,
)

__all__ = [
    "GENERATOR_VERSION", "MACRO_KINDS", "VARIANT_FAMILIES", "ArchSpec", "build_named", "build_spec", "estimate_macs",
    "generated_name", "is_generated_name", "macro_kind", "sample_configs", "sample_spec", "sample_variant_spec",
    "spec_from_name", "variant_name",
]
