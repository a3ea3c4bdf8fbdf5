"""`nnenergy predict MODEL ...`: a per-layer table and totals, or one JSON object."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import warnings
from pathlib import Path

from nnenergy.cli.predict_render import render, unknown_message, warnings_of
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


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line and exit 2, like argparse, without the usage dump
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="nnenergy predict", description="Predict the energy of one forward pass before running it.")
    p.add_argument("model", nargs="*", help="a .keras/.h5 file or a keras.applications name (built with "
                   "weights=None); several are predicted in one call (with --json, one JSON object per line)")
    p.add_argument("--batch-size", type=_positive_int, default=None, help="batch size (default 1; a layer table "
                   "from `nnenergy describe` keeps its own)")
    p.add_argument("--input-shape", type=_shape, default=None, help="H,W,C (overrides or supplies the input shape)")
    _structure_arguments(p)
    p.add_argument("--model-uri", default=None, help="MLflow model URI (default: this machine's "
                   "models:/nnenergy-layerwise@champion-<profile> when registered, else @champion)")
    p.add_argument("--hardware", default=None, metavar="PROFILE|list",
                   help="predict for this hardware profile (its own champion, models:/nnenergy-layerwise@champion-"
                        "PROFILE); `list` shows the profiles with data or a trained predictor")
    p.add_argument("--tracking-uri", default=None,
                   help="MLflow store (default: $MLFLOW_TRACKING_URI, else ./mlflow.db when it exists, else the "
                        "store `make run` recorded in ~/.config/nnenergy/store.json)")
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
                "registered, none for --hardware PROFILE, an unreachable store; an unexpected error); "
                "3 a model has layers nothing was learned for (named on stderr; --allow-unknown predicts them "
                "with the generic fallback and a widened interval)")
    return p


def _input_spec(text: str) -> str:
    from nnenergy.predict.errors import PredictError
    from nnenergy.predict.feeds import parse_input

    try:
        parse_input(text)
    except PredictError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _structure_arguments(p) -> None:
    """--input, --seq-len, --allow-unknown: shared by `predict` and `describe`."""
    p.add_argument("--input", dest="inputs", action="append", type=_input_spec, default=None,
                   metavar="NAME=SHAPE[:DTYPE]", help="one input of a dict- or multi-input model, by name "
                   "(repeatable; e.g. --input token_ids=128:int32 --input padding_mask=128); inputs not given "
                   "keep the model's own specs")
    p.add_argument("--seq-len", type=_positive_int, default=None, metavar="N",
                   help="the length of every unknown input dimension (the sequence axis of a text model)")
    p.add_argument("--allow-unknown", action="store_true", help="predict (or describe) a model with layers "
                   "nothing was learned for, instead of exiting with status 3")


UNKNOWN_EXIT = 3


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


def _note_cache(preds) -> None:
    """One line on stderr when the cache folder cannot be written: every call then resolves the
    predictor and describes the model again (seconds each), which otherwise looks like a slow tool."""
    from nnenergy.paths import cache_problem

    why = cache_problem() if preds else None
    if why:
        print(f"nnenergy predict: note: nothing is cached, so every call takes seconds: {why}", file=sys.stderr)


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
    from nnenergy.stores import redact

    print(f"{prog}: error: {redact(exc)}", file=sys.stderr)  # a store URI's password never reaches the screen
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
    table = [("profile", "device", "backend", "configurations", "predictor")]
    for r in rows:
        sets = ", ".join(f"{k} {v:,}" for k, v in r["datasets"].items()) or "-"
        version = f"version {r['predictor_version']}" if r["predictor_version"] else "not trained"
        mark = "  (this machine)" if r["this_machine"] else ""
        table.append((r["profile"], str(r["device"] or "-"), str(r["backend"] or "-"), sets, version + mark))
    widths = [max(len(row[i]) for row in table) for i in range(4)]  # nothing cut, columns aligned
    for row in table:
        print(" ".join(f"{cell:<{w}}" for cell, w in zip(row, widths)) + " " + row[4])
    from nnenergy.predict.loading import DEFAULT_MODEL_URI, machine_model_uri

    uri = machine_model_uri(args.tracking_uri)
    print(f"\n`nnenergy predict` here uses {uri}: " + (
        "this machine's own predictor (trained on its data, or transferred to it by `nnenergy calibrate`)"
        if uri != DEFAULT_MODEL_URI else
        "the global champion (the best on the profile it was first trained on; this machine has no predictor "
        "of its own: `nnenergy calibrate` brings it up in ~10 min)"))
    return 0


def _predict_models(args, sources: dict, failed: dict):
    """Predict every model not already failed (one predictor load for several); a failure that ends the
    command returns its exit status, else (predictions, carbon intensity, its source)."""
    from nnenergy.predict.api import predict_many
    from nnenergy.predict.carbon import CarbonError, carbon_intensity
    from nnenergy.predict.errors import PredictError, first_line

    preds = []
    with _quiet_python(args.verbose):
        try:
            intensity, src = carbon_intensity(args.country)
            from nnenergy.predict.loading import load_predictor

            loaded = None
            if len(args.model) > 1:  # the predictor loads once for every model
                loaded = load_predictor(args.model_uri, args.tracking_uri, this_machine=True)
            for model in [m for m in args.model if m not in failed]:
                try:
                    one = predict_many([sources[model]], batch_size=args.batch_size or 1, input_shape=args.input_shape,
                                       model_uri=args.model_uri, tracking_uri=args.tracking_uri,
                                       calibration=args.calibration, speed=args.speed, inputs=args.inputs,
                                       seq_len=args.seq_len, predictor=loaded)
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
    return preds, intensity, src


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.hardware == "list":
        from nnenergy.predict.errors import PredictError

        try:
            return _list_hardware(args)
        except PredictError as exc:  # a store that does not answer
            return _error(exc)
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
    from nnenergy.predict.describing import check_arguments, classify
    from nnenergy.predict.errors import PredictError

    tables = [m for m in args.model if classify(m).kind == "table"]
    if tables and args.batch_size is not None:
        return _error(f"{tables[0]} is a layer table: it keeps the batch size it was described with "
                      "(describe it again with `nnenergy describe --batch-size`)")
    sources, failed = {}, {}
    for model in args.model:  # the model file, batch size and shape: milliseconds, before anything heavy loads
        try:
            sources[model] = check_arguments(model, args.batch_size or 1, args.input_shape)
            if args.input_shape is not None and (args.inputs or args.seq_len):
                raise PredictError("give --input-shape, or --input/--seq-len, not both")
        except PredictError as exc:
            failed[model] = exc
    if len(args.model) == 1 and failed:
        return _error(failed[args.model[0]])
    outcome = _predict_models(args, sources, failed)
    if isinstance(outcome, int):
        return outcome
    preds, intensity, src = outcome
    _note_other_profile(preds, args)
    _note_speed(preds)
    _note_cache(preds)
    _tip_serve()
    unknown = {p.model_name: p.unknown_layers for p in preds if p.unknown_layers and not args.allow_unknown}
    preds = [p for p in preds if p.model_name not in unknown]
    for pred in preds:
        for line in warnings_of(pred):
            print(line, file=sys.stderr)
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
    for model, names in unknown.items():
        print(f"nnenergy predict: error: {unknown_message(model, names)}", file=sys.stderr)
    if not failed:
        return UNKNOWN_EXIT if unknown else 0
    return 1 if any(getattr(exc, "exit_code", 1) == 1 for exc in failed.values()) else 2


def describe_main(argv: list[str] | None = None) -> int:
    """`nnenergy describe MODEL... -o FILE`: the layer tables `predict` feeds its predictor, written once
    (Parquet or CSV) so that later predictions, on any hardware profile, need no TensorFlow."""
    p = Parser(prog="nnenergy describe", description=describe_main.__doc__.split("\n")[0])
    p.add_argument("model", nargs="+", help="a .keras/.h5 file or a keras.applications name")
    p.add_argument("--batch-size", type=_positive_int, default=1)
    p.add_argument("--input-shape", type=_shape, default=None, help="H,W,C (overrides or supplies the input shape)")
    p.add_argument("-o", "--output", required=True, help="a .parquet or .csv file to write")
    _structure_arguments(p)
    p.add_argument("--verbose", action="store_true")
    p.epilog = ("exit status: 0 written; 2 bad usage or input; 3 a model has layers no kind covers (named; "
                "--allow-unknown writes them)")
    args = p.parse_args(argv)
    if not args.output.endswith((".parquet", ".csv")):
        return _error("--output must end in .parquet or .csv", p.prog)
    folder = Path(args.output).resolve().parent
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        return _error(f"cannot write {args.output}: {folder} is not a writable folder", p.prog)
    if Path(args.output).is_dir():
        return _error(f"cannot write {args.output}: it is a folder; name a file to write", p.prog)
    _quiet_before_tensorflow(args.verbose)
    from nnenergy.predict.describing import check_arguments, describe
    from nnenergy.predict.errors import PredictError
    from nnenergy.predict.feeds import check as check_inputs

    try:
        sources = [check_arguments(model, args.batch_size, args.input_shape) for model in args.model]
        check_inputs(args.inputs, args.seq_len)
        with _quiet_python(args.verbose):
            import pandas as pd

            from nnenergy.schema import config_id

            tables = []
            for source in sources:
                for name, layers, shape, batch, _ in describe(source, args.batch_size, args.input_shape,
                                                              inputs=args.inputs, seq_len=args.seq_len):
                    tables.append(layers.assign(config_id=config_id(name, shape[0] if shape else 0, batch)))
    except PredictError as exc:
        return _error(exc, p.prog)
    table = pd.concat(tables, ignore_index=True)
    from nnenergy.features.layer_features import kind_of

    unknown = table[table["layer_type"].map(kind_of) == "other"]
    if len(unknown) and not args.allow_unknown:
        for cid, rows in unknown.groupby("config_id", sort=False):
            _error(unknown_message(str(cid), list(rows["layer_name"])).replace("predict anyway", "write it anyway"),
                   p.prog)
        return UNKNOWN_EXIT
    try:  # root ignores permission bits in the check above; a full disk or read-only mount fails here
        if args.output.endswith(".parquet"):
            table.to_parquet(args.output, index=False)
        else:
            table.to_csv(args.output, index=False)
    except OSError as exc:
        return _error(f"cannot write {args.output}: {exc.strerror or exc}", p.prog, code=1)
    print(f"{args.output}: {table['config_id'].nunique()} configuration(s), {len(table)} layers")
    return 0
