"""`nnenergy serve`: keeps TensorFlow and Keras imported so that `predict` and `describe` (through
`serve_client.forward`) answer a model never described before in about a second. One request at a time,
from the context it started in, on a Unix socket (mode 0600) per cache folder. It never loads MLflow
(its process-wide URIs and store connections would outlive a request): such a request runs by itself."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import socket
import subprocess
import sys
import time
import traceback
from types import SimpleNamespace

from nnenergy.cli import serve_client as client
from nnenergy.cli.predict import Parser, describe_main
from nnenergy.cli.predict import main as predict_main
from nnenergy.paths import cache_dir
from nnenergy.predict.errors import first_line
from nnenergy.predict.models import import_tensorflow_quietly


class MlflowNeeded(BaseException):
    """A request would import MLflow (raised by this class on `sys.meta_path`): no `except Exception` stops it."""

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name.partition(".")[0] == "mlflow":
            raise cls(name)


class _Stream(io.TextIOBase):
    """stdout or stderr of a request: each write recorded in `chunks` as (name, text), in the order written."""

    def __init__(self, chunks: list, name: str):
        self.write = lambda text: chunks.append((name, text)) or len(text)


def _run(cmd: str, argv: list[str]) -> dict:
    """Run one command here with its output recorded: {rc, output} or {declined}."""
    chunks: list = []
    if "keras" in sys.modules:  # Keras numbers auto-named layers per session (`conv2d_1`): as a fresh process
        sys.modules["keras"].backend.clear_session()
    with contextlib.redirect_stdout(_Stream(chunks, "stdout")), contextlib.redirect_stderr(_Stream(chunks, "stderr")):
        try:
            rc = (predict_main if cmd == "predict" else describe_main)(argv)
        except MlflowNeeded:
            return {"declined": "the request needs MLflow, which the server never loads"}
        except SystemExit as exc:  # --help, and usage errors (`Parser` has printed their one line)
            rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
        except Exception as exc:  # a failure is the client's one line, never the server's end
            if os.environ.get("NNENERGY_DEBUG"):
                traceback.print_exc()
            print(f"nnenergy {cmd}: error: {type(exc).__name__}: {first_line(exc)}", file=sys.stderr)
            rc = 1
    return {"rc": int(rc or 0), "output": chunks}


def _answer(request: dict, state: SimpleNamespace) -> dict:
    if request.get("op") in ("status", "stop"):
        state.stopping |= request["op"] == "stop"
        return {"pid": os.getpid(), "served": state.served, "up_s": round(time.time() - state.started, 1),
                "idle_minutes": state.idle_minutes}
    differs = [k for k in ("code", "cwd", "env", "cpus") if request.get(k) != state.context[k]]
    if request.get("op") != "run" or request.get("cmd") not in client.SERVED or differs:
        state.stopping |= client.context()["code"] != state.context["code"]  # the next server runs the new code
        return {"declined": f"the client runs in another context ({', '.join(differs)})"}
    answer = _run(request["cmd"], list(request.get("argv") or []))
    state.served += "declined" not in answer
    return answer


def _warm_up() -> None:
    """Import TensorFlow while a child process (which may load MLflow) resolves the default predictor into
    the local cache, then do what a first request does: predict a model never described before."""
    child = subprocess.Popen([sys.executable, "-m", "nnenergy.cli", "predict", "tiny_cnn", "--json"],
                             env={**os.environ, client.OFF_ENV: "off"}, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import_tensorflow_quietly()
    with contextlib.suppress(subprocess.TimeoutExpired):
        child.wait(timeout=300)
    child.kill()  # when it is still running
    _run("predict", ["tiny_cnn", "--batch-size", "3", "--speed", "canonical", "--json"])


def serve(idle_minutes: float) -> int:
    path = client.socket_path()
    os.environ[client.OFF_ENV] = "off"  # nothing in this process asks a server
    state = SimpleNamespace(context=client.context(), idle_minutes=idle_minutes, served=0, started=time.time(),
                            stopping=False)  # the context before the warm-up sets anything
    sys.meta_path.insert(0, MlflowNeeded)
    _warm_up()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:  # of two servers started together, one answers
        probe.settimeout(2)  # a busy one counts too: only a refused connection or no socket is none
        if probe.connect_ex(str(path)) not in (errno.ECONNREFUSED, errno.ENOENT):
            print(f"nnenergy serve: a server already answers on {path}", file=sys.stderr)
            return 0
    path.unlink(missing_ok=True)  # a dead server's
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(path))
        os.chmod(path, 0o600)  # before listen(): no one connects until then
        inode = path.stat().st_ino  # only this server removes it
        listener.listen()
        listener.settimeout(idle_minutes * 60)  # accept() raises TimeoutError after this long idle
        print(f"nnenergy serve: ready (pid {os.getpid()}) on {path}; stops after {idle_minutes:g} idle "
              "minute(s) or on `nnenergy serve --stop`", file=sys.stderr, flush=True)
        with contextlib.suppress(KeyboardInterrupt, TimeoutError):
            while not state.stopping:
                conn = listener.accept()[0]  # below, a client that went away: the server carries on
                with conn, conn.makefile("rb") as stream, contextlib.suppress(OSError, ValueError):
                    request = json.loads(stream.readline())
                    conn.sendall(b'{"ack": true}\n')
                    conn.sendall(json.dumps(_answer(request, state)).encode() + b"\n")
    with contextlib.suppress(OSError):
        if path.stat().st_ino == inode:
            path.unlink()
    print(f"nnenergy serve: stopped after {state.served} request(s)", file=sys.stderr)
    return 0


def _detach(idle_minutes: float, wait_s: float = 180.0) -> int:
    """Start the server in its own session (output in <cache>/serve.log); return once it answers."""
    status, word, log = client.ask({"op": "status"}, 5, 5), "already running", cache_dir() / "serve.log"
    if status is None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            proc = subprocess.Popen([sys.executable, "-m", "nnenergy.cli", "serve", f"--idle-minutes={idle_minutes}"],
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True)
        deadline, word = time.time() + wait_s, "ready"
        while (status := client.ask({"op": "status"}, 5, 5)) is None and proc.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        status = status or client.ask({"op": "status"}, 5, 5)  # exited: another server may have won the race
        if status is None:
            proc.terminate()
            print(f"nnenergy serve: error: no server answered within {wait_s:.0f} s (exit status {proc.poll()}); "
                  f"see {log}", file=sys.stderr)
            return 1
    print(f"nnenergy serve: {word} (pid {status['pid']}) on {client.socket_path()}; stop: `nnenergy serve --stop`")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = Parser(prog="nnenergy serve", epilog="exit status: 0 done, 2 bad usage, 1 the server could not start.",
               description="Keep TensorFlow and Keras imported so that `nnenergy predict` and `describe`, run from "
                           "this folder, answer in ~1 s (they run by themselves when no server answers; "
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
    print(f"nnenergy serve: stopped pid {answer['pid']} after {answer['served']} request(s)" if args.stop else
          f"nnenergy serve: pid {answer['pid']}, up {answer['up_s']:.0f} s, {answer['served']} request(s) served, "
          f"stops after {answer['idle_minutes']:g} idle minute(s)")
    return 0
