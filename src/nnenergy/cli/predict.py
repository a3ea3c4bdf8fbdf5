"""`nnenergy predict MODEL ...`: a per-layer table and totals, or one JSON object."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import sys
import warnings
from pathlib import Path

from nnenergy.paths import calibration_file

# Python loggers of the libraries prediction loads, quiet below ERROR unless --verbose.
_NOISY_LOGGERS = ("tensorflow", "absl", "keras", "h5py", "mlflow", "alembic", "codecarbon", "urllib3", "git")


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
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="nnenergy predict", description="Predict the energy of one forward pass before running it.")
    p.add_argument("model", nargs="*", help="a .keras/.h5 file or a keras.applications name (built with "
                   "weights=None); several are predicted in one call (with --json, one JSON object per line)")
    p.add_argument("--batch-size", type=_positive_int, default=None, help="batch size (default 1; a layer table "
                   "from `nnenergy describe` keeps its own)")
    p.add_argument("--input-shape", type=_shape, default=None, help="H,W,C (overrides or supplies the input shape)")
    p.add_argument("--model-uri", default=None, help="MLflow model URI (default: this machine's "
                   "models:/nnenergy-layerwise@champion-<profile> when registered, else @champion)")
    p.add_argument("--hardware", default=None, metavar="PROFILE|list",
                   help="predict for this hardware profile (its own champion, models:/nnenergy-layerwise@champion-"
                        "PROFILE); `list` shows the profiles with data or a trained predictor")
    p.add_argument("--tracking-uri", default=None, help="MLflow store (default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db)")
    p.add_argument("--country", default=None,
                   help="ISO 3166 alpha-3 code for the grid's carbon intensity (default: world average)")
    p.add_argument("--inferences", type=_positive_int, default=1_000_000, help="passes to total kWh and CO2 over")
    p.add_argument("--json", action="store_true", help="print one JSON object and nothing else on stdout")
    p.add_argument("--calibration", nargs="?", const=str(calibration_file()), default=None,
                   help="adapt to this machine with a file from `nnenergy calibrate` (alone: the stored default)")
    p.add_argument("--speed", default=None, choices=("auto", "now", "last", "canonical"),
                   help="the machine's speed the figures are stated at: auto (default, or $NNENERGY_SPEED: the last "
                        "reading when it is "
                        "younger than $NNENERGY_SPEED_MAX_AGE_MIN, 10 min, else a ~2.5 s probe), now (a probe), last "
                        "(the last reading), canonical (no scaling: the speed the predictor's data were measured at)")
    p.add_argument("--verbose", action="store_true",
                   help="let TensorFlow, CUDA, MLflow and Python warnings print their start-up lines on stderr")
    p.epilog = ("exit status: 0 every model predicted; 2 bad usage or input (a model, file, shape or option; "
                "the other models are still printed); 1 a failure while running (no predictor to load: none "
                "registered, none for --hardware PROFILE, an unreachable store; an unexpected error)")
    return p


def _quiet_before_tensorflow(verbose: bool) -> None:
    """Keep TensorFlow's and CUDA's C++ start-up lines (CPU features, oneDNN, "could not find cuda
    drivers", cuDNN/cuBLAS factories) off stderr. TensorFlow reads these settings only when it
    first loads, so this runs before anything imports it."""
    if verbose:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    try:
        import absl.logging

        absl.logging.set_verbosity(absl.logging.ERROR)
        absl.logging.set_stderrthreshold("error")
    except ImportError:
        pass


@contextlib.contextmanager
def _quiet_python(verbose: bool):
    """Library loggers at ERROR and Python warnings off for the call, restored afterwards."""
    if verbose:
        yield
        return
    saved = {name: logging.getLogger(name).level for name in _NOISY_LOGGERS}
    try:
        for name in _NOISY_LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def _fmt_j(j: float) -> str:
    return f"{j * 1e3:9.3f} mJ" if j < 1 else f"{j:9.3f} J "


def render(pred, intensity: float, intensity_src: str, inferences: int) -> str:
    lines = []
    df = pred.layers_frame()
    width = min(max(df["name"].str.len().max() if len(df) else 0, 10), 40)
    unmeasured = set(getattr(pred, "unmeasured_layer_types", []) or [])
    lines.append(f"{'layer':<{width}} {'type':<24} {'energy':>12} {'latency':>11} {'share':>6}")
    for r in df.itertuples():
        mark = (f"  (fused into {r.fused_into})" if getattr(r, "fused_into", "") else
                "  (unknown type: generic fallback)" if not r.known else
                f"  (unmeasured type: predicted as {r.kind})" if r.type in unmeasured else
                "  ! out of range" if r.out_of_range else "")
        name = r.name if len(r.name) <= width else "…" + r.name[-(width - 1):]  # nested: keep the leaf
        lines.append(f"{name:<{width}} {r.type[:24]:<24} {_fmt_j(r.energy_j):>12} "
                     f"{r.latency_s * 1e3:8.3f} ms {r.share * 100:5.1f}%{mark}")
    if not len(df):
        lines.append("(a model-wise predictor: no per-layer breakdown)")
    lines.append(f"{'(model-level correction)':<{width}} {'':<24} {_fmt_j(pred.correction_energy_j):>12} "
                 f"{pred.correction_latency_s * 1e3:8.3f} ms")
    kwh = pred.energy_kwh(inferences)
    err = pred.heldout_error
    interval = (f"  (90% interval {_fmt_j(pred.energy_interval_j[0]).strip()} – "
                f"{_fmt_j(pred.energy_interval_j[1]).strip()})" if pred.energy_interval_j else "")
    hw = pred.hardware
    lines += [
        "",
        f"{pred.model_name}, batch {pred.batch_size}, input {tuple(pred.input_shape)} — per forward pass:",
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
    if pred.out_of_range_layers:
        lines.append(f"{pred.out_of_range_layers} layer(s) lie outside what the predictor was trained on "
                     "(marked `!`): the interval is widened for them")
    if pred.unknown_layer_types:
        lines.append(f"unknown layer types (generic fallback): {', '.join(pred.unknown_layer_types)}")
    if unmeasured:
        lines.append(f"WARNING: no measured data for layer types {', '.join(sorted(unmeasured))}: each is predicted "
                     "from the nearest measured kind, so their share of this prediction is a rough estimate")
    return "\n".join(lines)


def speed_line(s: dict) -> str:
    """The machine's speed a prediction is stated at, in one line."""
    if not s or s.get("speed_index") is None:
        return f"speed: {(s or {}).get('note') or 'not applied'}"
    canon = f"canonical reference of {str(s['canonical_at'])[:10]}" if s.get("canonical_at") else "canonical reference"
    if s["source"] == "canonical":
        return f"speed: canonical (no scaling: the speed of the {canon}; `--speed auto` states it at the speed now)"
    return (f"speed index {s['speed_index']:.3f} (latency {s['latency_speed_index']:.3f}) against the {canon}: "
            f"{s['source']} at {s['read_at']}")


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


def _note_other_profile(preds, args) -> None:
    """One line on stderr when the default predictor belongs to another hardware profile."""
    if args.model_uri or args.calibration or not preds:
        return
    from nnenergy.measure.hardware import current_profile_name

    theirs, mine = preds[0].hardware.get("profile"), current_profile_name()
    if theirs and theirs != mine:
        print(f"nnenergy predict: note: the predictor was trained on {theirs}, not this machine ({mine}); "
              "`nnenergy calibrate` brings this machine up in ~10 min, `--hardware list` shows the others",
              file=sys.stderr)


def _note_speed(preds) -> None:
    """One line on stderr when the speed used is not the one asked for (the lock was held, a probe
    failed); the other-profile case has its own note."""
    notes = {p.speed.get("note") for p in preds if p.speed.get("speed_index") is not None}
    for note in sorted(n for n in notes if n):
        print(f"nnenergy predict: note: {note}", file=sys.stderr)


def _tip_serve() -> None:
    """Once per cache folder, at a terminal, after a prediction that had to load TensorFlow: say how the
    next first predictions answer in about a second (`nnenergy serve`)."""
    from nnenergy.cli.serve_client import disabled
    from nnenergy.paths import cache_dir

    if "tensorflow" not in sys.modules or not sys.stderr.isatty() or disabled():
        return
    marker = cache_dir() / "serve-tip-shown"
    if marker.exists():
        return
    print("nnenergy predict: tip: this call spent ~6 s loading TensorFlow; `nnenergy serve --detach` keeps it "
          "loaded, so later first predictions from this folder answer in ~1 s", file=sys.stderr)
    with contextlib.suppress(OSError):
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()


def _error(exc, prog: str = "nnenergy predict", code: int | None = None) -> int:
    """Print one line; return the exit status: 2 bad usage or input, 1 a failure while running."""
    print(f"{prog}: error: {exc}", file=sys.stderr)
    return code if code is not None else getattr(exc, "exit_code", 2 if isinstance(exc, str) else 1)


def _list_hardware(args) -> int:
    from nnenergy.predict.hardware import hardware_profiles

    with _quiet_python(args.verbose):
        rows = hardware_profiles(args.tracking_uri)
    if args.json:
        for r in rows:
            print(json.dumps(r))
        return 0
    if not rows:
        print("no hardware profile: no measured data under data/ and no registered predictor")
        return 0
    print(f"{'profile':<32} {'device':<34} {'backend':<11} {'configurations':<28} predictor")
    for r in rows:
        sets = ", ".join(f"{k} {v:,}" for k, v in r["datasets"].items()) or "-"
        version = f"version {r['predictor_version']}" if r["predictor_version"] else "not trained"
        mark = "  (this machine)" if r["this_machine"] else ""
        print(f"{r['profile']:<32} {str(r['device'] or '-')[:34]:<34} {str(r['backend'] or '-'):<11} "
              f"{sets:<28} {version}{mark}")
    from nnenergy.predict.loading import DEFAULT_MODEL_URI, machine_model_uri

    uri = machine_model_uri(args.tracking_uri)
    print(f"\n`nnenergy predict` here uses {uri}: " + (
        "this machine's own predictor (trained on its data, or transferred to it by `nnenergy calibrate`)"
        if uri != DEFAULT_MODEL_URI else
        "the global champion (the best on the profile it was first trained on; this machine has no predictor "
        "of its own: `nnenergy calibrate` brings it up in ~10 min)"))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.hardware == "list":
        return _list_hardware(args)
    # `--calibration ResNet50`: the optional value took the model's name; it is a model, not a file.
    from nnenergy.predict.inputs import MODEL_SUFFIXES, TABLE_SUFFIXES

    c = args.calibration
    if c and (Path(c).suffix in (*MODEL_SUFFIXES, *TABLE_SUFFIXES) or not (Path(c).exists() or c.endswith(".json"))):
        args.model.insert(0, c)
        args.calibration = str(calibration_file())
    if not args.model:
        return _error("no model given: pass a .keras/.h5 file or a keras.applications name")
    if args.hardware and args.model_uri:
        return _error("give --hardware or --model-uri, not both")
    if args.hardware:
        from nnenergy.predict.hardware import hardware_model_uri

        args.model_uri = hardware_model_uri(args.hardware)
    _quiet_before_tensorflow(args.verbose)
    # Light imports only (TensorFlow, Keras, MLflow, CodeCarbon and pandas load inside functions).
    from nnenergy.predict.api import predict_many
    from nnenergy.predict.carbon import CarbonError, carbon_intensity
    from nnenergy.predict.errors import PredictError, first_line
    from nnenergy.predict.inputs import _is_table, check_arguments

    tables = [m for m in args.model if _is_table(m)]
    if tables and args.batch_size is not None:
        return _error(f"{tables[0]} is a layer table: it keeps the batch size it was described with "
                      "(describe it again with `nnenergy describe --batch-size`)")
    batch = args.batch_size or 1
    failed = {}
    for model in args.model:  # the model file, batch size and shape: milliseconds, before anything heavy loads
        try:
            check_arguments(model, batch, args.input_shape)
        except PredictError as exc:
            failed[model] = exc
    if len(args.model) == 1 and failed:
        return _error(failed[args.model[0]])
    preds = []
    with _quiet_python(args.verbose):
        try:
            intensity, src = carbon_intensity(args.country)
            from nnenergy.predict.loading import load_predictor, machine_model_uri

            loaded = None
            if len(args.model) > 1:  # the predictor loads once for every model
                loaded = load_predictor(args.model_uri or machine_model_uri(args.tracking_uri), args.tracking_uri)
            for model in [m for m in args.model if m not in failed]:
                try:
                    one = predict_many([model], batch_size=batch, input_shape=args.input_shape,
                                       model_uri=args.model_uri, tracking_uri=args.tracking_uri,
                                       calibration=args.calibration, speed=args.speed, _loaded=loaded)
                except PredictError as exc:
                    if len(args.model) == 1:
                        raise
                    failed[model] = exc
                    continue
                preds += one
        except (PredictError, CarbonError) as exc:
            return _error(exc)
        except Exception as exc:  # anything else still gets one line; NNENERGY_DEBUG=1 shows the traceback
            if os.environ.get("NNENERGY_DEBUG"):
                raise
            return _error(f"{type(exc).__name__}: {first_line(exc)}", code=1)
    _note_other_profile(preds, args)
    _note_speed(preds)
    _tip_serve()
    for i, pred in enumerate(preds):
        if args.json:
            d = pred.to_dict()
            kwh = pred.energy_kwh(args.inferences)
            d |= {"inferences": args.inferences, "energy_kwh": kwh, "co2_g": kwh * intensity,
                  "carbon_intensity_g_per_kwh": intensity, "carbon_intensity_source": src}
            print(json.dumps(d))
        else:
            print(("\n" if i else "") + render(pred, intensity, src, args.inferences))
    for model, exc in failed.items():  # named, after the others' results
        print(f"nnenergy predict: error: {model}: {exc}", file=sys.stderr)
    if not failed:
        return 0
    return 1 if any(getattr(exc, "exit_code", 1) == 1 for exc in failed.values()) else 2


def describe_main(argv: list[str] | None = None) -> int:
    """`nnenergy describe MODEL... -o FILE`: the layer tables `predict` feeds its predictor, written once
    (Parquet or CSV) so that later predictions, on any hardware profile, need no TensorFlow."""
    p = _Parser(prog="nnenergy describe", description=describe_main.__doc__.split("\n")[0])
    p.add_argument("model", nargs="+", help="a .keras/.h5 file or a keras.applications name")
    p.add_argument("--batch-size", type=_positive_int, default=1)
    p.add_argument("--input-shape", type=_shape, default=None, help="H,W,C (overrides or supplies the input shape)")
    p.add_argument("-o", "--output", required=True, help="a .parquet or .csv file to write")
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args(argv)
    if not args.output.endswith((".parquet", ".csv")):
        return _error("--output must end in .parquet or .csv", p.prog)
    folder = Path(args.output).resolve().parent
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        return _error(f"cannot write {args.output}: {folder} is not a writable folder", p.prog)
    _quiet_before_tensorflow(args.verbose)
    from nnenergy.predict.api import _describe
    from nnenergy.predict.errors import PredictError
    from nnenergy.predict.inputs import check_arguments

    try:
        for model in args.model:
            check_arguments(model, args.batch_size, args.input_shape)
        with _quiet_python(args.verbose):
            import pandas as pd

            from nnenergy.schema import config_id

            tables = []
            for model in args.model:
                for name, layers, shape, batch in _describe(model, args.batch_size, args.input_shape):
                    tables.append(layers.assign(config_id=config_id(name, shape[0] if shape else 0, batch)))
    except PredictError as exc:
        return _error(exc)
    table = pd.concat(tables, ignore_index=True)
    if args.output.endswith(".parquet"):
        table.to_parquet(args.output, index=False)
    else:
        table.to_csv(args.output, index=False)
    print(f"{args.output}: {table['config_id'].nunique()} configuration(s), {len(table)} layers")
    return 0
