"""Every config in conf/ composes: each option of each config group, under the primary config that uses
it (train.yaml, measure.yaml, analyze.yaml), with Hydra's compose API and nothing run. The sweep configs
also compose identically through `scripts/measure_standalone.py`, the composer of machines without Hydra."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
# Each group of conf/ and the primary configs that compose it; a new group must be added here.
GROUPS = {"predictor": ["train"], "hparams_search": ["train"], "mlflow": ["train", "measure", "analyze"],
          "sweep": ["measure"], "hydra/launcher": ["measure"]}
PRIMARY = ["train", "measure", "analyze"]


def _options(group: str) -> list[str]:
    """The selectable options of a group: its files, less the shared bases (`_layerwise.yaml`, ...)."""
    return sorted(p.stem for p in (CONF / group).glob("*.yaml") if not p.name.startswith("_"))


def _compose(primary: str, overrides: list[str] = (), hydra_node: bool = False):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name=primary, overrides=list(overrides), return_hydra_config=hydra_node)


def test_every_group_and_primary_config_is_covered():
    groups = {str(p.parent.relative_to(CONF)) for p in CONF.rglob("*.yaml") if p.parent != CONF}
    assert groups == set(GROUPS), f"conf/ groups without a composition test: {groups ^ set(GROUPS)}"
    assert sorted(p.stem for p in CONF.glob("*.yaml")) == sorted(PRIMARY)


@pytest.mark.parametrize("primary", PRIMARY)
def test_each_primary_config_composes_with_its_defaults(primary):
    cfg = _compose(primary)
    assert cfg.mlflow.experiment == f"nnenergy-{primary}"


@pytest.mark.parametrize("group, option, primary",
                         [(g, o, p) for g, ps in GROUPS.items() for o in _options(g) for p in ps])
def test_every_option_of_every_group_composes(group, option, primary):
    hydra_group = group.startswith("hydra/")
    cfg = _compose(primary, [f"{group}={option}"], hydra_node=hydra_group)
    if group == "predictor":
        assert cfg.predictor.family in ("layerwise", "modelwise") and cfg.predictor.model._target_
        assert cfg.predictor.name == option and cfg.predictor.registered_name.startswith("nnenergy-")
    elif group == "sweep":
        assert cfg.sweep.name and "output_dir" in cfg.sweep  # the dataset it writes (adaptive adds to `space`)
    elif group == "hydra/launcher":
        assert "submitit" in cfg.hydra.launcher._target_
    elif group == "hparams_search":
        assert cfg.predictor.name == "mlp" and not cfg.register.enabled


def _standalone():
    spec = importlib.util.spec_from_file_location("measure_standalone", REPO / "scripts" / "measure_standalone.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # imports nothing of nnenergy until its main() runs
    return module


@pytest.mark.parametrize("name", _options("sweep"))
def test_the_standalone_composer_gives_what_hydra_composes(name):
    """Without Hydra (the GPU machines), `scripts/measure_standalone.py` must measure the same sweep."""
    hydra = OmegaConf.to_container(_compose("measure", [f"sweep={name}"]).sweep, resolve=False)
    assert _standalone().compose(name) == hydra


def test_the_isolated_layer_window_of_the_code_is_the_configs():
    from nnenergy.measure.meter import LAYER_MIN_SECONDS, MeterSettings
    from nnenergy.measure.sweep_spec import SweepSpec

    cfg = _compose("measure", ["sweep=space"])
    assert cfg.sweep.layer.min_seconds == LAYER_MIN_SECONDS == MeterSettings().min_seconds
    assert SweepSpec.__dataclass_fields__["layer"].default_factory().min_seconds == LAYER_MIN_SECONDS


def test_an_unknown_config_option_is_one_line_naming_the_choices(capsys):
    from nnenergy import cli

    for cmd, arg, group in (("train", "predictor=nosuch", "predictor"), ("measure", "sweep=nosuch", "sweep"),
                            ("train", "predictor=rf,nosuch", "predictor")):
        with pytest.raises(SystemExit) as exc:
            cli.main([cmd, "-m", arg] if "," in arg else [cmd, arg])
        assert exc.value.code == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"nnenergy {cmd}: no {group} config 'nosuch'; choose one of: ") and "\n" not in err
        assert ("rf" if group == "predictor" else "space") in err.split("choose one of: ")[1].split(", ")
    assert cli.unknown_choice(["predictor=rf,poly", "sweep=tiny", "hydra/launcher=joblib", "dataset=x"]) is None
