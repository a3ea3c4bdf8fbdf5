"""The tables' vocabulary, defined once: what a layer row holds, what is predicted, how a
configuration is named. Training and prediction both read these, so they never see different inputs."""

from __future__ import annotations

TARGETS = ("energy_j", "latency_s")  # per forward pass of one batch
SOURCES = {  # where per-layer training targets come from
    "incontext": ("ctx_energy_j", "ctx_latency_s"),
    "isolated": ("iso_energy_j", "iso_latency_s"),
}
# What a predictor needs of each layer (the pyfunc's input): description + analytic cost, no measurement.
DESCRIPTION_COLUMNS = ["config_id", "layer_index", "layer_name", "layer_type", "batch_size", "layer_config",
                       "input_shapes", "output_shape", "n_inputs"]
COST_COLUMNS = ["flops", "params", "in_elems", "out_elems", "mem_bytes"]
INPUT_COLUMNS = DESCRIPTION_COLUMNS + COST_COLUMNS
# Optional: the graph's edges (JSON list of the layers each one reads). Kernel units follow them where
# present; tables without them (rows measured before they were recorded) fall back to layer order.
GRAPH_COLUMNS = ["inbound_layers"]
# `unit_index`: the layer_index of the layer whose kernel a layer runs in (its own unless fused into
# another's; a fused layer's cost is predicted on that head and its own row shows 0).
# `out_of_range_reason`: why a layer is flagged (`batch_size 1e+05 above the 1-64 its conv layers were
# trained on`), empty when it is not.
OUTPUT_COLUMNS = ["config_id", "row", "layer_index", "layer_name", "layer_type", "kind", "known", "out_of_range",
                  "energy_j", "latency_s", "energy_lo_j", "energy_hi_j", "unit_index", "out_of_range_reason"]
# Predictor metadata: the 90% interval of log(measured / predicted), (-q, q) with q the split-conformal
# quantile of |log ratio| over level-1 held-out predictions (`evaluate.levels.interval_from`).
INTERVAL_KEY = "energy_log_ratio_interval"
# A profile's keras-hub test set (`nnenergy measure sweep=external_hub`): training's second level-2 set.
EXTERNAL_HUB = "external_hub"


def config_id(architecture: str, input_size: int, batch_size: int) -> str:
    """One measured configuration: `architecture|input size|batch size`."""
    return f"{architecture}|{input_size}|{batch_size}"


def parse_config_id(cid: str) -> tuple[str, int, int]:
    arch, size, batch = cid.rsplit("|", 2)
    return arch, int(size), int(batch)
