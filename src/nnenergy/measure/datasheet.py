"""A short datasheet for a measured dataset: hardware, method, counts, wall time, additivity."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

from nnenergy import dataset as ds
from nnenergy.measure import remeasure


def additivity_summary(models: pd.DataFrame) -> dict:
    """min / median / max of each additivity factor, for reports and MLflow metrics."""
    out = {}
    for col in ("additivity", "additivity_overhead_corrected", "wall_over_op_time"):
        vals = models.get(col, pd.Series(dtype=float)).dropna()
        if len(vals):
            out.update({f"{col}_min": float(vals.min()), f"{col}_median": float(vals.median()),
                        f"{col}_max": float(vals.max())})
    return out


def _protocol_text(m: pd.DataFrame) -> str:
    """How the whole-model labels were made: the interleaved protocol, or the first release's."""
    if "speed_index" not in m or m["speed_index"].isna().all():
        return ("- Whole models measured by the first release's protocol (before the interleaved one): warm-up\n"
                "  passes, then back-to-back windows of a compiled `model(x, training=False)` until their spread is\n"
                "  under a tolerance; the median window. No reference model was measured alongside, so these rows\n"
                "  carry no speed index (`speed_index` = NaN, `energy_raw_j` = `energy_j`): "
                "run-to-run drift of the VM\n"
                "  (up to ~20% minutes apart) is inside these labels.")
    first = m.iloc[0]
    proto = json.loads(first["protocol"]) if isinstance(first.get("protocol"), str) else {}
    si = m["speed_index"].dropna()
    return (f"- Profile `{first.get('profile', '?')}` (vendor {first.get('cpu_vendor', '?')}, family "
            f"{first.get('cpu_family', '?')}, model {first.get('cpu_model_id', first.get('cpu_model', '?'))}, ISA "
            f"{first.get('cpu_isa', '?')}); TensorFlow threads: intra-op {first.get('intra_op_threads')} "
            f"(0 = one per core), "
            f"inter-op {first.get('inter_op_threads')}; oneDNN {first.get('onednn_opts')}.\n"
            f"- {_interleaving_text(proto)}\n"
            f"- Every row stores the raw value (`energy_raw_j`), the round-by-round speed index (reference now ÷ its "
            f"canonical value in `canonical.json`, the profile's reference file these labels use; `speed_index`) "
            f"and the normalised value "
            f"(`energy_j` = raw ÷ speed "
            f"index), stored; predictors train on raw ÷ speed index ^ the canonical's elasticity "
            f"(`nnenergy.scale.relabel`; 1 where none was fitted). Speed index here: median {si.median():.3f}, 5–95% "
            f"{si.quantile(0.05):.3f}–{si.quantile(0.95):.3f}.\n"
            f"- Windows during which other processes used > {proto.get('max_other_cores')} cores or steal exceeded "
            f"{proto.get('max_steal_cores')} cores (from /proc/stat) were measured again; "
            f"{int(m['contended_windows'].sum())} windows stayed contended after retries (`contended_windows`).")


def _interleaving_text(proto: dict) -> str:
    """The interleaved protocol of `ProtocolSettings`, in words."""
    per_visit = (f"{proto.get('rounds')} round(s) per block, each visiting every configuration in a fresh random "
                 f"order for {proto.get('windows')} window(s) of at least {proto.get('min_seconds')} s")
    stat = proto.get("statistic")
    if proto.get("normalise", "round") == "round":
        text = (f"Interleaved protocol: configurations are measured in blocks of a few architectures; {per_visit}, "
                "with the reference model (`reference_cnn` 64 px b4) measured at the start and end of each round. "
                f"Label = `{stat}`" + (" (minimum window per round, median over rounds)"
                                       if stat == "round_min_median" else "")
                + ", chosen by `benchmarks/repeatability.py`; each round's windows normalised by its speed index")
    else:
        ratio = ("the statistic of the windows over the same statistic of their reference windows"
                 if proto.get("normalise") == "adjacent"
                 else "the statistic of the windows, each divided by the reference window right after it")
        text = (f"Interleaved protocol (A-R-A-R): configurations are measured in blocks of a few architectures; "
                f"{per_visit}, each window followed by a window of the reference model (`reference_cnn` 64 px b4). "
                f"Label = `{stat}`: {ratio}, on the canonical reference's scale, chosen by "
                "`benchmarks/protocol_study.py` (docs/measurement.md)")
    visits = int(proto.get("visits", 1))
    if visits > 1:
        text += (f"; each configuration visited {visits} times in separate blocks >= {proto.get('visit_gap_min')} min "
                 "apart, its label the geometric mean of its visits' (`measure.visits`)")
    return text + "."


def _attribution_text(m: pd.DataFrame) -> str:
    """Attributed + unattributed op time against wall time, per configuration (the residual is what
    no op accounts for: framework gaps between ops, or ops the profiler missed)."""
    if "ctx_op_time_s" not in m or m["ctx_op_time_s"].isna().all():
        return "- no in-context profile in this dataset"
    op = m["ctx_op_time_s"].astype(float)
    un = m.get("ctx_unattributed_s", pd.Series(0.0, index=m.index)).fillna(0.0).astype(float)
    # Against the raw wall time (the profile ran at the machine's speed of the moment, not normalised).
    wall = m["latency_raw_s"] if "latency_raw_s" in m else m["latency_s"]
    ok = (op > 0) & wall.notna()
    resid = (1 - op[ok] / wall[ok].astype(float)) * 100  # % of wall time no op accounts for
    unshare = (un[ok] / op[ok] * 100)
    worst = (m.loc[ok].assign(r=resid.abs()).groupby("architecture")["r"].median().sort_values().tail(3))
    return (f"- Op time outside every layer's scope (unattributed): median {unshare.median():.2f}%, max "
            f"{unshare.max():.1f}% of op time.\n"
            f"- Residual, wall time − (attributed + unattributed op time), as % of wall time: median "
            f"{resid.median():+.1f}%, 5–95% {resid.quantile(0.05):+.1f}% … {resid.quantile(0.95):+.1f}% "
            f"({len(resid)} configurations; negative = ops overlapping on the two cores). Per-layer "
            f"`ctx_energy_j` scales the shares to the measured whole, so the residual is spread over the layers,\n"
            f"  except where a model has grouped convolutions: TensorFlow on a CPU runs those outside its\n"
            f"  profiler's op events, so the residual goes to them (`ctx_untraced_s`, in proportion to their FLOPs): "
            f"{int((m.get('ctx_untraced_s', pd.Series(0.0, index=m.index)).fillna(0) > 0).sum())} configurations.\n"
            f"- Largest |residual| by architecture (median): "
            + ", ".join(f"{a} {v:.0f}%" for a, v in worst.items()))


def _framework(row) -> str:
    """The backend that ran the models: rows older than the `backend` column are TensorFlow on a CPU."""
    backend = row.get("backend") if isinstance(row.get("backend"), str) else "tensorflow"
    version = row.get("backend_version") if isinstance(row.get("backend_version"), str) else row.get(
        "tensorflow_version")
    device = row.get("device") if isinstance(row.get("device"), str) else "cpu"
    return f"Keras backend {backend} {version} on the {device.upper()}"


def _fmt(summary: dict, col: str) -> str:
    if f"{col}_min" not in summary:
        return "n/a"
    return f"{summary[f'{col}_min']:.2f} / {summary[f'{col}_median']:.2f} / {summary[f'{col}_max']:.2f}"


def remeasured_pairs(path: Path) -> list[dict]:
    """The measure-twice pairs of a dataset (`remeasure.json`; [] for datasets older than the check)."""
    try:
        return [p for p in json.loads((Path(path) / remeasure.REMEASURE_FILE).read_text()) if "second_energy_j" in p]
    except (OSError, ValueError):
        return []


def label_noise(path: Path, elasticity=None) -> dict:
    """The dataset's own label-noise figure from its measure-twice pairs (`measure.remeasure.agreement`),
    its labels normalised as predictors learn them (the canonical reference's elasticity; `elasticity`:
    where the caller knows it already)."""
    el = dataset_elasticity(path) if elasticity is None else elasticity
    return remeasure.agreement(scaled_pairs(path, el), el)


def scaled_pairs(path: Path, elasticity) -> list[dict]:
    """The dataset's pairs, with each side's slow speed index where `elasticity` splits the index
    (`scale.Elasticity.slow_window_min`), read from the dataset's rows."""
    pairs = remeasured_pairs(path)
    window = getattr(elasticity, "slow_window_min", None)
    if not (window and pairs):
        return pairs
    return remeasure.with_slow_indices(pairs, pd.read_parquet(Path(path) / ds.MODELS_FILE), window)


def dataset_elasticity(path: Path):
    """The elasticity the dataset's labels are normalised with (`scale.Elasticity`; plain: the speed
    index one for one)."""
    from nnenergy import scale

    return scale.elasticity(scale.canonical_of_dataset(path))


def _remeasure_text(path: Path) -> str:
    pairs = remeasured_pairs(path)
    if not pairs and not (Path(path) / remeasure.REMEASURE_FILE).exists():
        return "## Measure-twice check (label noise)\n\nNot recorded: measured before the check existed."
    el = dataset_elasticity(path)
    return "\n".join(remeasure.datasheet_lines(scaled_pairs(path, el), _share(path), el))


def _share(path: Path) -> float:
    try:
        m = pd.read_parquet(Path(path) / ds.MODELS_FILE, columns=["config_id"])
        return len(remeasured_pairs(path)) / max(len(m), 1)
    except (OSError, ValueError, KeyError):
        return 0.0


def render(path: Path, sweep: str, wall_time_s: float | None, skipped: list[dict]) -> str:
    d = ds.load(path, stored=True)  # the rows as stored (the text says how predictors' labels derive from them)
    m, lay = d.models, d.layers
    first = m.iloc[0]
    s = additivity_summary(m)
    dates = pd.to_datetime(m["measured_at"])
    wall = f"{wall_time_s / 60:.1f} min" if wall_time_s else "unknown"
    skipped_txt = "\n".join(f"- {r['architecture']} {r['input_size']}px b{r['batch_size']}: {r['reason'][:160]}"
                            for r in skipped) or "- none"
    cpu_meas, ram_meas, gpu_meas = first.cpu_measurement, first.ram_measurement, first.gpu_measurement
    n_archs, n_families = m['architecture'].nunique(), m['family'].nunique()
    n_types, n_sigs = lay['layer_type'].nunique(), lay['signature'].nunique()
    iso_pct = lay['iso_energy_j'].notna().groupby(lay['config_id']).any().mean() * 100
    e_min, e_max = m['energy_j'].min(), m['energy_j'].max()
    lat_min_ms, lat_max_ms = m['latency_s'].min()*1e3, m['latency_s'].max()*1e3
    add_oc = _fmt(s, 'additivity_overhead_corrected')
    return f"""# Dataset `{path.name}` — datasheet

Measured by `nnenergy measure sweep={sweep}` ({dates.min():%Y-%m-%d %H:%M}–{dates.max():%H:%M} UTC).

## Hardware and method
- Hardware id `{first.hardware_id}`: {first.cpu_model}, {first.cpu_cores} logical cores, GPU: {first.gpu_model}.
- Sources: {", ".join(f"{k} {v}" for k, v in m["source"].value_counts().items())} configurations.
- CPU energy: **{cpu_meas}**; RAM energy: **{ram_meas}**; GPU energy: **{gpu_meas}**.
  `cpu_load_estimate` means there is no RAPL counter: CodeCarbon *estimates* CPU power from its
  load and an assumed TDP, and RAM power from the memory size, so energy here is an estimate
  proportional to wall time, not a reading.
- CodeCarbon {first.codecarbon_version}, {_framework(first)}, Keras {first.keras_version}.
{_protocol_text(m)}

## Contents
- `models.parquet`: {len(m)} configurations ({n_archs} architectures in {n_families} families,
  batch sizes {sorted(m['batch_size'].unique().tolist())}, input sizes {sorted(m['input_size'].unique().tolist())}).
- `layers.parquet`: {len(lay)} layer rows, {n_types} layer types, {n_sigs} unique signatures
  ({iso_pct:.0f}% of configurations also measured in
  isolation, each signature once, cached).
- Whole-model energy per pass: {e_min:.3g} – {e_max:.3g} J; latency {lat_min_ms:.2f} – {lat_max_ms:.1f} ms.
- Sweep wall time: {wall} on this machine (all sessions, resumes included).

## Columns that matter
- Whole model: `energy_j`, `latency_s`, `power_w`, `spread`, `window_energies_j`.
- Isolated layer (`iso_*`): the model's own layer object called alone in a `tf.function` on
  random input of its real shapes (multi-input layers get a list).
- In context (`ctx_*`): a TensorFlow profiler trace of whole-model passes; each op's name scope
  maps it to its Keras layer; `ctx_share` = the layer's op time ÷ all op time, `ctx_energy_j` =
  share × whole-model energy (adds up to the whole model by construction). A fused kernel
  (oneDNN's Conv+bias+BN+Add+activation) carries the name of its *last* op, so its whole time is
  charged to that layer (the ReLU or the `Add`) and the convolution shows ~0: predictors learn
  per kernel unit (a layer + the layers fused into it, `nnenergy.features.units`), not per layer.
- `inbound_layers`: the layers each layer reads (the graph's edges, JSON), which kernel units follow.
- `flops`, `params`, `in_elems`, `out_elems`, `mem_bytes`: analytic, per pass of the batch.
- `call_overhead_s/_j`: cost of calling a compiled no-op (the floor under every isolated layer).

## Additivity (min / median / max over configurations)
- whole ÷ sum of isolated layers (`additivity`): {_fmt(s, 'additivity')}
- whole ÷ (sum of isolated layers − per-call overhead) (`additivity_overhead_corrected`): {add_oc}
- whole-model wall time ÷ summed in-context op time (`wall_over_op_time`): {_fmt(s, 'wall_over_op_time')}

## In-context attribution check (per configuration)
{_attribution_text(m)}

{_remeasure_text(path)}

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
    if sessions.exists():
        wall = sum(json.loads(x)["wall_time_s"] for x in sessions.read_text().splitlines())
    elif (p / "sessions.json").exists():  # a shipped dataset: its sessions travel as JSON
        wall = sum(r["wall_time_s"] for r in json.loads((p / "sessions.json").read_text()))
    else:
        wall = None
    skipped = json.loads((p / "skipped.json").read_text()) if (p / "skipped.json").exists() else []
    print(write(p, sys.argv[2] if len(sys.argv) > 2 else p.name, wall, skipped))
