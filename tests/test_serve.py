"""`nnenergy serve`: predict and describe through a warm server print what they print without one."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from nnenergy import zoo

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """A described layer table: predicting it needs no TensorFlow (fast subprocesses)."""
    from nnenergy.cli.predict import describe_main

    path = tmp_path_factory.mktemp("tables") / "tiny.parquet"
    assert describe_main(["tiny_cnn", "-o", str(path)]) == 0
    return path


def _nnenergy(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nnenergy.cli", *args], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=300)


@pytest.fixture
def here(monkeypatch, capsys):
    """`here(env, *args)` -> (status, stdout, stderr) of `nnenergy ARGS` run in this process as a process started
    with `env` would run it (TensorFlow is loaded here already; a process of its own would spend ~10 s loading
    it). With NNENERGY_SERVER=off it is the command without a server; else it is a client like any other. A
    fresh Keras session first: auto-named layers are numbered as a fresh process numbers them."""
    import keras

    from nnenergy import cli

    def run(env: dict, *args: str) -> tuple[int, str, str]:
        with environment(env), monkeypatch.context() as m:
            m.chdir(REPO)
            keras.backend.clear_session()
            capsys.readouterr()
            rc = cli.main(list(args))
            return (rc, *capsys.readouterr())
    return run


@contextlib.contextmanager
def environment(env: dict):
    """`os.environ` is `env` inside, whatever earlier calls in this process added (the settings a server
    compares); restored on the way out."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def one_cpu():
    """This thread on one CPU of its set (what `serve_client.context()` reads), as `taskset` would start it."""
    cpus = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cpus)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, cpus)


def test_a_warm_server_answers_as_the_command_would(store, table, tmp_path, here):
    """Each command that runs by itself and loads TensorFlow costs ~10 s on a slow CPU: those that only
    need to run by itself, not to load TensorFlow, predict the described `table`; what the command prints
    without a server, and the clients the server declines (they run by themselves), run in this process
    (`here`)."""
    model = tmp_path / "tiny.keras"
    zoo.build("tiny_cnn", 40).model.save(model)
    env = {k: v for k, v in os.environ.items() if k != "NNENERGY_SERVER"}
    env |= {"MLFLOW_TRACKING_URI": store, "NNENERGY_CACHE": str(tmp_path / "cache")}
    off = {**env, "NNENERGY_SERVER": "off", "NNENERGY_CACHE": str(tmp_path / "cache-off")}
    assert _nnenergy(env, "serve", "--status").returncode == 1  # none yet
    started = _nnenergy(env, "serve", "--detach", "--idle-minutes", "5")
    assert started.returncode == 0, started.stderr[-2000:]
    try:
        served = _nnenergy(env, "predict", str(model), "--batch-size", "2", "--json")
        rc, out, err = here(off, "predict", str(model), "--batch-size", "2", "--json")
        assert served.returncode == rc == 0, served.stderr + err
        assert json.loads(served.stdout) == json.loads(out)
        status = _nnenergy(env, "serve", "--status")
        assert status.returncode == 0 and "1 request(s) served" in status.stdout
        # a model with auto-named layers (`activation_1`, ...) built a second time by the server is named as
        # a fresh process names it
        args = ("predict", "MobileNetV3Small", "--input-shape", "64,64,3", "--json")
        first_build = json.loads(_nnenergy(env, *args, "--batch-size", "5").stdout)
        by_server = json.loads(_nnenergy(env, *args, "--batch-size", "3").stdout)
        assert json.loads(here(off, *args, "--batch-size", "3")[1]) == by_server
        assert [x["name"] for x in first_build["layers"]] == [x["name"] for x in by_server["layers"]]
        # errors keep their one line and exit status through the server
        bad = _nnenergy(env, "predict", "NoSuchNet")
        assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "NoSuchNet" in bad.stderr
        table = tmp_path / "t.parquet"
        described = _nnenergy(env, "describe", str(model), "-o", str(table))
        assert described.returncode == 0 and table.exists()  # written in the client's folder terms
        # stdout and stderr keep their order (merged, as a terminal shows them)
        args = ("predict", str(model), "NoSuchNet", "--json")
        merged = subprocess.run([sys.executable, "-m", "nnenergy.cli", *args], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO, timeout=300).stdout
        _, out, err = here(off, *args)  # the command by itself writes its JSON, then the error
        assert merged == out + err and merged.index('"energy_j"') < merged.index("NoSuchNet")
        count = _served(env)
        # another store: the server never loads MLflow, so the command runs by itself, on that store
        rc, _, err = here(env | {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/other.db"}, "predict", "MobileNetV2")
        assert rc == 1 and "other.db" in err and _served(env) == count
        # another CPU set (another hardware profile): declined for that alone, and runs by itself
        from nnenergy.cli import serve_client

        if len(os.sched_getaffinity(0)) > 1:
            with one_cpu(), environment(env), pytest.MonkeyPatch.context() as m:
                m.chdir(REPO)
                request = {"op": "run", "cmd": "predict", "argv": [str(table), "--json"], **serve_client.context()}
                declined = serve_client.ask(request, timeout=60)
                rc, _, err = here(env, "predict", str(table), "--json")
            assert declined and declined.get("declined", "").endswith("(cpus)"), declined
            assert rc == 0 and _served(env) == count, err[-2000:]
        # a client running other code is declined (and runs by itself)
        os.environ["NNENERGY_CACHE"], saved = env["NNENERGY_CACHE"], os.environ.get("NNENERGY_CACHE")
        try:
            answer = serve_client.ask({"op": "run", "cmd": "predict", "argv": ["tiny_cnn"],
                                       **serve_client.context(), "code": "other"}, timeout=60)
        finally:
            os.environ.pop("NNENERGY_CACHE") if saved is None else os.environ.__setitem__("NNENERGY_CACHE", saved)
        assert answer and answer.get("declined")
        table_served = _nnenergy(env, "predict", str(table), "--json")
        assert table_served.returncode == 0 and _served(env) == count + 1
    finally:
        stop = _nnenergy(env, "serve", "--stop")
    assert "no server" in stop.stdout or "stopped" in stop.stdout
    rc, out, _ = here(env, "predict", str(table), "--json")  # no server: runs by itself
    assert rc == 0 and json.loads(out) == json.loads(table_served.stdout)


def _served(env: dict) -> int:
    status = _nnenergy(env, "serve", "--status")
    return int(status.stdout.split(" request(s) served")[0].rsplit(" ", 1)[1])


@pytest.mark.parametrize("listening", [True, False], ids=["stuck-server", "dead-socket"])
def test_a_server_that_does_not_answer_never_stops_a_prediction(listening, store, table, tmp_path, monkeypatch):
    """A stopped (Ctrl-Z) or stuck server that listens but never accepts: the command waits
    NNENERGY_SERVER_TIMEOUT, then runs by itself. A socket file nobody listens on (a killed server):
    connect is refused and the command runs by itself at once."""
    from nnenergy.cli import serve_client
    from nnenergy.predict.loading import load_predictor

    monkeypatch.setenv("NNENERGY_CACHE", str(tmp_path / "cache"))
    load_predictor(tracking_uri=store, this_machine=True)  # cached here: the command's process skips MLflow (~5 s)
    path = serve_client.socket_path()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.bind(str(path))
        if listening:
            s.listen(1)  # listens, never accepts
        try:
            env = {k: v for k, v in os.environ.items() if k != "NNENERGY_SERVER"}
            env |= {"MLFLOW_TRACKING_URI": store, "NNENERGY_SERVER_TIMEOUT": "2"}
            res = _nnenergy(env, "predict", str(table), "--json")
        finally:
            path.unlink(missing_ok=True)
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.loads(res.stdout)["energy_j"] > 0


def test_a_first_prediction_at_a_terminal_mentions_the_server_once(store, tmp_path, monkeypatch, capsys):
    """At a terminal, the first prediction that loaded TensorFlow says how to avoid it; never twice, and
    never where stderr is not a terminal (scripts and --json pipelines keep their stderr)."""
    import pty

    from nnenergy.cli.predict import main

    env = {k: v for k, v in os.environ.items() if k != "NNENERGY_SERVER"}
    env |= {"MLFLOW_TRACKING_URI": store, "NNENERGY_CACHE": str(tmp_path / "cache")}

    def at_terminal(batch: str) -> str:
        leader, follower = pty.openpty()
        subprocess.run([sys.executable, "-m", "nnenergy.cli", "predict", "tiny_cnn", "--batch-size", batch, "--json"],
                       stdout=subprocess.DEVNULL, stderr=follower, env=env, cwd=REPO, timeout=300)
        os.close(follower)
        out = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        os.close(leader)
        return out.decode()

    def here_at_terminal(batch: str) -> str:
        """The same at a terminal in this process (it has loaded TensorFlow): no process of its own."""
        leader, follower = pty.openpty()
        with os.fdopen(follower, "w") as terminal, monkeypatch.context() as m:
            m.setattr(sys, "stderr", terminal)
            assert sys.stderr.isatty() and "tensorflow" in sys.modules
            assert main(["tiny_cnn", "--batch-size", batch, "--json", "--tracking-uri", store]) == 0
        os.set_blocking(leader, False)
        try:
            return os.read(leader, 65536).decode()
        except OSError:  # nothing was written to the terminal
            return ""
        finally:
            os.close(leader)

    # piped (here, in this process: it has loaded TensorFlow too), in the cache the terminal then uses
    monkeypatch.delenv("NNENERGY_SERVER")
    monkeypatch.setenv("NNENERGY_CACHE", env["NNENERGY_CACHE"])
    assert main(["tiny_cnn", "--json", "--tracking-uri", store]) == 0
    assert "nnenergy serve" not in capsys.readouterr().err
    assert "nnenergy serve --detach" in at_terminal("2")  # the piped call did not use up the one mention
    assert "nnenergy serve" not in here_at_terminal("3")  # once per cache folder
    (tmp_path / "cache" / "serve-tip-shown").unlink()  # the mark it leaves is what kept it quiet
    assert "nnenergy serve --detach" in here_at_terminal("3")
