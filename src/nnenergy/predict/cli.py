"""`nnenergy predict MODEL ...`: a per-layer table and totals, or one JSON object."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def _shape(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(d) for d in text.replace("x", ",").split(",") if d.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected H,W,C integers, got {text!r}") from None
    if not dims or any(d <= 0 for d in dims):
        raise argparse.ArgumentTypeError(f"dimensions must be positive, got {text!r}")
    return dims


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line and exit 2, like argparse, without the usage dump
        print(f"nnenergy predict: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="nnenergy predict", description="Predict the energy of one forward pass before running it.")
    p.add_argument("model", help="a .keras/.h5 file or a keras.applications name (built with weights=None)")
    p.add_argument("--batch-size", type=_positive_int, default=1)
    p.add_argument("--input-shape", type=_shape, default=None, help="H,W,C (overrides or supplies the input shape)")
    p.add_argument("--model-uri", default=None, help="MLflow model URI (default: models:/nnenergy-layerwise@champion)")
    p.add_argument("--tracking-uri", default=None, help="MLflow store (default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db)")
    p.add_argument("--country", default=None, help="ISO 3166 alpha-3 code for the grid's carbon intensity (default: world average)")
    p.add_argument("--inferences", type=_positive_int, default=1_000_000, help="passes to total kWh and CO2 over")
    p.add_argument("--json", action="store_true", help="print one JSON object and nothing else on stdout")
    return p


def _fmt_j(j: float) -> str:
    return f"{j * 1e3:9.3f} mJ" if j < 1 else f"{j:9.3f} J "


def render(pred, intensity: float, intensity_src: str, inferences: int) -> str:
    lines = []
    df = pred.layers_frame()
    width = min(max(df["name"].str.len().max() if len(df) else 0, 10), 40)
    lines.append(f"{'layer':<{width}} {'type':<24} {'energy':>12} {'latency':>11} {'share':>6}")
    for r in df.itertuples():
        mark = "" if r.known else "  (unknown type: generic fallback)"
        lines.append(f"{r.name[:width]:<{width}} {r.type[:24]:<24} {_fmt_j(r.energy_j):>12} {r.latency_s * 1e3:8.3f} ms {r.share * 100:5.1f}%{mark}")
    if not len(df):
        lines.append("(a model-wise predictor: no per-layer breakdown)")
    lines.append(f"{'(model-level correction)':<{width}} {'':<24} {_fmt_j(pred.correction_energy_j):>12} {pred.correction_latency_s * 1e3:8.3f} ms")
    kwh = pred.energy_kwh(inferences)
    err = pred.heldout_error
    interval = f"  (90% interval {_fmt_j(pred.energy_interval_j[0]).strip()} – {_fmt_j(pred.energy_interval_j[1]).strip()})" if pred.energy_interval_j else ""
    hw = pred.hardware
    lines += [
        "",
        f"{pred.model_name}, batch {pred.batch_size}, input {tuple(pred.input_shape)} — per forward pass:",
        f"  energy   {_fmt_j(pred.energy_j).strip()}{interval}",
        f"  latency  {pred.latency_s * 1e3:.3f} ms",
        f"  power    {pred.power_w:.1f} W",
        f"  {inferences:,} passes: {kwh:.6g} kWh, {kwh * intensity:.6g} g CO2eq at {intensity:.0f} g/kWh ({intensity_src})",
        "",
        f"predictor: {pred.predictor.get('uri')} (version {pred.predictor.get('version')}, {pred.predictor.get('name')}, "
        f"{pred.predictor.get('source')} targets)",
        f"hardware profile: {hw.get('cpu_model')} ({hw.get('cpu_cores')} cores), GPU {hw.get('gpu_model')}; "
        f"CPU energy by {hw.get('cpu_measurement')}, RAM by {hw.get('ram_measurement')}",
    ]
    if err:
        fams = ", ".join(pred.predictor.get("test_families") or [])
        lines.append(f"its error on architecture families it never saw ({fams}): RMSPE "
                     f"{err.get('fixed_whole_energy_j_rmspe', math.nan):.1f}%, "
                     f"{err.get('fixed_whole_energy_j_within10', math.nan):.0f}% of configurations within ±10%")
    if pred.unknown_layer_types:
        lines.append(f"unknown layer types (generic fallback): {', '.join(pred.unknown_layer_types)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from nnenergy.predict.api import PredictError, predict
    from nnenergy.predict.carbon import CarbonError, carbon_intensity

    try:
        intensity, src = carbon_intensity(args.country)
        pred = predict(args.model, batch_size=args.batch_size, input_shape=args.input_shape,
                       model_uri=args.model_uri, tracking_uri=args.tracking_uri)
    except (PredictError, CarbonError) as exc:
        print(f"nnenergy predict: error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # anything else still gets one line; NNENERGY_DEBUG=1 shows the traceback
        if os.environ.get("NNENERGY_DEBUG"):
            raise
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        print(f"nnenergy predict: error: {type(exc).__name__}: {first}", file=sys.stderr)
        return 1
    if args.json:
        d = pred.to_dict()
        kwh = pred.energy_kwh(args.inferences)
        d |= {"inferences": args.inferences, "energy_kwh": kwh, "co2_g": kwh * intensity,
              "carbon_intensity_g_per_kwh": intensity, "carbon_intensity_source": src}
        print(json.dumps(d))
    else:
        print(render(pred, intensity, src, args.inferences))
    return 0
