"""Bring-up of a machine: measure its bring-up set for a few minutes, transfer a predictor to it,
register the result as the machine's champion.

The bring-up set is the generated architectures of `space` (`conf/sweep/bringup.yaml`: the same
seeds, order and configurations as every profile's `space_gen`), measured whole and in context by
the project's own sweep, so its kernels range from tiny to the largest layers the space holds
and every measured row is also training data for the machine's own profile later. It is
resumable: each run continues where the last stopped, and the transfer is fitted on every
bring-up row the machine has. `nnenergy.learn.transfer` fits the map; this module measures,
logs and registers.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

BRINGUP_SWEEP = "bringup"  # conf/sweep/bringup.yaml
BRINGUP_DATASET = "space_gen"
EXPERIMENT = "nnenergy-calibrate"
BLOCK_S = 25.0  # one block of the bring-up sweep (4 architectures x 3 configurations) on 2 cores
FIT_S = 10.0  # fitting the transfers of one candidate predictor (cross-validated) on ~300 configurations
TYPICAL_START_S = 20.0  # the command's imports and loading its candidates, before the sweep starts


def sweep_budget_s(minutes: float, spent_s: float, candidates: int) -> float:
    """Seconds of `--minutes` the bring-up sweep may use (its own start-up included): what is left
    after what was spent before it and the candidates' fits after it. The benchmark selects the
    blocks a sweep finished within this budget, so it judges what the command measures."""
    return minutes * 60 - spent_s - FIT_S * candidates


class BringupError(ValueError):
    """Bad input or data that cannot be transferred: one line for the user."""


@dataclass
class Bringup:
    """What one `nnenergy calibrate` run did."""

    profile: str
    source_profile: str
    method: str
    fallback: bool
    cv: dict
    configs: int
    new_configs: int
    architectures: int
    speed_index: float
    seconds: float
    version: str | None = None
    alias: str | None = None
    run_id: str | None = None
    base: str | None = None  # the predictor transferred (rf, poly, ...: the lowest held-out bring-up error)
    candidates: dict = field(default_factory=dict)  # predictor -> its held-out bring-up RMSPE

    def line(self) -> str:
        cv = ", ".join(f"{k} {v:.1f}%" for k, v in sorted(self.cv.items(), key=lambda kv: kv[1]))
        fb = " (the kernel maps did not beat one speed ratio on held-out architectures: speed ratio used)" \
            if self.fallback else ""
        reg = f"; registered version {self.version}" + (f" as @{self.alias}" if self.alias else "") \
            if self.version else ""
        if self.method == "speed re-read":
            return f"speed index of {self.profile} now: {self.speed_index:.2f} (read in {self.seconds:.0f} s)"
        bases = ", ".join(f"{k} {v:.1f}%" for k, v in self.candidates.items())
        return (f"calibrated {self.source_profile} -> {self.profile} in {self.seconds:.0f} s: {self.configs} "
                f"bring-up configurations ({self.new_configs} new) of {self.architectures} architectures; "
                f"predictor {self.base} (held-out bring-up RMSPE of each: {bases or 'n/a'}), "
                f"method {self.method}{fb}; held-out bring-up RMSPE by method: {cv or 'n/a'}; speed index "
                f"{self.speed_index:.2f}{reg}")


def _started_before() -> float:
    """Seconds this command ran before `run`: its process's age (the imports) for a command, 0 in a
    long-lived process (a notebook, a test session)."""
    import psutil

    age = time.time() - psutil.Process().create_time()
    return age if age < 120 else 0.0


def sweep_spec(minutes: float, overrides: list[str] = (), spent_s: float = 0.0, candidates: int = 1):
    """The bring-up sweep, composed as `nnenergy measure sweep=bringup` would compose it, stopped
    early enough that the whole command stays within `minutes` (see `sweep_budget_s`)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from nnenergy.measure.progress import dataset_protocol
    from nnenergy.measure.sweep import SweepSpec
    from nnenergy.paths import conf_dir

    with initialize_config_dir(str(conf_dir().resolve()), version_base="1.3"):
        cfg = compose("measure", overrides=[f"sweep={BRINGUP_SWEEP}", *overrides])
    sweep = OmegaConf.to_container(cfg.sweep, resolve=True)
    # A bring-up continues its profile's dataset under that dataset's protocol (shipped ones may predate
    # today's default): labels of two protocols never share a dataset.
    stored = dataset_protocol(Path(sweep["output_dir"]))
    if stored:
        sweep["protocol"] = {**sweep["protocol"], **stored}
    # The sweep checks its budget before each block (and always measures one): the last block starts
    # one block's time before the budget ends.
    sweep["max_minutes"] = max(0.0, (sweep_budget_s(minutes, spent_s, candidates) - BLOCK_S) / 60)
    return SweepSpec.from_config(sweep)


def read_speed(folder: Path) -> dict:
    """This machine's speed index now (`nnenergy.speed.probe`) against the canonical reference of the
    bring-up dataset `folder` (`data/<profile>/space_gen`: the scale its transferred predictor states),
    recorded in the profile's speed history."""
    from nnenergy import speed

    path = folder.parent
    if not (path / "reference.json").exists():
        raise BringupError(f"{path / 'reference.json'} does not exist: run a bring-up first (`nnenergy calibrate`)")
    return speed.record(path.name, speed.probe(path.name, path.parent, canon=speed.canonical_of_dataset(folder)))


def speed_of_blocks(path: Path) -> dict | None:
    """The speed index of the bring-up's newest session, from its blocks' reference readings."""
    try:
        blocks = json.loads((path / "blocks.json").read_text())
        started = max(r["session"] for r in json.loads((path / "sessions.json").read_text()))
    except (OSError, ValueError):
        return None
    session = [b for b in blocks if datetime.fromisoformat(b["block"]) >= datetime.fromisoformat(started)]
    if not session:
        return None
    return {"speed_index": statistics.median(v for b in session for v in b["speed_index"]),
            "measured_at": max(b["block"] for b in session), "source": "bring-up blocks"}


def measure(spec) -> int:
    """Measure the bring-up sweep `spec` (see `sweep_spec`); returns how many configurations are new."""
    from nnenergy.measure.lock import MeasurementLock
    from nnenergy.measure.sweep import Sweep

    sweep = Sweep(spec)
    before = len(sweep.config_store)
    with MeasurementLock():
        result = sweep.run()
    return len(result.models) - before


def source_predictor(pyfunc):
    """The layer-wise predictor object behind a loaded pyfunc (a transferred one: its source)."""
    # A pyfunc from MLflow, or the local cache's CachedPredictor (which holds the object itself).
    inner = pyfunc.unwrap_python_model().predictor if hasattr(pyfunc, "unwrap_python_model") \
        else getattr(pyfunc, "predictor", pyfunc)
    inner = getattr(inner, "base", inner)  # a transferred predictor: transfer its base again
    if not hasattr(inner, "predict_layers"):
        raise BringupError("the source predictor is model-wise: bring-up transfers layer-wise predictors "
                           "(use --model-uri models:/nnenergy-layerwise@champion)")
    return inner


def fit(base, data, feats, methods: tuple[str, ...] | None = None):
    """The transfer of `base` to the machine whose bring-up set is `data` (`feats`: its layer
    features); returns it, its held-out predictions and the metadata holding its interval."""
    from nnenergy.evaluate.levels import interval_from
    from nnenergy.learn.transfer import METHODS, fit_transfer
    from nnenergy.schema import INTERVAL_KEY, SOURCES

    y = data.layers[list(SOURCES["incontext"])].to_numpy(float)
    tr, heldout = fit_transfer(base, feats, y, data.models, methods=methods or METHODS)
    return tr, heldout, ({INTERVAL_KEY: interval_from(heldout)} if len(heldout) else {})


def candidate_uris(model_uri: str | None, tracking_uri: str | None) -> list[str]:
    """The predictors a bring-up may transfer: `model_uri` when given; else the newest version of
    each layer-wise predictor (poly, rf, xgb, catboost) trained on the champion's split, since which
    one travels best to a machine is a property of that machine (the bring-up's held-out
    architectures decide), not of the level-1 ranking at home."""
    if model_uri:
        return [model_uri]
    import mlflow
    from mlflow import MlflowClient

    from nnenergy import registry, tracking
    from nnenergy.predict.loading import DEFAULT_MODEL_NAME, DEFAULT_MODEL_URI, reachable

    reachable(tracking.store_uri(tracking_uri))
    mlflow.set_tracking_uri(tracking.store_uri(tracking_uri))
    client = MlflowClient()
    champ = registry.champion_version(client, DEFAULT_MODEL_NAME)
    if champ is None or registry.SPLIT_TAG not in champ.tags:
        return [DEFAULT_MODEL_URI]
    newest: dict[str, int] = {}
    for v in client.search_model_versions(f"name='{DEFAULT_MODEL_NAME}'"):
        if v.tags.get(registry.SPLIT_TAG) == champ.tags[registry.SPLIT_TAG]:
            key = v.tags.get("predictor", v.version)
            newest[key] = max(newest.get(key, 0), int(v.version))
    return [f"models:/{DEFAULT_MODEL_NAME}/{v}" for v in sorted(newest.values())] or [DEFAULT_MODEL_URI]


@dataclass
class Candidate:
    """One candidate predictor transferred to this machine: its registry info and metadata, the
    layer-wise predictor transferred (`base`), the transfer, its held-out predictions and the metadata
    holding its interval (`extra`)."""

    info: dict
    meta: dict
    base: object
    transfer: object
    heldout: object
    extra: dict

    @property
    def name(self) -> str:
        return self.meta.get("predictor") or self.info["uri"]

    @property
    def cv(self) -> float:
        """Its held-out (cross-validated) bring-up error, in the method the transfer chose."""
        return self.transfer.cv.get(self.transfer.method, float("inf"))


def fit_candidates(loaded: list, data, methods: tuple[str, ...] | None = None) -> list[Candidate]:
    """Transfer each loaded (pyfunc, info) candidate to the machine whose bring-up set is `data`."""
    from nnenergy.features.cache import features_of

    feats = features_of(data)
    fits = []
    for pyfunc, info in loaded:
        base = source_predictor(pyfunc)
        fits.append(Candidate(info, dict(pyfunc.metadata.metadata or {}), base, *fit(base, data, feats, methods)))
    return fits


def run(minutes: float = 10.0, model_uri: str | None = None, tracking_uri: str | None = None,
        overrides: list[str] = (), methods: tuple[str, ...] | None = None, register: bool = True) -> Bringup:
    """`nnenergy calibrate --minutes M`: measure, transfer each candidate predictor, keep the one
    with the lowest held-out bring-up error, log it, register it."""
    from nnenergy import dataset as ds
    from nnenergy import speed as speeds
    from nnenergy.measure.backends import profile_name
    from nnenergy.predict.loading import load_predictor

    if not minutes > 0:
        raise BringupError(f"--minutes must be > 0, not {minutes}")
    t0 = time.perf_counter() - _started_before()
    profile = profile_name()
    if minutes <= 0.5:  # the speed only: the transfer stays, the machine's speed is re-read
        folder = Path(sweep_spec(minutes, overrides).output_dir)
        speed = read_speed(folder)
        return Bringup(profile, "", "speed re-read", False, {}, 0, 0, 0, speed["speed_index"],
                       time.perf_counter() - t0)
    # Before measuring: a bad URI or an empty registry costs nothing.
    loaded = [load_predictor(u, tracking_uri) for u in candidate_uris(model_uri, tracking_uri)]
    spec = sweep_spec(minutes, overrides, time.perf_counter() - t0, len(loaded))
    folder = Path(spec.output_dir)
    new = measure(spec)
    data = ds.load(folder)
    fits = fit_candidates(loaded, data, methods)
    best = min(fits, key=lambda c: c.cv)
    speed = speed_of_blocks(folder) or {"speed_index": 1.0, "source": "none"}
    if speed["source"] != "none":
        speeds.record(profile, {"speed_index": speed["speed_index"], "latency_speed_index": speed["speed_index"],
                                "read_at": speed["measured_at"], "source": speed["source"],
                                "canonical": speeds.canonical_key(speeds.canonical_of_dataset(folder))})
    hw = best.meta.get("hardware") or {}
    tr = best.transfer
    out = Bringup(profile, hw.get("source_profile") or hw.get("profile") or "unknown", tr.method, tr.fallback, tr.cv,
                  len(data.models), new, int(data.models["architecture"].nunique()), float(speed["speed_index"]), 0.0,
                  base=best.name, candidates={c.name: round(c.cv, 2) for c in fits})
    log_and_register(out, best, data, folder, {"minutes": minutes, "methods": ",".join(methods or ("auto",))},
                     tracking_uri, register)
    out.seconds = time.perf_counter() - t0
    return out


def log_and_register(out: Bringup, best: Candidate, data, folder: Path, params: dict, tracking_uri: str | None,
                     register: bool) -> None:
    """Log the chosen transfer as an MLflow run of EXPERIMENT (its bring-up set, held-out plot and
    pyfunc) and register it as this machine's champion; fills `out`'s run, version and alias."""
    import mlflow

    from nnenergy import registry, tracking
    from nnenergy import speed as speeds
    from nnenergy.learn.pyfunc import log_pyfunc
    from nnenergy.learn.transfer import transferred

    profile, source_profile, tr, heldout, info = out.profile, out.source_profile, best.transfer, best.heldout, best.info
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    hardware = data.hardware() | {"profile": profile, "source_profile": source_profile}
    # Its held-out error is the transfer's on this machine's held-out bring-up architectures, not
    # the base's at home.
    held = {}
    if len(heldout):
        from nnenergy.evaluate import metrics

        held = metrics.summary(heldout["measured_energy_j"], heldout["energy_j"], "generated_whole_energy_")
    pred = transferred(best.base, tr, best.extra | {
        "hardware": hardware, "canonical_reference": speeds.canonical_of_dataset(folder),
        "predictor": f"{out.base}, transferred", "heldout": held,
        "calibrated": {"from": source_profile, "source_model": info["uri"], "source_version": info.get("version"),
                       "base": out.base, "at": now, "method": tr.method, "fallback": tr.fallback,
                       "cv_rmspe": tr.cv, "candidates_cv_rmspe": out.candidates, "configs": out.configs,
                       "speed_index": out.speed_index}})
    tracking.setup(tracking.store_uri(tracking_uri), EXPERIMENT)
    with mlflow.start_run(run_name=f"calibrate-{profile}") as run:
        mlflow.set_tags({"profile": profile, "source_profile": source_profile, "entry_point": "calibrate",
                         "method": tr.method, "fallback": str(tr.fallback), "base": out.base})
        mlflow.log_params(params | {"source_model": info["uri"], "candidates": ",".join(out.candidates)})
        tracking.log_metrics({f"cv_{k}_rmspe": v for k, v in tr.cv.items()}
                             | {f"candidate_{k}_cv_rmspe": v for k, v in out.candidates.items()}
                             | {"bringup_configs": out.configs, "new_configs": out.new_configs,
                                "speed_index": out.speed_index,
                                "whole_ratio_energy": tr.whole_ratio[0], "whole_ratio_latency": tr.whole_ratio[1]})
        tracking.log_dataset(data.models, folder, f"{profile}-bringup", "calibration", ("DATASHEET.md",))
        if len(heldout):
            from nnenergy.evaluate import plots

            family = heldout["config_id"].map(data.models.set_index("config_id")["family"])
            tracking.log_figure(plots.predicted_vs_measured(
                heldout.assign(family=family.fillna("generated")),
                f"{source_profile} -> {profile}: {out.base}, {tr.method}, held-out bring-up architectures"),
                "plots/bringup_heldout_pred_vs_measured.png")
        info_model = log_pyfunc(pred, data.layers, "layerwise", f"transferred-{profile}")
        out.run_id = run.info.run_id
        if register:
            out.version, out.alias = registry.register_transferred(info_model.model_uri, profile, source_profile)
