"""MLflow stores as a user meets them: which one a command reads, whether it answers, and how it is
named in what nnenergy prints or logs (never with its credentials).

Which store (`find_store`), first match wins:
1. `--tracking-uri URI` (commands that take it), 2. `$MLFLOW_TRACKING_URI`,
3. `./mlflow.db` in the working folder when it exists,
4. the store the last successful `nnenergy main` (`make run`) trained into, recorded in
   `<user config folder>/nnenergy/store.json` (platformdirs; `$NNENERGY_CONFIG` names another file),
5. otherwise `./mlflow.db` (absent: the error names what was looked for and how to point elsewhere).

A remote store is probed before MLflow talks to it (`probe`): one TCP connect (and for http(s) one
`GET /health`) bounded by `PROBE_TIMEOUT_S`, never retried, so an unreachable store fails in seconds
with one line naming its host, instead of MLflow's minutes of retries.
"""

from __future__ import annotations

import functools
import json
import os
import re
import socket
from pathlib import Path
from urllib.parse import urlsplit

PROBE_TIMEOUT_S = 5.0
CONFIG_ENV = "NNENERGY_CONFIG"
LOCAL_STORE = "sqlite:///mlflow.db"
_DEFAULT_PORTS = {"http": 80, "https": 443, "postgresql": 5432, "mysql": 3306, "mssql": 1433}
# `scheme://user:password@host` or `scheme://token@host`: everything between `//` and `@` is a credential.
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][\w+.-]*://)[^/@\s]+@")


class StoreUnreachable(Exception):
    """The store does not exist, does not answer, or lacks its driver: one line, no credentials."""


def redact(text: str) -> str:
    """`text` with every URI's credentials (`user:password@`) replaced by `***@`."""
    return _USERINFO.sub(r"\g<scheme>***@", str(text))


def public_config(obj):
    """A resolved config (dicts, lists, scalars) with the credentials of every URI in it removed: what
    nnenergy logs to MLflow as params and artifacts."""
    if isinstance(obj, dict):
        return {k: public_config(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [public_config(v) for v in obj]
    return redact(obj) if isinstance(obj, str) else obj


# -- which store --------------------------------------------------------------------------------
def config_file() -> Path:
    """The user's nnenergy settings file: `$NNENERGY_CONFIG`, else `<user config folder>/nnenergy/store.json`."""
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    from platformdirs import user_config_dir

    return Path(user_config_dir("nnenergy", appauthor=False)) / "store.json"


def recorded_store() -> str | None:
    """The store the last `nnenergy main` recorded, or None."""
    try:
        return json.loads(config_file().read_text()).get("tracking_uri") or None
    except (OSError, ValueError, AttributeError):
        return None


def record_store(uri: str) -> Path | None:
    """Remember `uri` as the default store of `nnenergy predict` from any folder (`nnenergy main` calls
    this after training). A URI with credentials, or a SQLite file that does not exist, is never written;
    returns the file, or None."""
    if redact(uri) != uri or (uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).exists()):
        return None
    path = config_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"tracking_uri": uri}) + "\n")
    except OSError:  # a convenience: never fail the training over it
        return None
    return path


def find_store(tracking_uri: str | None = None) -> str:
    """The store a command reads (module docstring, steps 1-5), as given (relative SQLite paths unresolved)."""
    if tracking_uri or os.environ.get("MLFLOW_TRACKING_URI"):
        return tracking_uri or os.environ["MLFLOW_TRACKING_URI"]
    if Path("mlflow.db").exists():
        return LOCAL_STORE
    return recorded_store() or LOCAL_STORE


def missing_store_hint() -> str:
    """What `find_store` looked for, and how to point to another store: the tail of a 'no store' error."""
    recorded = recorded_store()
    seen = (f"the store recorded in {config_file()} ({recorded}) is gone" if recorded else
            f"no store recorded in {config_file()} (`make run` records one)")
    return (f"looked in ./mlflow.db ({Path('mlflow.db').resolve()}) and {seen}; train one with `make run`, or "
            "point to one with --tracking-uri URI or MLFLOW_TRACKING_URI")


# -- does it answer ---------------------------------------------------------------------------------
def probe(uri: str, must_exist: bool = True) -> None:
    """Raise `StoreUnreachable` (one line, host named, credentials never) when the store at `uri` cannot
    be used; seconds at most. Local SQLite stores are not probed (their callers check the file); a
    `file://` store must exist only to be read (`must_exist`: training creates one)."""
    _probe(uri, must_exist)


@functools.lru_cache(maxsize=16)  # one probe per store and process
def _probe(uri: str, must_exist: bool) -> None:
    parts = urlsplit(uri)
    scheme = parts.scheme.split("+")[0].lower()
    if scheme == "file" and must_exist:
        if not Path(parts.path).exists():
            raise StoreUnreachable(f"no MLflow store at {redact(uri)}: {parts.path} does not exist")
        return
    if scheme not in _DEFAULT_PORTS:
        return
    try:
        host, port = parts.hostname, parts.port or _DEFAULT_PORTS[scheme]
    except ValueError as exc:  # a port that is not a number
        raise StoreUnreachable(f"not a valid store URI {redact(uri)}: {exc}") from None
    if not host:
        raise StoreUnreachable(f"not a valid store URI {redact(uri)}: it names no host")
    where = f"the MLflow store at {redact(uri)}"
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S) as conn:
            _first_words(conn, scheme)
    except TimeoutError:
        raise StoreUnreachable(f"cannot reach {where}: {host}:{port} did not answer within "
                               f"{PROBE_TIMEOUT_S:g} s") from None
    except OSError as exc:
        why = "refused the connection" if isinstance(exc, ConnectionRefusedError) else (exc.strerror or str(exc))
        raise StoreUnreachable(f"cannot reach {where}: {host}:{port} {why}") from None
    if scheme in ("http", "https"):
        _probe_http(parts, host, port, where)
    else:
        _check_driver(uri, where)


def _first_words(conn: socket.socket, scheme: str) -> None:
    """A database that accepts connections but never speaks would hold its driver without a timeout:
    PostgreSQL must answer an SSL request with one byte, MySQL greets first (both within the timeout)."""
    if scheme == "postgresql":
        conn.sendall((8).to_bytes(4, "big") + (80877103).to_bytes(4, "big"))  # SSLRequest
    if scheme in ("postgresql", "mysql") and not conn.recv(1):
        raise OSError(0, "closed the connection without answering")


def _probe_http(parts, host: str, port: int, where: str) -> None:
    """A server that accepts connections but never answers would hold MLflow for its full timeout."""
    import urllib.error
    import urllib.request

    url = f"{parts.scheme}://{host}:{port}{parts.path.rstrip('/')}/health"
    try:
        urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_S).close()
    except urllib.error.HTTPError:  # it answered (401, 404, ...): MLflow says what is wrong
        return
    except (TimeoutError, socket.timeout):
        raise StoreUnreachable(f"cannot reach {where}: {host}:{port} accepted the connection but did not "
                               f"answer within {PROBE_TIMEOUT_S:g} s") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, (TimeoutError, socket.timeout)):
            raise StoreUnreachable(f"cannot reach {where}: {host}:{port} did not answer within "
                                   f"{PROBE_TIMEOUT_S:g} s") from None
        return  # TLS and other protocol errors: MLflow reports them with its own settings


def _check_driver(uri: str, where: str) -> None:
    """A database store whose Python driver is missing fails with its import error, not after retries."""
    try:
        from sqlalchemy.engine import make_url

        make_url(uri).get_dialect().import_dbapi()
    except ImportError as exc:
        scheme = uri.split("://", 1)[0]
        hint = " (write postgresql+psycopg2://, whose driver `pip install nnenergy[team]` installs)" \
            if scheme == "postgresql" else ""
        raise StoreUnreachable(f"cannot use {where}: {scheme}:// needs a driver that is not installed "
                               f"({exc}){hint}") from None
    except Exception:  # an unknown dialect and the like: MLflow reports it
        return
