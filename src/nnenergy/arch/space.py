"""Sampling distributions of the architecture space, fitted to the layers of `keras.applications`.

`fit_prior(layers.parquet)` turns the shipped layer table into small discrete histograms (conv widths,
kernel sizes, strides, stage depths, expansion and squeeze ratios, Dense widths, activations, dropout
rates, pools, input sizes); its output ships as `prior.json`, which no command rewrites: the generated
architectures, and so the measured data, depend on it. `Space` draws from them and, with probability
`uniform_share`, uniformly over the whole valid range instead (nn-Meter's prior sampler with a uniform
share), so the space is not confined to what the applications happen to use.
"""

from __future__ import annotations

import json
from collections import defaultdict
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

PRIOR_FILE = "prior.json"

# The whole valid range of each quantity: (low, high, step) for numbers, a list for categories.
RANGES: dict[str, tuple | list] = {
    "conv_filters": (8, 1024, 8),
    "conv_kernel": [1, 3, 5, 7],
    "spatial_kernel": [3, 5, 7],
    "dw_kernel": [3, 5, 7],
    "stride": [1, 2],
    "depth": (1, 8, 1),
    "expand_ratio": (1.0, 8.0, 0.5),
    "se_ratio": (0.04, 0.5, 0.01),
    "dense_units": (16, 4096, 16),
    "vector_features": (64, 4096, 64),
    "dropout": (0.05, 0.5, 0.05),
    "input_size": (32, 224, 8),
    "activation": ["relu", "relu6", "silu", "gelu", "sigmoid", "hard_silu", "tanh"],
    "pool": [["max", 2, 2], ["max", 3, 2], ["avg", 2, 2], ["avg", 3, 2]],
}

_ACT_ALIASES = {"swish": "silu", "hard_swish": "hard_silu"}
_NOT_HIDDEN_ACTS = {"linear", "softmax", "sigmoid", "hard_sigmoid"}  # outputs and gates, not hidden activations


def _hist(items: list[tuple[str, str, object]]) -> dict:
    """Histogram of (family, architecture, value) items; each family weighs 1, split over its architectures."""
    per_arch: dict[tuple[str, str], list] = defaultdict(list)
    for fam, arch, v in items:
        per_arch[(fam, arch)].append(v)
    archs_per_fam: dict[str, int] = defaultdict(int)
    for fam, _ in per_arch:
        archs_per_fam[fam] += 1
    weights: dict = defaultdict(float)
    for (fam, _), vals in per_arch.items():
        for v in vals:
            key = json.dumps(v)
            weights[key] += 1.0 / (len(vals) * archs_per_fam[fam])
    keys = sorted(weights, key=lambda k: json.loads(k))
    total = sum(weights.values())
    return {"values": [json.loads(k) for k in keys], "weights": [round(weights[k] / total, 5) for k in keys]}


class _Tally:
    """Every quantity's values, as (family, architecture, value), read off one layer at a time."""

    def __init__(self):
        self.h: dict[str, list] = defaultdict(list)
        self.stages: dict[tuple, int] = defaultdict(int)
        self.counts: dict[tuple, int] = defaultdict(int)
        self.seen_stem: set[tuple] = set()

    def layer(self, row) -> None:
        fam, arch, t, name = row.family, row.architecture, row.layer_type, row.layer_name
        cfg, shapes = json.loads(row.layer_config), json.loads(row.input_shapes)
        key, counts = (fam, arch), self.counts
        shape = shapes[0] if shapes else []

        def add(what, v):
            self.h[what].append((fam, arch, v))

        spatial = len(shape) == 3 and shape[0] > 1
        if t == "Conv2D":
            k = cfg["kernel_size"]
            grouped = cfg.get("groups", 1) > 1
            if grouped:
                add("dw_kernel", k[0])
            elif spatial:
                add("conv_filters", cfg["filters"])
                if k[0] == k[1]:
                    add("conv_kernel", k[0])
                    if k[0] > 1:
                        add("spatial_kernel", k[0])
                add("factorized", int(k[0] != k[1]) if max(k) > 1 else None)
                if name.endswith(("_expand", "expand_conv")) and "se_" not in name:  # MBConv expansions
                    add("expand_ratio", round(2 * cfg["filters"] / shape[-1]) / 2)
                    counts[key + ("expand",)] += 1
            elif len(shape) == 3 and ("se_" in name or "squeeze" in name) and cfg["filters"] < shape[-1]:
                add("se_ratio", round(cfg["filters"] / shape[-1], 3))
                counts[key + ("se",)] += 1
            if "project" in name:
                counts[key + ("project",)] += 1
        if t in ("DepthwiseConv2D", "SeparableConv2D"):
            add("dw_kernel", cfg["kernel_size"][0])
            counts[key + ("dw",)] += 1
        if t in ("Conv2D", "DepthwiseConv2D", "SeparableConv2D") and max(cfg["kernel_size"]) > 1 and spatial:
            add("stride", cfg["strides"][0])
            # Stage depth = spatial convolutions per output resolution, after the stem conv; multi-branch
            # families have several such convs per block and are left out.
            if fam not in ("InceptionV3", "InceptionResNetV2", "NASNet", "Xception"):
                if key in self.seen_stem:
                    self.stages[key + (json.loads(row.output_shape)[0],)] += 1
                self.seen_stem.add(key)
        if t == "Dense":
            add("vector_features", int(np.clip(shape[-1], 64, 4096)))
            if "predictions" not in name and cfg["units"] != 1000:
                add("dense_units", cfg["units"])
        if t == "Activation":
            act = _ACT_ALIASES.get(cfg["activation"], cfg["activation"])
            if act not in _NOT_HIDDEN_ACTS:
                add("activation", act)
        if t == "ReLU":
            add("activation", "relu6" if cfg.get("max_value") == 6.0 else "relu")
        if t == "Dropout" and cfg["rate"] > 0:
            add("dropout", round(round(cfg["rate"] / 0.05) * 0.05, 2) or 0.05)
        if t in ("MaxPooling2D", "AveragePooling2D") and cfg["pool_size"][0] > 1 and cfg["strides"][0] > 1:
            add("pool", ["max" if t.startswith("Max") else "avg", cfg["pool_size"][0], cfg["strides"][0]])

    def per_architecture(self, fams, sizes) -> dict[str, list]:
        """The values counted per architecture (stage depths, input sizes, expansion 1, SE share) added."""
        h, counts = self.h, self.counts
        for (fam, arch, _), n in self.stages.items():
            h["depth"].append((fam, arch, n))
        for arch, fam in fams.items():
            for s in sizes[arch]:
                h["input_size"].append((fam, arch, int(s)))
            n_proj, n_exp = counts[(fam, arch, "project")], counts[(fam, arch, "expand")]
            # MBConv blocks without an expand conv have ratio 1.
            h["expand_ratio"] += [(fam, arch, 1.0)] * max(0, n_proj - n_exp)
            if counts[(fam, arch, "dw")]:
                h["se_share"].append((fam, arch, int(counts[(fam, arch, "se")] > 0)))
        h["factorized"] = [i for i in h["factorized"] if i[2] is not None]
        return h


def fit_prior(layers_parquet: str | Path) -> dict:
    """Fit every histogram of the space from a layers table (one architecture = one input size's layers)."""
    import pandas as pd

    cols = ["architecture", "family", "input_size", "batch_size", "layer_index", "layer_name", "layer_type",
            "layer_config", "input_shapes", "output_shape"]
    df = pd.read_parquet(layers_parquet, columns=cols)
    # The table repeats each layer per batch size and input size; configs do not change with them.
    sizes = df.groupby("architecture")["input_size"].unique()
    df = df.sort_values(["batch_size", "input_size"]).drop_duplicates(["architecture", "layer_name"])
    df = df.sort_values(["architecture", "layer_index"])
    tally = _Tally()
    for row in df.itertuples(index=False):
        tally.layer(row)
    fams = df.drop_duplicates("architecture").set_index("architecture")["family"]
    prior = {k: _hist(v) for k, v in sorted(tally.per_architecture(fams, sizes).items())}
    for k in ("factorized", "se_share"):  # two Bernoulli shares
        hist = prior.pop(k)
        prior[k] = round(sum(w for v, w in zip(hist["values"], hist["weights"]) if v), 4)
    prior["source"] = {"table": Path(layers_parquet).name, "architectures": int(df["architecture"].nunique()),
                       "weighting": "each family weighs 1, split equally over its architectures"}
    return prior


@lru_cache(maxsize=1)
def load_prior() -> dict:
    return json.loads(resources.files(__package__).joinpath(PRIOR_FILE).read_text())


class Space:
    """Draws values from the fitted prior, or uniformly over the valid range with probability `uniform_share`."""

    def __init__(self, rng: np.random.Generator, uniform_share: float = 0.25, prior: dict | None = None):
        self.rng = rng
        self.uniform_share = float(uniform_share)
        self.prior = prior or load_prior()

    def _pick(self, values: list, weights=None):
        """One of `values` (by weight); inverse-CDF on one uniform number, much cheaper than rng.choice."""
        if weights is None:
            return values[int(self.rng.integers(len(values)))]
        cdf = np.cumsum(weights)
        return values[min(int(np.searchsorted(cdf, self.rng.random() * cdf[-1], side="right")), len(values) - 1)]

    def draw(self, what: str, lo=None, hi=None):
        """One value of `what`, clipped to [lo, hi] when given (clipping also bounds the uniform draw)."""
        rg = RANGES[what]
        uniform = self.rng.random() < self.uniform_share
        if isinstance(rg, list):
            vals = rg if uniform else self.prior[what]["values"]
            w = None if uniform else self.prior[what]["weights"]
            if lo is not None or hi is not None:  # restrict categorical numbers (kernels) to [lo, hi]
                keep = [i for i, v in enumerate(vals) if (lo is None or v >= lo) and (hi is None or v <= hi)]
                vals, w = [vals[i] for i in keep], None if w is None else [w[i] for i in keep]
            v = self._pick(vals, w)
            return list(v) if isinstance(v, (list, tuple)) else _py(v)
        low, high, step = rg
        low = low if lo is None else max(low, lo)
        high = high if hi is None else min(high, hi)
        if uniform:
            v = low + step * int(self.rng.integers(0, int(round((high - low) / step)) + 1))
        else:
            v = self._pick(self.prior[what]["values"], self.prior[what]["weights"])
        v = float(np.clip(round(v / step) * step, low, high))
        return int(v) if float(step).is_integer() else round(v, 4)

    def chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    def choice(self, options: list, p=None):
        return _py(self._pick(options, p))

    def integers(self, lo: int, hi: int) -> int:
        """An int in [lo, hi], inclusive."""
        return int(self.rng.integers(lo, hi + 1))

    def uniform(self, lo: float, hi: float, digits: int = 3) -> float:
        return round(float(self.rng.uniform(lo, hi)), digits)


def _py(v):
    return v.item() if isinstance(v, np.generic) else v


# The samplers' shared vocabulary (generated architectures and variants).
CLASSES = [10, 100, 1000]


def r8(v: float) -> int:
    """Round a width to a multiple of 8, at least 8."""
    return max(8, int(round(v / 8)) * 8)


def alpha(sp: Space, choices: list[float], lo: float, hi: float) -> float:
    """A width multiplier: a published one, or (uniform share) any in [lo, hi]."""
    return sp.uniform(lo, hi, 2) if sp.chance(sp.uniform_share) else sp.choice(choices)
