"""The client of `nnenergy serve` (the server: `serve.py`); it imports nothing heavy, since every command
runs it. `predict` and `describe` hand their arguments to a warm server, which answers only a client in
the context it was started in (`context()`), so its answer is the command's own; otherwise, or when no
server takes the request within NNENERGY_SERVER_TIMEOUT seconds, the command runs by itself. The wire: one
JSON object per line each way (b"" when closed: a ValueError); a server acknowledges a request it takes."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
from pathlib import Path

from nnenergy.paths import cache_dir

SERVED = ("predict", "describe")
OFF_ENV = "NNENERGY_SERVER"  # "off" (or 0/no/false): never use a server
ACK_TIMEOUT_ENV = "NNENERGY_SERVER_TIMEOUT"  # seconds to wait for a server to take the request
ACK_TIMEOUT_S = 15.0  # a server that has not taken it by then is stopped (Ctrl-Z) or stuck
# The settings an answer depends on (but the server switch, and TensorFlow's log level: the CLI sets it).
_SETTINGS = ("NNENERGY_", "MLFLOW_", "KERAS_", "TF_", "CUDA_", "OMP_", "MKL_", "CODECARBON_", "HOME", "TMPDIR")
_NOT_SETTINGS = (OFF_ENV, ACK_TIMEOUT_ENV, "TF_CPP_MIN_LOG_LEVEL")


def disabled() -> bool:
    return os.environ.get(OFF_ENV, "").strip().lower() in ("off", "0", "no", "false")


def socket_path() -> Path:
    """The socket of this cache folder's server (short: a Unix socket's path has ~100 bytes)."""
    ident = hashlib.sha1(str(cache_dir().resolve()).encode()).hexdigest()[:12]
    return Path(os.environ.get("TMPDIR", "/tmp")) / f"nnenergy-{os.getuid()}-{ident}.sock"


def context() -> dict:
    """What an answer depends on besides the arguments: the code on disk (each module's path, size and
    mtime) and its environment (`sys.prefix`), the working folder (relative paths, `mlflow.db`, `data/`),
    the settings and the CPU set (part of the hardware profile)."""
    root = Path(__file__).resolve().parents[1]
    code = hashlib.sha1(str(Path(sys.prefix).resolve()).encode())
    for path in sorted(root.rglob("*.py")):
        st = path.stat()
        code.update(f"{path.relative_to(root)}:{st.st_size}:{st.st_mtime_ns};".encode())
    env = {k: v for k, v in os.environ.items() if k.startswith(_SETTINGS) and k not in _NOT_SETTINGS}
    return {"code": code.hexdigest()[:16], "cwd": os.getcwd(), "env": env, "cpus": sorted(os.sched_getaffinity(0))}


def ask(request: dict, ack_timeout: float = ACK_TIMEOUT_S, timeout: float = 900.0) -> dict | None:
    """Send one request to this folder's server: its answer, or None when none answers in time."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn, conn.makefile("rb") as stream:
            conn.settimeout(ack_timeout)
            conn.connect(str(socket_path()))
            conn.sendall(json.dumps(request).encode() + b"\n")
            if not json.loads(stream.readline()).get("ack"):
                return None
            conn.settimeout(timeout)
            return json.loads(stream.readline())
    except (OSError, ValueError):  # no server, a dead one's socket, a timeout, a closed connection
        return None


def forward(cmd: str, argv: list[str]) -> int | None:
    """Run `nnenergy CMD ARGV` on the server: print its output (stdout and stderr in the order written),
    return its exit status. None: no server answered, or it declined."""
    if cmd not in SERVED or disabled() or "--verbose" in argv:  # TensorFlow's lines would go to its stderr
        return None
    try:
        ack = float(os.environ.get(ACK_TIMEOUT_ENV, ACK_TIMEOUT_S))
    except ValueError:
        ack = ACK_TIMEOUT_S
    answer = ask({"op": "run", "cmd": cmd, "argv": argv, **context()}, ack_timeout=ack)
    if not answer or answer.get("declined"):
        return None
    for stream, text in answer["output"]:
        print(text, end="", file=sys.stdout if stream == "stdout" else sys.stderr, flush=True)
    return int(answer["rc"])
