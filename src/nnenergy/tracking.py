"""MLflow set-up shared by every entry point."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

# MLflow loads inside the functions that use it: `resolve_tracking_uri` serves `nnenergy predict`,
# which finds its cached predictor without MLflow.
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"


SQLITE = "sqlite:///"


def sqlite_file(uri: str) -> Path | None:
    """The database file a `sqlite:///file.db` URI names (relative as written), None for other stores."""
    return Path(uri[len(SQLITE):]) if uri.startswith(SQLITE) else None


def resolve_tracking_uri(uri: str) -> str:
    """Make a relative `sqlite:///file.db` absolute so every process and job hits one store."""
    path = sqlite_file(uri)
    if path is not None and not path.is_absolute():
        return SQLITE + str(path.resolve())
    return uri


def store_uri(tracking_uri: str | None = None) -> str:
    """The store a command reads: `tracking_uri`, else `$MLFLOW_TRACKING_URI`, else ./mlflow.db when it exists,
    else the store `nnenergy main` recorded (`nnenergy.stores.find_store`); resolved."""
    from nnenergy.stores import find_store

    return resolve_tracking_uri(find_store(tracking_uri))


def setup(tracking_uri: str, experiment: str) -> str:
    """Point MLflow at the store and make sure the experiment exists; returns its id.

    `mlflow run` without `--experiment-name` opens its run in the Default experiment; our runs
    belong in `experiment`, so that run is left with a pointer tag and ours start there instead.
    SQLite stores race when several processes create tables at once, so retry briefly. A remote store is
    probed first (`nnenergy.stores.probe`): unreachable, it fails in seconds, not after MLflow's retries.
    """
    import mlflow

    from nnenergy.stores import probe

    uri = resolve_tracking_uri(tracking_uri)
    probe(uri, must_exist=False)
    mlflow.set_tracking_uri(uri)
    for attempt in range(5):
        try:
            exp_id = _experiment_id(mlflow, experiment, uri)
            mlflow.set_experiment(experiment_id=exp_id)
            break
        except Exception:  # "database is locked" from a concurrent job
            if attempt == 4:
                raise
            time.sleep(0.5 * (attempt + 1))
    run_id = os.environ.get("MLFLOW_RUN_ID")
    if run_id:  # launched by `mlflow run`
        client = mlflow.MlflowClient()
        if client.get_run(run_id).info.experiment_id != exp_id:
            client.set_tag(run_id, "nnenergy.runs_in_experiment", experiment)
            os.environ.pop("MLFLOW_RUN_ID")
    return exp_id


def artifact_root(tracking_uri: str, experiment: str) -> str | None:
    """Where a new experiment of a SQLite store keeps its artifacts: `mlruns/<experiment>` beside the database
    file, so a store and its artifacts stay together whatever folder a command runs from (MLflow's default is
    the working folder's `./mlruns/<id>`; the id is not known before the experiment exists, its name is).
    None for other stores (a server decides for itself)."""
    path = sqlite_file(tracking_uri)
    if path is None or str(path) == ":memory:":
        return None
    folder = re.sub(r"[^A-Za-z0-9._-]", "_", experiment).strip(".") or "experiment"
    return str(path.parent / "mlruns" / folder)


def _experiment_id(mlflow, experiment: str, uri: str) -> str:
    """The id of `experiment`, created with `artifact_root(uri, experiment)` when new (an existing one keeps
    its own)."""
    found = mlflow.get_experiment_by_name(experiment)
    if found is not None:
        return found.experiment_id
    return mlflow.create_experiment(experiment, artifact_location=artifact_root(uri, experiment))


def flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def ints_as_floats(df):
    """MLflow warns that integer columns cannot hold missing values in a schema: log floats."""
    ints = df.select_dtypes("integer").columns
    return df.astype({c: "float64" for c in ints})


# -- metric names and precision ---------------------------------------------------------------
# The headline under names MLflow's run-table columns show whole (about 13 characters fit: the
# evaluation's `external_whole_energy_rmspe` read "external_whole"). docs/mlflow-hydra.md maps them.
# `external_hub` (L2h) is a second level-2 set, reported beside `external` (L2), whose figures keep their meaning.
LEVEL_KEYS = {"family": "L1", "external": "L2", "external_hub": "L2h", "generated": "L3"}
# Each level's transformer and recurrent configurations alone (`features.workload`), with their counts:
# `L3_trf_rmspe`, `L3_trf_w10`, `L3_trf_n` for the evaluation's `generated_transformer_whole_energy_*`.
WORKLOAD_KEYS = {"transformer": "trf", "recurrent": "rnn"}
_SUBSET_METRICS = {"rmspe": "rmspe", "within10": "w10", "n": "n"}
HEADLINE_NAMES = {f"{lvl}_whole_energy_{m}": f"{short}_{m}" for lvl, short in LEVEL_KEYS.items()
                  for m in ("rmspe", "within10")} | {
    f"{lvl}_{work}_whole_energy_{m}": f"{short}_{tag}_{s}" for lvl, short in LEVEL_KEYS.items()
    for work, tag in WORKLOAD_KEYS.items() for m, s in _SUBSET_METRICS.items()}
SCORE_METRIC = "score"  # the champion score (`registry.champion_score`)
SIGNIFICANT_DIGITS = 4


def rounded(value: float) -> float:
    """A metric as logged: counts as they are, other values to 4 significant digits (MLflow's table
    printed 7 decimals of an RMSPE whose noise is in the first)."""
    import math

    v = float(value)
    if not math.isfinite(v) or v.is_integer():
        return v
    return float(f"{v:.{SIGNIFICANT_DIGITS}g}")


def log_metrics(metrics: dict, step: int | None = None, run_id: str | None = None) -> None:
    """`mlflow.log_metrics`, every value `rounded`; `run_id`: into that run (not the active one)."""
    import mlflow

    values = {k: rounded(v) for k, v in metrics.items()}
    if run_id is None:
        mlflow.log_metrics(values, step=step)
    else:
        client = mlflow.MlflowClient()
        for k, v in values.items():
            client.log_metric(run_id, k, v, step=step or 0)


def headline_of(metrics: dict) -> dict:
    """A run's logged headline metrics under the evaluation's names (`HEADLINE_NAMES` reversed; a run logged
    before the short names, under those names already)."""
    back = {short: long for long, short in HEADLINE_NAMES.items()} | {long: long for long in HEADLINE_NAMES}
    return {back[k]: v for k, v in metrics.items() if k in back}


# -- what every entry point logs -------------------------------------------------------------
def log_resolved_config(cfg) -> None:
    """The resolved Hydra config as a YAML artifact and as flattened params."""
    import mlflow
    from omegaconf import OmegaConf

    from nnenergy.stores import public_config

    resolved = public_config(OmegaConf.to_container(cfg, resolve=True))  # a store URI's password stays out
    mlflow.log_dict(resolved, "config/resolved.yaml")
    mlflow.log_params({k: str(v)[:500] for k, v in flatten(resolved).items()})


def log_dataset(models, path: Path, name: str, context: str, files: tuple[str, ...] = ()) -> None:
    """`mlflow.log_input` of the models table (a digest) plus the data files themselves."""
    import mlflow

    table = ints_as_floats(models.drop(columns=[c for c in ("window_energies_j", "arch_spec") if c in models]))
    source = local_source(Path(path).resolve())
    mlflow.log_input(mlflow.data.from_pandas(table, source=source, name=name), context=context)
    for f in files:
        if (Path(path) / f).exists():
            mlflow.log_artifact(str(Path(path) / f), f"dataset/{name}")


def local_source(path: Path):
    """The dataset source of a local folder, declared: given as a path, MLflow finds two registered
    sources that can read it (both named LocalArtifactDatasetSource) and warns that it is ambiguous."""
    from mlflow.data.dataset_source_registry import get_registered_sources

    for cls in get_registered_sources():
        if cls.__name__ == "LocalArtifactDatasetSource":
            return cls(str(path))
    return str(path)


def log_figure(fig, path: str) -> None:
    import mlflow

    if fig is not None:
        import matplotlib.pyplot as plt

        mlflow.log_figure(fig, path)
        plt.close(fig)


_LEVEL_NAMES = {"family": "level 1: families", "external": "level 2: published", "external_hub": "level 2: keras-hub",
                "generated": "level 3: generated"}


def _registry_aliases(client, run_ids: list[str]) -> dict[str, list[str]]:
    """Run id -> what the registry says of its version now, as markdown labels: the aliases it holds
    (`@champion`), or, for a version that tied the one holding an alias (same split, same predictor, same
    score: a second `make run` on the same data), that alias and who holds it, so the best row never reads
    "–" beside a champion it equals. Read from the registered models' alias maps: a model version's own
    `aliases` comes back empty from a SQLite store."""
    from nnenergy.registry import SCORE_TAG, SPLIT_TAG

    wanted, out = set(run_ids), {}
    try:
        models = client.search_registered_models("name LIKE 'nnenergy-%'")
    except Exception:  # a store without a registry: no aliases
        return {}
    for rm in models:
        versions = {str(v.version): v for v in client.search_model_versions(f"name='{rm.name}'")}
        same = lambda v: (v.tags.get(SPLIT_TAG), v.tags.get("predictor"), v.tags.get(SCORE_TAG))
        for alias, version in sorted((client.get_registered_model(rm.name).aliases or {}).items()):
            holder = versions.get(str(version))
            if holder is None:
                continue
            if holder.run_id in wanted:
                out.setdefault(holder.run_id, []).append(f"`@{alias}`")
            for v in versions.values():
                if v.run_id in wanted and v is not holder and SCORE_TAG in v.tags and same(v) == same(holder):
                    out.setdefault(v.run_id, []).append(f"= `@{alias}` (version {version}, same score)")
    return out


def _champion_now(client, name: str = "nnenergy-layerwise") -> str | None:
    """Where the registry's `champion` alias points now, in words, or None."""
    from nnenergy.registry import CHAMPION

    try:
        mv = client.get_model_version_by_alias(name, CHAMPION)
    except Exception:  # no registry, no such model or alias
        return None
    predictor = mv.tags.get("predictor", "")
    return f"version {mv.version} of {name} (run {mv.run_id[:8]}{', ' + predictor if predictor else ''})"


COMPARE_VIEW = "nnenergy-compare"  # the runs page's shared view of the newest sweep (experiment tag)
CHAMPION_VIEW = "nnenergy-champion"  # the registered champion and the versions it was chosen among
NEWEST_SWEEP_TAG = "nnenergy.newest_sweep_view"  # experiment tag: the newest sweep's own view key


def sweep_view(parent: str) -> str:
    """The key of one sweep's own view (never re-pointed by a later sweep)."""
    return f"nnenergy-sweep-{parent[:8]}"


def compare_view_path(experiment_id: str, key: str = COMPARE_VIEW) -> str:
    """The MLflow UI's address (after the host) of a shared view of the runs page."""
    return f"#/experiments/{experiment_id}/runs?viewStateShareKey={key}"


def _share_view(client, experiment_id: str, key: str, search_filter: str) -> None:
    """A shared view of the runs page (MLflow's "Share" button stores the same experiment tag): the runs
    `search_filter` selects, one row each, with the three levels' RMSPE and the champion score as
    columns, best first. Without it the page opens on one collapsed parent and no metric columns."""
    cols = [f"metrics.`{LEVEL_KEYS[lvl]}_rmspe`" for lvl in ("family", "external", "generated")]
    cols += [f"metrics.`{SCORE_METRIC}`"]  # (L2h, where measured, is one click away: not an empty column elsewhere)
    state = {"searchFilter": search_filter, "orderByKey": f"metrics.`{SCORE_METRIC}`",
             "orderByAsc": True, "startTime": "ALL", "lifecycleFilter": "Active", "datasetsFilter": [],
             "modelVersionFilter": "All Runs", "selectedColumns": cols, "runsExpanded": {}, "runsPinned": [],
             "runsHidden": [], "runListHidden": False}
    client.set_experiment_tag(experiment_id, f"mlflow.sharedViewState.{key}", json.dumps(state))


def _share_compare_view(client, experiment_id: str, parent: str) -> None:
    """This sweep's child runs under two keys: its own (`sweep_view`, stays true) and `COMPARE_VIEW`
    (the newest sweep); and the champion's view (`CHAMPION_VIEW`), which a later sweep that does not
    move the champion leaves showing the champion and its competitors."""
    children = f"tags.mlflow.parentRunId = '{parent}'"
    for key in (COMPARE_VIEW, sweep_view(parent)):
        _share_view(client, experiment_id, key, children)
    client.set_experiment_tag(experiment_id, NEWEST_SWEEP_TAG, sweep_view(parent))
    _share_champion_view(client, experiment_id)


def _share_champion_view(client, experiment_id: str, name: str = "nnenergy-layerwise") -> None:
    """The runs of the versions registered on the champion's split (the ones it was chosen among)."""
    from nnenergy.registry import CHAMPION, SPLIT_TAG

    try:
        champ = client.get_model_version_by_alias(name, CHAMPION)
        split = champ.tags.get(SPLIT_TAG)
        runs = {v.run_id for v in client.search_model_versions(f"name='{name}'")
                if split is not None and v.tags.get(SPLIT_TAG) == split} | {champ.run_id}
    except Exception:  # no registry, no champion yet
        return
    ids = ", ".join(f"'{r}'" for r in sorted(runs))
    _share_view(client, experiment_id, CHAMPION_VIEW, f"attributes.run_id IN ({ids})")


def summarise_children(parent: str) -> str | None:
    """The parent run carries its children's headline metrics, a comparison table and a chart,
    so the UI compares predictors at a glance among the 190+ metrics each run logs. Run after the
    champions are promoted: the table marks the aliases the children's versions actually hold.
    Returns the comparison as plain text (`comparison_text`), or None without children."""
    import mlflow
    import pandas as pd

    client = mlflow.MlflowClient()
    exp = client.get_run(parent).info.experiment_id
    children = client.search_runs([exp], filter_string=f"tags.mlflow.parentRunId = '{parent}'")
    if children:
        _share_compare_view(client, exp, parent)
    rows = []
    for r in children:
        name = r.data.tags.get("predictor", r.info.run_name)
        head = headline_of(r.data.metrics)
        # The score the run logged (from unrounded errors): recomputed from the rounded ones it can differ
        # in its last digit from what the registry and the runs page say.
        score = r.data.metrics.get(SCORE_METRIC)
        rows.append({"predictor": name, "run_id": r.info.run_id, **head, "champion_score": score})
        log_metrics({f"{name}.{HEADLINE_NAMES[k]}": v for k, v in head.items()}, run_id=parent)
    if not rows:
        return None
    from nnenergy.registry import champion_score

    table = pd.DataFrame(rows)
    computed = pd.Series([champion_score(r) for r in rows], index=table.index)  # runs logged before `score`
    table["champion_score"] = table["champion_score"].astype(float).fillna(computed)
    table = table.sort_values("champion_score")
    client.log_table(parent, table, "comparison.json")
    # The comparison a user looks for first, as the parent run's description (its Overview tab).
    aliases = _registry_aliases(client, list(table["run_id"]))
    client.set_tag(parent, "mlflow.note.content", comparison_markdown(table, aliases, _champion_now(client)))
    _log_comparison_chart(client, parent, table)
    return comparison_text(table, aliases)


def _log_comparison_chart(client, parent: str, table) -> None:
    cols = [c for c in (f"{lvl}_whole_energy_rmspe" for lvl in _LEVEL_NAMES) if c in table]
    if cols:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(8, 3.8))
        plot = table.set_index("predictor")[cols].rename(columns=lambda c: _LEVEL_NAMES[c.split("_whole_")[0]])
        plot.plot.bar(ax=ax, rot=0)
        ax.set(ylabel="whole-model energy RMSPE (%)", xlabel="",
               title="Held-out error by level (lower is better)")
        # Beside the bars, not over them: a legend inside the axes hid the xgb and catboost bars.
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        fig.tight_layout()
        client.log_figure(parent, fig, "comparison.png")
        plt.close(fig)


_LEVEL_SHORT = {"family": "L1 families", "external": "L2 published", "external_hub": "L2h keras-hub",
                "generated": "L3 generated"}
_WORKLOAD_HEADER = {"transformer": "transformer rows", "recurrent": "recurrent rows"}


def _workloads(table) -> list[str]:
    """The workloads (`WORKLOAD_KEYS`) some level of the table reports on its own."""
    return [w for w in WORKLOAD_KEYS if any(f"{lvl}_{w}_whole_energy_rmspe" in table for lvl in _LEVEL_NAMES)]


def _workload_cell(r, work: str) -> str:
    """One workload's RMSPE on every level that has its configurations, with their count:
    `L2h 14.9% (n 18), L3 20.1% (n 12)`."""
    cells = []
    for lvl, short in LEVEL_KEYS.items():
        v, n = r.get(f"{lvl}_{work}_whole_energy_rmspe"), r.get(f"{lvl}_{work}_whole_energy_n")
        if v is not None and v == v:
            cells.append(f"{short} {v:.1f}% (n {n:.0f})")
    return ", ".join(cells) or "-"


def comparison_text(table, aliases: dict[str, list[str]] | None = None) -> str:
    """The comparison as an aligned plain-text table, best first (what `nnenergy main` prints once)."""
    aliases = aliases or {}
    levels = [lvl for lvl in _LEVEL_NAMES if f"{lvl}_whole_energy_rmspe" in table]
    works = _workloads(table)
    rows = [["predictor", *(_LEVEL_SHORT[lvl] for lvl in levels), "score", "registry",
             *(_WORKLOAD_HEADER[w] for w in works)]]
    for _, r in table.iterrows():
        rows.append([str(r["predictor"]), *(_level_cell(r, lvl) for lvl in levels), f"{r['champion_score']:.2f}",
                     ", ".join(a.replace("`", "") for a in aliases.get(r.get("run_id"), [])) or "-",
                     *(_workload_cell(r, w) for w in works)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    note = ("held-out whole-model energy: RMSPE · share within ±10%; score: mean of L1 and L3 RMSPE"
            + ("; transformer/recurrent rows: each level's RMSPE on those configurations alone" if works else ""))
    return "\n".join([*lines, note])


def _level_cell(r, lvl: str) -> str:
    return f"{r[f'{lvl}_whole_energy_rmspe']:.1f}% · {r.get(f'{lvl}_whole_energy_within10', float('nan')):.0f}%"


def comparison_markdown(table, aliases: dict[str, list[str]] | None = None, champion: str | None = None) -> str:
    """A markdown table of the predictors on the three levels: the lowest champion score in bold, and
    beside each run the registry aliases its version holds (`aliases`: run id -> aliases). "champion"
    is written only where the registry says so: with registration off, or a champion kept from
    another split, the best of this sweep is not the champion. The table comes first and its headers
    are short: MLflow shows a description folded to its first lines."""
    aliases = aliases or {}
    levels = [lvl for lvl in _LEVEL_NAMES if f"{lvl}_whole_energy_rmspe" in table]
    works = _workloads(table)
    lines = ["| predictor | " + " | ".join(_LEVEL_SHORT[lvl] for lvl in levels) + " | score | registry |"
             + "".join(f" {_WORKLOAD_HEADER[w]} |" for w in works),
             "|---" * (len(levels) + 3 + len(works)) + "|"]
    best = table["champion_score"].idxmin() if table["champion_score"].notna().any() else None
    for i, r in table.iterrows():
        cells = [_level_cell(r, lvl) for lvl in levels]
        name = f"**{r['predictor']}** (lowest score)" if i == best else r["predictor"]
        held = ", ".join(aliases.get(r.get("run_id"), [])) or "–"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {r['champion_score']:.2f} | {held} |"
                     + "".join(f" {_workload_cell(r, w)} |" for w in works))
    note = "" if aliases else ("\n\nNo version of these runs holds a registry alias: registration was off, or "
                               "an earlier version kept it (a lower or equal score on the same split, or "
                               "another dataset's split)." + (f" `@champion` is {champion}." if champion else ""))
    return ("\n".join(lines) + "\n\nHeld-out whole-model energy error: RMSPE · share within ±10%, on level 1 "
            "(keras.applications families), level 2 (published models written outside the project; L2h: keras-hub "
            "backbones and recurrent text models, where measured) and level 3 (generated architectures); transformer "
            "and recurrent rows: each level's error on those configurations alone (n: how many). Score: mean of the "
            "level-1 and level-3 RMSPE (level 2 never selects); the registry's `champion` alias goes to the lowest "
            "score among versions trained on the same split."
            + note)
