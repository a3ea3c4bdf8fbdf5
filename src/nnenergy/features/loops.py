"""The recurrent loops of a configuration, read from its layer features: what the loop term of a layer-wise
predictor (`nnenergy.learn.loops`) prices.

`describe` traces a recurrent layer (LSTM, GRU, SimpleRNN, each direction of a Bidirectional) into its ops
(`describe_ops`): Keras runs the cell once outside the loop to learn its output's shape, which gives rows
named `<layer>/<cell>/<op>` (`lstm/lstm_cell/MatMul`) at one step's size, and the loop's body gives rows
`<layer>/<op>` (`lstm/MatMul`) that carry the steps as a leading dimension. So a loop is a prefix with a
weight product both inside a `*_cell` and directly under it, and its steps are the ratio of the two rows'
output elements. This reads the tables stored before it existed the same way, and it reads no layer's
name: a recurrent layer renamed `encoder` is found too (its cell keeps Keras' `lstm_cell` name).

The second direction of a Bidirectional layer (`<wrapper>/backward_<layer>` beside `<wrapper>/forward_<layer>`)
is flagged (`paired`): nothing orders its loop after the first's, so TensorFlow's executor may run the two
side by side, and the loop term can price what that saves.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _split(name: str) -> tuple[str, str, str]:
    """(prefix, cell, op) of `prefix/cell/op`, or (prefix, "", op) of `prefix/op`."""
    head, _, op = name.rpartition("/")
    prefix, _, last = head.rpartition("/")
    if last.endswith("_cell") and prefix:
        return prefix, last, op
    return head, "", op


def loop_rows(feats: pd.DataFrame) -> pd.DataFrame:
    """One row per recurrent loop of every configuration in `feats` (`layer_features` of a layer table):
    `config_id`, `loop` (its layer's name), `steps`, and per step `ops` (its rows outside the cell: each
    runs once a step), `weights` (parameters its products read) and `flops` (of its products, at the
    configuration's batch size), and whether it is a Bidirectional's second direction (`paired`). Empty when
    there is none."""
    cols = ["config_id", "loop", "steps", "ops", "weights", "flops"]
    none = pd.DataFrame(columns=[*cols, "paired"])
    products = feats[(feats["layer_type"].to_numpy(dtype=object) == "Dense")
                     & (feats["log_params"].to_numpy(float) > 0)
                     & feats["layer_name"].astype(str).str.contains("/", regex=False).to_numpy()]
    if not len(products):
        return none
    parts = [_split(n) for n in products["layer_name"].astype(str)]
    df = pd.DataFrame({"config_id": products["config_id"].to_numpy(dtype=object),
                       "loop": [p[0] for p in parts], "cell": [p[1] for p in parts], "op": [p[2] for p in parts],
                       "out": np.expm1(products["log_out_elems"].to_numpy(float)),
                       "params": np.expm1(products["log_params"].to_numpy(float)),
                       "flops": np.expm1(products["log_flops"].to_numpy(float))})
    cell, body = df[df["cell"] != ""], df[df["cell"] == ""]
    both = cell.merge(body, on=["config_id", "loop", "op"], suffixes=("_cell", "_body"))
    if not len(both):
        return none
    both["steps"] = np.rint(both["out_body"] / np.maximum(both["out_cell"], 1.0))
    per_loop = both.groupby(["config_id", "loop"], sort=False).agg(
        steps=("steps", "max"), weights=("params_cell", "sum"), flops=("flops_cell", "sum")).reset_index()
    every = [_split(n) for n in feats["layer_name"].astype(str)]
    ops = pd.DataFrame({"config_id": feats["config_id"].to_numpy(dtype=object), "loop": [p[0] for p in every],
                        "cell": [p[1] for p in every]})
    ops = ops[ops["cell"] == ""].groupby(["config_id", "loop"]).size().rename("ops").reset_index()
    per_loop = per_loop.merge(ops, on=["config_id", "loop"], how="left")
    per_loop = per_loop.loc[per_loop["steps"] >= 1, cols].reset_index(drop=True)
    return per_loop.assign(paired=_second_directions(per_loop))


def _second_directions(loops: pd.DataFrame) -> np.ndarray:
    """Whether each loop is a Bidirectional's `backward_` direction with its `forward_` one beside it."""
    keys = [(cid, *str(name).rpartition("/")[::2]) for cid, name in zip(loops["config_id"], loops["loop"])]
    known = set(keys)
    return np.array([last.startswith("backward_") and (cid, parent, "forward_" + last[len("backward_"):]) in known
                     for cid, parent, last in keys], dtype=bool)
