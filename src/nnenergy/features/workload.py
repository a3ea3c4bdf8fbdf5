"""What kind of sequence work a configuration holds, read from its layer table: the one place that
decides which rows of an evaluation level are "transformer" or "recurrent" rows.

- `transformer`: any attention row, i.e. a layer of kind `attention` (MultiHeadAttention, Attention,
  AdditiveAttention) or a traced product of two activations (a `describe_ops` matmul/einsum row with no
  weights and two data inputs: the scores and weighted values of a keras-hub attention);
- `recurrent`: any LSTM/GRU/SimpleRNN/Bidirectional row, or a row traced inside one. A traced row does not
  record the type it came from, so it is recognised by its layer's name: a name part Keras gives a
  recurrent layer by default (`lstm`, `gru_1`, `bidirectional/forward_lstm`) or ending in one (the
  generated space's `b0_lstm`). A user's recurrent layer renamed to `encoder` is not recognised (this
  only labels evaluation rows; pricing never reads it);
- `other` (convolutional or dense work). A configuration holding both attention and a recurrence counts
  as `transformer`.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from nnenergy.features.layer_features import kind_of
from nnenergy.layer_info import RECURRENT_TYPES as _LOOPS

TRANSFORMER, RECURRENT, OTHER = "transformer", "recurrent", "other"
WORKLOADS = (TRANSFORMER, RECURRENT, OTHER)
# The loops `describe_traced` traces, and the convolutional recurrences (described as single rows).
RECURRENT_TYPES = _LOOPS | {"ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D"}
_ACTIVATION_PRODUCT = re.compile(r'"op":\s*"(MatMul|BatchMatMul|BatchMatMulV2|BatchMatMulV3|Einsum)"')
_RECURRENT_NAME = re.compile(r"(?:^|[/_])(?:lstm|gru|simple_rnn|bidirectional|conv_lstm[123]d)(?:_\d+)?(?:/|$)",
                             re.IGNORECASE)


def _attention_rows(layers: pd.DataFrame) -> np.ndarray:
    types = layers["layer_type"].astype(str)
    of_kind = types.map(kind_of).eq("attention").to_numpy()
    candidates = ((layers["params"].to_numpy(float) == 0) & (layers["n_inputs"].to_numpy(float) >= 2)
                  & (types == "Dense").to_numpy())
    traced = np.zeros(len(layers), dtype=bool)
    if candidates.any():
        configs = layers["layer_config"].to_numpy(dtype=object)[candidates]
        traced[candidates] = [isinstance(c, str) and bool(_ACTIVATION_PRODUCT.search(c)) for c in configs]
    return of_kind | traced


def _recurrent_rows(layers: pd.DataFrame) -> np.ndarray:
    by_type = layers["layer_type"].astype(str).isin(RECURRENT_TYPES).to_numpy()
    by_name = layers["layer_name"].astype(str).str.contains(_RECURRENT_NAME).to_numpy()
    return by_type | by_name


def workload_of(layers: pd.DataFrame) -> pd.Series:
    """config_id -> `transformer`, `recurrent` or `other`, for every configuration of a layer table."""
    if not len(layers):
        return pd.Series(dtype=object, name="workload")
    cid = layers["config_id"].to_numpy(dtype=object)
    attention = pd.Series(_attention_rows(layers)).groupby(cid).any()
    recurrent = pd.Series(_recurrent_rows(layers)).groupby(cid).any()
    out = pd.Series(OTHER, index=attention.index, dtype=object, name="workload")
    out[recurrent.reindex(out.index).to_numpy()] = RECURRENT
    out[attention.to_numpy()] = TRANSFORMER
    return out
