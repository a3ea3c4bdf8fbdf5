"""Measuring the calibration panel here (the sweep's protocol and threads), and recording it as a
profile's own panel (`data/<profile>/panel.json`)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from nnenergy.calibrate.panel import panel_models


def measure_panel(rounds: int = 2) -> tuple[dict, pd.DataFrame]:
    """The panel measured here: {name: {energy_j, latency_s}} (raw) and its layer tables."""
    from nnenergy.describe import describe_layers
    from nnenergy.measure.lock import MeasurementLock
    from nnenergy.measure.meter import EnergyMeter
    from nnenergy.measure.protocol import InterleavedMeasurer, ProtocolSettings
    from nnenergy.measure.sweep import inference_call, reference_call, set_threads
    from nnenergy.measure.sweep_spec import Threads

    # The sweep's thread pools (inter_op=1), fixed before TensorFlow runs anything: the panel is then
    # measured the way the data it calibrates was.
    set_threads(Threads())
    calls, tables = {}, []
    for name, model, batch in panel_models():
        calls[name] = inference_call(model, tuple(int(d) for d in model.inputs[0].shape[1:]), batch)
        tables.append(describe_layers(model, batch, config_id=name))
    settings = ProtocolSettings(rounds=rounds, windows=2, min_seconds=0.1, warmup=2)
    with MeasurementLock():
        results, _ = InterleavedMeasurer(EnergyMeter(), settings, reference_call()).run(calls)
    measured = {k: {"energy_j": r.energy_raw_j, "latency_s": r.latency_raw_s} for k, r in results.items()}
    return measured, pd.concat(tables, ignore_index=True)


def record_panel(path: Path, rounds: int = 3) -> dict:
    """Store this machine's panel beside its profile's data (`data/<profile>/panel.json`): other
    machines then calibrate against measurements, not against the predictor's panel errors."""
    from nnenergy.measure.hardware import current_profile_name

    measured, _ = measure_panel(rounds)
    rec = {"profile": current_profile_name(), "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "items": measured}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(rec, indent=1))
    return rec
