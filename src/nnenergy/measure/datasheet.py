"""A short datasheet for a measured dataset: hardware, method, counts, wall time, additivity."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

from nnenergy import dataset as ds


def additivity_summary(models: pd.DataFrame) -> dict:
    """min / median / max of each additivity factor, for reports and MLflow metrics."""
    out = {}
    for col in ("additivity", "additivity_overhead_corrected", "wall_over_op_time"):
        vals = models.get(col, pd.Series(dtype=float)).dropna()
        if len(vals):
            out.update({f"{col}_min": float(vals.min()), f"{col}_median": float(vals.median()),
                        f"{col}_max": float(vals.max())})
    return out


def _fmt(summary: dict, col: str) -> str:
    if f"{col}_min" not in summary:
        return "n/a"
    return f"{summary[f'{col}_min']:.2f} / {summary[f'{col}_median']:.2f} / {summary[f'{col}_max']:.2f}"


def render(path: Path, sweep: str, wall_time_s: float | None, skipped: list[dict]) -> str:
    d = ds.load(path)
    m, l = d.models, d.layers
    first = m.iloc[0]
    s = additivity_summary(m)
    dates = pd.to_datetime(m["measured_at"])
    wall = f"{wall_time_s / 60:.1f} min" if wall_time_s else "unknown"
    skipped_txt = "\n".join(f"- {r['architecture']} {r['input_size']}px b{r['batch_size']}: {r['reason'][:160]}" for r in skipped) or "- none"
    return f"""# Dataset `{path.name}` — datasheet

Measured by `nnenergy measure sweep={sweep}` ({dates.min():%Y-%m-%d %H:%M}–{dates.max():%H:%M} UTC).

## Hardware and method
- Hardware id `{first.hardware_id}`: {first.cpu_model}, {first.cpu_cores} logical cores, GPU: {first.gpu_model}.
- CPU energy: **{first.cpu_measurement}**; RAM energy: **{first.ram_measurement}**; GPU energy: **{first.gpu_measurement}**.
  `cpu_load_estimate` means there is no RAPL counter: CodeCarbon *estimates* CPU power from its
  load and an assumed TDP, and RAM power from the memory size, so energy here is an estimate
  proportional to wall time, not a reading.
- CodeCarbon {first.codecarbon_version}, TensorFlow {first.tensorflow_version}, Keras {first.keras_version}.
- One measurement: warm-up passes, then windows of at least `min_seconds` and `min_passes`
  of a compiled `model(x, training=False)` on random input; windows repeat until their spread is
  under a tolerance or a maximum count. Energy per pass = the tracker's mean power over the window ×
  wall time per pass. Medians over windows are stored with every window's value.

## Contents
- `models.parquet`: {len(m)} configurations ({m['architecture'].nunique()} architectures in {m['family'].nunique()} families,
  batch sizes {sorted(m['batch_size'].unique().tolist())}, input sizes {sorted(m['input_size'].unique().tolist())}).
- `layers.parquet`: {len(l)} layer rows, {l['layer_type'].nunique()} layer types, {l['signature'].nunique()} unique signatures
  measured in isolation (each once, cached by signature).
- Whole-model energy per pass: {m['energy_j'].min():.3g} – {m['energy_j'].max():.3g} J; latency {m['latency_s'].min()*1e3:.2f} – {m['latency_s'].max()*1e3:.1f} ms.
- Sweep wall time: {wall} on this machine (all sessions, resumes included).

## Columns that matter
- Whole model: `energy_j`, `latency_s`, `power_w`, `spread`, `window_energies_j`.
- Isolated layer (`iso_*`): the model's own layer object called alone in a `tf.function` on
  random input of its real shapes (multi-input layers get a list).
- In context (`ctx_*`): a TensorFlow profiler trace of whole-model passes; each op's name scope
  maps it to its Keras layer; `ctx_share` = the layer's op time ÷ all op time, `ctx_energy_j` =
  share × whole-model energy (adds up to the whole model by construction). Fused ops (oneDNN
  Conv+BN+activation) are charged to the layer that owns the fused op.
- `flops`, `params`, `in_elems`, `out_elems`, `mem_bytes`: analytic, per pass of the batch.
- `call_overhead_s/_j`: cost of calling a compiled no-op (the floor under every isolated layer).

## Additivity (min / median / max over configurations)
- whole ÷ sum of isolated layers (`additivity`): {_fmt(s, 'additivity')}
- whole ÷ (sum of isolated layers − per-call overhead) (`additivity_overhead_corrected`): {_fmt(s, 'additivity_overhead_corrected')}
- whole-model wall time ÷ summed in-context op time (`wall_over_op_time`): {_fmt(s, 'wall_over_op_time')}

## Skipped configurations
{skipped_txt}

## Regenerate
`.venv/bin/nnenergy measure sweep={sweep} sweep.output_dir=data/{sweep}-$(hostname)` on an otherwise idle machine
(never two measuring processes on one host). Killing it loses nothing; rerunning resumes.
"""


def write(path: Path, sweep: str, wall_time_s: float | None, skipped: list[dict]) -> Path:
    out = Path(path) / ds.DATASHEET_FILE
    out.write_text(render(Path(path), sweep, wall_time_s, skipped))
    return out


if __name__ == "__main__":  # python -m nnenergy.measure.datasheet data/cpu cpu
    p = Path(sys.argv[1])
    sessions = p / "progress" / "sessions.jsonl"
    wall = sum(json.loads(x)["wall_time_s"] for x in sessions.read_text().splitlines()) if sessions.exists() else None
    skipped = json.loads((p / "skipped.json").read_text()) if (p / "skipped.json").exists() else []
    print(write(p, sys.argv[2] if len(sys.argv) > 2 else p.name, wall, skipped))
