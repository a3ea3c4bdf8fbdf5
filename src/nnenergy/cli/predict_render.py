"""What `nnenergy predict` prints: the per-layer table and totals, and the lines for stderr."""

from __future__ import annotations

import math


def unknown_message(model: str, names: list[str]) -> str:
    shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
    return (f"{model}: {len(names)} layer(s) nothing was learned for (the generic fallback would price them): "
            f"{shown}; pass --allow-unknown to predict anyway")


def warnings_of(pred) -> list[str]:
    """What the user must know about a prediction, for stderr (never stdout: `--json` keeps it clean)."""
    lines = []
    if pred.unknown_layer_types:
        lines.append("unknown layer types (generic fallback, interval widened): "
                     + ", ".join(pred.unknown_layer_types))
    unmeasured = sorted(set(getattr(pred, "unmeasured_layer_types", []) or []))
    if unmeasured:
        lines.append(f"WARNING: no measured data for layer types {', '.join(unmeasured)}: each is predicted "
                     "from the nearest measured kind, so their share of this prediction is a rough estimate")
    loops = getattr(pred, "unpriced_loops", []) or []
    if loops:
        shown = ", ".join(loops[:4]) + (f" and {len(loops) - 4} more" if len(loops) > 4 else "")
        lines.append(f"{len(loops)} recurrent loop(s) ({shown}) priced without their per-step cost: this "
                     "predictor was trained without its profile's sequence kernels (`nnenergy measure "
                     "sweep=kernels_seq`), and such models came out up to 7x low; the interval is widened above")
    return [f"nnenergy predict: {pred.model_name}: {line}" for line in lines]


def _fmt_j(j: float) -> str:
    j = 0.0 if abs(j) < 5e-7 else j  # never "-0.000 mJ"
    return f"{j * 1e3:9.3f} mJ" if j < 1 else f"{j:9.3f} J "


def _fmt_ms(seconds: float) -> str:
    ms = 0.0 if abs(seconds) < 5e-7 else seconds * 1e3  # never "-0.000 ms"
    return f"{ms:8.3f} ms"


def render(pred, intensity: float, intensity_src: str, inferences: int) -> str:
    lines = []
    df = pred.layers_frame()
    width = min(max(df["name"].str.len().max() if len(df) else 0, 10), 40)
    unmeasured = set(getattr(pred, "unmeasured_layer_types", []) or [])
    lines.append(f"{'layer':<{width}} {'type':<24} {'energy':>12} {'latency':>11} {'share':>6}")
    marked, reasons = 0, {}
    for r in df.itertuples():
        mark = (f"  (fused into {r.fused_into})" if getattr(r, "fused_into", "") else
                "  (unknown type: generic fallback)" if not r.known else
                f"  (unmeasured type: predicted as {r.kind})" if r.type in unmeasured else
                f"  ! {r.out_of_range_reason or 'out of range'}" if r.out_of_range else "")
        if mark.startswith("  !"):
            marked += 1
            feature = (r.out_of_range_reason or "out of range").split(" ")[0]
            reasons[feature] = reasons.get(feature, 0) + 1
        name = r.name if len(r.name) <= width else "…" + r.name[-(width - 1):]  # nested: keep the leaf
        lines.append(f"{name:<{width}} {r.type[:24]:<24} {_fmt_j(r.energy_j):>12} "
                     f"{_fmt_ms(r.latency_s)} {r.share * 100:5.1f}%{mark}")
    if not len(df):
        lines.append("(a model-wise predictor: no per-layer breakdown)")
    # the label spans the layer and type columns, so its figures stand under the layers' own
    lines.append(f"{'(model-level correction)':<{width + 25}} {_fmt_j(pred.correction_energy_j):>12} "
                 f"{_fmt_ms(pred.correction_latency_s)}")
    kwh = pred.energy_kwh(inferences)
    err = pred.heldout_error
    interval = (f"  (90% interval {_fmt_j(pred.energy_interval_j[0]).strip()} – "
                f"{_fmt_j(pred.energy_interval_j[1]).strip()})" if pred.energy_interval_j else "")
    hw = pred.hardware
    lines += [
        "",
        f"{pred.model_name}, batch {pred.batch_size}, {_inputs_text(pred)} — per forward pass:",
        f"  energy   {_fmt_j(pred.energy_j).strip()}{interval}",
        f"  latency  {pred.latency_s * 1e3:.3f} ms",
        f"  power    {pred.power_w:.1f} W",
        f"  {inferences:,} passes: {kwh:.6g} kWh, {kwh * intensity:.6g} g CO2eq at {intensity:.0f} g/kWh "
        f"({intensity_src})",
        "",
        f"predictor: {pred.predictor.get('uri')} ({_predictor_details(pred.predictor)})",
        f"hardware profile: {hw.get('profile', '?')}: {hw.get('cpu_model')} ({hw.get('cpu_cores')} cores), "
        f"GPU {hw.get('gpu_model')}; "
        f"CPU energy by {hw.get('cpu_measurement')}, RAM by {hw.get('ram_measurement')}",
    ]
    lines.append(speed_line(pred.speed))
    if pred.calibration and pred.calibration.get("kind") == "bring-up":
        c = pred.calibration
        lines.append(f"calibrated from {c['from']} on {c['measured_at']} (bring-up, method {c['method']})")
    elif pred.calibration:
        c = pred.calibration
        lines.append(f"calibrated from {c['from']} to this machine ({c['to']}, panel measured {c['measured_at']}, "
                     f"median speed ratio {c['speed_ratio']:.2f})")
    labels = {"family": "architecture families it never saw", "external": "published architectures never trained on",
              "generated": "generated architectures held out"}
    if pred.calibration and pred.calibration.get("kind") == "bring-up":
        labels = {"generated": "this machine's bring-up architectures held out (cross-validated)"}
    for level, label in labels.items():
        if f"{level}_whole_energy_rmspe" in err:
            lines.append(f"its error on {label}: RMSPE {err[f'{level}_whole_energy_rmspe']:.1f}%, "
                         f"{err.get(f'{level}_whole_energy_within10', math.nan):.0f}% within ±10% "
                         f"({err.get(f'{level}_whole_energy_n', 0):.0f} configurations)")
    if marked:
        why = ", ".join(f"{k} ({v})" for k, v in sorted(reasons.items(), key=lambda kv: -kv[1]))
        fused = pred.out_of_range_layers - marked
        lines.append(f"{marked} layer(s) marked `!` lie outside what the predictor was trained on, by {why}"
                     + (f" (and {fused} layer(s) fused into them)" if fused > 0 else "")
                     + ": the interval is widened for them")
    if pred.memory_bytes:
        ram = getattr(pred, "ram_bytes", 0.0)
        fits = "" if not ram else (f"; this machine has {ram / 1e9:.3g} GB of RAM"
                                   + (": it does not fit" if pred.memory_bytes > ram else ""))
        lines.append(f"memory: one pass holds at least {pred.memory_bytes / 1e9:.3g} GB (float32 weights and the "
                     f"largest layer's input and output){fits}")
    return "\n".join(lines)


def speed_line(s: dict) -> str:
    """The machine's speed a prediction is stated at, in one line."""
    if not s or s.get("speed_index") is None:
        return f"speed: {(s or {}).get('note') or 'not applied'}"
    canon = f"canonical reference of {str(s['canonical_at'])[:10]}" if s.get("canonical_at") else "canonical reference"
    if s["source"] == "canonical":
        return f"speed: canonical (no scaling: the speed of the {canon}; `--speed auto` states it at the speed now)"
    applied = ""
    if s.get("elasticity", 1.0) != 1.0 or s.get("latency_elasticity", 1.0) != 1.0:
        applied = (f", applied as energy ×{s['energy_factor']:.3f}, latency ×{s['latency_factor']:.3f} (elasticity "
                   f"{s['elasticity']:.2f}, {s['latency_elasticity']:.2f}"
                   + (" at this model's latency" if s.get("elasticity_per_decade") else "") + ")")
    return (f"speed index {s['speed_index']:.3f} (latency {s['latency_speed_index']:.3f}) against the {canon}"
            f"{applied}: {s['source']} at {s['read_at']}")


def _inputs_text(pred) -> str:
    """`input (224, 224, 3)`, or each input by name for a dict- or multi-input model."""
    inputs = getattr(pred, "inputs", None) or {}
    if len(inputs) <= 1:
        return f"input {tuple(pred.input_shape)}"
    return "inputs " + ", ".join(f"{n} {tuple(v['shape'])} {v['dtype']}" for n, v in inputs.items())


def _predictor_details(info: dict) -> str:
    """`version 3, rf, incontext targets`, leaving out what the predictor does not say (never `version None`)."""
    parts = []
    if info.get("version") is not None:
        parts.append(f"version {info['version']}")
    if info.get("name"):
        parts.append(str(info["name"]))
    if info.get("source"):
        parts.append(f"{info['source']} targets")
    return ", ".join(parts) or "unregistered"
