"""The command-line contract, in real processes, once per command: bad input is one line on stderr
naming the command, nothing on stdout, exit status 2 — never a traceback."""

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
    "serve": ["--idle-minutes", "0"],
    "merge": ["{tmp}/out", "{tmp}/missing-a", "{tmp}/missing-b"],
    "nosuch": [],  # an unknown command
}


@pytest.mark.parametrize("cmd", list(CASES))
def test_bad_input_is_one_line_and_status_two(cmd, tmp_path):
    args = [a.format(tmp=tmp_path) for a in CASES[cmd]]
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db", "NNENERGY_CACHE": str(tmp_path)}
    res = subprocess.run([sys.executable, "-m", "nnenergy.cli", cmd, *args], capture_output=True, text=True,
                         cwd=tmp_path, env=env, timeout=300)
    err = res.stderr.strip()
    assert res.returncode == 2, err[-2000:]
    assert res.stdout == "" and "Traceback" not in err and "\n" not in err, err[-2000:]
    assert err.startswith("nnenergy")
    named = "train" if cmd == "main" else cmd  # `main` is the training multirun
    assert f"nnenergy {named}" in err or (cmd == "nosuch" and "'nosuch'" in err)
