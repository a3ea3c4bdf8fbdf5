"""`nnenergy calibrate`: measure the panel here, fit factors, store them for `predict`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    """`nnenergy calibrate`: measure the panel here, fit factors, store them for `predict`."""
    import nnenergy.calibrate as calibration
    from nnenergy.paths import calibration_file

    default = calibration_file()
    p = argparse.ArgumentParser(prog="nnenergy calibrate", description=calibration.__doc__.split("\n")[0])
    p.add_argument("--model-uri", default=None, help="predictor to adapt (default: the registered champion)")
    p.add_argument("--tracking-uri", default=None)
    p.add_argument("--out", default=str(default), help=f"where to store it (default {default})")
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds over the panel (about 15 s each)")
    p.add_argument("--fit-on", choices=calibration.FIT_ON, default="all",
                   help="fit the factors on all panel items (default) or on its whole models only")
    p.add_argument("--model", choices=calibration.MODELS, default="size",
                   help="per-layer factor by the layer's size, its predicted latency (default), or by kind group")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--record", action="store_true",
                   help="measure the panel for THIS machine's profile and store it as data/<profile>/panel.json "
                        "(run it where a profile's dataset was measured; other machines calibrate against it)")
    args = p.parse_args(argv)
    if args.record:
        from nnenergy.measure.hardware import current_profile_name

        path = Path("data") / current_profile_name() / "panel.json"
        calibration.record_panel(path)
        print(f"stored the panel of {current_profile_name()} in {path}")
        return 0
    from nnenergy.measure.lock import MeasurementLockError
    from nnenergy.predict.errors import PredictError
    from nnenergy.predict.loading import load_predictor

    try:
        pyfunc, _ = load_predictor(args.model_uri, args.tracking_uri)
        meta = pyfunc.metadata.metadata or {}
        hw = meta.get("hardware") or {}
        source = hw.get("profile") or hw.get("hardware_id", "unknown")
        panel_file = Path("data") / source / "panel.json"
        source_panel = json.loads(panel_file.read_text()) if panel_file.exists() else None
        cal = calibration.calibrate(pyfunc, source, rounds=args.rounds, source_panel=source_panel,
                                    fit_on=args.fit_on, model=args.model)
    except (PredictError, MeasurementLockError) as exc:
        print(f"nnenergy calibrate: {exc}", file=sys.stderr)
        return 2
    source = cal.source_profile
    path = cal.save(Path(args.out))
    if args.json:
        print(json.dumps(calibration.summary(cal) | {"file": str(path)}))
    else:
        print(f"calibrated {source} -> {cal.target_profile} in {cal.seconds:.0f} s: speed ratio {cal.speed_ratio:.2f} "
              f"(spread {cal.spread:.2f}); factors {', '.join(f'{g} {v:.2f}' for g, v in cal.energy_factors.items())}; "
              f"panel RMSPE {cal.panel_error_before:.0f}% -> {cal.panel_error_after:.0f}%\nstored in {path}; "
              f"`nnenergy predict MODEL --calibration {path}` uses it")
    return 0
