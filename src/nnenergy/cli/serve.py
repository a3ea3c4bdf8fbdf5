"""`nnenergy serve`: a warm local server for `predict` and `describe`.

A first prediction of a model spends ~6 s importing TensorFlow and Keras before it describes the
model (a repeated one reads its layer table from the cache and needs neither). A server started once
keeps them imported: while it runs, `nnenergy predict`/`describe` hand their arguments, working
folder, environment and CPU set to it over a Unix socket and print its answer, so a model never
described before answers in about a second. The command runs by itself, as it would without a
server, whenever the server cannot answer exactly as the command would:
- no server answers (none started, a dead one's socket, one stopped with Ctrl-Z or stuck: 15 s
  without taking the request, `NNENERGY_SERVER_TIMEOUT`), or `NNENERGY_SERVER=off`;
- the server runs other nnenergy code or another environment (`sys.prefix`), or another CPU set (the
  CPU set is part of the hardware profile);
- `--verbose` (TensorFlow's own log lines go to the server's stderr, not the client's);
- the request needs MLflow: the server never loads it (MLflow keeps process-wide URIs and store
  connections that would outlive a request). A predictor resolved once is read from the local cache
  (`<cache>/predictors/`, keyed by the store's size and mtime) by the server too; a remote store is
  always resolved by the command itself.

One server per cache folder (`nnenergy.paths.cache_dir()`, absolute): the socket's name is derived
from it, so commands run where the server was started (same cache) find it. The socket is the user's
own (mode 0600). It answers one request at a time and stops after `--idle-minutes` without one, on
`nnenergy serve --stop`, or when the code it runs changes on disk.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
import time
from pathlib import Path

SERVED = ("predict", "describe")
OFF_ENV = "NNENERGY_SERVER"  # "off" (or 0/no/false): never use a server
ACK_TIMEOUT_ENV = "NNENERGY_SERVER_TIMEOUT"  # seconds a command waits for the server to take its request
ACK_TIMEOUT_S = 15.0  # a server that has not taken the request by then is stopped or stuck
ANSWER_TIMEOUT_S = 900.0
_MAX_MESSAGE = 64 * 1024 * 1024


def disabled() -> bool:
    """Whether this process was told never to use a server."""
    return os.environ.get(OFF_ENV, "").strip().lower() in ("off", "0", "no", "false")


def socket_path() -> Path:
    """The socket of the server for this cache folder (short: a Unix socket's path has ~100 bytes)."""
    from nnenergy.paths import cache_dir

    ident = hashlib.sha1(str(cache_dir().resolve()).encode()).hexdigest()[:12]
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(os.environ.get("TMPDIR", "/tmp")) / f"nnenergy-{uid}-{ident}.sock"


def code_identity() -> str:
    """The installed nnenergy code (each module's path, size and mtime) and the environment it runs in
    (`sys.prefix`: `.venv/bin/python` and `.venv/bin/python3` are the same): a server running other
    code than the client's must not answer for it."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha1(str(Path(sys.prefix).resolve()).encode())
    for path in sorted(root.rglob("*.py")):
        st = path.stat()
        h.update(f"{path.relative_to(root)}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()[:16]


def _cpus() -> list[int] | None:
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None


# -- the wire: one length-prefixed JSON message at a time ----------------------------------------

def _send(conn: socket.socket, obj: dict) -> None:
    data = json.dumps(obj).encode()
    conn.sendall(len(data).to_bytes(8, "big") + data)


def _recv(conn: socket.socket) -> dict:
    def exactly(n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = conn.recv(min(n - len(buf), 1 << 20))
            if not chunk:
                raise ConnectionError("the other side closed the connection")
            buf += chunk
        return buf

    n = int.from_bytes(exactly(8), "big")
    if n > _MAX_MESSAGE:
        raise ConnectionError(f"message of {n} bytes refused")
    return json.loads(exactly(n))


def _alive() -> bool:
    """Whether something listens on this folder's socket (a busy server too: only a refused or
    missing socket means none)."""
    path = socket_path()
    if not path.exists():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(2)
        try:
            conn.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            return False
        except OSError:
            return True  # a full backlog or a timeout: someone is there
    return True


def _ask(request: dict, ack_timeout: float = ACK_TIMEOUT_S, timeout: float = ANSWER_TIMEOUT_S) -> dict | None:
    """Send one request to this folder's server; its answer, or None when no server answers in time."""
    path = socket_path()
    if not path.exists():
        return None
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(ack_timeout)
            conn.connect(str(path))
            _send(conn, request)
            if not _recv(conn).get("ack"):
                return None
            conn.settimeout(timeout)
            return _recv(conn)
    except (OSError, ConnectionError, ValueError):
        return None


# -- the client side: `nnenergy predict/describe` ------------------------------------------------

def forward(cmd: str, argv: list[str]) -> int | None:
    """Run `nnenergy CMD ARGV` on the server when one answers: print its output (stdout and stderr in
    the order it was written), return its exit status. None: no server, or it declined; the caller
    runs the command itself."""
    if cmd not in SERVED or disabled() or "--verbose" in argv:
        return None
    try:
        ack = float(os.environ.get(ACK_TIMEOUT_ENV, ACK_TIMEOUT_S))
    except ValueError:
        ack = ACK_TIMEOUT_S
    answer = _ask({"op": "run", "cmd": cmd, "argv": argv, "cwd": os.getcwd(), "env": dict(os.environ),
                   "code": code_identity(), "cpus": _cpus()}, ack_timeout=ack)
    if not answer or answer.get("declined"):
        return None
    for stream, text in answer.get("output", []):
        out = sys.stdout if stream == "stdout" else sys.stderr
        out.write(text)
        out.flush()
    return int(answer.get("rc", 1))


# -- the server side ---------------------------------------------------------------------------

class _Recorder:
    """Captures stdout and stderr writes in the order they happen, as (stream, text) pairs."""

    def __init__(self) -> None:
        self.chunks: list[list[str]] = []

    def stream(self, name: str):
        recorder = self

        class _Stream:
            def write(self, text: str) -> int:
                if text:
                    if recorder.chunks and recorder.chunks[-1][0] == name:
                        recorder.chunks[-1][1] += text
                    else:
                        recorder.chunks.append([name, text])
                return len(text)

            def flush(self) -> None:
                pass

            def isatty(self) -> bool:  # the client's terminal is not the server's
                return False

        return _Stream()


def _run_here(cmd: str, argv: list[str]) -> dict:
    """Run one command in this process with its output recorded: {rc, output} or {declined}."""
    import contextlib
    import traceback

    from nnenergy.cli import main
    from nnenergy.predict.errors import MlflowNeeded, first_line

    rec = _Recorder()
    with contextlib.redirect_stdout(rec.stream("stdout")), contextlib.redirect_stderr(rec.stream("stderr")):
        try:
            rc = main([cmd, *argv])
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
    return {"rc": int(rc or 0), "output": rec.chunks}


def _fresh_keras() -> None:
    """Forget the models of earlier requests: Keras numbers auto-named layers per session (`conv2d`,
    then `conv2d_1`), so without this a model built twice would be named unlike a fresh process's."""
    if "keras" in sys.modules:
        sys.modules["keras"].backend.clear_session()


def _answer_run(request: dict, code: str) -> dict:
    from nnenergy.predict.errors import NO_MLFLOW_ENV

    if request.get("code") != code:
        return {"declined": "the client runs other nnenergy code than this server"}
    if request.get("cpus") != _cpus():
        return {"declined": "the client runs on another CPU set (another hardware profile)"}
    _fresh_keras()
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    try:
        os.environ.clear()
        os.environ.update(request.get("env") or {})
        os.environ[OFF_ENV] = "off"  # the command runs here, never forwarded again
        os.environ[NO_MLFLOW_ENV] = "1"
        os.chdir(request.get("cwd") or saved_cwd)
        return _run_here(request["cmd"], list(request.get("argv") or []))
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)


def _warm_up() -> None:
    """Import what a first prediction would: TensorFlow (quietly), Keras, the describing code, the
    predictors' libraries, and one small model built and described (Keras' first build has its own cost).
    Beside it, one prediction in a child process resolves the default predictor through MLflow into the
    local cache, which the server then reads without MLflow."""
    import contextlib
    import io
    import subprocess

    child = subprocess.Popen([sys.executable, "-m", "nnenergy.cli", "predict", "tiny_cnn", "--json"],
                             env={**os.environ, OFF_ENV: "off"}, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    from nnenergy.predict.models import import_tensorflow_quietly

    import_tensorflow_quietly()
    with contextlib.suppress(Exception), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        import joblib  # noqa: F401
        import sklearn.ensemble  # noqa: F401

        from nnenergy.describe import describe_layers
        from nnenergy.learn import outputs  # noqa: F401
        from nnenergy.predict.models import resolve_model

        describe_layers(resolve_model("tiny_cnn", None)[0], 1)
        for name in ("xgboost", "catboost"):
            with contextlib.suppress(ImportError):
                __import__(name)
    _fresh_keras()
    try:
        child.wait(timeout=300)
    except subprocess.TimeoutExpired:
        child.kill()


def _claim(path: Path) -> tuple[socket.socket, int]:
    """Bind a socket under a temporary name and move it into place (a client never finds a socket
    that does not listen yet); returns it and its inode, so that only this server removes it."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}")
    tmp.unlink(missing_ok=True)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        srv.bind(str(tmp))
    finally:
        os.umask(old)
    srv.listen(16)
    os.replace(tmp, path)
    return srv, path.stat().st_ino


def _release(path: Path, inode: int) -> None:
    try:
        if path.stat().st_ino == inode:
            path.unlink()
    except OSError:
        pass


def serve(idle_minutes: float) -> int:
    """Answer requests on this cache folder's socket until `idle_minutes` pass without one, a stop, or
    a change of the code on disk."""
    path = socket_path()
    if _alive():
        print(f"nnenergy serve: a server already answers on {path}", file=sys.stderr)
        return 0
    os.environ[OFF_ENV] = "off"  # nothing in this process ever asks a server
    code = code_identity()
    _warm_up()
    if _alive():  # checked again after the warm-up's seconds: of two servers started together, one answers
        print(f"nnenergy serve: a server already answers on {path}", file=sys.stderr)
        return 0
    srv, inode = _claim(path)
    srv.settimeout(max(idle_minutes, 0.01) * 60)
    served, started = 0, time.time()
    print(f"nnenergy serve: ready (pid {os.getpid()}) on {path}; stops after {idle_minutes:g} idle "
          f"minute(s) or on `nnenergy serve --stop`", file=sys.stderr, flush=True)
    try:
        while True:
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                break
            with conn:
                try:
                    request = _recv(conn)
                    _send(conn, {"ack": True})
                    op = request.get("op")
                    if op == "run":
                        answer = _answer_run(request, code)
                        served += 0 if answer.get("declined") else 1
                        _send(conn, answer)
                        if answer.get("declined") and code_identity() != code:
                            break  # the code changed on disk: let the next server start on it
                    elif op == "status":
                        _send(conn, {"pid": os.getpid(), "served": served, "up_s": round(time.time() - started, 1),
                                     "idle_minutes": idle_minutes, "cwd": os.getcwd()})
                    elif op == "stop":
                        _send(conn, {"stopped": os.getpid(), "served": served})
                        break
                except (OSError, ConnectionError, ValueError, KeyError):
                    continue  # a client that went away: the server carries on
    except KeyboardInterrupt:
        pass
    finally:
        srv.close()
        _release(path, inode)
    print(f"nnenergy serve: stopped after {served} request(s)", file=sys.stderr)
    return 0


def _detach(idle_minutes: float, wait_s: float = 180.0) -> int:
    """Start the server in its own session (output in <cache>/serve.log); return once it answers."""
    import subprocess

    from nnenergy.paths import cache_dir

    status = _ask({"op": "status"}, ack_timeout=5, timeout=5)
    if status is not None:
        print(f"nnenergy serve: already running (pid {status['pid']}) on {socket_path()}")
        return 0
    log = cache_dir() / "serve.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "nnenergy.cli", "serve", "--idle-minutes", str(idle_minutes)],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True)
    deadline = time.time() + wait_s
    while time.time() < deadline:
        if proc.poll() is not None:
            status = _ask({"op": "status"}, ack_timeout=5, timeout=5)  # another server won the race
            if status is not None:
                print(f"nnenergy serve: already running (pid {status['pid']}) on {socket_path()}")
                return 0
            print(f"nnenergy serve: error: the server exited (status {proc.returncode}); see {log}", file=sys.stderr)
            return 1
        status = _ask({"op": "status"}, ack_timeout=5, timeout=5)
        if status is not None:
            print(f"nnenergy serve: ready (pid {status['pid']}) on {socket_path()}; "
                  "stop it with `nnenergy serve --stop`")
            return 0
        time.sleep(0.2)
    proc.terminate()
    print(f"nnenergy serve: error: the server did not answer within {wait_s:.0f} s; see {log}", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    from nnenergy.cli.predict import _Parser  # one-line usage errors, exit 2

    p = _Parser(
        prog="nnenergy serve",
        description="Keep TensorFlow and Keras imported so that `nnenergy predict` and `describe`, run from this "
                    "folder, answer in about a second (they run by themselves when no server answers; "
                    "NNENERGY_SERVER=off never uses one).",
        epilog="exit status: 0 done, 2 bad usage, 1 the server could not start.")
    p.add_argument("--detach", action="store_true", help="start in the background and return once it answers")
    p.add_argument("--stop", action="store_true", help="stop the server of this folder")
    p.add_argument("--status", action="store_true", help="say whether a server answers here (exit 1 if none)")
    p.add_argument("--idle-minutes", type=float, default=30.0,
                   help="stop after this long without a request (default 30)")
    args = p.parse_args(argv)
    if not args.idle_minutes > 0:
        p.error(f"--idle-minutes must be positive, not {args.idle_minutes:g}")
    if args.stop or args.status:
        answer = _ask({"op": "stop" if args.stop else "status"}, ack_timeout=10, timeout=10)
        if answer is None:
            print(f"nnenergy serve: no server answers on {socket_path()}")
            return 0 if args.stop else 1
        if args.stop:
            print(f"nnenergy serve: stopped pid {answer['stopped']} after {answer['served']} request(s)")
        else:
            print(f"nnenergy serve: pid {answer['pid']}, up {answer['up_s']:.0f} s, {answer['served']} request(s) "
                  f"served, stops after {answer['idle_minutes']:g} idle minute(s)")
        return 0
    if args.detach:
        return _detach(args.idle_minutes)
    return serve(args.idle_minutes)
