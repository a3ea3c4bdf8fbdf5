"""A seeded space of Keras architectures: generated CNNs, MLPs and attention models, and variants of
`keras.applications` families, sampled from distributions fitted to the applications' own layers.

One module per job: `spec` (the spec and the generator's version), `names` (the name scheme),
`generated` and `variants` (the samplers), `kernels` (single-kernel models), `space` (the fitted prior),
`blocks` and `graphs` (blocks written once, walked on a Keras or a cost graph), `cost` (analytic cost,
Keras-constructor variants replayed), `build` (a spec or a name -> its Keras model)."""

from nnenergy.arch.build import build_named, build_spec, spec_from_name
from nnenergy.arch.cost import estimate_macs, sample_configs
from nnenergy.arch.generated import MACRO_KINDS, macro_kind, sample_spec
from nnenergy.arch.names import generated_name, is_generated_name, seq_kernel_name, variant_name
from nnenergy.arch.spec import GENERATOR_VERSION, ArchSpec
from nnenergy.arch.variants import VARIANT_FAMILIES, sample_variant_spec

__all__ = [
    "GENERATOR_VERSION", "MACRO_KINDS", "VARIANT_FAMILIES", "ArchSpec", "build_named", "build_spec", "estimate_macs",
    "generated_name", "is_generated_name", "macro_kind", "sample_configs", "sample_spec", "sample_variant_spec",
    "seq_kernel_name", "spec_from_name", "variant_name",
]
