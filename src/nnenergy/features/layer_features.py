"""Feature extraction per layer kind.

The report's 13 layer kinds (dense, convolutional, pooling, input, padding, normalization,
activation, rescaling, reshape, dropout, add, multiply, concatenate) plus the other kinds
found in `keras.applications` (depthwise convolution, global pooling, layer scale; separable
convolutions join the convolutions, flagged `separable`) and attention. Each kind uses the report's
features plus analytic FLOPs and memory traffic. A type outside every kind maps to `other` and is
predicted by the generic fallback regressor.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from nnenergy.features.units import UNIT_FLAGS, kernel_units
from nnenergy.layer_info import CUSTOM_SCALE_FLOPS_PER_ELEMENT

_TYPE_TO_KIND = {
    "Dense": "dense", "EinsumDense": "dense",
    "Conv1D": "conv", "Conv2D": "conv", "Conv3D": "conv", "Conv2DTranspose": "conv",
    "DepthwiseConv2D": "depthwise_conv", "DepthwiseConv1D": "depthwise_conv",
    # Separable convolutions occur in only two families (Xception, NASNet): pooled with the
    # convolutions (flagged `separable`), they borrow from many more shapes than alone.
    "SeparableConv2D": "conv", "SeparableConv1D": "conv",
    "MaxPooling2D": "pooling", "AveragePooling2D": "pooling", "MaxPooling1D": "pooling",
    "AveragePooling1D": "pooling", "MaxPooling3D": "pooling", "AveragePooling3D": "pooling",
    "GlobalAveragePooling2D": "global_pooling", "GlobalMaxPooling2D": "global_pooling",
    "GlobalAveragePooling1D": "global_pooling", "GlobalMaxPooling1D": "global_pooling",
    "InputLayer": "input",
    "ZeroPadding2D": "padding", "ZeroPadding1D": "padding", "Cropping2D": "padding",
    "BatchNormalization": "normalization", "LayerNormalization": "normalization",
    "Normalization": "normalization", "GroupNormalization": "normalization",
    "Activation": "activation", "ReLU": "activation", "Softmax": "activation",
    "LeakyReLU": "activation", "ELU": "activation", "PReLU": "activation",
    "Rescaling": "rescaling",
    "Reshape": "reshape", "Flatten": "reshape", "Permute": "reshape",
    "tf.ReverseV2": "reshape",  # a Bidirectional's backward direction reverses its sequence: a copy, as Permute
    "Dropout": "dropout", "SpatialDropout2D": "dropout", "GaussianDropout": "dropout",
    "Add": "add", "Subtract": "add", "Average": "add", "Maximum": "add", "Minimum": "add",
    "Multiply": "multiply",
    # InceptionResNetV2's residual scaling, `inputs[0] + inputs[1] * scale`: a two-input elementwise add. As
    # a kind of its own ("other") only that family had rows of it, and held out it was priced at 4.2x its cost.
    "CustomScaleLayer": "add",
    "Concatenate": "concatenate",
    "LayerScale": "layer_scale",
    # Types keras.applications never uses (see UNMEASURED_TYPES), each under the measured kind nearest
    # in what dominates its cost: recurrent and attention layers are matrix products ("dense");
    # convolutional recurrences, transposed and 3D convolutions are convolutions; a gather
    # (Embedding) and nearest-neighbour upsampling copy their input into a larger output, as
    # padding does; 3D pooling and unit normalisation join their 2D and normalisation kinds.
    "LSTM": "dense", "GRU": "dense", "SimpleRNN": "dense", "Bidirectional": "dense",
    "Dot": "dense",
    # Attention has a kind of its own: the generated architectures (ViT-style blocks) measure
    # MultiHeadAttention, as they measure Conv2DTranspose and UpSampling2D.
    "MultiHeadAttention": "attention", "Attention": "attention", "AdditiveAttention": "attention",
    "ConvLSTM1D": "conv", "ConvLSTM2D": "conv", "ConvLSTM3D": "conv",
    "Conv1DTranspose": "conv", "Conv3DTranspose": "conv",
    "Embedding": "padding", "ReversibleEmbedding": "padding",
    "UpSampling1D": "padding", "UpSampling2D": "padding", "UpSampling3D": "padding",
    "ZeroPadding3D": "padding", "Cropping1D": "padding", "Cropping3D": "padding",
    "GlobalAveragePooling3D": "global_pooling", "GlobalMaxPooling3D": "global_pooling",
    "UnitNormalization": "normalization",
    "SpatialDropout1D": "dropout", "SpatialDropout3D": "dropout", "AlphaDropout": "dropout",
    "GaussianNoise": "dropout",
}
# Layer types keras.applications never uses: a predictor trained on applications only has no row of
# their own type and predicts them from the nearest kind, although their computation differs in kind
# from every type it measured, so `nnenergy predict` warns about them. Elementwise variants
# (Subtract, LeakyReLU, ...), 1D forms of 2D operations and inference-time identities (dropouts)
# are not listed. Only predictors that do not record the types they trained on use this list: the
# others (metadata `layer_types`) decide from that, and one trained on `space` has measured
# MultiHeadAttention, Conv2DTranspose and UpSampling2D in its generated architectures.
UNMEASURED_TYPES: set[str] = {
    "LSTM", "GRU", "SimpleRNN", "Bidirectional", "MultiHeadAttention", "Attention", "AdditiveAttention", "Dot",
    "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose", "Conv3D",
    "Embedding", "ReversibleEmbedding", "UpSampling1D", "UpSampling2D", "UpSampling3D", "ZeroPadding3D", "Cropping3D",
    "MaxPooling3D", "AveragePooling3D", "GlobalAveragePooling3D", "GlobalMaxPooling3D", "UnitNormalization",
}
LAYER_KINDS = sorted(set(_TYPE_TO_KIND.values()))
_COMPUTE_KINDS = {"dense", "conv", "depthwise_conv"}
# Codes are positions: append, never insert (a predictor's trees split on them).
_ACTIVATIONS = ["linear", "relu", "relu6", "swish", "silu", "sigmoid", "hard_sigmoid", "hard_swish",
                "hard_silu", "softmax", "tanh", "gelu", "elu", "leaky_relu", "prelu"]
# Activation layers whose config names no activation: their type does.
_LAYER_ACTIVATIONS = {"Softmax": "softmax", "LeakyReLU": "leaky_relu", "ELU": "elu", "PReLU": "prelu"}
# Of how features are computed from a table, beyond the tables above (part of the feature cache's key):
# 2 = `fused_activation` and the activation layers' codes (2026-12-07).
FEATURES_VERSION = 2

COMMON = ["batch_size", "log_flops", "log_in_elems", "log_out_elems", "log_mem_bytes", "log_intensity",
          "model_n_layers", "after_compute", "before_norm", "before_activation"]
# Sizes checked against the training range of a layer's kind (log features: 0.1 = 10% beyond).
RANGE_FEATURES = ["log_flops", "log_in_elems", "log_out_elems", "log_mem_bytes"]
_SPATIAL_IN = ["in_h", "in_w", "in_c"]
_SPATIAL_OUT = ["out_h", "out_w", "out_c"]
# The activation a unit's head runs fused with its kernel (a follower layer's: conv -> BN -> ReLU), coded as
# `activation` (0: none fused, or a linear one); a head's own `activation` is its config's. Without it a BN+ReLU
# kernel was priced as the mean of BN+swish, BN+gelu, ... in the generated space (+45% on DenseNet's and
# ResNetV2's pre-activation BN+ReLU units, held out; docs/measurement.md, "Twelfth study session").
UNIT_FEATURES = UNIT_FLAGS + ["fused_activation"]
KIND_FEATURES = {
    "dense": COMMON + ["in_c", "units", "log_params", "activation", "use_bias"] + UNIT_FEATURES,
    # `group_width` (input channels per group): a channel-wise Conv2D(groups=C) costs ~90x a dense conv per FLOP
    # on the Xeon, a ResNeXt/RegNet one with 4-16 channels per group ~6x; `groups` alone cannot tell them apart.
    "conv": COMMON + _SPATIAL_IN + _SPATIAL_OUT + ["filters", "kernel_area", "stride", "groups", "group_width",
                                                  "padding_same", "dilation", "activation", "use_bias", "log_params",
                                                  "separable"] + UNIT_FEATURES,
    "depthwise_conv": COMMON + _SPATIAL_IN + _SPATIAL_OUT + ["kernel_area", "stride", "padding_same",
                                                            "activation", "use_bias"] + UNIT_FEATURES,
    "pooling": COMMON + _SPATIAL_IN + _SPATIAL_OUT + ["pool_area", "stride", "padding_same", "is_max"],
    "global_pooling": COMMON + _SPATIAL_IN + ["is_max", "keepdims"],
    "input": COMMON + _SPATIAL_IN,
    "padding": COMMON + _SPATIAL_IN + _SPATIAL_OUT + ["pad_total"],
    "normalization": COMMON + _SPATIAL_IN + ["norm_type", "log_params"] + UNIT_FEATURES,
    "activation": COMMON + _SPATIAL_IN + ["activation"],
    "rescaling": COMMON + _SPATIAL_IN,
    "reshape": COMMON + _SPATIAL_IN + ["out_ndim"],
    "dropout": COMMON + _SPATIAL_IN + ["rate"],
    "add": COMMON + _SPATIAL_OUT + ["n_inputs"],
    "multiply": COMMON + _SPATIAL_OUT + ["n_inputs", "broadcast"],
    "concatenate": COMMON + _SPATIAL_OUT + ["n_inputs"],
    "layer_scale": COMMON + _SPATIAL_IN,
    "attention": COMMON + _SPATIAL_IN + ["n_inputs", "log_params"],  # tokens (h*w) x width (c), heads in params
    "other": COMMON + _SPATIAL_IN + _SPATIAL_OUT + ["n_inputs", "log_params"],
}
ALL_FEATURES = sorted({f for cols in KIND_FEATURES.values() for f in cols})
# Added after predictors were pickled: those store the columns they were trained on, older pickles lack them.
NEWER_FEATURES = ("group_width", "fused_activation")  # 2026-12-07, 2026-12-07 (session 16)


def kind_of(layer_type: str) -> str:
    return _TYPE_TO_KIND.get(layer_type, "other")


def _hwc(shape: list) -> tuple[float, float, float]:
    dims = [max(int(d), 1) for d in shape] or [1]
    if len(dims) >= 3:
        return float(dims[-3]), float(dims[-2]), float(dims[-1])
    if len(dims) == 2:
        return 1.0, float(dims[0]), float(dims[1])
    return 1.0, 1.0, float(dims[0])


def _first(v, default=1):
    if isinstance(v, (list, tuple)):
        return v[0] if v else default
    return default if v is None else v


def _activation_code(cfg: dict, layer_type: str) -> float:
    name = cfg.get("activation")
    if layer_type == "ReLU":
        name = "relu6" if cfg.get("max_value") == 6 else "relu"
    elif layer_type in _LAYER_ACTIVATIONS:
        name = _LAYER_ACTIVATIONS[layer_type]
    if isinstance(name, dict):  # a serialized function or layer: its config names it, or is its name
        inner = name.get("config")
        name = (inner.get("name") if isinstance(inner, dict) else inner) or name.get("class_name")
    name = str(name or "linear").lower().rsplit(">", 1)[-1]  # `keras_hub>gelu_approximate` -> `gelu_approximate`
    if name not in _ACTIVATIONS:  # a variant of a listed one (gelu_approximate, relu_6) counts as it
        name = next((a for a in sorted(_ACTIVATIONS, key=len, reverse=True) if a in name), name)
    return float(_ACTIVATIONS.index(name)) if name in _ACTIVATIONS else float(len(_ACTIVATIONS))


def _config_features(layer_type: str, cfg: dict, in_shapes: list, out_shape: list) -> dict:
    k = cfg.get("kernel_size") or cfg.get("pool_size")
    k = list(k) if isinstance(k, (list, tuple)) else ([k] if k else [1])
    strides = cfg.get("strides") or k
    pad = cfg.get("padding")
    pad_total = 0.0
    if layer_type.startswith("ZeroPadding") or layer_type.startswith("Cropping"):
        flat = np.array(pad if pad is not None else cfg.get("cropping", 0), dtype=object).ravel()
        pad_total = float(sum(float(np.sum(p)) for p in flat))
    norm_types = {"BatchNormalization": 0.0, "LayerNormalization": 1.0, "GroupNormalization": 2.0}
    first_in = in_shapes[0] if in_shapes else []
    return {
        "units": float(cfg.get("units") or 0),
        "filters": float(cfg.get("filters") or 0),
        "kernel_area": float(math.prod(int(x) for x in k)),
        "pool_area": float(math.prod(int(x) for x in k)),
        "stride": float(_first(strides, 1) or 1),
        "groups": float(cfg.get("groups") or 1),
        "dilation": float(_first(cfg.get("dilation_rate"), 1) or 1),
        "padding_same": 1.0 if pad == "same" else 0.0,
        "pad_total": pad_total,
        "activation": _activation_code(cfg, layer_type),
        "use_bias": 1.0 if cfg.get("use_bias") else 0.0,
        "is_max": 1.0 if "Max" in layer_type else 0.0,
        "keepdims": 1.0 if cfg.get("keepdims") else 0.0,
        "norm_type": norm_types.get(layer_type, 3.0),
        "rate": float(cfg.get("rate") or 0.0),
        "out_ndim": float(len(out_shape)),
        "broadcast": 1.0 if len({tuple(s) for s in in_shapes}) > 1 else 0.0,
        "separable": 1.0 if layer_type.startswith("SeparableConv") else 0.0,
        "_first_in": first_in,
    }


_PARSED = ["units", "filters", "kernel_area", "pool_area", "stride", "groups", "dilation", "padding_same", "pad_total",
           "activation", "use_bias", "is_max", "keepdims", "norm_type", "rate", "out_ndim", "broadcast", "separable",
           "in_h", "in_w", "in_c", "out_h", "out_w", "out_c"]


def _parse_row(layer_type: str, cfg_json, ins_json: str, out_json: str) -> tuple:
    """The `_PARSED` features of one layer row (config and shapes, from their JSON)."""
    cfg = json.loads(cfg_json) if isinstance(cfg_json, str) else {}
    ins, out = json.loads(ins_json), json.loads(out_json)
    f = _config_features(layer_type, cfg, ins, out)
    f["in_h"], f["in_w"], f["in_c"] = _hwc(f.pop("_first_in"))
    f["out_h"], f["out_w"], f["out_c"] = _hwc(out)
    return tuple(f[k] for k in _PARSED)


def _neighbour_kinds(kinds: np.ndarray, codes: np.ndarray, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kind of the previous and next layer of the same model in topological order."""
    k, c = kinds[order], codes[order]
    prev, nxt = np.empty_like(k), np.empty_like(k)
    prev[0:1], nxt[-1:] = "input", "output"
    same = c[1:] == c[:-1]
    prev[1:] = np.where(same, k[:-1], "input")
    nxt[:-1] = np.where(same, k[1:], "output")
    out_prev, out_next = np.empty_like(k), np.empty_like(k)
    out_prev[order], out_next[order] = prev, nxt
    return out_prev, out_next


def layer_features(layers: pd.DataFrame) -> pd.DataFrame:
    """Numeric features for each row of a layers table (dataset rows or `nnenergy.describe.describe_layers`),
    in row order.

    Array-first on purpose: this is most of the prediction step (features -> per-kind regressors
    -> sums), so each row's JSON is parsed once per distinct (type, config, shapes) and columns
    are built as arrays, with one DataFrame at the end.
    """
    df = layers.reset_index(drop=True)
    n = len(df)
    types = df["layer_type"].to_numpy(dtype=object)
    parsed = np.empty((n, len(_PARSED)))
    cache: dict = {}
    for i, key in enumerate(zip(types, df["layer_config"].to_numpy(dtype=object),
                                df["input_shapes"].to_numpy(dtype=object), df["output_shape"].to_numpy(dtype=object))):
        row = cache.get(key)
        if row is None:
            row = cache[key] = _parse_row(*key)
        parsed[i] = row
    cols: dict[str, np.ndarray] = dict(zip(_PARSED, parsed.T))
    cols["group_width"] = cols["in_c"] / np.maximum(cols["groups"], 1.0)
    kinds = np.array([_TYPE_TO_KIND.get(t, "other") for t in types], dtype=object)
    codes, _ = pd.factorize(df["config_id"].to_numpy(dtype=object))
    index = df["layer_index"].to_numpy()
    order = np.lexsort((index, codes))
    prev_kind, next_kind = _neighbour_kinds(kinds, codes, order) if n else (kinds, kinds)
    cols["batch_size"] = df["batch_size"].to_numpy(dtype=float)
    for col in ("flops", "in_elems", "out_elems", "mem_bytes", "params"):
        cols[f"log_{col}"] = np.log1p(np.clip(df[col].to_numpy(dtype=float), 0, None))
    # Rows described before `describe` counted a CustomScaleLayer's FLOPs (a multiply and an add per element)
    unscaled = (types == "CustomScaleLayer") & (cols["log_flops"] == 0)
    cols["log_flops"][unscaled] = np.log1p(CUSTOM_SCALE_FLOPS_PER_ELEMENT * np.expm1(cols["log_out_elems"][unscaled]))
    cols["n_inputs"] = df["n_inputs"].to_numpy(dtype=float)
    cols["model_n_layers"] = np.bincount(codes)[codes].astype(float) if n else np.zeros(0)
    # Neighbours in topological order: oneDNN fuses a convolution with the normalisation and
    # activation that follow it, so in context their cost moves into the convolution.
    cols["after_compute"] = np.isin(prev_kind, list(_COMPUTE_KINDS)).astype(float)
    cols["before_norm"] = (next_kind == "normalization").astype(float)
    cols["before_activation"] = (next_kind == "activation").astype(float)
    cols["log_intensity"] = cols["log_flops"] - cols["log_mem_bytes"]  # FLOPs per byte moved
    units = kernel_units(df)  # the layers fused into one kernel (features.units)
    for flag in UNIT_FLAGS:
        cols[flag] = units[flag].to_numpy(dtype=float)
    act_row = units["fused_act_row"].to_numpy()
    cols["fused_activation"] = np.where(act_row >= 0, cols["activation"][np.maximum(act_row, 0)], 0.0)
    out = {c: df[c].to_numpy() for c in ("config_id", "layer_index", "layer_name", "layer_type")}
    out |= {"kind": kinds, "known": kinds != "other", "unit_index": units["unit_index"].to_numpy(dtype=float)}
    out |= {f: cols[f] for f in ALL_FEATURES}
    return pd.DataFrame(out)
