"""The `nnenergy` command and its subcommands: main, measure, train, analyze, predict, describe,
calibrate, speed, serve, merge. Every command-line entry point lives in this package; the library never imports it."""

from __future__ import annotations

import os
import sys

USAGE = """usage: nnenergy <command> [args]

commands:
  main      train and compare the four layer-wise predictors on the shipped dataset,
            register them and promote the champion (Hydra multirun)
  measure   run a measurement sweep        e.g. nnenergy measure sweep=tiny
  train     train one predictor            e.g. nnenergy train predictor=rf
  analyze   figures and metrics of a dataset  e.g. nnenergy analyze dataset=data/intel-xeon-avx512-2c/cpu
  predict   predict a model's energy       e.g. nnenergy predict ResNet50 --batch-size 32
  describe  write a model's layer table (predict it later without TensorFlow)
                                           e.g. nnenergy describe ResNet50 --batch-size 32 -o r50.parquet
  calibrate bring THIS machine up: measure it for --minutes (default 10), transfer the registered
            predictor to it, register it as this machine's champion
                                           e.g. nnenergy calibrate --minutes 10
  speed     this machine's speed index now (as predict applies it) and this host's readings
                                           e.g. nnenergy speed --history --plot speed.png
  serve     keep TensorFlow and Keras imported: predict/describe from this folder answer in ~1 s
                                           e.g. nnenergy serve --detach   (stop: nnenergy serve --stop)
  merge     merge datasets of several jobs or hosts (one hardware profile)
                                           e.g. nnenergy merge data/p/space job1/space job2/space

`measure` and `train` take Hydra overrides (and -m for multirun); see conf/.
exit status, every command: 0 done, 2 bad usage or input, 1 a failure while running.
"""
LAYERWISE = "poly,rf,xgb,catboost"
MAIN_HELP = """usage: nnenergy main [OVERRIDES]

Train the layer-wise predictors ({predictors}) on the shipped dataset of this CPU's profile (the
Zen 4's where it has none), evaluate them at the three levels on architectures they never saw, register
each in the MLflow store and promote the best as `champion`. It is `nnenergy train -m predictor={predictors}`
with the same Hydra overrides (see `nnenergy train --help`), e.g.
  nnenergy main mlflow.tracking_uri=sqlite:///other.db
  nnenergy main dataset=data/amd-epyc-f23m1-avx2-2c/space"""
COMMANDS = ("main", "measure", "train", "analyze", "predict", "describe", "calibrate", "speed", "serve", "merge")


def unknown_choice(argv: list[str]) -> str | None:
    """The one-line error for a `group=option` override naming no config of that group (`predictor=nosuch`,
    `sweep=nosuch`), or None: checked against conf/ before Hydra composes anything."""
    from nnenergy.paths import conf_dir

    for arg in argv:
        key, eq, value = arg.partition("=")
        key = key.lstrip("+")
        group = conf_dir() / key
        if not eq or key.startswith(("hydra", "~")) or not group.is_dir() or value in ("null", ""):
            continue
        options = sorted(p.stem for p in group.glob("*.yaml") if not p.stem.startswith("_"))
        for v in value.split(","):  # a multirun list
            if v not in options:
                return f"no {key} config {v!r}; choose one of: {', '.join(options)}"
    return None


def _composed(argv: list[str], config_name: str):
    """(the config `argv`'s overrides compose, or None, one-line error or None): a key the config lacks
    (`nosuchkey=1`) or an override that does not parse, found before Hydra runs anything. Sweeps compose
    with their first value; anything this check cannot judge is left to Hydra."""
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import ConfigCompositionException, OverrideParseException

    from nnenergy.apps import CONF_DIR

    if any(a.startswith("-") and a not in ("-m", "--multirun") for a in argv):  # --cfg job, --info, ...
        return None, None
    given = [a for a in argv if not a.startswith("-") and not a.startswith("hydra")]
    try:
        parsed = OverridesParser.create().parse_overrides(given)
    except OverrideParseException as exc:
        return None, f"cannot read the override: {str(exc).strip().splitlines()[0]}"
    simple = []
    for o, text in zip(parsed, given):
        if o.is_sweep_override():
            try:
                first = next(iter(o.sweep_string_iterator()))
            except Exception:  # a glob, range or interval (an Optuna search space): all judged by Hydra
                return None, None
            text = f"{o.get_key_element()}={first}"
        simple.append(text)
    try:
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            return compose(config_name=config_name, overrides=simple), None
    except ConfigCompositionException as exc:
        text = " ".join(str(exc).split())
        if text.startswith(("Could not override", "Could not append", "Could not delete")):
            return None, text
        return None, None
    except Exception:
        return None, None


def _hydra(app: str, argv: list[str], name: str) -> None:
    """Run the Hydra app `nnenergy.apps.<app>`; bad input is refused before it is imported (MLflow,
    scikit-learn: seconds)."""
    import importlib

    argv = credentials_to_environment(argv)
    why = unknown_choice(argv)
    cfg = None
    if not why:
        cfg, why = _composed(argv, name)
    if why:
        print(f"nnenergy {name}: {why}", file=sys.stderr)
        raise SystemExit(2)
    _probe_store(cfg, name)
    sys.argv = [f"nnenergy-{name}", *argv]
    importlib.import_module(f"nnenergy.apps.{app}").main()


def credentials_to_environment(argv: list[str]) -> list[str]:
    """`argv` without a `mlflow.tracking_uri=URI` override whose URI carries credentials: that URI goes to
    `$MLFLOW_TRACKING_URI` instead, which conf/mlflow/local.yaml reads, so the store is the same but its
    password never reaches Hydra's launcher log, `multirun.yaml` or `.hydra/overrides.yaml`."""
    from nnenergy.stores import redact

    kept = []
    for arg in argv:
        key, eq, value = arg.partition("=")
        if eq and key.lstrip("+") == "mlflow.tracking_uri" and redact(value) != value and "," not in value:
            os.environ["MLFLOW_TRACKING_URI"] = value.strip("'\"")
        else:
            kept.append(arg)
    return kept


def _probe_store(cfg, name: str) -> None:
    """A remote store that does not answer: one line and status 1 in seconds, before anything runs."""
    from omegaconf import OmegaConf

    from nnenergy.stores import StoreUnreachable, probe

    try:
        uri = OmegaConf.select(cfg, "mlflow.tracking_uri") if cfg is not None else None
    except Exception:  # an interpolation this check cannot resolve: Hydra will say
        return
    if not uri:
        return
    try:
        probe(str(uri), must_exist=False)
    except StoreUnreachable as exc:
        print(f"nnenergy {name}: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


def _compare_link(uri: str, base: str, champion: bool = False) -> str | None:
    """The runs page's view of this sweep (its own key, which later sweeps leave alone) or, `champion`,
    of the registered champion and its competitors (`tracking.compare_view_path`), or None."""
    try:
        from mlflow import MlflowClient

        from nnenergy import tracking
        from nnenergy.stores import redact

        exp = MlflowClient(uri).get_experiment_by_name("nnenergy-train")
        if exp is None:
            return None
        key = tracking.CHAMPION_VIEW if champion else exp.tags.get(tracking.NEWEST_SWEEP_TAG, tracking.COMPARE_VIEW)
        if f"mlflow.sharedViewState.{key}" not in exp.tags:
            return None
        return f"{redact(base or uri).rstrip('/')}/{tracking.compare_view_path(exp.experiment_id, key)}"
    except Exception:  # a link is a convenience: never fail the job over it
        return None


def done_message(uri: str, compare: str | None, champion: str | None, recorded) -> str:
    """What `nnenergy main` prints when it is done: where to browse the runs, the two shared views, how
    to predict. A store's credentials are never printed: the user puts their own back in place of `***`."""
    from nnenergy.stores import redact

    browse = (f"  open {redact(uri)}" if uri.startswith(("http://", "https://"))
              else f"  .venv/bin/mlflow ui --backend-store-uri {redact(uri)} --host 127.0.0.1")
    if redact(uri) != uri:
        browse += "   (your credentials in place of ***)"
    return ("\nDone. Browse runs, plots and the registry with:\n"
            f"{browse}\n"
            + (f"The predictors side by side (this sweep's runs, best first):\n  {redact(compare)}\n"
               if compare else "")
            + (f"The registered champion and the versions it was chosen among:\n  {redact(champion)}\n"
               if champion else "")
            + "Predict with the champion"
            + (f" (from any folder: this store is recorded in {recorded})" if recorded else "")
            + ":\n  .venv/bin/nnenergy predict MobileNetV2 --batch-size 8")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from nnenergy.quiet import quiet_environment

    quiet_environment()  # before anything imports TensorFlow or MLflow
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    cmd, rest = argv[0], argv[1:]
    from nnenergy.cli.serve_client import forward

    rc = forward(cmd, rest)  # predict/describe: a warm server (`nnenergy serve`) answers in about a second
    if rc is not None:
        return rc
    if cmd in ("measure", "train", "analyze"):
        _hydra(cmd, rest, cmd)
    elif cmd == "main" and ({"-h", "--help"} & set(rest)):
        # Hydra's own help would compose the multirun's `predictor=a,b,c` as one value and fail
        print(MAIN_HELP.format(predictors=LAYERWISE))
    elif cmd == "main":
        _hydra("train", ["-m", f"predictor={LAYERWISE}", *rest], "train")
        from nnenergy import tracking

        uri = tracking.store_uri()
        from nnenergy.stores import record_store

        recorded = record_store(uri)  # `nnenergy predict` from any folder finds this store
        base = "" if uri.startswith(("http://", "https://")) else "http://127.0.0.1:5000/"
        print(done_message(uri, _compare_link(uri, base), _compare_link(uri, base, champion=True), recorded))
    elif cmd == "calibrate":
        from nnenergy.cli.calibrate import main as calibrate_main

        return calibrate_main(rest)
    elif cmd == "speed":
        from nnenergy.cli.speed import main as speed_main

        return speed_main(rest)
    elif cmd == "merge":
        from nnenergy.cli.merge import main as merge_main

        return merge_main(rest)
    elif cmd == "describe":
        from nnenergy.cli.predict import describe_main

        return describe_main(rest)
    elif cmd == "predict":
        from nnenergy.cli.predict import main as predict_main

        return predict_main(rest)
    elif cmd == "serve":
        from nnenergy.cli.serve import main as serve_main
        from nnenergy.paths import cache_problem

        why = cache_problem() if not {"-h", "--help"} & set(rest) else None
        if why:  # the server's socket name, log and predictors all live there
            print(f"nnenergy serve: error: {why}", file=sys.stderr)
            return 2

        return serve_main(rest)
    else:
        print(f"nnenergy: error: unknown command {cmd!r}; choose one of: {', '.join(COMMANDS)} "
              "(`nnenergy --help` says what each does)", file=sys.stderr)
        return 2
    return 0
