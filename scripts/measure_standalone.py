"""Run a sweep where Hydra and MLflow are not installed (the GPU machines: PyTorch, no network).

    KERAS_BACKEND=torch python scripts/measure_standalone.py sweep=paper_gpu output_dir=$OUT/paper_gpu

Reads `conf/sweep/<name>.yaml` and the files its `defaults` name (as Hydra would compose them),
applies `key=value` overrides (dotted keys, YAML values), and measures exactly as
`nnenergy measure` does, under the same host lock; log the dataset to MLflow later, where
MLflow is (`nnenergy measure` on the copied folder resumes it and logs it).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


class ConfigError(ValueError):
    """A sweep config that cannot be composed, or a bad override: one line for the user."""


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def compose(name: str, conf_dir: Path = REPO / "conf" / "sweep") -> dict:
    """`conf/sweep/<name>.yaml` with its `defaults` merged in Hydra's order: each default in turn,
    and the file's own keys where `_self_` stands (last when it is not listed). Imports nothing of
    nnenergy; tests/test_configs.py checks that it gives what Hydra composes for every sweep config."""
    path = conf_dir / f"{name}.yaml"
    if not path.exists():
        raise ConfigError(f"no sweep config {path}")
    cfg = yaml.safe_load(path.read_text()) or {}
    defaults = list(cfg.pop("defaults", []))
    if "_self_" not in defaults:
        defaults.append("_self_")
    merged: dict = {}
    for parent in defaults:
        merged = _merge(merged, cfg if parent == "_self_" else compose(parent, conf_dir))
    return merged


def apply_overrides(cfg: dict, overrides: list[str]) -> dict:
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"override {item!r} is not key=value")
        node = cfg
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = yaml.safe_load(value)
    return cfg


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="+", help="sweep=<name> (required), output_dir=…, cache_dir=…, key=value")
    parser.add_argument("--lock-wait", type=float, default=0.0, metavar="S",
                        help="another process measuring here: wait up to S seconds (default: fail at once)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    sys.path.insert(0, str(REPO / "src"))  # the package runs from the copied tree, not installed
    from nnenergy.measure.lock import MeasurementLock, MeasurementLockError
    from nnenergy.measure.sweep import Sweep
    from nnenergy.measure.sweep_spec import SweepInputError, SweepSpec
    from nnenergy.paths import cache_dir

    try:
        names = [o.split("=", 1)[1] for o in args.overrides if o.startswith("sweep=")]
        if len(names) != 1:
            raise SweepInputError("name one sweep: sweep=<name> (a file of conf/sweep/)")
        cfg = compose(names[0])
        cfg = apply_overrides(cfg, [o for o in args.overrides if not o.startswith("sweep=")])
        if "${" in str(cfg.get("cache_dir", "${}")):  # absent, or `${oc.env:NNENERGY_CACHE,...}`: no OmegaConf here
            cfg["cache_dir"] = str(cache_dir())
        unresolved = {k: v for k, v in cfg.items() if "${" in str(v)}
        if unresolved:  # no OmegaConf here: say what to set instead of guessing
            raise SweepInputError(f"set these explicitly (no Hydra on this machine): {sorted(unresolved)}")
        spec = SweepSpec.from_config(cfg)
        with MeasurementLock(wait_s=args.lock_wait):
            result = Sweep(spec).run()
    except (ConfigError, SweepInputError, MeasurementLockError) as exc:
        print(f"measure_standalone: {exc}", file=sys.stderr)
        return 2
    print(f"measured {len(result.models)} configurations into {result.output_dir} "
          f"({len(result.skipped)} skipped, {result.wall_time_s:.0f} s; profile {result.provenance['profile']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
