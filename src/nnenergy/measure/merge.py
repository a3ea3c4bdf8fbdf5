"""Merge datasets measured by several jobs or hosts into one, without loss, duplicates or mixed CPUs.

`nnenergy merge OUT IN [IN ...]`: every input must be one hardware profile, the same for all (rows
of two CPUs never share a dataset); a configuration measured by two inputs is kept once (the first
input's row) and counted; a configuration whose layer rows are incomplete is refused. The merged
folder gets the union of the inputs' skipped/sessions/blocks records and a datasheet.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from nnenergy import dataset as ds


class MergeError(ValueError):
    """Inputs that cannot be merged: the message is one line meant for the user."""


def _profiles(models: pd.DataFrame) -> set[str]:
    if "profile" in models:
        return set(models["profile"].dropna().astype(str))
    return {str(h).rsplit("-", 1)[0] for h in models["hardware_id"].dropna()}


# Held-out test sets (level 2): never folded into a dataset that trains.
HELDOUT_DATASETS = ("external",)


def merge(out: str | Path, inputs: list[str | Path], append: bool = False) -> dict:
    """Merge `inputs` into `out`: created, or extended when it already holds a dataset and `append`
    says so (a shipped dataset is never written by accident)."""
    out = Path(out)
    for p in map(Path, inputs):
        if not p.exists():
            raise MergeError(f"no such input: {p}")
        if not (p / ds.MODELS_FILE).exists():
            raise MergeError(f"{p} is not a dataset (no {ds.MODELS_FILE}): give the folder a sweep wrote")
    exists = (out / ds.MODELS_FILE).exists()
    if exists and not append:
        raise MergeError(f"{out} already holds a dataset: pass --append to add the inputs to it")
    heldout = [str(p) for p in map(Path, inputs) if p.name in HELDOUT_DATASETS]
    if heldout and out.name not in HELDOUT_DATASETS:
        raise MergeError(f"refusing to merge the held-out test set {', '.join(heldout)} into {out}: it would "
                         "train on what it is judged on")
    sources = ([out] if exists else []) + [Path(p) for p in inputs]
    if len(sources) < 2:
        raise MergeError("give at least two datasets to merge (or one into an existing OUT with --append)")
    loaded = []
    for path in sources:
        try:
            loaded.append(ds.load(path, stored=True))
        except ds.DatasetError as exc:
            raise MergeError(str(exc)) from None
    per_input = {str(d.path): _profiles(d.models) for d in loaded}
    for path, profs in per_input.items():
        if len(profs) != 1:
            raise MergeError(f"{path} mixes hardware profiles {sorted(profs)}: split it by profile first")
    profs = {next(iter(p)) for p in per_input.values()}
    if len(profs) > 1:
        raise MergeError("refusing to mix hardware profiles in one dataset: "
                         + ", ".join(f"{p} ({next(iter(v))})" for p, v in per_input.items()))
    models, layers, duplicates = [], [], 0
    seen: set[str] = set()
    for d in loaded:
        counts = d.layers.groupby("config_id").size()
        expected = d.models.set_index("config_id")["n_layers"]
        short = [c for c in expected.index if counts.get(c, 0) != expected[c]]
        if short:
            raise MergeError(f"{d.path}: {len(short)} configuration(s) with missing layer rows, e.g. {short[0]}")
        new = d.models[~d.models["config_id"].isin(seen)]
        duplicates += len(d.models) - len(new)
        seen |= set(new["config_id"])
        models.append(new)
        layers.append(d.layers[d.layers["config_id"].isin(new["config_id"])])
    merged_models = pd.concat(models, ignore_index=True)
    merged_layers = pd.concat(layers, ignore_index=True)
    ds.save(merged_models, merged_layers, out)
    for name, key in (("skipped.json", None), ("sessions.json", "session"), ("blocks.json", None)):
        recs, keys = [], set()
        for path in sources:
            f = path / name
            for rec in json.loads(f.read_text()) if f.exists() else []:
                k = json.dumps(rec.get(key) if key else rec, sort_keys=True, default=str)
                if k not in keys:
                    keys.add(k)
                    recs.append(rec)
        if recs:
            (out / name).write_text(json.dumps(recs, indent=1, default=str) + "\n")
    from nnenergy.measure import datasheet

    sessions = json.loads((out / "sessions.json").read_text()) if (out / "sessions.json").exists() else []
    skipped = json.loads((out / "skipped.json").read_text()) if (out / "skipped.json").exists() else []
    datasheet.write(out, f"merge of {len(sources)} datasets", sum(r.get("wall_time_s", 0) for r in sessions) or None,
                    skipped)
    return {"out": str(out), "profile": profs.pop(), "configurations": len(merged_models),
            "layer_rows": len(merged_layers), "duplicates_dropped": duplicates, "inputs": [str(p) for p in sources]}
