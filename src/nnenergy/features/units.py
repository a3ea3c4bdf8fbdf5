"""Kernel units: a layer together with the layers oneDNN fuses into its kernel.

On CPU, TensorFlow's graph rewriter fuses a convolution or matrix product with the bias add,
batch normalisation, residual addition and activation that follow it (`_FusedConv2D`,
`_FusedMatMul`), and a zero padding into the convolution it feeds. The fused kernel carries
the name of the *last* op of the chain, so the profiler attributes the whole kernel's time to
the activation or the `Add` layer while the convolution shows ~0 (seen in the data: VGG-style
conv+ReLU, ResNetV2's conv+Add). Learned per layer, "a convolution costs nothing when a ReLU
follows it" then breaks every family held out. Learned per *unit* (head + its fused
followers, target = their summed in-context cost) the split inside a kernel no longer matters.

Grouping is safe even where the runtime did not actually fuse: a unit's target is the sum of
its members' measured costs, so only granularity is lost. The chain follows the real graph
(`inbound_layers`, written by `describe`) where the layer table has it, else topological
neighbours whose shapes connect.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

# Layers that start a kernel others may fuse into.
HEAD_TYPES = {"Conv1D", "Conv2D", "Conv3D", "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D",
              "SeparableConv2D", "Conv1DTranspose", "Conv2DTranspose", "Dense", "EinsumDense",
              "BatchNormalization"}
# Follower type -> its role in the chain; each role at most once, in this order.
FOLLOWER_ROLES = {"BatchNormalization": "norm", "Add": "add", "Activation": "act", "ReLU": "act",
                  "LeakyReLU": "act", "ELU": "act", "PReLU": "act"}
_ROLE_ORDER = {"norm": 0, "add": 1, "act": 2}
PAD_TYPES = {"ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D"}
# Identities at inference (no op runs): absorbed into the chain wherever they occur.
PASS_TYPES = {"Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianDropout",
              "GaussianNoise", "AlphaDropout"}
UNIT_FLAGS = ["fused_pad", "fused_norm", "fused_add", "fused_act"]
VERSION = 2  # of the grouping rules: part of the feature cache's key
# The kind a layer-wise prediction gives a layer fused into another's kernel: its cost is predicted
# at the unit's head, it shows 0 itself.
FUSED_KIND = "fused"


def _consumers_from_graph(names: list[str], inbound: list) -> list[list[int]] | None:
    pos = {n: i for i, n in enumerate(names)}
    cons: list[list[int]] = [[] for _ in names]
    for j, raw in enumerate(inbound):
        if raw is None or (isinstance(raw, float) and np.isnan(raw)):
            return None  # a table without graph edges (rows measured before they were recorded)
        for n in json.loads(raw) if isinstance(raw, str) else raw:
            if n in pos:
                cons[pos[n]].append(j)
    return cons


def _consumers_from_order(in_shapes: list[str], out_shapes: list[str]) -> list[list[int]]:
    """Without edges: the next layer consumes this one when one of its inputs has this output's shape."""
    cons: list[list[int]] = [[] for _ in out_shapes]
    for i in range(len(out_shapes) - 1):
        out = json.loads(out_shapes[i])
        if out in json.loads(in_shapes[i + 1]):
            cons[i].append(i + 1)
    return cons


def _units_of_model(types: list[str], cons: list[list[int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per layer (positions in topological order): the position of its unit's head, the head's fused-role
    flags (UNIT_FLAGS order), and for a head the position of the activation fused into it (-1: none)."""
    n = len(types)
    head = np.arange(n)
    flags = np.zeros((n, len(UNIT_FLAGS)))
    act = np.full(n, -1)
    producers: list[list[int]] = [[] for _ in range(n)]
    for i, cs in enumerate(cons):
        for j in cs:
            producers[j].append(i)
    taken = np.zeros(n, dtype=bool)
    for h in range(n):
        if types[h] not in HEAD_TYPES or taken[h]:
            continue
        # A zero padding whose only consumer is this head is folded into its kernel.
        if types[h] != "BatchNormalization" and len(producers[h]) == 1:
            p = producers[h][0]
            if types[p] in PAD_TYPES and cons[p] == [h] and not taken[p] and head[p] == p:
                head[p], taken[p] = h, True
                flags[h, 0] = 1
        tail, last = h, -1
        while len(cons[tail]) == 1:
            j = cons[tail][0]
            if types[j] in PASS_TYPES and not taken[j]:
                head[j], taken[j], tail = h, True, j
                continue
            role = FOLLOWER_ROLES.get(types[j])
            if role is None or taken[j] or _ROLE_ORDER[role] <= last:
                break
            if role == "norm" and types[h] == "BatchNormalization":
                break
            head[j], taken[j] = h, True
            flags[h, 1 + _ROLE_ORDER[role]] = 1
            if role == "act":
                act[h] = j
            tail, last = j, _ROLE_ORDER[role]
    return head, flags, act


def kernel_units(layers: pd.DataFrame) -> pd.DataFrame:
    """For each row of a layer table (index kept): `unit_index` (the layer_index of the layer whose
    kernel it runs in; its own for a head or a lone layer), the head's UNIT_FLAGS, and `fused_act_row`:
    for a head, the position (0..n-1 in the table) of the activation layer fused into its kernel, else -1."""
    n = len(layers)
    unit = layers["layer_index"].to_numpy(dtype=float).copy()
    flags = np.zeros((n, len(UNIT_FLAGS)))
    act_row = np.full(n, -1, dtype=np.int64)
    codes, _ = pd.factorize(layers["config_id"].to_numpy(dtype=object))
    index = layers["layer_index"].to_numpy()
    order = np.lexsort((index, codes))
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    types = layers["layer_type"].to_numpy(dtype=object)
    names = layers["layer_name"].to_numpy(dtype=object)
    inbound = layers["inbound_layers"].to_numpy(dtype=object) if "inbound_layers" in layers else None
    ins, outs = layers["input_shapes"].to_numpy(dtype=object), layers["output_shape"].to_numpy(dtype=object)
    for rows in np.split(order, bounds) if n else []:
        cons = _consumers_from_graph(list(names[rows]), list(inbound[rows])) if inbound is not None else None
        if cons is None:
            cons = _consumers_from_order(ins[rows], outs[rows])
        head, model_flags, act = _units_of_model(list(types[rows]), cons)
        unit[rows] = index[rows][head]
        flags[rows] = model_flags
        fused = act >= 0
        act_row[rows[fused]] = rows[act[fused]]
    out = pd.DataFrame(flags, index=layers.index, columns=UNIT_FLAGS)
    out.insert(0, "unit_index", unit)
    out["fused_act_row"] = act_row
    return out


def fuse(feats: pd.DataFrame, y: np.ndarray | None = None):
    """Layer rows -> unit rows: the head rows of `feats` (with their features), and the summed
    per-layer targets of each unit's members when `y` is given. Returns (unit feats, unit y,
    head mask over the layer rows)."""
    code = feats.groupby(["config_id", "unit_index"], sort=False).ngroup().to_numpy()
    head = (feats["layer_index"].to_numpy() == feats["unit_index"].to_numpy())
    units = feats[head]
    if y is None:
        return units, None, head
    y = np.asarray(y, dtype=float)
    sums = np.zeros((code.max() + 1 if len(code) else 0, y.shape[1]))
    np.add.at(sums, code, y)  # a NaN member makes its unit NaN: incomplete, dropped by the caller
    return units, sums[code[head]], head


def per_unit(rows: pd.DataFrame, columns) -> pd.DataFrame:
    """Per-layer rows (with `kind`, `config_id`, `unit_index`) scored per kernel: each row's `columns`
    become the sums over its unit's members, and the fused members' rows (kind `FUSED_KIND`) leave.
    Rows with no fused layer come back as they are."""
    if not (rows["kind"] == FUSED_KIND).any():
        return rows
    unit = rows.groupby(["config_id", "unit_index"], sort=False)
    rows = rows.assign(**{c: unit[c].transform("sum") for c in columns})
    return rows[rows["kind"] != FUSED_KIND]
