"""The rows a measured configuration leaves: one per layer (its description and analytic cost as
prediction builds it, its isolated reading, its in-context share of the whole model) and one for the
model (its interleaved reading, the layers' sums, additivity ratios)."""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone

from nnenergy.describe import LayerInfo, layer_row
from nnenergy.schema import config_id

ISO_COLUMNS = ("iso_energy_j", "iso_latency_s", "iso_power_w", "iso_spread", "iso_passes", "iso_windows", "iso_error")


def base_row(built, batch: int, prov: dict) -> dict:
    """What every row of one configuration shares: its identity and the machine's provenance."""
    return {
        "config_id": config_id(built.name, built.input_size, batch),
        "architecture": built.name,
        "family": built.family,
        "source": built.source,
        "input_size": built.input_size,
        "batch_size": batch,
        "generator_seed": float(built.spec.seed) if built.source == "generated" else None,
        **prov,
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def layer_rows(base: dict, infos: list[LayerInfo], isos: list[dict], batch: int, whole, prof) -> list[dict]:
    """One row per layer; `isos[i]` is layer i's isolated reading ({} when not isolated)."""
    cid, op_total = base["config_id"], prof.total_op_time_s
    rows = []
    for info, iso in zip(infos, isos):
        ctx_t = prof.op_time_s.get(info.name, 0.0)
        share = ctx_t / op_total if op_total > 0 else math.nan
        rows.append({
            **base,
            **layer_row(info, batch, cid),  # description + analytic cost, as predict builds it
            "row_id": f"{cid}|{info.index}",
            "signature": info.signature(batch, base["hardware_id"]),
            **{k: iso.get(k) for k in ISO_COLUMNS},
            "iso_window_energies_j": json.dumps(iso.get("iso_window_energies_j") or []),
            "ctx_op_time_s": ctx_t,
            "ctx_share": share,
            "ctx_energy_j": whole.energy_j * share,
            "ctx_latency_s": whole.latency_s * share,
        })
    return rows


def model_row(base: dict, rows: list[dict], isolated: bool, whole, prof, overhead: dict, context: dict) -> dict:
    """The model's row; `context`: the columns of the measuring session (protocol, block, arch_spec)."""
    n, op_total = len(rows), prof.total_op_time_s
    sums = {k: sum((r[k] for r in rows), 0.0) for k in ("flops", "params", "mem_bytes")}
    iso_e = sum((r["iso_energy_j"] or 0.0 for r in rows), 0.0)
    iso_t = sum((r["iso_latency_s"] or 0.0 for r in rows), 0.0)
    iso_ok = isolated and all(r["iso_energy_j"] is not None for r in rows)
    oh_t, oh_e = overhead["iso_latency_s"], overhead["iso_energy_j"]
    w = whole.as_row()
    return {
        **base,
        "n_layers": n,
        "n_signatures": len({r["signature"] for r in rows}),
        **sums,
        **{k: v for k, v in w.items() if k != "window_energies_j"},
        "window_energies_j": json.dumps(w["window_energies_j"]),
        **context,
        "iso_sum_energy_j": iso_e if iso_ok else None,
        "iso_sum_latency_s": iso_t if iso_ok else None,
        "call_overhead_s": oh_t,
        "call_overhead_j": oh_e,
        # Isolated layers are raw readings: compare them with the raw whole model.
        "additivity": whole.energy_raw_j / iso_e if iso_ok and iso_e > 0 else None,
        "additivity_latency": whole.latency_raw_s / iso_t if iso_ok and iso_t > 0 else None,
        "additivity_overhead_corrected": (
            whole.energy_raw_j / (iso_e - n * oh_e) if iso_ok and iso_e > n * oh_e else None
        ),
        "ctx_op_time_s": op_total,
        "ctx_unattributed_s": prof.unattributed_s,
        "wall_over_op_time": whole.latency_raw_s / op_total if op_total > 0 else None,
    }
