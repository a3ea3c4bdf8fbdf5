"""Unseen-architecture ablation: targets, kernel data and predictor kinds on the same folds.

Every variant is evaluated by `nnenergy.evaluate.levels.evaluate` on one dataset, with the folds of
`conf/train.yaml` (level 1: real families held out with their variants; level 2: the external set, never
trained on; level 3: generated architectures held out by seed), so rows of one dataset compare directly.

Variants (`--variants`, each `predictor[:baseline[:kernels]]`):
  predictor  a config of conf/predictor (rf, xgb, catboost, poly, mlp, rnn, embedded_rnn)
  baseline   roofline (today), efficiency (ANNETTE-style max(FLOPs/peak, bytes/bw)), per_flop, none
  kernels    none | raw | rescaled: the profile's kernel sweep (data/<profile>/kernels) in training
`--set KEY=VALUE ...` adds Hydra overrides to every variant of the call (named in the variant column).

    .venv/bin/python benchmarks/unseen.py --dataset data/amd-epyc-f25m17-avx512-2c/space \\
        --variants rf:roofline rf:efficiency poly:roofline mlp
    .venv/bin/python benchmarks/unseen.py --dataset /tmp/zen5-space --kernels data/<profile>/kernels \\
        --variants rf:roofline:none rf:roofline:rescaled

Results append to benchmarks/unseen_results.jsonl (one line per variant and dataset); the Markdown
table of every line for `--dataset` goes to stdout. The worst five configurations per level of each
variant are kept in the line (`worst`), with the architecture, batch size and error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "unseen_results.jsonl"
LEVELS = ("family", "external", "generated")


def train_cfg(predictor: str, dataset: str, overrides: list[str] = ()):
    """The training config `nnenergy train predictor=<predictor> dataset=<dataset>` composes."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        return compose("train", overrides=[f"predictor={predictor}", f"dataset={dataset}", *overrides])


def worst(whole, n: int = 5) -> list[dict]:
    err = (whole["energy_j"] / whole["measured_energy_j"] - 1) * 100
    top = whole.assign(err=err).reindex(err.abs().sort_values(ascending=False).index).head(n)
    return [{"architecture": r["architecture"], "batch_size": int(r["batch_size"]),
             "input_size": int(r["input_size"]), "error_pct": round(float(r["err"]), 1)}
            for _, r in top.iterrows()]


def run_variant(variant: str, dataset: str, kernels_path: str | None, external_path: str | None = None,
                extra_overrides: list[str] = ()) -> dict:
    from omegaconf import OmegaConf

    from nnenergy import dataset as ds
    from nnenergy.apps.train import make_predictor
    from nnenergy.evaluate.levels import evaluate
    from nnenergy.registry import champion_score

    predictor, baseline, kernels = (variant.split(":") + [None, None])[:3]
    overrides = []
    if baseline:
        overrides.append(f"predictor.model.baseline={baseline}")
    if kernels and kernels != "none":
        overrides.append(f"predictor.model.kernel_rows={kernels}")
    if external_path:
        overrides.append(f"external_dataset={external_path}")
    overrides += list(extra_overrides)
    cfg = train_cfg(predictor, dataset, overrides)
    data = ds.load(dataset)
    external = ds.load(cfg.external_dataset) if cfg.get("external_dataset") else None
    if kernels and kernels != "none" and not kernels_path:
        raise SystemExit(f"variant {variant} uses kernels: give --kernels")
    extra = ds.load(kernels_path) if kernels and kernels != "none" else None
    opts = OmegaConf.to_container(cfg.evaluation, resolve=True)
    src = "incontext" if cfg.predictor.family == "layerwise" else "modelwise"
    t0 = time.perf_counter()
    ev = evaluate(make_predictor(cfg, src), data, src, opts, external, extra=extra)
    m = ev.metrics
    row = {
        "variant": variant + "".join(f" {o}" for o in extra_overrides), "predictor": predictor,
        "baseline": baseline or "", "kernels": kernels or "none",
        "dataset": dataset, "profile": data.hardware().get("profile"), "configs": len(data.models),
        "kernel_configs": len(extra.models) if extra is not None else 0,
        "seconds": round(time.perf_counter() - t0, 1), "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "champion_score": champion_score(m),
        **{k: m[k] for k in m if k.split("_whole_energy_")[0] in LEVELS and k.endswith(("rmspe", "within10"))},
        **{k: m[k] for k in m if k.endswith(("interval_coverage", "interval_median_width"))},
        "kernel_context": getattr(ev.predictor, "kernel_context_", {}),
        "worst": {lvl: worst(w) for lvl, w in ev.predictions.items()},
    }
    return row


def table(rows: list[dict]) -> str:
    out = ["| variant | kernels | level 1 families | level 2 published | level 3 generated | score "
           "| L2 interval cover / width |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        cells = [f"{r.get(f'{lvl}_whole_energy_rmspe', float('nan')):.1f} / "
                 f"{r.get(f'{lvl}_whole_energy_within10', float('nan')):.0f}%" for lvl in LEVELS]
        cover = (f"{r.get('external_interval_coverage', float('nan')):.0f}% / "
                 f"x{r.get('external_interval_median_width', float('nan')):.2f}")
        out.append(f"| {r['variant']} | {r['kernel_configs']} | " + " | ".join(cells)
                   + f" | {r['champion_score']:.2f} | {cover} |")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--kernels", help="the kernel sweep's dataset (same profile)")
    ap.add_argument("--external", help="the external (level 2) dataset; default: `external` beside --dataset")
    ap.add_argument("--variants", nargs="+", required=True)
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="Hydra overrides for every variant (e.g. predictor.model.drop_unattributed=false)")
    args = ap.parse_args(argv)
    for v in args.variants:
        row = run_variant(v, args.dataset, args.kernels, args.external, args.set)
        with RESULTS.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(f"{v}: {row['seconds']} s, score {row['champion_score']:.2f}", file=sys.stderr, flush=True)
    rows = [json.loads(line) for line in RESULTS.read_text().splitlines() if line.strip()]
    print(table([r for r in rows if r["dataset"] == args.dataset]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
