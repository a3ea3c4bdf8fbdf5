"""MLflow stores as a user meets them: an unreachable one fails in seconds with one line naming its host
and never its password; `predict` finds the store `make run` trained from any folder and caches in
the user's cache folder."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from nnenergy import stores

SECRET = "s3cr3t-pw"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _silent_server():
    """Accepts connections (the kernel's backlog) and never says a word: what a hung server looks like."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield s.getsockname()[1]


@contextlib.contextmanager
def _postgres_that_refuses_ssl():
    """Answers PostgreSQL's SSL request with 'N', as a real server without TLS does, then hangs up."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)

    def serve():
        with contextlib.suppress(OSError):
            while True:
                conn, _ = srv.accept()
                with conn:
                    conn.recv(8)
                    conn.sendall(b"N")

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield srv.getsockname()[1]
    finally:
        srv.close()


def _nnenergy(*args, cwd, env=None, timeout=120):
    env = {**os.environ, **(env or {})}
    env.pop("MLFLOW_TRACKING_URI", None)
    start = time.monotonic()
    res = subprocess.run([sys.executable, "-m", "nnenergy.cli", *args], capture_output=True, text=True,
                         cwd=cwd, env=env, timeout=timeout)
    return res, time.monotonic() - start


def _assert_one_line_without_password(res, host: str):
    err = res.stderr.strip()
    assert res.returncode == 1, err[-2000:]
    assert "\n" not in err and "Traceback" not in err, err[-2000:]
    assert SECRET not in res.stderr + res.stdout
    assert host in err


@pytest.mark.parametrize("kind", ["http_closed", "http_silent", "postgres_closed", "postgres_no_driver", "file"])
def test_a_store_that_cannot_answer_fails_in_seconds_naming_its_host_not_its_password(kind, tmp_path):
    if kind == "postgres_no_driver":
        import importlib.util

        if importlib.util.find_spec("psycopg"):
            pytest.skip("psycopg is installed here: bare postgresql:// has its driver")
    with _silent_server() as silent, _postgres_that_refuses_ssl() as pg:
        closed = _closed_port()
        uri, host = {
            "http_closed": (f"http://127.0.0.1:{closed}", f"127.0.0.1:{closed}"),
            "http_silent": (f"http://user:{SECRET}@127.0.0.1:{silent}", f"127.0.0.1:{silent}"),
            "postgres_closed": (f"postgresql+psycopg2://u:{SECRET}@127.0.0.1:{closed}/db", f"127.0.0.1:{closed}"),
            "postgres_no_driver": (f"postgresql://u:{SECRET}@127.0.0.1:{pg}/db", f"127.0.0.1:{pg}"),
            "file": (f"file://{tmp_path}/no-such-store", f"{tmp_path}/no-such-store"),
        }[kind]
        res, seconds = _nnenergy("predict", "tiny_cnn", "--tracking-uri", uri, cwd=tmp_path)
    _assert_one_line_without_password(res, host)
    assert seconds < 10, seconds  # Python's start-up and the probe's bounded wait, never MLflow's retries


def test_training_against_a_store_that_is_down_fails_in_seconds_without_its_password(tmp_path):
    closed = _closed_port()
    res, seconds = _nnenergy("train", f"mlflow.tracking_uri=postgresql+psycopg2://u:{SECRET}@127.0.0.1:{closed}/db",
                             cwd=tmp_path)
    _assert_one_line_without_password(res, f"127.0.0.1:{closed}")
    assert res.stderr.startswith("nnenergy train:") and seconds < 10


def test_credentials_never_reach_what_is_logged(new_store, tmp_path):
    """A store URI's password stays out of the run's params and its resolved-config artifact."""
    import mlflow
    from omegaconf import OmegaConf

    from nnenergy import tracking

    uri = new_store(tmp_path)
    cfg = OmegaConf.create({"mlflow": {"tracking_uri": f"postgresql://u:{SECRET}@db.example:5432/mlflow"},
                            "note": f"https://token:{SECRET}@host/x"})
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("credentials")  # an earlier test's active experiment belongs to another store
    with mlflow.start_run() as run:
        tracking.log_resolved_config(cfg)
    client = mlflow.MlflowClient(uri)
    params = client.get_run(run.info.run_id).data.params
    artifact = Path(client.download_artifacts(run.info.run_id, "config/resolved.yaml", str(tmp_path))).read_text()
    assert SECRET not in json.dumps(params) and SECRET not in artifact
    assert params["mlflow.tracking_uri"] == "postgresql://***@db.example:5432/mlflow"


def test_redact_and_record_never_keep_credentials(tmp_path, monkeypatch):
    assert stores.redact(f"x postgresql+psycopg2://u:{SECRET}@h:5/db y") == "x postgresql+psycopg2://***@h:5/db y"
    assert stores.redact("sqlite:////a/b.db and http://h:5000") == "sqlite:////a/b.db and http://h:5000"
    monkeypatch.setenv(stores.CONFIG_ENV, str(tmp_path / "store.json"))
    assert stores.record_store(f"http://u:{SECRET}@h:5000") is None and not (tmp_path / "store.json").exists()
    assert stores.record_store(f"sqlite:///{tmp_path}/missing.db") is None  # never a store that is not there
    (tmp_path / "mlflow.db").write_text("")
    assert stores.record_store(f"sqlite:///{tmp_path}/mlflow.db") == tmp_path / "store.json"
    assert stores.recorded_store() == f"sqlite:///{tmp_path}/mlflow.db"


def test_predict_from_any_folder_finds_the_recorded_store_and_caches_outside_it(store, tmp_path):
    """`make run` records its store; `predict` in an unrelated folder, without MLFLOW_TRACKING_URI or
    NNENERGY_CACHE, uses it and caches in the user's cache folder, leaving the folder empty."""
    from nnenergy.cli.predict import describe_main

    table = tmp_path / "tiny.parquet"  # a described model: these processes need no TensorFlow
    assert describe_main(["tiny_cnn", "-o", str(table)]) == 0
    config = tmp_path / "config" / "store.json"
    env = {stores.CONFIG_ENV: str(config), "XDG_CACHE_HOME": str(tmp_path / "xdg-cache")}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    res, _ = _nnenergy("predict", str(table), "--json", cwd=elsewhere, env=env | {"NNENERGY_CACHE": ""})
    err = res.stderr.strip()
    assert res.returncode == 1 and "\n" not in err, err[-2000:]
    assert f"{elsewhere / 'mlflow.db'}" in err and str(config) in err and "--tracking-uri" in err

    config.parent.mkdir()
    config.write_text(json.dumps({"tracking_uri": store}))
    res, _ = _nnenergy("predict", str(table), "--json", cwd=elsewhere, env=env | {"NNENERGY_CACHE": ""})
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.loads(res.stdout)["energy_j"] > 0
    assert list(elsewhere.iterdir()) == []
    assert (tmp_path / "xdg-cache" / "nnenergy" / "predictors").is_dir()


def test_predict_says_once_when_nothing_can_be_cached(store, tmp_path, monkeypatch, capsys):
    """In this process: a process of its own would spend ~10 s loading TensorFlow (nothing is cached)."""
    from nnenergy.cli.predict import main

    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("NNENERGY_CACHE", str(tmp_path / "a-file" / "cache"))
    monkeypatch.chdir(tmp_path)
    assert main(["tiny_cnn", "tiny_mlp", "--json", "--tracking-uri", store]) == 0
    out, err = capsys.readouterr()
    assert len(out.strip().splitlines()) == 2
    assert err.count("nothing is cached") == 1 and "NNENERGY_CACHE" in err


def test_a_password_in_an_override_reaches_the_store_not_hydra(tmp_path, monkeypatch):
    """`nnenergy train mlflow.tracking_uri=<URI with a password>`: the URI moves to MLFLOW_TRACKING_URI (which
    the config reads), so Hydra's launcher log and saved overrides never hold it; other overrides stay."""
    from hydra import compose, initialize_config_dir

    from nnenergy.apps import CONF_DIR
    from nnenergy.cli import credentials_to_environment

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = f"postgresql+psycopg2://u:{SECRET}@db.example:5432/mlflow"
    argv = ["-m", "predictor=rf,xgb", f"mlflow.tracking_uri={uri}", "evaluation.n_folds=3"]
    kept = credentials_to_environment(argv)
    assert kept == ["-m", "predictor=rf,xgb", "evaluation.n_folds=3"] and os.environ["MLFLOW_TRACKING_URI"] == uri
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        assert compose(config_name="train", overrides=["predictor=rf"]).mlflow.tracking_uri == uri
    plain = ["mlflow.tracking_uri=sqlite:///x.db"]
    assert credentials_to_environment(plain) == plain  # nothing to hide: Hydra keeps its record


def test_main_says_where_to_browse_without_the_password():
    from nnenergy.cli import done_message

    uri = f"postgresql+psycopg2://u:{SECRET}@db.example:5432/mlflow"
    text = done_message(uri, f"http://u:{SECRET}@h:5000/#/experiments/1/runs?viewStateShareKey=k", None, None)
    assert SECRET not in text and "postgresql+psycopg2://***@db.example:5432/mlflow" in text
    assert "http://***@h:5000/#/experiments/1" in text and "in place of ***" in text
    assert "in place of" not in done_message("sqlite:////tmp/mlflow.db", None, None, None)


def test_a_local_stores_artifacts_stay_beside_it_whatever_the_working_folder(new_store, tmp_path, monkeypatch):
    """A new experiment of a SQLite store keeps its artifacts in `mlruns/<name>` beside the database, not in the
    folder a command happens to run from (MLflow's default); an existing experiment keeps its own place."""
    import mlflow

    from nnenergy import tracking

    uri = new_store(tmp_path / "store")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    previous = mlflow.get_tracking_uri()
    try:
        exp_id = tracking.setup(uri, "nnenergy-artifacts")
        with mlflow.start_run(experiment_id=exp_id):
            mlflow.log_dict({"a": 1}, "note.json")
        assert tracking.setup(uri, "nnenergy-artifacts") == exp_id  # found again, not created twice
    finally:
        mlflow.set_tracking_uri(previous)
    assert list((tmp_path / "store" / "mlruns" / "nnenergy-artifacts").rglob("note.json"))
    assert not (elsewhere / "mlruns").exists()
    assert tracking.artifact_root("postgresql://host/db", "x") is None
    assert tracking.artifact_root("sqlite:////a/b.db", "my team/exp 1") == "/a/mlruns/my_team_exp_1"


def test_a_predictions_mlflow_bounds_end_with_it(monkeypatch):
    """A prediction bounds MLflow's HTTP calls and database retries while it loads, and the process gets its
    own settings back: an API user who trains after predicting keeps MLflow's retries."""
    import mlflow.store.db.utils as db_utils

    from nnenergy.predict.loading import bounded_calls

    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "42")  # the user's own: kept inside and after
    retries = db_utils.MAX_RETRY_COUNT
    with bounded_calls("postgresql://u:pw@host/db"):
        assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "0"
        assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "42"
        assert db_utils.MAX_RETRY_COUNT == 1
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "42" and db_utils.MAX_RETRY_COUNT == retries
