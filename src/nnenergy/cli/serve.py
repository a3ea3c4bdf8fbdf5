"""`nnenergy serve`: a warm local server for `predict` and `describe`.

A first prediction of a model spends ~6 s importing TensorFlow and Keras before it describes the
model (a repeated one reads its layer table from the cache and needs neither). A server started once
keeps them, and the predictor, loaded: while it runs, `nnenergy predict`/`describe` hand their
arguments, working folder and environment to it over a Unix socket and print its answer, so a model
never described before answers in about a second. Without a server, or when it cannot answer (code
changed since it started, socket gone, `NNENERGY_SERVER=off`), the command runs in its own process
as before: the server changes how fast, never what is printed.

One server per cache folder (`nnenergy.paths.cache_dir()`, absolute): the socket's name is derived
from it, so commands run where the server was started (same cache, same store) find it. The socket
is the user's own (mode 0600). It answers one request at a time and stops after `--idle-minutes`
without one, or on `nnenergy serve --stop`.
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
OFF_ENV = "NNENERGY_SERVER"  # "off": never use a server
_MAX_MESSAGE = 64 * 1024 * 1024


def socket_path() -> Path:
    """The socket of the server for this cache folder (short: a Unix socket's path has ~100 bytes)."""
    from nnenergy.paths import cache_dir

    ident = hashlib.sha1(str(cache_dir().resolve()).encode()).hexdigest()[:12]
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(os.environ.get("TMPDIR", "/tmp")) / f"nnenergy-{uid}-{ident}.sock"


def code_identity() -> str:
    """The installed nnenergy code (each module's path, size and mtime) and the interpreter: a server
    running other code than the client's must not answer for it."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha1(sys.executable.encode())
    for path in sorted(root.rglob("*.py")):
        st = path.stat()
        h.update(f"{path.relative_to(root)}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()[:16]


# -- the wire: one JSON message each way, length-prefixed ---------------------------------------

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


def _ask(request: dict, timeout: float | None = None) -> dict | None:
    """Send one request to this cache folder's server; None when no server answers."""
    path = socket_path()
    if not path.exists():
        return None
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(timeout)
            conn.connect(str(path))
            _send(conn, request)
            return _recv(conn)
    except (OSError, ConnectionError, ValueError):
        return None


# -- the client side: `nnenergy predict/describe` ------------------------------------------------

def forward(cmd: str, argv: list[str]) -> int | None:
    """Run `nnenergy CMD ARGV` on the server when one answers: print its output, return its exit
    status. None: no server (or it declined), the caller runs the command itself."""
    if cmd not in SERVED or os.environ.get(OFF_ENV, "").lower() in ("off", "0", "no", "false"):
        return None
    answer = _ask({"op": "run", "cmd": cmd, "argv": argv, "cwd": os.getcwd(), "env": dict(os.environ),
                   "code": code_identity()})
    if not answer or answer.get("declined"):
        return None
    sys.stdout.write(answer.get("stdout", ""))
    sys.stdout.flush()
    sys.stderr.write(answer.get("stderr", ""))
    sys.stderr.flush()
    return int(answer.get("rc", 1))


# -- the server side ---------------------------------------------------------------------------

def _run_here(cmd: str, argv: list[str]) -> tuple[int, str, str]:
    """Run one command in this process with its output captured; (exit status, stdout, stderr)."""
    import contextlib
    import io
    import traceback

    from nnenergy.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main([cmd, *argv])
        except SystemExit as exc:  # argparse's --help and usage errors
            rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
            if isinstance(exc.code, str):
                print(exc.code, file=sys.stderr)
        except BaseException as exc:  # noqa: BLE001 -- a failure is the client's one line, never the server's end
            if os.environ.get("NNENERGY_DEBUG"):
                traceback.print_exc()
            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
            print(f"nnenergy {cmd}: error: {type(exc).__name__}: {first}", file=sys.stderr)
            rc = 1
    return int(rc or 0), out.getvalue(), err.getvalue()


def _fresh_keras() -> None:
    """Forget the models of earlier requests: Keras numbers auto-named layers per session (`conv2d`,
    then `conv2d_1`), so without this a model built twice would be named unlike a fresh process's."""
    import sys

    if "keras" in sys.modules:
        sys.modules["keras"].backend.clear_session()


def _answer_run(request: dict, code: str) -> dict:
    if request.get("code") != code:
        return {"declined": "the client runs other nnenergy code than this server"}
    _fresh_keras()
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    try:
        os.environ.clear()
        os.environ.update(request.get("env") or {})
        os.environ[OFF_ENV] = "off"  # the command runs here, never forwarded again
        os.chdir(request.get("cwd") or saved_cwd)
        rc, out, err = _run_here(request["cmd"], list(request.get("argv") or []))
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    return {"rc": rc, "stdout": out, "stderr": err}


def _warm_up() -> None:
    """Load what a first prediction would: TensorFlow (quietly), Keras, the describing code, the
    default predictor, and one small model built and described (Keras' first build has its own cost)."""
    import contextlib

    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    from nnenergy.predict.models import import_tensorflow_quietly

    import_tensorflow_quietly()
    import io

    with contextlib.suppress(Exception), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        _run_here("predict", ["tiny_cnn", "--json"])


def serve(idle_minutes: float) -> int:
    """Answer requests on this cache folder's socket until `idle_minutes` pass without one, or a stop."""
    path = socket_path()
    if _ask({"op": "status"}, timeout=5) is not None:
        print(f"nnenergy serve: a server already answers on {path}", file=sys.stderr)
        return 0
    os.environ[OFF_ENV] = "off"  # the warm-up's predict runs here, never asks a server
    code = code_identity()
    _warm_up()
    served, started = 0, time.time()
    # Checked again after the warm-up's seconds: of two servers started together, one answers.
    if _ask({"op": "status"}, timeout=5) is not None:
        print(f"nnenergy serve: a server already answers on {path}", file=sys.stderr)
        return 0
    path.unlink(missing_ok=True)  # a socket left by a server that died
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as srv:
        old = os.umask(0o177)
        try:
            srv.bind(str(path))
        finally:
            os.umask(old)
        srv.listen(16)
        srv.settimeout(max(idle_minutes, 0.01) * 60)
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
                        op = request.get("op")
                        if op == "run":
                            answer = _answer_run(request, code)
                            served += 0 if answer.get("declined") else 1
                            _send(conn, answer)
                            if answer.get("declined"):
                                break  # stale code: let the next server start fresh
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
            path.unlink(missing_ok=True)
    print(f"nnenergy serve: stopped after {served} request(s)", file=sys.stderr)
    return 0


def _detach(idle_minutes: float, wait_s: float = 180.0) -> int:
    """Start the server in its own session (output in <cache>/serve.log); return once it answers."""
    import subprocess

    from nnenergy.paths import cache_dir

    status = _ask({"op": "status"}, timeout=5)
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
            print(f"nnenergy serve: error: the server exited (status {proc.returncode}); see {log}", file=sys.stderr)
            return 1
        status = _ask({"op": "status"}, timeout=5)
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
        description="Keep TensorFlow, Keras and the predictor loaded so that `nnenergy predict` and `describe`, "
                    "run from this folder, answer in about a second (they run by themselves when no server "
                    "answers; NNENERGY_SERVER=off never uses one).",
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
        answer = _ask({"op": "stop" if args.stop else "status"}, timeout=10)
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
