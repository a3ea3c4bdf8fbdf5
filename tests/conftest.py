"""Shared fixtures: real Hydra composition, real CodeCarbon, a temporary SQLite MLflow store."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# The suite never reads or writes the user's own cache (~/.cache/nnenergy) or recorded store
# (~/.config/nnenergy/store.json): one throwaway folder per session, subprocesses included.
_SESSION = Path(tempfile.mkdtemp(prefix="nnenergy-tests-"))
atexit.register(shutil.rmtree, _SESSION, ignore_errors=True)
os.environ["NNENERGY_CACHE"] = str(_SESSION / "cache")
os.environ["NNENERGY_CONFIG"] = str(_SESSION / "config" / "store.json")
# A developer's `nnenergy serve` must never answer the suite's commands (tests/test_serve.py starts its own).
os.environ["NNENERGY_SERVER"] = "off"
# Predictions in the suite are stated at the predictor's canonical speed (no probe in every call, and
# no test depends on the machine's real speed); tests/test_speed.py sets other modes explicitly.
os.environ["NNENERGY_SPEED"] = "canonical"
# Two pytest-xdist workers on two cores: an OpenMP pool of two threads in each (xgboost, scikit-learn's
# histogram trees, BLAS) puts four busy threads on two cores, and OpenMP's spinning waits turn that into
# several times the work. One thread per worker (TensorFlow's pools are its own: sweeps, probes and the
# bring-up set them from their config).
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")


from nnenergy.measure.lock import MeasurementLock, MeasurementLockError  # noqa: E402  (its path is read at each use)

# The suite measures tiny models with real CodeCarbon: it is a measuring process, so it holds the host's lock for its
# whole run (a sweep started meanwhile waits or refuses, and a suite started beside a sweep stops at once instead of
# measuring it). Only the first process does: pytest itself, or the controller of `pytest -n 2` (pytest-xdist).
_HOST_LOCK = contextlib.ExitStack()  # kept open until the process exits
if not os.environ.get("PYTEST_XDIST_WORKER"):
    try:
        _HOST_LOCK.enter_context(MeasurementLock())
    except MeasurementLockError as exc:
        raise SystemExit(f"{exc} (the suite measures too: run the tests when it is done)") from None
# Inside the suite each process (pytest-xdist worker) locks its own file: the tests' measurements are
# correctness checks whose values are never kept, and the tests that take or probe the lock mean this one.
os.environ["NNENERGY_MEASURE_LOCK"] = str(_SESSION / "measure.lock")
# ...and so a window that saw the other worker is kept (flagged), not redone three times after a pause.
os.environ["NNENERGY_BUSY_WINDOWS"] = "keep"

import pytest  # noqa: E402  (after the environment above: the imports below read it)
from hydra import compose, initialize_config_dir  # noqa: E402

from nnenergy.apps import CONF_DIR  # noqa: E402


class FakeMeter:
    """A meter whose machine runs at a known speed: each call advances `clock` by its cost x `speed`, and
    a window's energy is 20 W x its time (the protocol's arithmetic, exactly; nothing is measured)."""

    def __init__(self):
        self.clock, self.speed = 0.0, 1.0

    def begin(self):
        self.t0 = self.clock

    def sync(self):
        pass

    def end(self):
        from nnenergy.measure.meter import WindowReading

        d = self.clock - self.t0
        return WindowReading(energy_j=20.0 * d, cpu_j=16.0 * d, ram_j=4.0 * d, gpu_j=0.0, duration_s=max(d, 1e-9))


def foreign_profile() -> str:
    """A hardware profile that is never this machine's, whatever its CPU (an Intel Xeon, an AMD EPYC, ...):
    this machine's own name with a suffix no CPU, core count or runtime ever produces."""
    from nnenergy.measure.hardware import current_profile_name

    return f"{current_profile_name()}-another-machine"


def compose_cfg(config_name: str, overrides: list[str]):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name=config_name, overrides=overrides)


@pytest.fixture(scope="session")
def _migrated_db(tmp_path_factory) -> Path:
    """An empty MLflow SQLite store with its tables made once: creating them costs ~1.5 s per store
    (and per process that opens a new one), copying the file costs nothing."""
    from mlflow import MlflowClient

    folder = tmp_path_factory.mktemp("template")
    with contextlib.chdir(folder):  # the Default experiment's artifacts (`./mlruns`) stay in here (ours go
        # beside the store: `tracking.artifact_root`)
        MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}").search_experiments()
    return folder / "mlflow.db"


@pytest.fixture(scope="session")
def new_store(_migrated_db):
    """`new_store(folder)` -> the URI of a fresh, empty SQLite store in `folder`, ready to use."""
    def make(folder: Path, name: str = "mlflow.db") -> str:
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_migrated_db, Path(folder) / name)
        return f"sqlite:///{Path(folder) / name}"
    return make


@pytest.fixture(scope="session")
def tracking_uri(tmp_path_factory, new_store) -> str:
    return new_store(tmp_path_factory.mktemp("mlflow"))


@pytest.fixture(scope="session")
def tiny_sweep(tmp_path_factory, tracking_uri):
    """The `tiny` sweep (plus two Dense-only models, a third family), measured once per session."""
    from nnenergy.apps import measure

    root = tmp_path_factory.mktemp("tiny")
    cfg = compose_cfg("measure", [
        "sweep=tiny",
        "sweep.architectures=[tiny_cnn,tiny_mlp,dense_only_small,dense_only_wide]",
        f"sweep.output_dir={root / 'data'}",
        f"sweep.cache_dir={root / 'cache'}",
        f"mlflow.tracking_uri={tracking_uri}",
    ])
    return cfg, measure.run(cfg)


# Small regressors so the four layer-wise predictors train in seconds on the tiny dataset.
SMALL = {
    "rf": ["predictor.regressor.n_estimators=10"],
    "xgb": ["predictor.regressor.n_estimators=20"],
    "catboost": ["predictor.regressor.iterations=20"],
    "poly": [],
}


def train_overrides(predictor: str, dataset_dir, tracking_uri: str) -> list[str]:
    return [
        f"predictor={predictor}",
        f"dataset={dataset_dir}",
        f"mlflow.tracking_uri={tracking_uri}",
        "evaluation.n_folds=3",
        *(["predictor.model.min_rows_per_kind=2"] if predictor in SMALL else []),
        *SMALL.get(predictor, []),
    ]


@pytest.fixture(scope="session")
def trained_rf(tiny_sweep, tracking_uri):
    """An `rf` predictor trained on the tiny dataset and registered as champion."""
    from nnenergy.apps import train

    _, result = tiny_sweep
    cfg = compose_cfg("train", train_overrides("rf", result.output_dir, tracking_uri))
    return cfg, train.run(cfg)


@pytest.fixture(scope="session")
def store(trained_rf, tracking_uri) -> str:
    """The tracking URI of a store whose `champion` is the tiny `rf` predictor (`trained_rf`)."""
    return tracking_uri


def pytest_collection_modifyitems(config, items):
    """The long end-to-end tests (marked slow) first, the rest in their order: with `make test`'s two
    workers (pytest-xdist) the short tests then fill in around the long ones at the end, instead of one
    worker waiting for the other's last long test."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
