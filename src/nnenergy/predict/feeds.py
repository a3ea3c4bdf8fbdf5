"""Inputs of any structure: what a model is fed when it is described.

A dict- or multi-input model (a keras-hub BERT: `token_ids`, `segment_ids`, `padding_mask`, int32, of
unknown length) is described on one symbolic tensor per input, each from, in order of precedence:
`--input NAME=SHAPE[:DTYPE]` (`inputs={"token_ids": (128,)}` or `{"token_ids": ((128,), "int32")}` in
the API), the model's own input spec where it is complete, and `--seq-len N` (`seq_len=N`) for its
unknown dimensions (the sequence axis of text models). The parsing needs no TensorFlow.
"""

from __future__ import annotations

from nnenergy.predict.errors import PredictError

DTYPES = ("float32", "float16", "bfloat16", "float64", "int32", "int64", "int8", "uint8", "bool")


def parse_shape(text: str) -> tuple[int, ...]:
    """`128`, `224,224,3` or `224x224x3` -> positive integers."""
    try:
        dims = tuple(int(d) for d in str(text).replace("x", ",").split(",") if d.strip())
    except ValueError:
        raise PredictError(f"expected positive integers separated by commas, got {text!r}") from None
    if not dims or any(d <= 0 for d in dims):
        raise PredictError(f"dimensions must be positive integers, got {text!r}")
    return dims


def parse_input(text: str) -> tuple[str, tuple[int, ...], str | None]:
    """`NAME=SHAPE[:DTYPE]` (`token_ids=128:int32`, `images=224,224,3`) -> (name, shape, dtype or None)."""
    name, sep, rest = str(text).partition("=")
    if not sep or not name.strip() or not rest.strip():
        raise PredictError(f"expected NAME=SHAPE[:DTYPE] (e.g. token_ids=128:int32), got {text!r}")
    shape, _, dtype = rest.partition(":")
    dtype = dtype.strip() or None
    if dtype is not None and dtype not in DTYPES:
        raise PredictError(f"unknown dtype {dtype!r} in {text!r}: one of {', '.join(DTYPES)}")
    return name.strip(), parse_shape(shape), dtype


def normalize(inputs) -> dict[str, tuple[tuple[int, ...], str | None]]:
    """The API's and CLI's forms of `inputs` -> name -> (shape, dtype or None)."""
    if inputs is None:
        return {}
    if isinstance(inputs, (list, tuple)):  # CLI: ["token_ids=128:int32", ...]
        out = {}
        for text in inputs:
            name, shape, dtype = parse_input(text)
            out[name] = (shape, dtype)
        return out
    if not isinstance(inputs, dict):
        raise PredictError(f"inputs must be a dict of name -> shape (or (shape, dtype)), got {type(inputs).__name__}")
    out = {}
    for name, spec in inputs.items():
        if isinstance(spec, str):
            _, shape, dtype = parse_input(f"{name}={spec}")
        elif (isinstance(spec, (list, tuple)) and len(spec) == 2 and isinstance(spec[1], str)
              and isinstance(spec[0], (list, tuple, int))):
            shape, dtype = _shape_of(spec[0]), spec[1]
        else:
            shape, dtype = _shape_of(spec), None
        if dtype is not None and dtype not in DTYPES:
            raise PredictError(f"unknown dtype {dtype!r} for input {name!r}: one of {', '.join(DTYPES)}")
        out[str(name)] = (tuple(shape), dtype)
    return out


def _shape_of(value) -> tuple[int, ...]:
    return parse_shape(",".join(map(str, value if isinstance(value, (list, tuple)) else [value])))


def check(inputs, seq_len) -> None:
    """The arguments alone, in milliseconds (no Keras)."""
    normalize(inputs)
    if seq_len is not None and (isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len <= 0):
        raise PredictError(f"sequence length must be a positive integer, got {seq_len!r}")


def input_names(km) -> list[str]:
    """The name of each of `km.inputs`, in order: the key of a dict input, else its InputLayer's name."""
    struct = getattr(km, "_inputs_struct", None)
    if isinstance(struct, dict):
        by_id = {id(t): str(k) for k, t in struct.items()}
        return [by_id.get(id(t), t.name) for t in km.inputs]
    return [t.name for t in km.inputs]


def structured(km) -> bool:
    """True for a model fed through `feeds` rather than one `--input-shape` (several inputs)."""
    return len(km.inputs) > 1


def feed(km, inputs=None, seq_len: int | None = None) -> list:
    """One KerasTensor per `km.inputs` (batch dimension unknown), or raise `PredictError` naming the
    input whose shape is still unknown or a name the model does not have."""
    import keras

    wanted = normalize(inputs)
    names = input_names(km)
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        raise PredictError(f"the model has no input {unknown[0]!r}: its inputs are {', '.join(names)}")
    out = []
    for name, x in zip(names, km.inputs):
        own = tuple(x.shape[1:])
        shape, dtype = wanted.get(name, (None, None))
        if shape is not None and len(shape) != len(own):
            raise PredictError(f"input {name!r} takes {len(own)} dimension(s) {own}, got {shape}")
        if shape is not None and any(o is not None and o != s for o, s in zip(own, shape)):
            raise PredictError(f"input {name!r} takes shape {own}, got {shape}")
        shape = shape or tuple(d if d is not None else seq_len for d in own)
        if any(d is None for d in shape):
            raise PredictError(f"input {name!r} has unknown dimensions {own}: pass --input {name}=SHAPE "
                               "(inputs={...}) or --seq-len N (seq_len=N)")
        out.append(keras.Input(shape=shape, dtype=dtype or x.dtype, name=name, batch_size=None))
    return out


def describe_inputs(feeds: list, names: list[str]) -> dict:
    """name -> {"shape": [...], "dtype": ...} of what a model was described on."""
    return {n: {"shape": [int(d) for d in x.shape[1:]], "dtype": str(x.dtype)} for n, x in zip(names, feeds)}
