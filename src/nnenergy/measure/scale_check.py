"""Labels on one scale: does every dataset of a profile share its canonical reference, and do the
same configurations measured in different sessions agree once normalised?

Two checks, both from what the datasets already store (nothing is measured):

- *Consistency* (`dataset_checks`): each dataset's blocks read the reference against the profile's
  `reference.json` (the canonical value a block used = its reference reading ÷ its speed index); each
  row's label is recomputed from its stored windows, its block's per-round reference and the canonical
  value, with the protocol's own statistic (`protocol.Series`), and compared with `energy_j`.
- *Repeats* (`repeat_pairs`): rows of one `config_id` from different *sources* (a dataset,
  or an extra run such as the repeatability benchmark's) paired; per pair of sources the ratio of
  labels, its RMS distance from 1 before and after one common factor (the pair's geometric mean), for
  normalised and raw energy and latency. A ratio of two labels with noise σ each spreads by √2·σ.

`scale_report` folds both into one row per profile.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from nnenergy.dataset import MODELS_FILE
from nnenergy.measure.protocol import Series, Window

# Run-to-run RMSPE of the normalised label (round_min_median) across sessions on the Zen 4
# (docs/measurement.md, repeatability): the noise a label carries before any scale error.
LABEL_NOISE = 0.079
LABELS = {"energy": ("energy_j", "energy_raw_j"), "latency": ("latency_s", "latency_raw_s")}
TOLERANCE = 1e-6  # relative: a recomputed label or canonical value that differs by more disagrees


def load_profile(profile_dir: str | Path) -> dict:
    """The profile's canonical reference and, per dataset folder, its rows, blocks and sessions."""
    root = Path(profile_dir)
    ref_file = root / "reference.json"
    out = {"profile": root.name, "reference": json.loads(ref_file.read_text()) if ref_file.exists() else None,
           "datasets": {}}
    for models in sorted(root.glob(f"*/{MODELS_FILE}")):
        folder = models.parent
        out["datasets"][folder.name] = {
            "models": pd.read_parquet(models),
            "blocks": {b["block"]: b for b in _json(folder / "blocks.json")},
            "sessions": sorted(s["session"] for s in _json(folder / "sessions.json")),
        }
    return out


def _json(path: Path) -> list:
    return json.loads(path.read_text()) if path.exists() else []


def _protocol(row) -> dict:
    return json.loads(row) if isinstance(row, str) else {}


def recompute_label(windows: list[float], per_round_reference: list[float], canonical: float,
                    statistic: str) -> float:
    """A row's normalised label from its raw windows (in measuring order, the same number per round),
    its block's per-round reference minimum and the canonical reference, as the protocol made it."""
    rounds = len(per_round_reference)
    per = len(windows) // rounds
    if per * rounds != len(windows) or per == 0:
        raise ValueError(f"{len(windows)} windows do not split into {rounds} rounds")
    zero = dict(latency_s=0.0, power_w=0.0, cpu_j=0.0, ram_j=0.0, gpu_j=0.0, passes=1, other_cores=0.0,
                steal_cores=0.0, contended=False)
    series = Series([Window(round=i // per, energy_j=w / (per_round_reference[i // per] / canonical), **zero)
                     for i, w in enumerate(windows)])
    return series.stat("energy_j", statistic)


def _label_errors(m: pd.DataFrame, blocks: dict, canonical: float) -> pd.Series:
    """Per row: recomputed label ÷ stored label − 1 (NaN where the row has no windows or block)."""
    errors = {}
    for i, row in m.iterrows():
        block = blocks.get(row.get("block"))
        windows = row.get("window_energies_j")
        if block is None or not isinstance(windows, str):
            continue
        proto = _protocol(row.get("protocol"))
        if proto.get("normalise", "round") != "round":
            continue  # A-R protocols: each window's own reference reading is not stored in the row
        statistic = proto.get("statistic", "round_min_median")
        try:
            label = recompute_label(json.loads(windows), block["reference_energy_j"], canonical, statistic)
        except ValueError:
            continue
        errors[i] = label / row["energy_j"] - 1
    return pd.Series(errors, dtype=float).reindex(m.index)


def _latency_outside(m: pd.DataFrame, blocks: dict, canonical: float) -> int:
    """Rows whose latency speed index lies outside their block's per-round range (+-1%): the latency
    windows are not stored, so this is the check that catches another canonical latency."""
    outside = 0
    for _, row in m.iterrows():
        block = blocks.get(row.get("block"))
        if block is None or not np.isfinite(row.get("latency_speed_index", np.nan)):
            continue
        if _protocol(row.get("protocol")).get("normalise", "round") != "round":
            continue  # A-R protocols: the index is the row's own reference windows', not the block's minima
        idx = [v / canonical for v in block["reference_latency_s"]]
        outside += not (min(idx) * 0.99 <= row["latency_speed_index"] <= max(idx) * 1.01)
    return outside


def _check_one(name: str, d: dict, ref: dict | None) -> dict:
    m, blocks = d["models"], d["blocks"]
    has_index = "speed_index" in m and "latency_speed_index" in m
    no_index = int(m["speed_index"].isna().sum()) if has_index else len(m)
    # The first protocol's rows carry no statistic (back-to-back windows, the median; no reference).
    stats = sorted({_protocol(p)["statistic"] for p in m.get("protocol", pd.Series(dtype=object))
                    if "statistic" in _protocol(p)} or {"none (first protocol)"})
    row = {"dataset": name, "rows": len(m), "first": str(m["measured_at"].min())[:16],
           "last": str(m["measured_at"].max())[:16], "sessions": max(len(d["sessions"]), 1),
           "speed_index_columns": has_index, "rows_without_speed_index": no_index,
           "statistic": ",".join(stats), "same_statistic_as_reference": bool(ref) and stats == [ref.get("statistic")]}
    implied = [e / s for b in blocks.values() for e, s in zip(b["reference_energy_j"], b["speed_index"])]
    row["canonical_ratio"] = float(np.median(implied) / ref["energy_j"]) if implied and ref else np.nan
    row["canonical_ratio_spread"] = float(np.ptp(implied) / np.median(implied)) if implied else np.nan
    if ref and blocks:
        err = _label_errors(m, blocks, ref["energy_j"])
        row["rows_recomputed"] = int(err.notna().sum())
        row["label_max_error"] = float(err.abs().max()) if err.notna().any() else np.nan
        row["labels_off"] = int((err.abs() > TOLERANCE).sum())
        row["latency_index_outside_block"] = _latency_outside(m, blocks, ref["latency_s"])
    if has_index:
        ok = m["speed_index"].notna()
        row["index_is_raw_over_label"] = float(
            (m.loc[ok, "energy_raw_j"] / m.loc[ok, "energy_j"] / m.loc[ok, "speed_index"] - 1).abs().max()
        ) if ok.any() else np.nan
    return row


def dataset_checks(profile_dir: str | Path, profile: dict | None = None) -> pd.DataFrame:
    """One row per dataset of the profile: rows, sessions, speed-index columns and NaNs, statistic,
    the canonical value its blocks used ÷ `reference.json`, and the recomputed labels' largest error."""
    p = profile or load_profile(profile_dir)
    return pd.DataFrame([_check_one(n, d, p["reference"]) for n, d in p["datasets"].items()])


def profile_rows(profile: dict) -> pd.DataFrame:
    """Every row of every dataset, its source the dataset (a sweep keeps one row per `config_id` in a
    dataset, so repeats are across datasets; a dataset's sessions share its one factor)."""
    cols = ["config_id", *[c for pair in LABELS.values() for c in pair], "speed_index", "measured_at"]
    frames = [d["models"].reindex(columns=cols).assign(source=name, kind="dataset")
              for name, d in profile["datasets"].items()]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _rms(x: np.ndarray, ddof: int = 0) -> float:
    return float(np.sqrt(np.sum(np.square(x)) / (len(x) - ddof))) if len(x) > ddof else np.nan


def repeat_pairs(rows: pd.DataFrame, min_configs: int = 3) -> pd.DataFrame:
    """Per pair of sources sharing ≥ `min_configs` configurations (at least one side a dataset): the
    factor (geometric mean of later ÷ earlier label) and the RMS of (ratio − 1) before and after it."""
    rows = rows.sort_values("measured_at")
    firsts = rows.groupby("source")["measured_at"].min().sort_values()
    by_source = {s: g.drop_duplicates("config_id").set_index("config_id") for s, g in rows.groupby("source")}
    out = []
    for a, b in itertools.combinations(firsts.index, 2):
        A, B = by_source[a], by_source[b]
        if "dataset" not in (A["kind"].iloc[0], B["kind"].iloc[0]):
            continue
        common = A.index.intersection(B.index)
        if len(common) < min_configs:
            continue
        rec = {"earlier": a, "later": b, "configs": len(common),
               "normalised_both": bool(A.loc[common, "speed_index"].notna().all()
                                       and B.loc[common, "speed_index"].notna().all())}
        for what, (norm, raw) in LABELS.items():
            for kind, col in (("norm", norm), ("raw", raw)):
                r = (B.loc[common, col] / A.loc[common, col]).astype(float).to_numpy()
                r = r[np.isfinite(r) & (r > 0)]
                if not len(r):
                    continue
                f = math.exp(np.mean(np.log(r)))
                # One factor fitted per pair costs a degree of freedom: ddof=1 keeps `after` unbiased.
                rec |= {f"{what}_{kind}_factor": f, f"{what}_{kind}_rms": _rms(r - 1),
                        f"{what}_{kind}_rms_after": _rms(r / f - 1, ddof=1)}
        out.append(rec)
    return pd.DataFrame(out)


def median_sd_factor(n: int) -> float:
    """SD of the median of `n` standard normal draws (0.67 for 3): a label is the median over rounds,
    so its noise is the round noise times this."""
    draws = np.random.default_rng(0).standard_normal((200_000, n))
    return float(np.median(draws, axis=1).std())


def round_noise(profile: dict) -> tuple[float, int]:
    """Round-to-round spread of the normalised per-round statistic within blocks (pooled SD of the
    log per-round minimum), from the stored windows: the within-session noise of this profile's data.
    Returns it with the (most common) number of rounds."""
    ss, dof, rounds = 0.0, 0, []
    ref = profile["reference"]
    for d in profile["datasets"].values():
        for _, row in d["models"].iterrows():
            block = d["blocks"].get(row.get("block"))
            if block is None or not isinstance(row.get("window_energies_j"), str) or ref is None:
                continue
            w, ref_r = json.loads(row["window_energies_j"]), block["reference_energy_j"]
            per = len(w) // len(ref_r)
            if per == 0 or per * len(ref_r) != len(w):
                continue
            mins = np.log([min(w[r * per:(r + 1) * per]) / ref_r[r] for r in range(len(ref_r))])
            ss += float(np.sum((mins - mins.mean()) ** 2))
            dof += len(mins) - 1
            rounds.append(len(mins))
    return (math.sqrt(ss / dof), int(np.bincount(rounds).argmax())) if dof else (np.nan, 0)


def _pooled(pairs: pd.DataFrame, col: str, after: bool) -> float:
    """RMS over all configurations of all pairs (each pair weighted by its configurations)."""
    if pairs.empty or col not in pairs:
        return np.nan
    p = pairs.dropna(subset=[col])
    dof = p["configs"] - (1 if after else 0)
    return float(np.sqrt(np.sum(p[col] ** 2 * dof) / dof.sum())) if dof.sum() > 0 else np.nan


def scale_report(profile_dir: str | Path, extra_rows: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per profile: canonical reference, datasets consistent with it, rows without a speed
    index, repeated configurations across sources and the RMS of their label ratios before and after
    one factor per pair of sources (normalised and raw), and the within-session round noise.
    `extra_rows` (columns of `profile_rows`, kind "run") adds measurements kept outside the datasets."""
    p = load_profile(profile_dir)
    checks = dataset_checks(profile_dir, p)
    rows = profile_rows(p)
    if extra_rows is not None and len(extra_rows):
        rows = pd.concat([rows, extra_rows], ignore_index=True)
    pairs = repeat_pairs(rows) if len(rows) else pd.DataFrame()
    ref = p["reference"] or {}
    noise, rounds = round_noise(p)
    rec = {"profile": p["profile"], "reference_measured_at": str(ref.get("measured_at", "none"))[:16],
           "reference_statistic": ref.get("statistic"), "datasets": len(checks),
           "rows": int(checks["rows"].sum()) if len(checks) else 0,
           "rows_without_speed_index": int(checks["rows_without_speed_index"].sum()) if len(checks) else 0,
           "datasets_without_speed_index": ",".join(
               checks.loc[checks["rows_without_speed_index"] > 0, "dataset"]) if len(checks) else "",
           "datasets_off_reference": ",".join(checks.loc[
               (checks["canonical_ratio"] - 1).abs() > TOLERANCE, "dataset"]) if "canonical_ratio" in checks else "",
           "labels_off": int(checks.get("labels_off", pd.Series(dtype=float)).fillna(0).sum()),
           "round_noise": noise,
           "label_noise_est": noise * median_sd_factor(rounds) if rounds else np.nan,
           "pairs": len(pairs), "repeated_configs": int(pairs["configs"].sum()) if len(pairs) else 0}
    for what in LABELS:
        for kind in ("norm", "raw"):
            col = f"{what}_{kind}"
            rec[f"{col}_rms"] = _pooled(pairs, f"{col}_rms", after=False)
            rec[f"{col}_rms_after"] = _pooled(pairs, f"{col}_rms_after", after=True)
            f = pairs.get(f"{col}_factor", pd.Series(dtype=float)).dropna()
            rec[f"{col}_factor_min"] = float(f.min()) if len(f) else np.nan
            rec[f"{col}_factor_max"] = float(f.max()) if len(f) else np.nan
    return pd.DataFrame([rec])
