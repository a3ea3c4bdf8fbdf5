"""Add the graph's edges (`inbound_layers`) to layer rows measured before `describe` recorded them.

Kernel units (nnenergy.features.units) follow the real graph where a layer table has its edges,
else topological neighbours whose shapes connect (which misgroups, e.g., ResNet v1's two
branches). This rebuilds every architecture of a dataset once (no measurement: safe beside
nothing else, but CPU-heavy, so not beside a sweep), describes it, and writes each layer's
producers by *position*, translated to each configuration's own layer names (auto-generated
names such as `max_pooling2d_6` differ between processes). An architecture whose rebuilt layer
types do not match the stored rows is left without edges and reported.

    .venv/bin/python scripts/backfill_graph.py data/<profile>/space [more dataset folders]

Delete the dataset's `progress/` afterwards (it is re-seeded from the Parquet files on resume).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parents[1]


def _rebuild(arch: str, source: str, size: int):
    from nnenergy import zoo

    if source in ("generated", "variant", "builtin"):
        return zoo.build(arch, size).model
    if source == "keras.applications":
        return zoo.application(arch, (size, size, 3))
    if source == "file":  # external set: <Name>_<size>.keras written by benchmarks/external_models.py
        sys.path.insert(0, str(REPO / "benchmarks"))
        import external_models

        name, _, file_size = arch.rpartition("_")
        return external_models.build(name, int(file_size))
    raise ValueError(f"cannot rebuild source {source!r}")


def backfill(folder: Path) -> dict:
    import pandas as pd
    from tqdm import tqdm

    from nnenergy.describe import describe

    path = folder / "layers.parquet"
    layers = pd.read_parquet(path)
    models = pd.read_parquet(folder / "models.parquet")
    inbound = pd.Series(None, index=layers.index, dtype=object)
    if "inbound_layers" in layers:
        inbound = layers["inbound_layers"].astype(object)
    failed = []
    by_arch = models.sort_values("input_size").groupby("architecture", sort=False).first()
    for arch, m in tqdm(list(by_arch.iterrows()), desc=folder.name, unit="arch"):
        rows = layers[layers["architecture"] == arch]
        if inbound.loc[rows.index].notna().all():
            continue
        try:
            infos = describe(_rebuild(arch, m["source"], int(m["input_size"])))
        except Exception as exc:  # report and go on: the fallback grouping still works
            failed.append(f"{arch}: {type(exc).__name__}: {str(exc)[:100]}")
            continue
        pos = {info.name: info.index for info in infos}
        producers = [[pos[n] for n in info.inbound] for info in infos]
        types = [info.type for info in infos]
        for _, cfg in rows.groupby("config_id", sort=False):
            cfg = cfg.sort_values("layer_index")
            if cfg["layer_type"].tolist() != types:
                failed.append(f"{arch} ({cfg['config_id'].iloc[0]}): rebuilt layers differ from the stored ones")
                continue
            names = cfg["layer_name"].tolist()
            inbound.loc[cfg.index] = [json.dumps([names[p] for p in ps]) for ps in producers]
    layers["inbound_layers"] = inbound
    tmp = path.with_suffix(".tmp.parquet")
    layers.to_parquet(tmp, index=False)
    tmp.replace(path)
    return {"folder": str(folder), "rows": len(layers), "with_edges": int(inbound.notna().sum()), "failed": failed}


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    for folder in argv:
        print(json.dumps(backfill(Path(folder)), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
