"""A spec or a name -> its Keras functional model, named like the spec. Nothing is sampled here:
`build_named("gen1_s000123")` rebuilds the same model anywhere."""

from __future__ import annotations

from nnenergy.arch.blocks import apply_blocks
from nnenergy.arch.generated import sample_spec
from nnenergy.arch.graphs import KerasGraph
from nnenergy.arch.kernels import kernel_spec_from_name
from nnenergy.arch.names import GEN_NAME, KER_NAME, SEQ_NAME, VAR_NAME
from nnenergy.arch.seqkernels import seq_kernel_spec_from_name
from nnenergy.arch.spec import ArchSpec, check_version
from nnenergy.arch.variants import sample_variant_spec


def build_spec(spec: ArchSpec):
    """The Keras model of `spec`, named `spec.name`; nothing is sampled here."""
    import keras

    check_version(spec.generator_version, f"spec {spec.name!r}")
    if spec.blocks and spec.blocks[0]["type"] == "keras_app":
        return _build_app(spec)
    inp, out = apply_blocks(KerasGraph(), spec.input_shape, spec.blocks)
    return keras.Model(inp, out, name=spec.name)


def _build_app(spec: ArchSpec):
    """Keras' own parameterised constructors, always with `weights=None` (no download)."""
    import copy

    import keras
    from keras.src.applications import densenet, efficientnet, efficientnet_v2, nasnet, resnet

    a, fam = spec.blocks[0], spec.family
    common = dict(include_top=True, weights=None, input_shape=tuple(spec.input_shape), classes=a["classes"],
                  name=spec.name)
    if fam in ("ResNet", "ResNetV2"):
        v2 = fam == "ResNetV2"

        def stack_fn(x):
            last = len(a["depths"]) - 1
            for i, (depth, f) in enumerate(zip(a["depths"], a["filters"])):
                if v2:
                    x = resnet.stack_residual_blocks_v2(x, f, depth, stride1=1 if i == last else 2, name=f"conv{i + 2}")
                    continue
                for j in range(depth):
                    x = resnet.residual_block_v1(x, f, kernel_size=a["kernel"], stride=2 if i and not j else 1,
                                                 conv_shortcut=not j, name=f"conv{i + 2}_block{j + 1}")
            return x

        return resnet.ResNet(stack_fn, v2, True, **common)
    if fam == "EfficientNet":
        return efficientnet.EfficientNet(a["width"], a["depth"], spec.input_shape[0],
                                         blocks_args=copy.deepcopy(a["blocks_args"]), **common)
    if fam == "EfficientNetV2":
        return efficientnet_v2.EfficientNetV2(a["width"], a["depth"], spec.input_shape[0],
                                              blocks_args=copy.deepcopy(a["blocks_args"]), **common)
    if fam == "DenseNet":
        return densenet.DenseNet(a["blocks"], **common)
    if fam == "NASNet":
        return nasnet.NASNet(penultimate_filters=a["penultimate_filters"], num_blocks=a["num_blocks"],
                             stem_block_filters=a["stem_block_filters"], skip_reduction=False,
                             default_size=spec.input_shape[0], **common)
    if fam == "MobileNet":
        return keras.applications.MobileNet(alpha=a["alpha"], **common)
    if fam == "MobileNetV2":
        return keras.applications.MobileNetV2(alpha=a["alpha"], **common)
    if fam == "MobileNetV3":
        ctor = getattr(keras.applications, f"MobileNetV3{a['size']}")
        return ctor(alpha=a["alpha"], minimalistic=a["minimalistic"], **common)
    raise ValueError(f"no Keras constructor for family {fam!r}")


def spec_from_name(name: str) -> ArchSpec:
    """The spec a name of the scheme (`nnenergy.arch.names`) stands for, sampled again from its seed."""
    if m := GEN_NAME.match(name):
        check_version(int(m[1]), f"model {name!r}")
        return sample_spec(int(m[2]), int(m[3]) / 100 if m[3] else 0.25)
    if m := VAR_NAME.match(name):
        check_version(int(m[1]), f"model {name!r}")
        return sample_variant_spec(m[2], int(m[3]))
    if KER_NAME.match(name):
        return kernel_spec_from_name(name)  # checks the version like the two above
    if SEQ_NAME.match(name):
        return seq_kernel_spec_from_name(name)
    raise ValueError(f"{name!r} is not a generated architecture name (gen<v>_s<seed>, var<v>_<Family>_s<seed>, "
                     "ker<v>_s<seed> or seq<v>_s<seed>)")


def build_named(name: str):
    """(model, spec) of a generated or variant name; refuses names of another generator version."""
    spec = spec_from_name(name)
    return build_spec(spec), spec
