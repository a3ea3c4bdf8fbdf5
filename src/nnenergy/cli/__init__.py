"""The `nnenergy` command and its subcommands: main, measure, train, analyze, predict, describe,
calibrate, merge. Every command-line entry point lives in this package; the library never imports it."""

from __future__ import annotations

import os
import sys

USAGE = """usage: nnenergy <command> [args]

commands:
  main      train and compare the four layer-wise predictors on the shipped dataset,
            register them and promote the champion (Hydra multirun)
  measure   run a measurement sweep        e.g. nnenergy measure sweep=tiny
  train     train one predictor            e.g. nnenergy train predictor=rf
  analyze   figures and metrics of a dataset  e.g. nnenergy analyze dataset=data/cpu
  predict   predict a model's energy       e.g. nnenergy predict ResNet50 --batch-size 32
  describe  write a model's layer table (predict it later without TensorFlow)
                                           e.g. nnenergy describe ResNet50 --batch-size 32 -o r50.parquet
  calibrate bring THIS machine up: measure it for --minutes (default 10), transfer the registered
            predictor to it, register it as this machine's champion
                                           e.g. nnenergy calibrate --minutes 10
  serve     keep TensorFlow and Keras imported: predict/describe from this folder answer in ~1 s
                                           e.g. nnenergy serve --detach   (stop: nnenergy serve --stop)
  merge     merge datasets of several jobs or hosts (one hardware profile)
                                           e.g. nnenergy merge data/p/space job1/space job2/space

`measure` and `train` take Hydra overrides (and -m for multirun); see conf/.
exit status, every command: 0 done, 2 bad usage or input, 1 a failure while running.
"""
LAYERWISE = "poly,rf,xgb,catboost"
COMMANDS = ("main", "measure", "train", "analyze", "predict", "describe", "calibrate", "serve", "merge")


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


def _hydra(module, argv: list[str], name: str) -> None:
    why = unknown_choice(argv)
    if why:
        print(f"nnenergy {name}: {why}", file=sys.stderr)
        raise SystemExit(2)
    sys.argv = [f"nnenergy-{name}", *argv]
    module.main()


def _compare_link(uri: str, base: str) -> str | None:
    """The runs page's comparison view of the newest sweep (`tracking.compare_view_path`), or None."""
    try:
        from mlflow import MlflowClient

        from nnenergy import tracking

        exp = MlflowClient(uri).get_experiment_by_name("nnenergy-train")
        return f"{(base or uri).rstrip('/')}/{tracking.compare_view_path(exp.experiment_id)}" if exp else None
    except Exception:  # a link is a convenience: never fail the job over it
        return None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    cmd, rest = argv[0], argv[1:]
    from nnenergy.cli.serve_client import forward

    rc = forward(cmd, rest)  # predict/describe: a warm server (`nnenergy serve`) answers in about a second
    if rc is not None:
        return rc
    if cmd == "measure":
        from nnenergy.apps import measure

        _hydra(measure, rest, cmd)
    elif cmd == "train":
        from nnenergy.apps import train

        _hydra(train, rest, cmd)
    elif cmd == "analyze":
        from nnenergy.apps import analyze

        _hydra(analyze, rest, cmd)
    elif cmd == "main":
        from nnenergy import tracking
        from nnenergy.apps import train

        _hydra(train, ["-m", f"predictor={LAYERWISE}", *rest], "train")
        uri = tracking.store_uri()
        remote = uri.startswith(("http://", "https://"))
        browse = f"  open {uri}" if remote else f"  .venv/bin/mlflow ui --backend-store-uri {uri} --host 127.0.0.1"
        compare = _compare_link(uri, "" if remote else "http://127.0.0.1:5000/")
        print("\nDone. Browse runs, plots and the registry with:\n"
              f"{browse}\n"
              + (f"The predictors side by side (this sweep's runs, best first):\n  {compare}\n" if compare else "")
              + "Predict with the champion:\n  .venv/bin/nnenergy predict MobileNetV2 --batch-size 8")
    elif cmd == "calibrate":
        from nnenergy.cli.calibrate import main as calibrate_main

        return calibrate_main(rest)
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

        return serve_main(rest)
    else:
        print(f"nnenergy: error: unknown command {cmd!r}; choose one of: {', '.join(COMMANDS)} "
              "(`nnenergy --help` says what each does)", file=sys.stderr)
        return 2
    return 0
