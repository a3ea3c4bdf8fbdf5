"""`nnenergy serve`: keeps TensorFlow and Keras imported so that `predict` and `describe` (through
`serve_client.forward`) answer a model never described before in about a second. One request at a time,
from the context it started in, on a Unix socket (mode 0600) per cache folder. It never loads MLflow
(its process-wide URIs and store connections would outlive a request): such a request runs by itself."""

from __future__ import annotations

import contextlib
import importlib.abc
import io
import os
import socketserver
import subprocess
import sys
import time
import traceback
from pathlib import Path

from nnenergy.cli import serve_client as client
from nnenergy.cli.predict import Parser, describe_main
from nnenergy.cli.predict import main as predict_main


class MlflowNeeded(BaseException):
    """A request would import MLflow. A BaseException: no `except Exception` on the way swallows it."""


class _NoMlflow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "mlflow":
            raise MlflowNeeded(name)


class _Stream(io.TextIOBase):
    """stdout or stderr of a request, recorded in `chunks` in the order written."""

    def __init__(self, chunks: list, name: str):
        self.chunks, self.name = chunks, name

    def write(self, text: str) -> int:
        self.chunks.append((self.name, text))
        return len(text)


def _fresh_keras() -> None:
    """Keras numbers auto-named layers per session (`conv2d`, `conv2d_1`): name them as a fresh process."""
    if "keras" in sys.modules:
        sys.modules["keras"].backend.clear_session()


def _run(cmd: str, argv: list[str]) -> dict:
    """Run one command here with its output recorded: {rc, output} or {declined}."""
    from nnenergy.predict.errors import first_line

    chunks: list = []
    _fresh_keras()
    with contextlib.redirect_stdout(_Stream(chunks, "stdout")), contextlib.redirect_stderr(_Stream(chunks, "stderr")):
        try:
            rc = (predict_main if cmd == "predict" else describe_main)(argv)
        except MlflowNeeded:
            return {"declined": "the request needs MLflow, which the server never loads"}
        except SystemExit as exc:  # argparse's --help and usage errors
            rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
            if isinstance(exc.code, str):
                print(exc.code, file=sys.stderr)
        except Exception as exc:  # a failure is the client's one line, never the server's end
            if os.environ.get("NNENERGY_DEBUG"):
                traceback.print_exc()
            print(f"nnenergy {cmd}: error: {type(exc).__name__}: {first_line(exc)}", file=sys.stderr)
            rc = 1
    return {"rc": int(rc or 0), "output": chunks}


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        with contextlib.suppress(OSError, ValueError):  # a client that went away: the server carries on
            request = client.receive(self.rfile)
            client.send(self.wfile, {"ack": True})
            client.send(self.wfile, self.server.answer(request))


class Server(socketserver.UnixStreamServer):
    def __init__(self, path: Path, context: dict, idle_minutes: float):
        self.path, self.context, self.idle_minutes = path, context, idle_minutes
        self.served, self.started, self.stopping = 0, time.time(), False
        self.timeout = idle_minutes * 60  # handle_request() gives up after this, then handle_timeout()
        path.unlink(missing_ok=True)  # a dead server's
        umask = os.umask(0o177)
        try:
            super().__init__(str(path), _Handler)
        finally:
            os.umask(umask)
        self.inode = path.stat().st_ino  # only this server removes it

    def handle_timeout(self) -> None:
        self.stopping = True

    def answer(self, request: dict) -> dict:
        if request.get("op") == "status":
            return {"pid": os.getpid(), "served": self.served, "up_s": round(time.time() - self.started, 1),
                    "idle_minutes": self.idle_minutes}
        if request.get("op") == "stop":
            self.stopping = True
            return {"stopped": os.getpid(), "served": self.served}
        differs = [k for k in ("code", "cwd", "env", "cpus") if request.get(k) != self.context[k]]
        if request.get("op") != "run" or request.get("cmd") not in client.SERVED or differs:
            self.stopping |= client.code_identity() != self.context["code"]  # the next server runs the new code
            return {"declined": f"the client runs in another context ({', '.join(differs)})"}
        answer = _run(request["cmd"], list(request.get("argv") or []))
        self.served += "declined" not in answer
        return answer

    def release(self) -> None:
        self.server_close()
        with contextlib.suppress(OSError):
            if self.path.stat().st_ino == self.inode:
                self.path.unlink()


def _warm_up() -> None:
    """Import what a first prediction would, build and describe one small model (Keras' first build has
    its own cost); beside it, a child process resolves the default predictor into the local cache."""
    child = subprocess.Popen([sys.executable, "-m", "nnenergy.cli", "predict", "tiny_cnn", "--json"],
                             env={**os.environ, client.OFF_ENV: "off"}, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    from nnenergy.predict.describing import resolve_model
    from nnenergy.predict.models import import_tensorflow_quietly

    import_tensorflow_quietly()
    with contextlib.suppress(Exception), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        import sklearn.ensemble  # noqa: F401

        from nnenergy.describe import describe_layers
        from nnenergy.learn import outputs  # noqa: F401

        describe_layers(resolve_model("tiny_cnn", None)[0], 1)
        for name in ("joblib", "xgboost", "catboost"):
            with contextlib.suppress(ImportError):
                __import__(name)
    _fresh_keras()
    try:
        child.wait(timeout=300)
    except subprocess.TimeoutExpired:
        child.kill()


def serve(idle_minutes: float) -> int:
    path = client.socket_path()
    os.environ[client.OFF_ENV] = "off"  # nothing in this process asks a server
    context = client.context()  # before the warm-up sets anything
    sys.meta_path.insert(0, _NoMlflow())
    if not client.alive():
        _warm_up()
    if client.alive():  # also after the warm-up: of two servers started together, one answers
        print(f"nnenergy serve: a server already answers on {path}", file=sys.stderr)
        return 0
    server = Server(path, context, idle_minutes)
    print(f"nnenergy serve: ready (pid {os.getpid()}) on {path}; stops after {idle_minutes:g} idle "
          "minute(s) or on `nnenergy serve --stop`", file=sys.stderr, flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        while not server.stopping:
            server.handle_request()
    server.release()
    print(f"nnenergy serve: stopped after {server.served} request(s)", file=sys.stderr)
    return 0


def _detach(idle_minutes: float, wait_s: float = 180.0) -> int:
    """Start the server in its own session (output in <cache>/serve.log); return once it answers."""
    from nnenergy.paths import cache_dir

    status, word = client.ask({"op": "status"}, 5, 5), "already running"
    if status is None:
        log, word = cache_dir() / "serve.log", "ready"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            proc = subprocess.Popen([sys.executable, "-m", "nnenergy.cli", "serve", "--idle-minutes",
                                     str(idle_minutes)], stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                    start_new_session=True)
        deadline = time.time() + wait_s
        while (status := client.ask({"op": "status"}, 5, 5)) is None and proc.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        status = status or client.ask({"op": "status"}, 5, 5)  # exited: another server may have won the race
        if status is None:
            proc.terminate()
            print(f"nnenergy serve: error: no server answered within {wait_s:.0f} s (exit status {proc.poll()}); "
                  f"see {log}", file=sys.stderr)
            return 1
    print(f"nnenergy serve: {word} (pid {status['pid']}) on {client.socket_path()}; "
          "stop it with `nnenergy serve --stop`")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = Parser(prog="nnenergy serve", epilog="exit status: 0 done, 2 bad usage, 1 the server could not start.",
                description="Keep TensorFlow and Keras imported so that `nnenergy predict` and `describe`, run from "
                            "this folder, answer in about a second (they run by themselves when no server answers; "
                            "NNENERGY_SERVER=off never uses one).")
    p.add_argument("--detach", action="store_true", help="start in the background and return once it answers")
    p.add_argument("--stop", action="store_true", help="stop the server of this folder")
    p.add_argument("--status", action="store_true", help="say whether a server answers here (exit 1 if none)")
    p.add_argument("--idle-minutes", type=float, default=30.0, help="stop after this long without a request (30)")
    args = p.parse_args(argv)
    if not args.idle_minutes > 0:
        p.error(f"--idle-minutes must be positive, not {args.idle_minutes:g}")
    if not (args.stop or args.status):
        return _detach(args.idle_minutes) if args.detach else serve(args.idle_minutes)
    answer = client.ask({"op": "stop" if args.stop else "status"}, ack_timeout=10, timeout=10)
    if answer is None:
        print(f"nnenergy serve: no server answers on {client.socket_path()}")
        return 0 if args.stop else 1
    if args.stop:
        print(f"nnenergy serve: stopped pid {answer['stopped']} after {answer['served']} request(s)")
    else:
        print(f"nnenergy serve: pid {answer['pid']}, up {answer['up_s']:.0f} s, {answer['served']} request(s) "
              f"served, stops after {answer['idle_minutes']:g} idle minute(s)")
    return 0
