"""`nnenergy calibrate`: bring a machine up: measure it for a few minutes, transfer the registered
predictor to it, register the result as this machine's champion (or, `--method size`, the previous
release's one-minute panel stored as a calibration file)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nnenergy.paths import DATA_ROOT

METHODS = ("auto", "speed", "ridge", "trees", "size")
EPILOG = """exit status: 0 done, 2 bad usage or input (nothing measured), 1 a failure while measuring or fitting.

Trailing KEY=VALUE arguments are Hydra overrides of the bring-up sweep (conf/sweep/bringup.yaml),
e.g. sweep.output_dir=/tmp/bringup 'sweep.generated.seeds=[0,20]'."""


def _parser(default_file: Path) -> argparse.ArgumentParser:
    from nnenergy.cli.predict import Parser  # a usage error is one line, not the usage dump

    p = Parser(prog="nnenergy calibrate", description=__doc__.split("\n\n")[0].replace("\n", " "),
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=10.0,
                   help="bring-up budget in minutes (default 10; 1 = a quick check; <= 0.5 re-reads only the "
                        "machine's speed index)")
    p.add_argument("--method", choices=METHODS, default="auto",
                   help="auto (default): the kernel map (ridge or trees) or one speed ratio, whichever predicts "
                        "held-out bring-up architectures best; or force one; size: the previous panel calibration")
    p.add_argument("--model-uri", default=None,
                   help="predictor to transfer (default: models:/nnenergy-layerwise@champion)")
    p.add_argument("--tracking-uri", default=None)
    p.add_argument("--no-register", action="store_true", help="log the run and the model, register nothing")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--out", default=str(default_file),
                   help=f"--method size: where to store it (default {default_file})")
    p.add_argument("--rounds", type=int, default=2,
                   help="--method size: interleaved rounds over the panel (~15 s each)")
    p.add_argument("--fit-on", choices=("models", "all"), default="all",
                   help="--method size: fit on all panel items (default) or on its whole models only")
    p.add_argument("--record", action="store_true",
                   help="measure the panel for THIS machine's profile and store it as data/<profile>/panel.json")
    p.add_argument("overrides", nargs="*", help="Hydra overrides of the bring-up sweep (KEY=VALUE)")
    return p


def main(argv: list[str]) -> int:
    from nnenergy.paths import calibration_file

    p = _parser(calibration_file())
    args = p.parse_args(argv)
    # Every argument is checked before anything heavy loads or anything is measured.
    if not args.minutes > 0:
        p.exit(2, f"nnenergy calibrate: --minutes must be > 0, not {args.minutes:g}\n")
    if args.rounds < 1:
        p.exit(2, f"nnenergy calibrate: --rounds must be >= 1, not {args.rounds}\n")
    bad = [o for o in args.overrides if "=" not in o]
    if bad:
        p.exit(2, f"nnenergy calibrate: not a KEY=VALUE override: {' '.join(bad)}\n")
    from nnenergy.quiet import import_tensorflow

    import_tensorflow()  # its start-up lines (CUDA drivers, oneDNN) would interleave with the bring-up's output
    if args.record:
        return _record()
    if args.method == "size":
        return _size(args)
    return _bringup(args)


def _bringup(args) -> int:
    from nnenergy.calibrate.bringup import BringupError, run
    from nnenergy.learn.transfer import TransferError
    from nnenergy.measure.lock import MeasurementLockError
    from nnenergy.measure.sweep_spec import SweepInputError
    from nnenergy.predict.errors import PredictError

    methods = None if args.method == "auto" else ("speed", args.method) if args.method != "speed" else ("speed",)
    try:
        done = run(args.minutes, args.model_uri, args.tracking_uri, list(args.overrides), methods,
                   register=not args.no_register)
    except (BringupError, PredictError, SweepInputError, TransferError) as exc:
        from nnenergy.stores import redact

        print(f"nnenergy calibrate: {redact(exc)}", file=sys.stderr)
        return getattr(exc, "exit_code", 2)  # 1: no predictor to transfer (none registered, a store that is down)
    except MeasurementLockError as exc:
        print(f"nnenergy calibrate: {exc}", file=sys.stderr)
        return 1
    if args.json:
        from dataclasses import asdict

        print(json.dumps(asdict(done)))
    else:
        print(done.line())
        if done.alias:
            print(f"`nnenergy predict MODEL` on this machine now uses it (models:/nnenergy-layerwise@{done.alias})")
    return 0


def _record() -> int:
    from nnenergy.calibrate import record_panel
    from nnenergy.measure.hardware import current_profile_name

    path = DATA_ROOT / current_profile_name() / "panel.json"
    record_panel(path)
    print(f"stored the panel of {current_profile_name()} in {path}")
    return 0


def _size(args) -> int:
    import nnenergy.calibrate as calibration
    from nnenergy.measure.lock import MeasurementLockError
    from nnenergy.predict.errors import PredictError
    from nnenergy.predict.loading import load_predictor

    try:
        pyfunc, _ = load_predictor(args.model_uri, args.tracking_uri)
        meta = pyfunc.metadata.metadata or {}
        hw = meta.get("hardware") or {}
        source = hw.get("profile") or hw.get("hardware_id", "unknown")
        panel_file = DATA_ROOT / source / "panel.json"
        source_panel = json.loads(panel_file.read_text()) if panel_file.exists() else None
        cal = calibration.calibrate_with_panel(pyfunc, source, rounds=args.rounds, source_panel=source_panel,
                                               fit_on=args.fit_on, model="size")
    except (PredictError, MeasurementLockError) as exc:
        print(f"nnenergy calibrate: {exc}", file=sys.stderr)
        return 2
    source = cal.source_profile
    path = cal.save(Path(args.out))
    if args.json:
        print(json.dumps(calibration.summary(cal) | {"file": str(path)}))
    else:
        print(f"calibrated {source} -> {cal.target_profile} in {cal.seconds:.0f} s ({cal.model} model): panel "
              f"speed ratio {cal.speed_ratio:.2f} (spread {cal.spread:.2f}), panel RMSPE {cal.panel_error_before:.0f}% "
              f"-> {cal.panel_error_after:.0f}%\napplied: {calibration.applied_text(cal)}\nstored in {path}; "
              f"`nnenergy predict MODEL --calibration {path}` uses it")
    return 0
