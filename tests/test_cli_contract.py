"""The command-line contract, in real processes, once per command: bad input is one line on stderr
naming the command, nothing on stdout, exit status 2 — never a traceback. (A training sweep that writes
nothing to stderr, in a fresh process: tests/test_train.py, through `mlflow run`.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

CASES = {  # command -> arguments that are bad input (checked before anything is measured or trained)
    "main": ["predictor=nosuch"],
    "measure": ["sweep=nosuch"],
    "train": ["predictor=nosuch"],
    "analyze": ["dataset={tmp}/not-a-dataset"],
    "predict": ["{tmp}/missing.keras"],
    "describe": ["tiny_cnn", "-o", "{tmp}/no/such/folder/t.parquet"],
    "calibrate": ["--rounds", "0"],
    "speed": ["--speed", "fast"],
    "serve": ["--idle-minutes", "0"],
    "merge": ["{tmp}/out", "{tmp}/missing-a", "{tmp}/missing-b"],
    "nosuch": [],  # an unknown command
}
# More bad input per command: (command, arguments, NNENERGY_CACHE or None). In {tmp}: `a-file` is a
# file, `folder.parquet` a folder.
MORE = [
    ("train", ["nosuchkey=1"], None),  # a key the config lacks: Hydra's own error is 7 lines and status 1
    ("main", ["predictor.nosuchkey=1"], None),
    ("calibrate", ["--method", "nosuch"], None),  # argparse's usage dump
    ("describe", ["{tmp}/missing.keras", "-o", "{tmp}/t.parquet"], None),  # must not call itself predict
    ("describe", ["tiny_cnn", "-o", "{tmp}/folder.parquet"], None),  # an existing folder
    ("describe", ["tiny_cnn", "-o", "{tmp}/a-file/t.parquet"], None),  # a folder that cannot be written
    ("serve", ["--detach"], "{tmp}/a-file/cache"),  # a cache folder that cannot be written
    ("speed", ["--history", "--speed", "now"], None),  # a listing reads no speed
]


def _run(cmd: str, args: list[str], tmp_path: Path, cache: str | None = None):
    (tmp_path / "a-file").write_text("")
    (tmp_path / "folder.parquet").mkdir(exist_ok=True)
    args = [a.format(tmp=tmp_path) for a in args]
    # No TF_CPP_MIN_LOG_LEVEL (conftest sets it): a command that loads TensorFlow before its error keeps
    # TensorFlow's start-up lines off stderr by itself.
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env |= {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db",
            "NNENERGY_CACHE": (cache or str(tmp_path)).format(tmp=tmp_path)}
    return subprocess.run([sys.executable, "-m", "nnenergy.cli", cmd, *args], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=300)


def _assert_one_line(res, cmd: str):
    err = res.stderr.strip()
    assert res.returncode == 2, err[-2000:]
    assert res.stdout == "" and "Traceback" not in err and "\n" not in err, err[-2000:]
    assert err.startswith("nnenergy")
    named = "train" if cmd == "main" else cmd  # `main` is the training multirun
    assert f"nnenergy {named}" in err or (cmd == "nosuch" and "'nosuch'" in err)


@pytest.mark.parametrize("cmd", list(CASES))
def test_bad_input_is_one_line_and_status_two(cmd, tmp_path):
    _assert_one_line(_run(cmd, CASES[cmd], tmp_path), cmd)


@pytest.mark.parametrize("cmd,args,cache", MORE, ids=[f"{c}-{'-'.join(a)[:30]}" for c, a, _ in MORE])
def test_more_bad_input_is_one_line_and_status_two(cmd, args, cache, tmp_path):
    res = _run(cmd, args, tmp_path, cache)
    _assert_one_line(res, cmd)
    assert "nnenergy predict" not in res.stderr or cmd == "predict"


def test_calibrate_loads_tensorflow_quietly_and_fails_in_one_line_without_a_predictor(tmp_path):
    """`nnenergy calibrate` loads TensorFlow before anything else (its CUDA and oneDNN lines went to stderr):
    with no predictor to transfer it stops before measuring, one line, status 1, no TensorFlow line."""
    res = _run("calibrate", [], tmp_path)
    err = res.stderr.strip()
    assert res.returncode == 1 and res.stdout == "", err[-2000:]
    assert err.startswith("nnenergy calibrate: ") and "\n" not in err and "make run" in err, err[-2000:]


def test_the_help_examples_name_data_that_exists():
    import re

    from nnenergy.cli import MAIN_HELP, USAGE

    for path in re.findall(r"dataset=(\S+)", USAGE + MAIN_HELP):
        assert (REPO / path / "models.parquet").exists(), path


def test_main_help_explains_main_and_trains_nothing(capsys, tmp_path, monkeypatch):
    """`nnenergy main --help` printed a Hydra traceback (its multirun's `predictor=a,b,c` composed as one
    value): it says what `main` does and which overrides it takes, status 0, and touches no store."""
    from nnenergy import cli

    monkeypatch.chdir(tmp_path)
    for flag in ("--help", "-h"):
        assert cli.main(["main", flag]) == 0
        out = capsys.readouterr().out
        assert out.startswith("usage: nnenergy main [OVERRIDES]") and "poly,rf,xgb,catboost" in out
    assert not list(tmp_path.iterdir())
