"""Model registry: one registered name per predictor family, alias `champion` for the best.

The champion rule, declared before level 2 was read (`champion_score`): the lowest mean of the level-1
(real architecture families held out) and level-3 (generated architectures held out) whole-model
energy RMSPE. Level 2 (the external set) never selects. The rule it replaced, level-1 RMSPE alone,
let a 2-point lead carried by two families pick the predictor that generalised worst.

What the aliases mean, in one place:
- `champion-<profile>`: the predictor of one hardware profile. The best champion score among
  versions trained on the same rows and folds (`split_id`) of that profile's data; a newer split of
  the profile replaces an older one.
  A profile without a trained predictor gets the version `nnenergy calibrate` transferred to it.
  `nnenergy predict` on a machine uses its own profile's alias when it exists.
- `champion`: the default everywhere else. Chosen like a profile's champion, but a training run on
  another profile's data never takes it over (their level-1 figures are not comparable): it moves
  only within the profile it was first given to.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlflow import MlflowClient

# MLflow loads inside the functions that use it: `profile_alias` serves `nnenergy predict --hardware`,
# which checks its arguments before anything heavy loads.
log = logging.getLogger(__name__)
CHAMPION = "champion"
PROFILE_TAG = "profile"
METRIC_TAG = "level1_rmspe"  # shown beside the score on the version page
SCORE_TAG = "champion_score"
SPLIT_TAG = "split_id"
SELECTING_LEVELS = ("family", "generated")  # level 2 (external) never selects


def champion_score(metrics: dict) -> float:
    """The champion rule: mean whole-model energy RMSPE over the selecting levels that were scored."""
    vals = [metrics.get(f"{lvl}_whole_energy_rmspe") for lvl in SELECTING_LEVELS]
    vals = [float(v) for v in vals if v is not None and math.isfinite(float(v))]
    return sum(vals) / len(vals) if vals else math.nan


def split_id(data, evaluation: dict) -> str:
    """Same dataset rows, same labels and same folds -> same id: only then are two versions comparable.
    Training-only rows (the kernel sweep) are not part of it: they change what a fold learns from, not what
    it is scored on, so versions with and without them compete. The labels change with the canonical's speed
    elasticity (`scale.relabel`): a version scored on labels of another exponent is not comparable."""
    parts = [data.hardware_id, sorted(data.models["config_id"]), evaluation.get("n_folds"),
             evaluation.get("seed"), evaluation.get("generated_folds")]  # levels 1 and 3 select
    elasticity = (data.canonical or {}).get("elasticity")
    if elasticity:  # (ids of datasets without one unchanged)
        parts.append(elasticity)
    key = json.dumps(parts, sort_keys=True)
    return hashlib.sha1(key.encode()).hexdigest()[:12]


def champion_version(client: MlflowClient, name: str, alias: str = CHAMPION):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def profile_alias(profile: str) -> str:
    """The alias of a hardware profile's own champion: `champion-<profile>` (`--hardware` picks it)."""
    return f"{CHAMPION}-{profile}"


def new_version(client: MlflowClient, model_uri: str, name: str):
    """A new version of `name` (created when missing) from a logged model: `mlflow.register_model` without
    the lines it prints on stderr whatever the log level ("Successfully registered model ...")."""
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise
    model_id = model_uri.removeprefix("models:/") if model_uri.startswith("models:/") else None
    return client.create_model_version(name, model_uri, model_id=model_id)


def register(model_uri: str, name: str, sid: str, metrics: dict, tags: dict) -> str | None:
    """Register a logged model, tag it with its split and champion score, and re-decide the champion:
    `champion` (the newest split's best, what `predict` uses by default) and `champion-<profile>`
    (each hardware profile's best, which `predict --hardware PROFILE` uses)."""
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient()
    mv = new_version(client, model_uri, name)
    score = {SCORE_TAG: f"{champion_score(metrics):.6f}",
             METRIC_TAG: f"{metrics.get('family_whole_energy_rmspe', math.nan):.2f}"}
    for k, v in {SPLIT_TAG: sid, **score, **tags}.items():
        client.set_model_version_tag(name, mv.version, k, str(v))
    champ = promote_champions(client, name, sid, tags.get(PROFILE_TAG))
    mlflow.set_tags({"registered_version": mv.version, "champion_version": champ})
    return champ


def promote_champions(client: MlflowClient, name: str, split_id: str, profile: str | None) -> str | None:
    """Re-decide `champion` and, for a version trained on a hardware profile, `champion-<profile>`;
    returns the champion version."""
    champ = promote_best(client, name, split_id)
    if profile:
        promote_best(client, name, split_id, profile_alias(str(profile)))
    return champ


def promote_best(client: MlflowClient, name: str, split_id: str, alias: str = CHAMPION) -> str | None:
    """Give `alias` (`champion`) to the best version on `split_id` if it beats the alias's current
    version on that same split. Considering every version makes the result independent of the
    order in which parallel jobs finish. Returns the alias's version."""
    versions = [v for v in client.search_model_versions(f"name='{name}'") if v.tags.get(SPLIT_TAG) == split_id]
    # Versions scored by an older rule carry no score tag: not comparable, never chosen.
    scored = [(float(v.tags[SCORE_TAG]), int(v.version)) for v in versions if SCORE_TAG in v.tags]
    scored = [s for s in scored if math.isfinite(s[0])]
    if not scored:
        return None
    best_score, best_version = min(scored)
    current = champion_version(client, name, alias)
    if alias == CHAMPION and current is not None:
        mine = next(v for v in versions if int(v.version) == best_version).tags.get(PROFILE_TAG)
        if current.tags.get(PROFILE_TAG) != mine:  # another profile's data: not comparable, not displaced
            log.info("%s@%s stays version %s (trained on %s, not %s)", name, alias, current.version,
                     current.tags.get(PROFILE_TAG), mine)
            return current.version
    if current is not None and current.tags.get(SPLIT_TAG) == split_id:
        cur_score = float(current.tags.get(SCORE_TAG, "inf"))
        if cur_score <= best_score:
            return current.version
    # A champion measured on a different split is not comparable: the new split's best wins.
    client.set_registered_model_alias(name, alias, str(best_version))
    log.info("%s@%s -> version %s (champion score: mean level-1/level-3 RMSPE %.2f%%)", name, alias, best_version,
             best_score)
    return str(best_version)


def reconcile_champions(client: MlflowClient) -> None:
    """After parallel jobs: re-run the promotion for each model on its newest split."""
    for rm in client.search_registered_models("name LIKE 'nnenergy-%'"):
        versions = client.search_model_versions(f"name='{rm.name}'")
        newest = max(versions, key=lambda v: int(v.version), default=None)
        if newest is not None and SPLIT_TAG in newest.tags:
            promote_champions(client, rm.name, newest.tags[SPLIT_TAG], newest.tags.get(PROFILE_TAG))


def trained_on(client: MlflowClient, name: str, profile: str) -> bool:
    """Whether `name` has a version trained (not transferred) on `profile`'s own data."""
    return any(v.tags.get(PROFILE_TAG) == profile and SPLIT_TAG in v.tags
               for v in client.search_model_versions(f"name='{name}'"))


def register_transferred(model_uri: str, profile: str, source_profile: str,
                         name: str = "nnenergy-layerwise") -> tuple[str, str | None]:
    """Register a predictor transferred to `profile` (by `nnenergy calibrate`). It becomes
    `champion-<profile>` unless the profile has a predictor trained on its own data, which a
    transfer never displaces; `champion` (a training run's choice) is never moved. Returns the
    version and the alias it got (None if none)."""
    from mlflow import MlflowClient

    client = MlflowClient()
    mv = new_version(client, model_uri, name)
    for k, v in {PROFILE_TAG: profile, "calibrated_from": source_profile, "predictor": "transferred"}.items():
        client.set_model_version_tag(name, mv.version, k, v)
    if trained_on(client, name, profile):
        log.info("%s has a predictor trained on its own data: version %s keeps no alias", profile, mv.version)
        return str(mv.version), None
    alias = profile_alias(profile)
    client.set_registered_model_alias(name, alias, str(mv.version))
    return str(mv.version), alias
