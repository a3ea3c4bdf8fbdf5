"""Quiet start-up for every entry point: TensorFlow's C++ lines, MLflow's INFO lines and its artifact
progress bars stay off stderr unless the user asked for them (a variable they set is theirs).

TensorFlow reads `TF_CPP_MIN_LOG_LEVEL` once, as it loads, and writes some lines ("Could not find cuda
drivers", oneDNN's notice) to file descriptor 2 while it loads, before any level applies; the
profiler's converter (xprof) reads the same variable. So an entry point calls `quiet_environment()`
before anything imports TensorFlow or MLflow, and `import_tensorflow()` to load TensorFlow with
descriptor 2 on /dev/null.
"""

from __future__ import annotations

import contextlib
import os
import sys

QUIET = {
    "TF_CPP_MIN_LOG_LEVEL": "3",  # C++ INFO to ERROR: "failed call to cuInit", "No UnifiedProfileProcessor ..."
    "GRPC_VERBOSITY": "ERROR",
    # MLflow draws a bar per artifact download (each logged model is loaded back to check its input example).
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    # Its INFO lines ("Creating a new experiment", "Validating input example against model signature"); its
    # warnings still show. Read when MLflow is first imported.
    "MLFLOW_LOGGING_LEVEL": "WARNING",
}


def quiet_environment() -> None:
    """Set the quiet defaults (`QUIET`) the user has not set."""
    for key, value in QUIET.items():
        os.environ.setdefault(key, value)


def import_tensorflow() -> None:
    """Load TensorFlow with descriptor 2 on /dev/null where the level asks for quiet (`TF_CPP_MIN_LOG_LEVEL`
    3, the default `quiet_environment` gives). A failing import is left to the real one, which reports it;
    another Keras backend, or TensorFlow already loaded, leaves nothing to do."""
    if "tensorflow" in sys.modules or os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # a Python-API caller who set nothing gets the CLI's quiet
    if os.environ["TF_CPP_MIN_LOG_LEVEL"] != "3":
        return
    try:
        saved = os.dup(2)
    except OSError:
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            with contextlib.suppress(Exception):
                import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
