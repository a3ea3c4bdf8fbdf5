"""Adaptive rounds of the kernel sweep: where is the per-kernel error above 10%?

Kernels are held out by kernel architecture (3 folds over `ker1_s…` names); each fold trains the
layer-wise predictor on the network dataset plus the other folds' kernels (rescaled to the in-context
scale, as training does) and predicts the held-out kernels' fused units, put back on the isolated scale
by the fold's own per-kind ratio. Kinds whose held-out per-kernel RMSPE exceeds the threshold are the
next round's `kernel_focus`:

    .venv/bin/python benchmarks/kernel_adaptive.py --dataset /tmp/zen5-space \\
        --kernels data/amd-epyc-f26m2-avx512-2c/kernels --round 1
    .venv/bin/nnenergy measure sweep=kernels "sweep.generated.kernel_seeds=[4000,8000]" \\
        "sweep.generated.kernel_focus=[...]"

Each round appends to benchmarks/kernel_adaptive_log.jsonl.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
LOG = REPO / "benchmarks" / "kernel_adaptive_log.jsonl"
sys.path.insert(0, str(REPO / "benchmarks"))


def per_kernel_errors(dataset: str, kernels_path: str, predictor: str = "rf", folds: int = 3) -> pd.DataFrame:
    from unseen import train_cfg

    from nnenergy import dataset as ds
    from nnenergy.apps.train import make_predictor
    from nnenergy.features.cache import features_of
    from nnenergy.features.units import per_unit

    data, kern = ds.load(dataset), ds.load(kernels_path)
    cfg = train_cfg(predictor, dataset)
    make = make_predictor(cfg, "incontext")
    f_net, f_ker = features_of(data), features_of(kern)
    y_net = data.layers[["ctx_energy_j", "ctx_latency_s"]].to_numpy(float)
    y_ker = kern.layers[["ctx_energy_j", "ctx_latency_s"]].to_numpy(float)
    names = np.array(sorted(kern.models["architecture"].unique()))
    names = names[np.random.default_rng(0).permutation(len(names))]
    out = []
    for k, held in enumerate(np.array_split(names, folds)):
        test = kern.layers["architecture"].isin(held).to_numpy()
        feats = pd.concat([f_net, f_ker[~test]], ignore_index=True)
        y = np.vstack([y_net, y_ker[~test]])
        models = pd.concat([data.models, kern.models[~kern.models["architecture"].isin(held)]], ignore_index=True)
        pred = make().fit(feats, y, models)
        layers = pred.predict_layers(f_ker[test])
        layers["measured_energy_j"] = y_ker[test][:, 0]
        layers["measured_latency_s"] = y_ker[test][:, 1]
        units = per_unit(layers, ["measured_energy_j", "measured_latency_s"])
        ratio = units["kind"].map(lambda kd: pred.kernel_context_.get(kd, [1.0, 1.0])[0]).astype(float)
        out.append(units.assign(energy_j=units["energy_j"] * ratio, fold=k))
    return pd.concat(out, ignore_index=True)


def main(argv=None) -> int:
    from nnenergy.evaluate.metrics import rmspe

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--kernels", required=True)
    ap.add_argument("--round", type=int, required=True)
    ap.add_argument("--threshold", type=float, default=10.0)
    args = ap.parse_args(argv)
    from nnenergy.arch.kernels import kernel_kind

    units = per_kernel_errors(args.dataset, args.kernels)
    # Per kernel (one configuration of a single-kernel model): its units' sums, by the kernel's kind.
    per = units.groupby("config_id")[["energy_j", "measured_energy_j"]].sum().reset_index()
    per["kind"] = per["config_id"].str.split("|").str[0].map(kernel_kind)
    per = per[per["measured_energy_j"] > 0]
    by_kind = {kind: {"kernels": len(g), "rmspe": round(rmspe(g["measured_energy_j"], g["energy_j"]), 1),
                      "within10": round(float(((g["energy_j"] / g["measured_energy_j"] - 1).abs() <= 0.1).mean()
                                              * 100), 1)}
               for kind, g in per.groupby("kind") if len(g) >= 10}
    focus = sorted(k for k, v in by_kind.items() if v["rmspe"] > args.threshold)
    row = {"round": args.round, "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "kernels": args.kernels, "kernel_configs": len(per), "by_kernel_kind": by_kind,
           "above_threshold": focus}
    with LOG.open("a") as f:
        f.write(json.dumps(row) + "\n")
    for kind, v in sorted(by_kind.items(), key=lambda kv: -kv[1]["rmspe"]):
        print(f"{kind:16s} {v['kernels']:6d} kernels  RMSPE {v['rmspe']:6.1f}%  within ±10% {v['within10']:5.1f}%")
    print(f"above {args.threshold:g}%: {focus}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
